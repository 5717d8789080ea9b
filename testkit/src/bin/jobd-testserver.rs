//! jobd-testserver: benchmark fixture that writes a seed set of images or serves a directory of
//! them over loopback HTTP with WAN emulation and, for the politeness benchmarks, injected
//! 503s or 429s and a JSON count of what it saw. The logic lives in `jobd_testkit`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use jobd_testkit::{Reply, TestServer, images};

const USAGE: &str = "\
usage: jobd-testserver --seed-dir DIR [--count N]
       jobd-testserver --small-dir DIR [--count N]
       jobd-testserver --serve DIR [--addr ADDR] [--ttfb-ms MS] [--rate-bytes N]
                       [--once-status STATUS --every N | --status STATUS [--retry-after SECS]]

  --seed-dir DIR        write N generated images (default 40) into DIR and exit
  --small-dir DIR       write N distinct small PNGs (32x32, about 3 KB) into DIR and exit
  --serve DIR           serve every file in DIR at /<file name> until killed;
                        prints 'listening on http://ADDR' first
  --addr ADDR           address to bind (default 127.0.0.1:0)
  --ttfb-ms MS          delay before each status line (default 150)
  --rate-bytes N        per-response body rate in bytes/s, 0 = unlimited (default 20000000)
  --once-status STATUS  with --every N: the N-th, 2N-th, ... file in name order answers STATUS
                        (no Retry-After) to the first request for each URL, query string
                        included; later requests for that URL get the file
  --status STATUS       answer every request, for any path, with STATUS instead of a file
  --retry-after SECS    with --status: send 'Retry-After: SECS' with it

  GET /_stats answers what the server has seen, as one JSON object: requests (read so far),
  in_flight, max_in_flight (the most at once, each counted from its request read to its
  response's last byte written), statuses ({\"503\": n, ...}) and arrivals_ms (when each request
  was read, in ms since the start, in order). Its own requests are not counted.";

/// The path that answers the server's counts as JSON.
const STATS_PATH: &str = "/_stats";

enum Command {
    Seed {
        dir: PathBuf,
        count: usize,
    },
    Small {
        dir: PathBuf,
        count: usize,
    },
    Serve {
        dir: PathBuf,
        addr: String,
        ttfb_ms: u64,
        rate: u64,
        faults: Faults,
    },
}

/// What `--serve` answers besides the files.
#[derive(Debug, PartialEq)]
enum Faults {
    None,
    /// The first request for each URL of every `every`-th file answers `status`.
    Once {
        status: u16,
        every: usize,
    },
    /// Every request answers `status`, with `Retry-After` if given.
    All {
        status: u16,
        retry_after: Option<u64>,
    },
}

fn main() -> ExitCode {
    let command = match parse(std::env::args().skip(1)) {
        Some(command) => command,
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("jobd-testserver: {message}");
            ExitCode::from(2)
        }
    }
}

/// None for anything malformed: unknown flag, missing value, unparseable number, no mode, or a
/// fault option without its partner or outside `--serve`.
fn parse(mut args: impl Iterator<Item = String>) -> Option<Command> {
    let (mut seed, mut small, mut serve) = (None, None, None);
    let (mut count, mut addr) = (40, "127.0.0.1:0".to_string());
    let (mut ttfb_ms, mut rate) = (150, 20_000_000);
    let (mut once_status, mut every, mut status, mut retry_after) = (None, None, None, None);
    let http_status = |v: &str| v.parse().ok().filter(|s| (100..=599).contains(s));
    while let Some(flag) = args.next() {
        let value = args.next()?;
        match flag.as_str() {
            "--seed-dir" => seed = Some(PathBuf::from(value)),
            "--small-dir" => small = Some(PathBuf::from(value)),
            "--serve" => serve = Some(PathBuf::from(value)),
            "--count" => count = value.parse().ok()?,
            "--addr" => addr = value,
            "--ttfb-ms" => ttfb_ms = value.parse().ok()?,
            "--rate-bytes" => rate = value.parse().ok()?,
            "--once-status" => once_status = Some(http_status(&value)?),
            "--every" => every = Some(value.parse().ok().filter(|n| *n > 0)?),
            "--status" => status = Some(http_status(&value)?),
            "--retry-after" => retry_after = Some(value.parse().ok()?),
            _ => return None,
        }
    }
    let faults = match (once_status, every, status, retry_after) {
        (None, None, None, None) => Faults::None,
        (Some(status), Some(every), None, None) => Faults::Once { status, every },
        (None, None, Some(status), retry_after) => Faults::All {
            status,
            retry_after,
        },
        _ => return None,
    };
    match (seed, small, serve) {
        (Some(dir), None, None) if faults == Faults::None => Some(Command::Seed { dir, count }),
        (None, Some(dir), None) if faults == Faults::None => Some(Command::Small { dir, count }),
        (None, None, Some(dir)) => Some(Command::Serve {
            dir,
            addr,
            ttfb_ms,
            rate,
            faults,
        }),
        _ => None,
    }
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Seed { dir, count } => images::write_seed_set(&dir, count)
            .map_err(|e| format!("cannot write images into {}: {e}", dir.display())),
        Command::Small { dir, count } => std::fs::create_dir_all(&dir)
            .and_then(|()| {
                (0..count).try_for_each(|i| {
                    let png = images::png(32, 32, 0x5A11_0000 + i as u64);
                    std::fs::write(dir.join(format!("small-{i:05}.png")), png)
                })
            })
            .map_err(|e| format!("cannot write images into {}: {e}", dir.display())),
        Command::Serve {
            dir,
            addr,
            ttfb_ms,
            rate,
            faults,
        } => {
            let server = TestServer::bind(&addr)
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?
                .with_wan(
                    Duration::from_millis(ttfb_ms),
                    Some(rate).filter(|r| *r > 0),
                );
            server.serve_stats(STATS_PATH);
            serve(&server, &dir, &faults)
                .map_err(|e| format!("cannot serve {}: {e}", dir.display()))?;
            let mut stdout = std::io::stdout().lock();
            // Scripts wait for this line to learn the port, so it must not sit in a buffer.
            writeln!(stdout, "listening on http://{}", server.addr())
                .and_then(|()| stdout.flush())
                .map_err(|e| format!("cannot write to stdout: {e}"))?;
            // The server's threads do the work; park until a signal ends the process.
            loop {
                std::thread::park();
            }
        }
    }
}

/// Routes the files of `dir`, and the faults over them.
fn serve(server: &TestServer, dir: &Path, faults: &Faults) -> std::io::Result<()> {
    match *faults {
        Faults::None => server.serve_dir(dir).map(drop),
        Faults::All {
            status,
            retry_after,
        } => {
            let mut reply = Reply::status(status);
            if let Some(secs) = retry_after {
                reply = reply.header("Retry-After", &secs.to_string());
            }
            server.fallback(reply);
            Ok(())
        }
        Faults::Once { status, every } => {
            server.serve_dir(dir)?;
            let mut names = Vec::new();
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                if let (true, Ok(name)) = (
                    entry.file_type()?.is_file(),
                    entry.file_name().into_string(),
                ) {
                    names.push(name);
                }
            }
            // Name order, so that every run (and every jobd build) meets the same files.
            names.sort();
            for name in names.iter().skip(every - 1).step_by(every) {
                let kind = images::content_type_for(name).unwrap_or("application/octet-stream");
                let file = Reply::image(std::fs::read(dir.join(name))?, kind);
                server.route(
                    &format!("/{name}"),
                    Reply::sequence_per_url(vec![Reply::status(status), file]),
                );
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Option<Command> {
        parse(line.split_whitespace().map(str::to_string))
    }

    fn faults(line: &str) -> Option<Faults> {
        match parse_str(line)? {
            Command::Serve { faults, .. } => Some(faults),
            _ => None,
        }
    }

    #[test]
    fn fault_options_come_in_pairs_and_only_with_serve() {
        assert_eq!(faults("--serve d"), Some(Faults::None));
        assert_eq!(
            faults("--serve d --once-status 503 --every 100"),
            Some(Faults::Once {
                status: 503,
                every: 100
            })
        );
        assert_eq!(
            faults("--serve d --status 429 --retry-after 60"),
            Some(Faults::All {
                status: 429,
                retry_after: Some(60)
            })
        );
        assert_eq!(
            faults("--serve d --status 503"),
            Some(Faults::All {
                status: 503,
                retry_after: None
            })
        );
        for bad in [
            "--serve d --once-status 503",
            "--serve d --every 100",
            "--serve d --every 0 --once-status 503",
            "--serve d --retry-after 60",
            "--serve d --status 503 --once-status 503 --every 2",
            "--serve d --status 99",
            "--serve d --status 600",
            "--small-dir d --status 503",
        ] {
            assert!(parse_str(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn once_status_fails_the_first_request_for_each_url_of_every_nth_file() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            std::fs::write(dir.path().join(format!("f{i}.png")), images::png(4, 4, i)).unwrap();
        }
        let server = TestServer::start();
        serve(
            &server,
            dir.path(),
            &Faults::Once {
                status: 503,
                every: 2,
            },
        )
        .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .build()
            .into();
        let status = |path: &str| {
            agent
                .get(&server.url(path))
                .call()
                .unwrap()
                .status()
                .as_u16()
        };
        // f1 and f3 are the 2nd and 4th files in name order.
        assert_eq!(
            [
                "/f0.png",
                "/f1.png",
                "/f1.png",
                "/f1.png?n=2",
                "/f1.png?n=2",
                "/f3.png",
                "/f4.png"
            ]
            .map(status),
            [200, 503, 200, 503, 200, 503, 200]
        );
        let stats = server.stats();
        assert_eq!((stats.requests, stats.statuses[&503]), (7, 3));
    }
}
