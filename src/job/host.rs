//! A job's politeness key, `jobs.host`, as the schema defines it.

/// The URL's authority, as the `jobs.host` expression of the schema computes it (migration
/// 0006): the text after the first `://` up to the first `/`, `?` or `#`, without anything up to
/// and including its first `@`, with ASCII letters lowercased (SQLite's `lower()`); `None` when
/// the URL has no `://` or that text is empty.
///
/// SQLite stores what this returns for the rows jobctl imports, so that the database does not
/// evaluate the expression a million times (migration 0007); a trigger computes it in SQL for
/// every other way in. A property test holds the two to the same answers.
pub fn host_of(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.split_once('@').map_or(authority, |(_, after)| after);
    (!authority.is_empty()).then(|| authority.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_authority_lowercased_without_userinfo() {
        let cases = [
            ("https://User:pw@Img.Example.org:8443/a.png?x", Some("img.example.org:8443")),
            ("HTTP://IMG.EXAMPLE.ORG/A.PNG", Some("img.example.org")),
            ("https://example.org?q=1/2", Some("example.org")),
            ("https://example.org#frag/x", Some("example.org")),
            ("https://example.org", Some("example.org")),
            ("https://user@example.org/p@q/r", Some("example.org")),
            ("https://a@b@c.org/", Some("b@c.org")),
            ("https://[::1]:8080/a.png", Some("[::1]:8080")),
            ("https://Bücher.example/a.png", Some("bücher.example")),
            ("https://user@/x", None),
            ("file:///etc/passwd", None),
            ("not a url", None),
            ("", None),
        ];
        for (url, host) in cases {
            assert_eq!(host_of(url).as_deref(), host, "{url}");
        }
    }
}
