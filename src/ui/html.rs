//! The pieces every page is made of: escaping, the layout with its navigation, forms that carry
//! the CSRF token, and how numbers, sizes and times read.

use std::fmt::Write as _;

use crate::logger::{span, timestamp};

/// Text made safe for HTML text and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A query string's value, encoded.
pub fn enc(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The pages in the navigation, with their paths.
pub const NAV: [(&str, &str); 5] = [
    ("/", "Overview"),
    ("/jobs", "Jobs"),
    ("/failures", "Failures"),
    ("/hosts", "Hosts"),
    ("/gallery", "Gallery"),
];

/// A whole page: the title, the navigation with `active` marked, and the body.
pub fn layout(title: &str, active: &str, body: &str) -> String {
    let mut nav = String::new();
    for (path, name) in NAV {
        let current = if path == active {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{path}\"{current}>{name}</a>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · jobd</title><link rel=\"stylesheet\" href=\"/static/style.css\">\
         <script src=\"/static/app.js\" defer></script></head>\
         <body><header><span class=\"brand\">jobd</span><nav>{nav}</nav></header>\
         <main><h1>{}</h1>{body}</main></body></html>\n",
        esc(title),
        esc(title)
    )
}

/// A POST form to `action` with the CSRF token, hidden fields and one button.
pub fn form(action: &str, csrf: &str, fields: &[(&str, &str)], button: &str, class: &str) -> String {
    let mut out = format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(action),
        esc(csrf)
    );
    for (name, value) in fields {
        let _ = write!(
            out,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(name),
            esc(value)
        );
    }
    let _ = write!(
        out,
        "<button type=\"submit\" class=\"{}\">{}</button></form>",
        esc(class),
        esc(button)
    );
    out
}

/// 1234567 as "1,234,567".
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A size in bytes as people read it: "812 B", "3.4 MB".
pub fn size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    match b {
        b if b < 1e3 => format!("{b} B"),
        b if b < 1e6 => format!("{:.1} kB", b / 1e3),
        b if b < 1e9 => format!("{:.1} MB", b / 1e6),
        b => format!("{:.2} GB", b / 1e9),
    }
}

/// A time as an RFC 3339 timestamp with how long ago (or ahead) it is.
pub fn when(ms: i64, now: i64) -> String {
    let ago = now - ms;
    let rel = if ago >= 0 {
        format!("{} ago", span(ago))
    } else {
        format!("in {}", span(-ago))
    };
    format!(
        "<time datetime=\"{}\" title=\"{}\">{}</time>",
        timestamp(ms),
        timestamp(ms),
        esc(&rel)
    )
}

pub fn opt_when(ms: Option<i64>, now: i64) -> String {
    ms.map_or_else(|| "–".into(), |ms| when(ms, now))
}

pub fn ms(value: Option<i64>) -> String {
    value.map_or_else(|| "–".into(), span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html_and_attributes() {
        assert_eq!(
            esc("<img src=x onerror=\"a\">&'"),
            "&lt;img src=x onerror=&quot;a&quot;&gt;&amp;&#39;"
        );
        assert_eq!(enc("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(999), "999");
        assert_eq!(count(-1000), "-1,000");
        assert_eq!(size(812), "812 B");
        assert_eq!(size(3_400_000), "3.4 MB");
    }

    #[test]
    fn a_form_carries_its_token_and_escapes_its_fields() {
        let f = form("/actions/retry", "tok", &[("error", "a\"b")], "Retry", "primary");
        assert!(f.contains("name=\"csrf\" value=\"tok\""));
        assert!(f.contains("value=\"a&quot;b\""));
        assert!(f.starts_with("<form method=\"post\" action=\"/actions/retry\""));
    }
}
