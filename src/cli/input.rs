//! Reading `jobctl import`'s input: lines of bounded length, and the record formats (plain lines,
//! CSV, TSV) with their header detection.

use std::io::{self, BufRead};

use super::args::Format;

pub enum Line<'a> {
    Text(&'a str),
    /// A line longer than the cap, with its length.
    TooLong(usize),
    NotUtf8,
}

/// Reads lines without ever holding more than `cap` bytes of one: a 1 GB line costs no memory.
pub struct CappedLines<R> {
    input: R,
    cap: usize,
    buf: Vec<u8>,
    /// Lines read so far.
    pub number: u64,
    /// Bytes consumed so far, line ends included.
    pub bytes: u64,
}

impl<R: BufRead> CappedLines<R> {
    pub fn new(input: R, cap: usize) -> Self {
        CappedLines {
            input,
            cap,
            buf: Vec::with_capacity(cap),
            number: 0,
            bytes: 0,
        }
    }

    /// The next line and its number (1-based), or None at the end.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        self.buf.clear();
        let mut seen = 0usize;
        let mut any = false;
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            any = true;
            let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], Some(i + 1)),
                None => (chunk, None),
            };
            if seen + part.len() <= self.cap {
                self.buf.extend_from_slice(part);
            }
            seen += part.len();
            let consumed = done.unwrap_or(chunk.len());
            self.input.consume(consumed);
            self.bytes += consumed as u64;
            if done.is_some() {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        self.number += 1;
        let line = if seen > self.cap {
            Line::TooLong(seen)
        } else {
            match std::str::from_utf8(&self.buf) {
                Ok(text) => Line::Text(text.trim_end_matches('\r')),
                Err(_) => Line::NotUtf8,
            }
        };
        Ok(Some((self.number, line)))
    }
}

/// Where a record's url and priority are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The field separator; None for plain lines (the whole line is the URL).
    sep: Option<u8>,
    url: usize,
    priority: Option<usize>,
    /// Fields a record may have.
    fields: usize,
}

impl Layout {
    pub const LINES: Layout = Layout {
        sep: None,
        url: 0,
        priority: None,
        fields: 1,
    };

    pub fn name(&self) -> &'static str {
        match self.sep {
            None => "lines",
            Some(b',') => "CSV",
            Some(_) => "TSV",
        }
    }
}

/// Decides the layout from the first line that is neither blank nor a comment. Returns it, and
/// whether that line was a header (to be skipped). A header that names an unknown column is an
/// error: a misspelt "priorty" must not be dropped in silence.
pub fn detect(first: &str, format: Format) -> Result<(Layout, bool), String> {
    let first = first.trim_start_matches('\u{feff}');
    let header = |sep: u8| -> Option<Vec<String>> {
        let names: Vec<String> = first
            .split(sep as char)
            .map(|n| n.trim().trim_matches('"').to_ascii_lowercase())
            .collect();
        names.iter().any(|n| n == "url").then_some(names)
    };
    let (sep, names) = match format {
        Format::Lines => return Ok((Layout::LINES, false)),
        Format::Csv => (b',', header(b',')),
        Format::Tsv => (b'\t', header(b'\t')),
        Format::Auto => match (header(b'\t'), header(b',')) {
            (Some(names), _) => (b'\t', Some(names)),
            (None, Some(names)) => (b',', Some(names)),
            (None, None) => return Ok((Layout::LINES, false)),
        },
    };
    let Some(names) = names else {
        // CSV or TSV without a header: url, then an optional priority.
        let layout = Layout {
            sep: Some(sep),
            url: 0,
            priority: Some(1),
            fields: 2,
        };
        return Ok((layout, false));
    };
    let mut layout = Layout {
        sep: Some(sep),
        url: 0,
        priority: None,
        fields: names.len(),
    };
    for (i, name) in names.iter().enumerate() {
        match name.as_str() {
            "url" => layout.url = i,
            "priority" => layout.priority = Some(i),
            other => {
                return Err(format!(
                    "the header names a column {other:?}; the columns are url and priority"
                ));
            }
        }
    }
    Ok((layout, true))
}

/// Splits a record and returns its url and priority (0 when absent or empty).
pub fn record<'a>(
    line: &'a str,
    layout: &Layout,
) -> Result<(std::borrow::Cow<'a, str>, i64), String> {
    let Some(sep) = layout.sep else {
        return Ok((line.trim().into(), 0));
    };
    let fields = if sep == b',' {
        split_csv(line)?
    } else {
        line.split('\t').map(Into::into).collect()
    };
    if fields.len() > layout.fields {
        return Err(format!(
            "the record has {} fields; at most {} were expected",
            fields.len(),
            layout.fields
        ));
    }
    let url = match fields.get(layout.url) {
        Some(url) if !url.trim().is_empty() => url.clone(),
        _ => return Err("the record has no url".into()),
    };
    let priority = match layout.priority.and_then(|i| fields.get(i)) {
        Some(p) if !p.trim().is_empty() => p
            .trim()
            .parse()
            .map_err(|_| format!("priority {:?} is not an integer", p.trim()))?,
        _ => 0,
    };
    let url = match url {
        std::borrow::Cow::Borrowed(s) => s.trim().into(),
        std::borrow::Cow::Owned(s) => s.trim().to_string().into(),
    };
    Ok((url, priority))
}

/// One CSV line (RFC 4180): fields separated by commas, optionally in double quotes, with `""`
/// for a quote inside. A record may not span lines (a URL never holds a line break).
fn split_csv(line: &str) -> Result<Vec<std::borrow::Cow<'_, str>>, String> {
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        let trimmed = rest.trim_start_matches(' ');
        if let Some(quoted) = trimmed.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let after = loop {
                match chars.next() {
                    Some((i, '"')) if quoted[i + 1..].starts_with('"') => {
                        value.push('"');
                        chars.next();
                    }
                    Some((i, '"')) => break &quoted[i + 1..],
                    Some((_, c)) => value.push(c),
                    None => return Err("a quote is never closed".into()),
                }
            };
            fields.push(value.into());
            let after = after.trim_start_matches(' ');
            match after.strip_prefix(',') {
                Some(next) => rest = next,
                None if after.is_empty() => return Ok(fields),
                None => return Err("there is text after a closing quote".into()),
            }
        } else {
            match rest.find(',') {
                Some(i) => {
                    fields.push(rest[..i].into());
                    rest = &rest[i + 1..];
                }
                None => {
                    fields.push(rest.into());
                    return Ok(fields);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], cap: usize) -> Vec<String> {
        let mut reader = CappedLines::new(input, cap);
        let mut out = Vec::new();
        while let Some((_, line)) = reader.next_line().unwrap() {
            out.push(match line {
                Line::Text(t) => t.to_string(),
                Line::TooLong(n) => format!("too long: {n}"),
                Line::NotUtf8 => "not UTF-8".into(),
            });
        }
        assert_eq!(reader.bytes, input.len() as u64);
        out
    }

    #[test]
    fn splits_lines_and_caps_long_ones() {
        assert_eq!(lines(b"a\r\nbb\n\nccc", 5), ["a", "bb", "", "ccc"]);
        assert_eq!(lines(b"abcdefgh\nok\n", 5), ["too long: 8", "ok"]);
        assert!(lines(b"", 5).is_empty());
    }

    #[test]
    fn invalid_utf8_is_a_line_of_its_own() {
        assert_eq!(lines(b"\xff\xfe\nok", 10), ["not UTF-8", "ok"]);
    }

    fn rec(line: &str, layout: &Layout) -> Result<(String, i64), String> {
        record(line, layout).map(|(u, p)| (u.into_owned(), p))
    }

    #[test]
    fn headers_decide_the_format() {
        let (csv, header) = detect("\u{feff}URL,Priority", Format::Auto).unwrap();
        assert!(header);
        assert_eq!(csv.name(), "CSV");
        let (tsv, _) = detect("priority\turl", Format::Auto).unwrap();
        assert_eq!(rec("5\thttp://a/b", &tsv), Ok(("http://a/b".into(), 5)));
        assert_eq!(
            detect("https://a/b?x=1,2", Format::Auto).unwrap(),
            (Layout::LINES, false)
        );
        assert!(
            detect("url,priorty", Format::Auto)
                .unwrap_err()
                .contains("priorty")
        );
        let (bare, header) = detect("http://a/b,3", Format::Csv).unwrap();
        assert!(!header);
        assert_eq!(rec("http://a/b,3", &bare), Ok(("http://a/b".into(), 3)));
    }

    #[test]
    fn csv_records() {
        let (layout, _) = detect("url,priority", Format::Auto).unwrap();
        assert_eq!(rec("http://a/b, 7", &layout), Ok(("http://a/b".into(), 7)));
        assert_eq!(rec("http://a/b,", &layout), Ok(("http://a/b".into(), 0)));
        assert_eq!(rec("http://a/b", &layout), Ok(("http://a/b".into(), 0)));
        assert_eq!(
            rec("\"http://a/b?x=1,2\",-1", &layout),
            Ok(("http://a/b?x=1,2".into(), -1))
        );
        assert_eq!(
            rec("\"say \"\"hi\"\"\",1", &layout).unwrap().0,
            "say \"hi\""
        );
        assert!(
            rec("http://a/b,high", &layout)
                .unwrap_err()
                .contains("high")
        );
        assert!(
            rec("http://a/b,1,2", &layout)
                .unwrap_err()
                .contains("3 fields")
        );
        assert!(rec("\"http://a/b,1", &layout).is_err());
        assert!(rec("\"http://a\"b,1", &layout).is_err());
        assert!(rec(",1", &layout).unwrap_err().contains("no url"));
    }
}
