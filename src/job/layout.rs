//! Where a blob lives in blob_dir, the path a `done` job records: `ab/<sha256>.<ext>`, in one of
//! 256 folders named by its first two hex digits, as git keeps its loose objects.
//!
//! Stores written before issue 16 nest a second level, `ab/cd/<sha256>.<ext>`. A fresh store made
//! one folder for nearly every blob that way (65,536 of them in the end), and on ext4 making a
//! folder costs more than writing a small image; one level makes 256 at most. Paths recorded in
//! that older shape still open (a job's row holds its path), `jobctl prune --blobs` removes them,
//! and the daemon finds a blob stored there before it stores the same bytes again.

/// The two shapes of a blob's path: the one jobd writes, and the one it wrote before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `ab/<sha256>.<ext>`.
    Flat,
    /// `ab/cd/<sha256>.<ext>`, written before issue 16.
    Nested,
}

impl Layout {
    pub const ALL: [Layout; 2] = [Layout::Flat, Layout::Nested];

    /// The path of the blob with this sha256 (64 lowercase hex digits) and extension, relative
    /// to blob_dir.
    pub fn path(self, sha256: &str, ext: &str) -> String {
        match self {
            Layout::Flat => format!("{}/{sha256}.{ext}", &sha256[..2]),
            Layout::Nested => format!("{}/{}/{sha256}.{ext}", &sha256[..2], &sha256[2..4]),
        }
    }

    /// The folder of the blob with this sha256, relative to blob_dir.
    pub fn dir(self, sha256: &str) -> String {
        match self {
            Layout::Flat => sha256[..2].to_string(),
            Layout::Nested => format!("{}/{}", &sha256[..2], &sha256[2..4]),
        }
    }
}

/// The path a blob with this sha256 and extension is stored at now.
pub fn blob_path(sha256: &str, ext: &str) -> String {
    Layout::Flat.path(sha256, ext)
}

/// The sha256, extension and layout of a path of either shape; None for anything else (a path
/// typed into the database by hand is never trusted to name a file).
pub fn parse_blob_path(path: &str) -> Option<(&str, &str, Layout)> {
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
    if sha.len() != 64 || !hex(sha) || !ext_ok {
        return None;
    }
    let layout = Layout::ALL
        .into_iter()
        .find(|layout| dirs == layout.dir(sha))?;
    Some((sha, ext, layout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_both_layouts_round_trip_and_nothing_else_parses() {
        let sha = "ab".repeat(32);
        let path = blob_path(&sha, "png");
        assert_eq!(path, format!("ab/{sha}.png"));
        assert_eq!(
            parse_blob_path(&path),
            Some((sha.as_str(), "png", Layout::Flat))
        );
        let nested = Layout::Nested.path(&sha, "jpg");
        assert_eq!(nested, format!("ab/ab/{sha}.jpg"));
        assert_eq!(
            parse_blob_path(&nested),
            Some((sha.as_str(), "jpg", Layout::Nested))
        );
        for bad in [
            format!("cd/{sha}.png"),
            format!("ab/cd/{sha}.png"),
            format!("../ab/{sha}.png"),
            format!("ab/ab/ab/{sha}.png"),
            format!("/ab/{sha}.png"),
            format!("{sha}.png"),
            format!("ab/{sha}"),
            format!("ab/{}.png", &sha[1..]),
            format!("ab/{sha}.PNG"),
            format!("ab/ab/{sha}.toolongext"),
            "ab/../../etc/passwd".to_string(),
        ] {
            assert_eq!(parse_blob_path(&bad), None, "{bad}");
        }
    }
}
