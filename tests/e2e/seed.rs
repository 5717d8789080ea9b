//! The seed scenario: 40 images, 10 workers, every blob equal to the bytes served.

use jobd_testkit::images;
use jobd_testkit::server::{Reply, TestServer};

use crate::support::{Env, files_under, sha256_hex};

#[test]
fn forty_images_with_ten_workers_are_stored_byte_for_byte() {
    let server = TestServer::start();
    let mut expected = Vec::new();
    for i in 0..40u32 {
        // Small but varied, all three formats; the benchmark script uses realistic sizes.
        let (bytes, mime, dims) = match i % 3 {
            0 => (
                images::jpeg(400 + i, 300, 20_000 + 3_000 * i as usize, i.into()),
                "image/jpeg",
                (400 + i, 300),
            ),
            1 => (images::png(50 + i, 40, i.into()), "image/png", (50 + i, 40)),
            _ => (
                images::webp(640, 480 + i, 30_000, i.into()),
                "image/webp",
                (640, 480 + i),
            ),
        };
        let path = format!("/img/{i}");
        server.route(&path, Reply::image(bytes.clone(), mime));
        expected.push((server.url(&path), sha256_hex(&bytes), mime, dims));
    }
    let env = Env::new("");
    let ids = env.add(&expected.iter().map(|e| e.0.clone()).collect::<Vec<_>>());
    env.drain(&["--workers", "10"]);

    for (id, (url, sha, mime, (w, h))) in ids.iter().zip(&expected) {
        let job = env.job(*id);
        assert_eq!(job.state, "done", "{url}: {}", job.error());
        assert_eq!(job.sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(job.mime.as_deref(), Some(*mime));
        assert_eq!(
            (job.width, job.height),
            (Some(i64::from(*w)), Some(i64::from(*h)))
        );
        let blob = env.blob(job.blob_path.as_deref().unwrap());
        assert_eq!(
            &sha256_hex(&blob),
            sha,
            "blob of job {id} differs from what was served"
        );
        assert_eq!(env.outcomes(*id), ["done"]);
    }
    for (url, ..) in &expected {
        let path = url.rsplit_once(&server.addr().to_string()).unwrap().1;
        assert_eq!(server.hits(path), 1, "{url} fetched more than once");
    }
    // 40 blobs and no temporary file left behind.
    let files = files_under(&env.path("blobs"));
    assert_eq!(files.len(), 40, "{files:?}");
    // Timings are recorded for every attempt.
    assert_eq!(
        env.count("SELECT COUNT(*) FROM attempts WHERE ttfb_ms IS NOT NULL AND download_ms IS NOT NULL AND total_ms >= ttfb_ms"),
        40
    );
}

#[test]
fn identical_images_at_two_urls_share_one_blob() {
    let server = TestServer::start();
    let bytes = images::png(20, 20, 7);
    server.route("/a.png", Reply::image(bytes.clone(), "image/png"));
    server.route("/b.png", Reply::image(bytes.clone(), "image/png"));
    let env = Env::new("");
    let ids = env.add(&[server.url("/a.png"), server.url("/b.png")]);
    env.drain(&[]);
    let (a, b) = (env.job(ids[0]), env.job(ids[1]));
    assert_eq!((a.state.as_str(), b.state.as_str()), ("done", "done"));
    assert_eq!(a.blob_path, b.blob_path);
    assert_eq!(files_under(&env.path("blobs")).len(), 1);
}
