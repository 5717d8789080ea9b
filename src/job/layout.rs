//! Where a blob lives in blob_dir: `ab/cd/<sha256>.<ext>`, the path a `done` job records.

/// The path of the blob with this sha256 (64 lowercase hex digits) and extension, relative to
/// blob_dir: two levels of folders from its first four digits, so that no folder grows huge.
pub fn blob_path(sha256: &str, ext: &str) -> String {
    format!("{}/{}/{sha256}.{ext}", &sha256[..2], &sha256[2..4])
}

/// The sha256 and extension of a path of [`blob_path`]'s shape; None for anything else (a path
/// typed into the database by hand is never trusted to name a file).
pub fn parse_blob_path(path: &str) -> Option<(&str, &str)> {
    let (dirs, file) = path.rsplit_once('/')?;
    let (sha, ext) = file.split_once('.')?;
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let ext_ok = (1..=8).contains(&ext.len())
        && ext
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if sha.len() != 64 || !hex(sha) || !ext_ok || dirs != format!("{}/{}", &sha[..2], &sha[2..4]) {
        return None;
    }
    Some((sha, ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_and_nothing_else_parses() {
        let sha = "ab".repeat(32);
        let path = blob_path(&sha, "png");
        assert_eq!(path, format!("ab/ab/{sha}.png"));
        assert_eq!(parse_blob_path(&path), Some((sha.as_str(), "png")));
        for bad in [
            format!("ab/cd/{sha}.png"),
            format!("../ab/{sha}.png"),
            format!("ab/ab/{sha}"),
            format!("ab/ab/{}.png", &sha[1..]),
            format!("ab/ab/{sha}.PNG"),
            format!("ab/ab/{sha}.toolongext"),
            "ab/ab/../../etc/passwd".to_string(),
        ] {
            assert_eq!(parse_blob_path(&bad), None, "{bad}");
        }
    }
}
