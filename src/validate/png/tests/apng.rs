//! APNG: acTL, fcTL and fdAT.

use super::*;

#[test]
fn apng_with_a_hidden_default_image() {
    let body = file(&[
        ihdr(10, 8, 8, 2),
        actl(2),
        idat(),
        fctl(0, 5, 5, 0, 0),
        fdat(1),
        fctl(2, 10, 8, 0, 0),
        fdat(3),
        iend(),
    ]);
    assert_eq!(check(&body), Ok(Image::new(10, 8, 2).unwrap()));
}

#[test]
fn actl_must_be_sane_and_early() {
    corrupt(
        &file(&[ihdr(10, 8, 8, 2), idat(), actl(1), iend()]),
        "acTL at byte 56 comes after the image data",
    );
    corrupt(
        &file(&[ihdr(10, 8, 8, 2), actl(0), idat(), iend()]),
        "announces 0 frames",
    );
    corrupt(
        &file(&[ihdr(10, 8, 8, 2), actl(1), actl(1), idat(), iend()]),
        "is a second acTL",
    );
    let e = error(&file(&[ihdr(10, 8, 8, 2), actl(101)]));
    assert_eq!(e.problem, Problem::TooLarge);
    assert_eq!(
        e.to_string(),
        "too large: more than 100 frames, over max_frames"
    );
}

#[test]
fn the_fctl_count_must_match_actl() {
    let body = file(&[
        ihdr(10, 8, 8, 2),
        actl(3),
        fctl(0, 10, 8, 0, 0),
        idat(),
        fctl(1, 4, 4, 0, 0),
        fdat(2),
        iend(),
    ]);
    corrupt(&body, "acTL announces 3 frames, but the file has 2 fcTL");
    let body = file(&[
        ihdr(10, 8, 8, 2),
        actl(1),
        fctl(0, 10, 8, 0, 0),
        idat(),
        fctl(1, 4, 4, 0, 0),
        fdat(2),
        iend(),
    ]);
    corrupt(&body, "is one fcTL more than the 1 frames acTL announces");
    corrupt(
        &file(&[ihdr(10, 8, 8, 2), actl(2), idat(), iend()]),
        "acTL announces 2 frames, but the file has 0 fcTL",
    );
}

#[test]
fn sequence_numbers_run_from_zero() {
    let mut chunks = vec![ihdr(10, 8, 8, 2), actl(2), fctl(0, 10, 8, 0, 0), idat()];
    chunks.extend([fctl(1, 4, 4, 0, 0), fdat(3), iend()]);
    corrupt(&file(&chunks), "has the sequence number 3 instead of 2");
    corrupt(
        &file(&[
            ihdr(10, 8, 8, 2),
            actl(1),
            fctl(1, 10, 8, 0, 0),
            idat(),
            iend(),
        ]),
        "chunk fcTL at byte 53 has the sequence number 1 instead of 0",
    );
}

#[test]
fn a_frame_must_lie_inside_the_canvas() {
    for (w, h, x, y) in [
        (11, 8, 0, 0),
        (10, 9, 0, 0),
        (5, 5, 6, 0),
        (5, 5, 0, 4),
        (1, 1, u32::MAX, 0),
        (60000, 60000, 0, 0),
    ] {
        let body = file(&[
            ihdr(10, 8, 8, 2),
            actl(2),
            idat(),
            fctl(0, w, h, x, y),
            fdat(1),
            iend(),
        ]);
        corrupt(&body, "canvas");
    }
    let e = error(&file(&[
        ihdr(10, 8, 8, 2),
        actl(2),
        idat(),
        fctl(0, 0, 3, 0, 0),
    ]));
    assert_eq!(e.message, "frame 1 is 0x3");
}

#[test]
fn the_default_images_fctl_covers_the_canvas() {
    corrupt(
        &file(&[
            ihdr(10, 8, 8, 2),
            actl(1),
            fctl(0, 9, 8, 0, 0),
            idat(),
            iend(),
        ]),
        "gives the default image 9x8 at 0,0, not the 10x8 of IHDR",
    );
    corrupt(
        &file(&[
            ihdr(10, 8, 8, 2),
            actl(1),
            fctl(0, 9, 8, 1, 0),
            idat(),
            iend(),
        ]),
        "gives the default image",
    );
    corrupt(
        &file(&[
            ihdr(10, 8, 8, 2),
            actl(2),
            fctl(0, 10, 8, 0, 0),
            fctl(1, 10, 8, 0, 0),
            idat(),
            iend(),
        ]),
        "is a second fcTL before the image data",
    );
}

#[test]
fn frame_data_follows_its_control() {
    corrupt(
        &file(&[
            ihdr(10, 8, 8, 2),
            actl(1),
            fctl(0, 10, 8, 0, 0),
            idat(),
            fdat(1),
            iend(),
        ]),
        "comes before the fcTL of its frame",
    );
    corrupt(
        &file(&[ihdr(10, 8, 8, 2), fdat(0), idat(), iend()]),
        "comes without acTL",
    );
    corrupt(
        &file(&[ihdr(10, 8, 8, 2), fctl(0, 10, 8, 0, 0), idat(), iend()]),
        "comes without acTL",
    );
    corrupt(
        &file(&[
            ihdr(10, 8, 8, 2),
            actl(2),
            idat(),
            fctl(0, 2, 2, 0, 0),
            fctl(1, 2, 2, 0, 0),
            fdat(2),
            iend(),
        ]),
        "starts a frame, but frame 1 has no fdAT",
    );
    corrupt(
        &file(&[
            ihdr(10, 8, 8, 2),
            actl(1),
            idat(),
            fctl(0, 2, 2, 0, 0),
            iend(),
        ]),
        "ends the file, but frame 1 has no fdAT",
    );
    corrupt(
        &file(&[
            ihdr(10, 8, 8, 2),
            actl(1),
            idat(),
            fctl(0, 2, 2, 0, 0),
            chunk(b"fdAT", b"\0\0\0"),
            iend(),
        ]),
        "is shorter than its sequence number",
    );
}

#[test]
fn dispose_and_blend_ops_must_be_defined() {
    for (dispose, blend) in [(3, 0), (0, 2)] {
        let body = file(&[
            ihdr(10, 8, 8, 2),
            actl(1),
            fctl_ops(0, 10, 8, 0, 0, dispose, blend),
            idat(),
            iend(),
        ]);
        corrupt(&body, "(0-2 and 0-1 are defined)");
    }
    let body = file(&[
        ihdr(10, 8, 8, 2),
        actl(1),
        fctl_ops(0, 10, 8, 0, 0, 2, 1),
        idat(),
        iend(),
    ]);
    assert!(check(&body).is_ok());
}
