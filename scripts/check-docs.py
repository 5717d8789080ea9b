#!/usr/bin/env python3
"""Checks the docs (README.md, ARCHITECTURE.md, docs/*.md): figures and links.

    scripts/check-docs.py            # self-test, then check the repository's docs
    scripts/check-docs.py FILE...    # self-test, then check these files only

Every measured figure lives in BENCHMARKS.md. The other docs may quote one only as BENCHMARKS.md
writes it, so that a figure cannot go stale in one place while it is re-measured in the other.

The rule, precisely:
- A *figure* is a number followed by a unit of time, size, rate, ratio or share, with at most
  white space between them: `2.7 s`, `120ms`, `3 minutes`, `301 MiB`, `17,810 MB/s`,
  `8,500 jobs/s`, `40 per second`, `1.66x`, `2 ×`, `42 %`, `5 percent`. A range with one unit
  (`428-460 MiB`) is one figure. The units are listed in UNITS below. A number is digits with
  optional thousands commas and decimals, not glued to a letter, digit, dot, comma or slash
  before it (so `v1.2`, `ext4`, `p95` and `10/8` hold none).
- Not figures: numbers without such a unit (counts, exit codes, ports, versions, issue numbers,
  `65500`, `1,024 of 2,048`, `16-byte`, `12 bytes`); a number followed by `x` and a digit
  (`60000x60000`).
- Only prose is checked: fenced code blocks, inline code spans and link targets are skipped.
  So a default or a constant (`grace_secs = 10`, `30 s`, `64 MiB`) is written as code, which is
  what it is; a measured figure never is.
- A figure in prose passes only if BENCHMARKS.md contains the same figure (anywhere, code
  included). Figures are compared after dropping the white space between number and unit and
  writing every dash in a range as `-`: `3.30 s` matches `3.30s`, but `3.3 s` does not.
  (A constant in prose that happens to equal a figure there, such as `10 s`, passes; write it
  as code all the same.)

It also checks that every relative link in those docs names a file that exists and, with a
`#fragment`, a heading of that Markdown file (GitHub's anchors), and that ARCHITECTURE.md's code
map matches the tree: every path its first column names exists (under `src/`, or from the top of
the repository), and every module that src/lib.rs declares has a row. And README.md stays
under README_LIMIT bytes: a newcomer reads it in five minutes; the reference is in docs/.

Before checking, it runs its own self-test (a planted bad figure must fail), so a broken checker
cannot pass silently. Exit status: 0 when all is well, 1 when a doc breaks a rule (each problem is
printed as FILE:LINE: ...), 2 when the self-test fails.
"""

import os
import re
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Units that make a number a figure. Longer spellings first, so that `ms` is not read as `m`.
UNITS = [
    # Rates per second or minute (`MB/s`, `jobs/s`, `files/s`, `claims/s`, `req/min`); before the
    # sizes, so that `MB/s` is not read as `MB`.
    r"[A-Za-z]+/(?:s|sec|min|h)\b",
    # Sizes.
    r"(?:[KMGTP]i?B|kB|B)\b",
    # Times; long spellings first, so that `minutes` is not read as `min`.
    r"(?:nanoseconds?|microseconds?|milliseconds?|seconds?|minutes?|hours?|days?|weeks?)\b",
    r"(?:ns|µs|us|ms|s|sec|secs|min|mins|h|hrs?)\b",
    # Ratios and shares.
    r"[x×](?![0-9A-Za-z])",
    r"%",
    r"percent\b",
    # Rates in words (`40 per second`, `8,500 jobs per second`); last, so that `8 s per million`
    # is the figure `8 s`.
    r"(?:[A-Za-z]+ )?per (?:second|minute|hour|sec|million|megapixel)\b",
]
NUMBER = r"[0-9](?:[0-9,]*[0-9])?(?:\.[0-9]+)?"
FIGURE = re.compile(
    r"(?<![\w.,/])"
    + r"(?P<number>" + NUMBER + r"(?:\s*[-–—]\s*" + NUMBER + r")?)"
    + r"[ \t\u00a0]?(?P<unit>" + "|".join(UNITS) + r")"
)

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)((?:(?!\n[ \t]*\n).)+?)\1", re.S)
LINK_TARGET = re.compile(r"\]\(([^)\s]*)(?:\s+\"[^\"]*\")?\)")
AUTOLINK = re.compile(r"<[a-z]+://[^>]*>")


def normalise(figure):
    number, unit = figure
    number = re.sub(r"\s*[-–—]\s*", "-", number)
    return number + unit


def figures_in(text):
    """Every figure in a piece of text, as (normalised, as written)."""
    return [(normalise((m["number"], m["unit"])), m.group(0)) for m in FIGURE.finditer(text)]


def prose_lines(text):
    """(line number, line) of the prose: code blocks, code spans and link targets blanked.

    A code span may run over a line break (not over a blank line), as in Markdown."""
    fenced = False
    kept = []
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            kept.append("")
        else:
            kept.append("" if fenced else line)
    prose = CODE_SPAN.sub(lambda m: " CODE " + "\n" * m.group(0).count("\n"), "\n".join(kept))
    for number, line in enumerate(prose.split("\n"), 1):
        line = LINK_TARGET.sub("](LINK)", line)
        line = AUTOLINK.sub(" LINK ", line)
        yield number, line


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    seen, result = {}, set()
    fenced = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if FENCE.match(line):
                fenced = not fenced
                continue
            m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m and not fenced:
                base = slug(m.group(1))
                n = seen.get(base, 0)
                seen[base] = n + 1
                result.add(base if n == 0 else f"{base}-{n}")
    return result


def check_file(path, allowed, root):
    problems = []
    with open(path, encoding="utf-8") as f:
        text = f.read()
    name = os.path.relpath(path, root)
    for number, line in prose_lines(text):
        for normalised, written in figures_in(line):
            if normalised not in allowed:
                problems.append(
                    f"{name}:{number}: the figure {written!r} is not in BENCHMARKS.md: link to "
                    "its section there instead, add it there if it was measured, or write a "
                    "default or constant as code (`...`)"
                )
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        for target in re.findall(r"\]\(([^)\s]+)", CODE_SPAN.sub("", line)):
            if re.match(r"^[a-z]+:", target):
                continue
            file_part, _, fragment = target.partition("#")
            linked = (
                os.path.normpath(os.path.join(os.path.dirname(path), file_part))
                if file_part
                else path
            )
            if not os.path.exists(linked):
                problems.append(f"{name}:{number}: the link {target!r} names no file")
            elif fragment and linked.endswith(".md") and fragment not in anchors(linked):
                problems.append(
                    f"{name}:{number}: the link {target!r} names no heading of "
                    f"{os.path.relpath(linked, root)}"
                )
    return problems


def docs_of(root):
    files = [os.path.join(root, "README.md"), os.path.join(root, "ARCHITECTURE.md")]
    docs = os.path.join(root, "docs")
    if os.path.isdir(docs):
        files += sorted(
            os.path.join(docs, n) for n in os.listdir(docs) if n.endswith(".md")
        )
    return files


def code_map_problems(root):
    """ARCHITECTURE.md's code map against the tree (see the module's docstring)."""
    path = os.path.join(root, "ARCHITECTURE.md")
    lib = os.path.join(root, "src", "lib.rs")
    if not os.path.exists(path) or not os.path.exists(lib):
        return []
    text = open(path, encoding="utf-8").read()
    section = re.search(r"^## Code map\n(.*?)(?=^## )", text, re.M | re.S)
    if not section:
        return [f"{path}: no '## Code map' section"]
    problems, named = [], set()
    for line in section.group(1).splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        base = None
        for token in re.findall(r"`([^`]+)`", first):
            if "*" in token:  # a pattern (`migrations/NNNN_*.sql`): its folder must exist
                token = token[: token.rfind("/") + 1]
            candidates = [os.path.join(root, "src", token), os.path.join(root, token)]
            if base and "/" not in token.rstrip("/"):
                candidates.insert(0, os.path.join(base, token))
            found = next((c for c in candidates if os.path.exists(c)), None)
            if found is None:
                problems.append(f"{path}: the code map names `{token}`, which the tree does not have")
                continue
            if base is None and token.endswith("/"):
                base = found
            top = token.split("/")[0].removesuffix(".rs")
            named.add(top)
    modules = re.findall(r"^(?:pub(?:\(crate\))? )?mod (\w+);", open(lib, encoding="utf-8").read(), re.M)
    listed = re.search(r"^internal! \{([^}]*)\}", open(lib, encoding="utf-8").read(), re.M)
    modules += listed.group(1).split() if listed else []
    for module in sorted(set(modules) - named):
        problems.append(f"{path}: the code map has no row for the module `{module}` (src/lib.rs)")
    return problems


README_LIMIT = 12_000


def check(root, files=None):
    with open(os.path.join(root, "BENCHMARKS.md"), encoding="utf-8") as f:
        allowed = {normalised for normalised, _ in figures_in(f.read())}
    problems = []
    for path in files or docs_of(root):
        problems += check_file(path, allowed, root)
    if files is None:
        problems += code_map_problems(root)
        readme = os.path.join(root, "README.md")
        size = os.path.getsize(readme) if os.path.exists(readme) else 0
        if size > README_LIMIT:
            problems.append(
                f"{readme}: {size} bytes, over {README_LIMIT}: move reference material to docs/"
            )
    return problems


def self_test():
    """The checker on planted docs: each bad line must be caught, each good one must pass."""
    benchmarks = "| import | 3.30 s |\n| validate | 17,810 MB/s |\n| ratio | **1.66** |\n6–8 MB\n"
    good = [
        "A million URLs import in 3.30 s ([BENCHMARKS.md](BENCHMARKS.md#results)).",
        "The validator runs at 17,810 MB/s.",
        "Bodies of 6-8 MB.",
        "The default is `grace_secs = 10`, and the stop timeout is `30 s`.",
        "A span over a line break: `[fetch]", "timeout_secs = 120 s` is code.",
        "```", "2.7 s inside a fenced block", "```",
        "Exit codes 0, 1, 2 and 3; port 9187; Rust 1.86; issue 11; sides up to 65500.",
        "A frame of 60000x60000, 12 bytes, a 16-byte fingerprint, 100 per statement.",
        "IPv4's 10/8 and 169.254/16, ext4, p95, sha256, 0005.",
        "See [the table](BENCHMARKS.md#results) or <https://example.org/2.7s>.",
    ]
    bad = [
        "A million URLs import in 2.7 s.",
        "It took 3.3 s.",
        "decode costs 1.66x curl",
        "17 GB/s on photos",
        "about 8,500 jobs/s",
        "peak RSS 301 MiB",
        "42 % of its time",
        "8 s per million jobs",
        "an idle daemon uses under 1% of a core",
        "it waits 30 seconds",
        "peak RSS 428-460 MiB",
        "a rate of 40 per second",
        "two fsyncs cost 0.5ms each",
        "twice as fast: 2x",
        "see [nowhere](MISSING.md)",
        "`code` and then 2.7 s",
        "`an unclosed span\n\nover a blank line: 2.7 s",
        "see [no heading](BENCHMARKS.md#no-such-heading)",
    ]
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "BENCHMARKS.md"), "w", encoding="utf-8") as f:
            f.write("# Benchmarks\n\n## Results\n\n" + benchmarks)
        doc = os.path.join(root, "README.md")
        with open(doc, "w", encoding="utf-8") as f:
            f.write("\n".join(good) + "\n")
        problems = check(root, [doc])
        if problems:
            return ["self-test: a good line failed: " + p for p in problems]
        failures = []
        # The code map: a row for a file that is gone, and a module without a row, are caught.
        os.makedirs(os.path.join(root, "src", "kept"))
        with open(os.path.join(root, "src", "lib.rs"), "w", encoding="utf-8") as f:
            f.write("pub mod kept;\npub mod forgotten;\n")
        with open(os.path.join(root, "ARCHITECTURE.md"), "w", encoding="utf-8") as f:
            f.write("# A\n\n## Code map\n\n| module | what |\n|---|---|\n"
                    "| `kept/` (`gone.rs`) | x |\n\n## Next\n")
        found = code_map_problems(root)
        if len(found) != 2 or "gone.rs" not in found[0] or "forgotten" not in found[1]:
            failures.append(f"self-test: the code map check found {found!r}")
        for line in bad:
            with open(doc, "w", encoding="utf-8") as f:
                f.write(line + "\n")
            if len(check(root, [doc])) != 1:
                failures.append(f"self-test: this line should fail once: {line!r}")
        return failures


def main(argv):
    failures = self_test()
    if failures:
        print("\n".join(failures), file=sys.stderr)
        return 2
    files = [os.path.abspath(a) for a in argv[1:]] or None
    problems = check(ROOT, files)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check-docs: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check-docs: {len(files or docs_of(ROOT))} docs ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
