//! Judging a job's URL: the one check shared by jobctl (at insert) and the worker (at claim,
//! since rows typed into the sqlite3 shell never went through jobctl).

use url::Url;

/// The longest URL accepted, in bytes. Real image URLs are far shorter; browsers and servers
/// commonly stop at 8 KiB too.
pub const MAX_URL_LEN: usize = 8 * 1024;

/// Parses and checks a URL: http or https, with a host, at most [`MAX_URL_LEN`] bytes, no control
/// characters or whitespace. Numeric host forms (`0x7f000001`, `127.1`) are normalised by the
/// WHATWG parser, so the address guard sees the address that will really be dialled.
/// The error is a sentence for the job's `error` column.
pub fn parse(raw: &str) -> Result<Url, String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!(
            "url is {} bytes long; the limit is {MAX_URL_LEN}",
            raw.len()
        ));
    }
    if raw.trim().is_empty() {
        return Err("url is empty".into());
    }
    if let Some((at, c)) = raw
        .char_indices()
        .find(|(_, c)| c.is_control() || c.is_whitespace())
    {
        let what = match c {
            '\n' | '\r' => "a line break",
            c if c.is_whitespace() => "white space",
            _ => "a control character",
        };
        return Err(format!("url has {what} at byte {at}"));
    }
    let url = Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(format!(
                "url scheme {other:?} is not supported; only http and https are"
            ));
        }
    }
    if url.host().is_none() {
        return Err("url has no host".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_https() {
        assert_eq!(
            parse("https://upload.wikimedia.org/a/b.jpg")
                .unwrap()
                .as_str(),
            "https://upload.wikimedia.org/a/b.jpg"
        );
        assert!(parse("http://127.0.0.1:8080/x.png?size=2").is_ok());
    }

    #[test]
    fn rejects_what_is_not_a_fetchable_url() {
        for (raw, words) in [
            ("", "empty"),
            ("   ", "empty"),
            ("http://a/b\nc", "line break"),
            ("http://a/\u{7}", "control character"),
            (" http://a/b", "white space"),
            ("not a url", "white space"),
            ("example.com/x.png", "not a valid URL"),
            ("ftp://example.com/x.png", "\"ftp\" is not supported"),
            ("file:///etc/passwd", "\"file\" is not supported"),
            ("javascript:alert(1)", "\"javascript\" is not supported"),
            ("data:image/png;base64,AAAA", "\"data\" is not supported"),
            ("http://", "not a valid URL"),
        ] {
            let err = parse(raw).unwrap_err();
            assert!(err.contains(words), "{raw:?} gave {err:?}");
        }
    }

    #[test]
    fn rejects_overlong_urls() {
        let raw = format!("http://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(parse(&raw).unwrap_err().contains("the limit is 8192"));
    }

    #[test]
    fn numeric_hosts_are_normalised() {
        // The guard must see the dotted address, whatever the spelling.
        assert_eq!(
            parse("http://0x7f000002/").unwrap().host_str(),
            Some("127.0.0.2")
        );
        assert_eq!(
            parse("http://2130706434/").unwrap().host_str(),
            Some("127.0.0.2")
        );
        assert_eq!(
            parse("http://0177.0.0.2/").unwrap().host_str(),
            Some("127.0.0.2")
        );
        assert_eq!(
            parse("http://127.2/").unwrap().host_str(),
            Some("127.0.0.2")
        );
    }
}
