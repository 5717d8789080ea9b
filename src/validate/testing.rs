//! What the validators' unit tests share: a body fed in pieces of a given size, and the check
//! that a body is refused for the right reason.

use super::{Image, Invalid, Limits, Problem, Validator};

/// Validates `body` as `mime`, fed in pieces of `piece` bytes (the download loop's reads).
pub(crate) fn in_pieces(
    mime: &str,
    body: &[u8],
    piece: usize,
    limits: Limits,
) -> Result<Image, Invalid> {
    let mut v = Validator::for_mime(mime, limits);
    for part in body.chunks(piece.max(1)) {
        v.feed(part)?;
    }
    v.finish(&mut { body })
}

/// Asserts that `result` is a refusal of the kind `problem` whose words contain `words`.
pub(crate) fn assert_refused(result: Result<Image, Invalid>, problem: Problem, words: &str) {
    match result {
        Ok(image) => panic!("accepted as {image:?}; expected {problem:?} with {words:?}"),
        Err(e) => {
            assert_eq!(e.problem, problem, "{e}");
            assert!(e.message.contains(words), "{e:?} lacks {words:?}");
        }
    }
}
