//! "Validate" in the daemon: a body that is not a whole image fails with where it broke, a bomb
//! behind a small first frame fails, and the level each job reached is recorded where users look
//! (the `validation` column, `jobctl show`, `--json`, the view). The validators themselves are
//! judged against reference encoders and decoders in tests/corpus.rs.

use jobd_testkit::images;
use jobd_testkit::server::{Fault, Reply, TestServer};

use crate::support::Env;

/// A GIF whose logical screen is 1x1 and whose one frame is 60000x60000: 35 bytes that a decoder
/// sizing its canvas from the frames would turn into 3.6 gigapixels.
fn gif_bomb() -> Vec<u8> {
    let mut gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00".to_vec();
    gif.push(0x2C); // image descriptor: left, top, width, height, no local colour table
    gif.extend([0, 0, 0, 0]);
    gif.extend(60000u16.to_le_bytes());
    gif.extend(60000u16.to_le_bytes());
    gif.push(0);
    gif.extend([2, 2, 0x4C, 0x01, 0]); // LZW minimum code size, one sub-block, terminator
    gif.push(0x3B);
    gif
}

/// A PNG whose zlib stream is broken (a stored block's length and its complement disagree)
/// while every chunk CRC is right: whole by structure, corrupt to a decoder.
fn png_with_corrupt_zlib() -> Vec<u8> {
    let mut png = images::png(8, 8, 5);
    // Signature 8, IHDR chunk 25, IDAT length and type 8, zlib header 2, block type 1, LEN 2:
    // the first byte of NLEN.
    let idat = 8 + 25;
    let nlen = idat + 8 + 2 + 1 + 2;
    png[nlen] ^= 0x01;
    let len = u32::from_be_bytes(png[idat..idat + 4].try_into().unwrap()) as usize;
    let crc = crc32fast::hash(&png[idat + 4..idat + 8 + len]);
    png[idat + 8 + len..idat + 12 + len].copy_from_slice(&crc.to_be_bytes());
    png
}

#[test]
fn a_truncated_image_fails_at_once_and_says_where_it_ends() {
    let server = TestServer::start();
    let env = Env::new("");
    let png = images::png(64, 64, 1);
    let half = png[..png.len() / 2].to_vec();
    server.route("/half.png", Reply::image(half.clone(), "image/png"));
    server.route("/bomb.gif", Reply::image(gif_bomb(), "image/gif"));
    let ids = env.add(&[server.url("/half.png"), server.url("/bomb.gif")]);
    env.drain(&[]);

    let cut = env.job(ids[0]);
    assert_eq!((cut.state.as_str(), cut.attempts), ("failed", 1), "{cut:?}");
    let expected = format!(
        "truncated: the PNG ends inside IDAT at byte {} of",
        jobd::validate::group(half.len() as u64)
    );
    assert!(cut.error().starts_with(&expected), "{cut:?}");

    let bomb = env.job(ids[1]);
    assert_eq!(bomb.state, "failed", "{bomb:?}");
    assert!(
        bomb.error()
            .contains("60000x60000, over max_pixels (100000000)"),
        "{bomb:?}"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM jobs WHERE sha256 IS NOT NULL"),
        0
    );
}

#[test]
fn a_close_delimited_body_cut_short_is_retried() {
    let server = TestServer::start();
    let env = Env::new("");
    let png = images::png(64, 64, 2);
    let cut =
        Reply::image(png[..png.len() - 100].to_vec(), "image/png").fault(Fault::CloseDelimited);
    let whole = Reply::image(png.clone(), "image/png").fault(Fault::CloseDelimited);
    server.route("/flaky.png", Reply::sequence(vec![cut, whole]));
    let id = env.add(&[server.url("/flaky.png")])[0];
    env.drain(&[]);
    let job = env.job(id);
    assert_eq!(job.state, "done", "{job:?}");
    assert_eq!(env.outcomes(id), ["retry", "done"]);
    assert_eq!(env.blob(job.blob_path.as_deref().unwrap()), png);
}

#[test]
fn decode_mode_records_the_level_and_fails_corrupt_pixel_data() {
    let server = TestServer::start();
    let env = Env::with_config(
        "workers = 2\n[fetch]\nvalidate = \"decode\"\nallow_ips = [\"127.0.0.1/32\"]\n",
    );
    server.route("/ok.png", Reply::image(images::png(20, 10, 3), "image/png"));
    server.route(
        "/bad.png",
        Reply::image(png_with_corrupt_zlib(), "image/png"),
    );
    let ids = env.add(&[server.url("/ok.png"), server.url("/bad.png")]);
    env.drain(&[]);

    let ok = env.job(ids[0]);
    assert_eq!(
        (ok.state.as_str(), ok.width, ok.height),
        ("done", Some(20), Some(10))
    );
    let level: (String, Option<String>) = env
        .db()
        .query_row(
            "SELECT validation, validation_note FROM jobs_view WHERE id = ?1",
            [ids[0]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(level, ("decode".to_string(), None));
    let show = env.jobctl_ok(&["show", &ids[0].to_string()]);
    assert!(show.contains("validated: decode"), "{show}");
    let json: serde_json::Value =
        serde_json::from_str(&env.jobctl_ok(&["--json", "show", &ids[0].to_string()])).unwrap();
    assert_eq!(json["job"]["validation"], "decode", "{json}");

    let bad = env.job(ids[1]);
    assert_eq!(bad.state, "failed", "{bad:?}");
    assert!(bad.error().starts_with("invalid image: "), "{bad:?}");
}

#[test]
fn structure_mode_stores_the_same_corrupt_pixels_and_says_so() {
    let server = TestServer::start();
    let env = Env::new("");
    server.route(
        "/bad.png",
        Reply::image(png_with_corrupt_zlib(), "image/png"),
    );
    let id = env.add(&[server.url("/bad.png")])[0];
    env.drain(&[]);
    assert_eq!(env.job(id).state, "done");
    assert_eq!(
        env.count("SELECT count(*) FROM jobs WHERE validation = 'structure'"),
        1
    );
}
