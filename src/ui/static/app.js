// jobd's dashboard works without this script. With it, the parts marked data-refresh (the
// overview's figures) are fetched again every few seconds and swapped in place, while the page
// is visible.
(function () {
  "use strict";
  document.querySelectorAll("[data-refresh]").forEach(function (live) {
    var every = parseInt(live.getAttribute("data-refresh"), 10) || 3000;
    setInterval(function () {
      if (document.hidden) { return; }
      fetch(window.location.href, { headers: { "X-Partial": "1" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { live.innerHTML = html; live.setAttribute("data-updated", Date.now()); } })
        .catch(function () {});
    }, every);
  });
})();
