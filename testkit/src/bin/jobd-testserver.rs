//! jobd-testserver: benchmark fixture that writes a seed set of images or serves a directory of
//! them over loopback HTTP with WAN emulation. The logic lives in `jobd_testkit`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use jobd_testkit::{TestServer, images};

const USAGE: &str = "\
usage: jobd-testserver --seed-dir DIR [--count N]
       jobd-testserver --small-dir DIR [--count N]
       jobd-testserver --serve DIR [--addr ADDR] [--ttfb-ms MS] [--rate-bytes N]

  --seed-dir DIR    write N generated images (default 40) into DIR and exit
  --small-dir DIR   write N distinct small PNGs (32x32, about 3 KB) into DIR and exit
  --serve DIR       serve every file in DIR at /<file name> until killed;
                    prints 'listening on http://ADDR' first
  --addr ADDR       address to bind (default 127.0.0.1:0)
  --ttfb-ms MS      delay before each status line (default 150)
  --rate-bytes N    per-response body rate in bytes/s, 0 = unlimited (default 20000000)";

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

/// None for anything malformed: unknown flag, missing value, unparseable number, no mode.
fn parse(mut args: impl Iterator<Item = String>) -> Option<Command> {
    let (mut seed, mut small, mut serve) = (None, None, None);
    let (mut count, mut addr) = (40, "127.0.0.1:0".to_string());
    let (mut ttfb_ms, mut rate) = (150, 20_000_000);
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
            _ => return None,
        }
    }
    match (seed, small, serve) {
        (Some(dir), None, None) => Some(Command::Seed { dir, count }),
        (None, Some(dir), None) => Some(Command::Small { dir, count }),
        (None, None, Some(dir)) => Some(Command::Serve {
            dir,
            addr,
            ttfb_ms,
            rate,
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
        } => {
            let server = TestServer::bind(&addr)
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?
                .with_wan(
                    Duration::from_millis(ttfb_ms),
                    Some(rate).filter(|r| *r > 0),
                );
            server
                .serve_dir(&dir)
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
