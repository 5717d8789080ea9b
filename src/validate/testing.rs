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

/// Feeds `mime`'s validator `rounds` damaged copies of `base` (bytes replaced, flipped, set to
/// 0xFF or inserted, one to four at a time) in random piece sizes: it must never panic.
pub(crate) fn survives_mutations(mime: &str, base: &[u8], rounds: usize, limits: Limits) {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..rounds {
        let mut b = base.to_vec();
        for _ in 0..1 + next() % 4 {
            let i = (next() % b.len() as u64) as usize;
            match next() % 4 {
                0 => b[i] = next() as u8,
                1 => b[i] ^= 1 << (next() % 8),
                2 => b[i] = 0xFF,
                _ => b.insert(i, next() as u8),
            }
        }
        let _ = in_pieces(mime, &b, 1 + (next() % 64) as usize, limits);
    }
}
