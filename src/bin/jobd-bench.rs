//! jobd-bench: micro-benchmarks of the queue itself, for scripts/bench.sh.
//!
//! `jobd-bench claims --db FILE|URL --queued N --claims M [--batch B]` fills a fresh database
//! (an SQLite file, or an empty PostgreSQL database by URL) with N
//! queued jobs (in transactions of 50,000), then times M claims of B jobs each, each followed by
//! recording the jobs as failed, on the store opened as a daemon opens it. Prints
//! `claims_per_s <rate>` on stdout.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use jobd::store::{self, Database, NewJob, Outcome, Report};

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "jobd-bench: {e}\nusage: jobd-bench claims --db FILE|URL --queued N --claims M [--batch B]"
            );
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut args = args.into_iter();
    if args.next().as_deref() != Some("claims") {
        return Err("unknown command".into());
    }
    let (mut db, mut queued, mut claims, mut batch) = (None, 2_000usize, 1_000usize, 1usize);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--db" => db = Some(Database::parse(&value, Path::new(""))),
            "--queued" => queued = number()?,
            "--claims" => claims = number()?,
            "--batch" => batch = number()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let db = db.ok_or("--db is required")?;
    if claims * batch > queued {
        return Err("--claims x --batch must not exceed --queued".into());
    }
    let store = store::open_for_daemon(&db, 1).map_err(|e| e.to_string())?;
    let mut jobs = Vec::with_capacity(50_000);
    for i in 0..queued {
        jobs.push(NewJob {
            priority: (i % 3) as i64,
            ..NewJob::new(format!("https://example.org/{i}.jpg"))
        });
        if jobs.len() == 50_000 || i + 1 == queued {
            store.add(&jobs).map_err(|e| e.to_string())?;
            jobs.clear();
        }
    }
    let failed = Report::failure(Outcome::Failed {
        error: "benchmark".into(),
    });
    let start = Instant::now();
    for _ in 0..claims {
        let claimed = store
            .claim("bench", batch, 60_000)
            .map_err(|e| e.to_string())?;
        let items: Vec<_> = claimed.iter().map(|job| (job, &failed)).collect();
        store.complete_many(&items).map_err(|e| e.to_string())?;
    }
    let rate = (claims * batch) as f64 / start.elapsed().as_secs_f64();
    println!("claims_per_s {rate:.0}");
    Ok(())
}
