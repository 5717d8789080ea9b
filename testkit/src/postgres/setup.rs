//! Before a server can run: finding its binaries, the account to run them as, a folder, initdb.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{self, Command};
use std::sync::atomic::Ordering::SeqCst;
use std::{env, fs};

use super::NEXT;

/// A new cluster in `base/data`: superuser `postgres` with trust authentication (nothing but
/// this machine can reach it), UTF-8 and the C locale (the same on every machine), no fsync.
pub(super) fn initdb(bin: &Path, base: &Path, account: Option<Account>) {
    let mut cmd = Command::new(bin.join("initdb"));
    cmd.arg("-D").arg(base.join("data"));
    cmd.args([
        "-A",
        "trust",
        "-U",
        "postgres",
        "--no-sync",
        "-E",
        "UTF8",
        "--locale=C",
    ]);
    cmd.current_dir(base);
    as_server_user(&mut cmd, account);
    match cmd.output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "test PostgreSQL server: initdb failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "test PostgreSQL server: cannot run {}: {e}",
            bin.join("initdb").display()
        ),
    }
}

/// A fresh folder for a server, owned by its account: under /dev/shm when that is a roomy
/// tmpfs, else under the system's temporary folder.
pub(super) fn make_base_dir(account: Option<Account>) -> PathBuf {
    let root = scratch_root();
    loop {
        let n = NEXT.fetch_add(1, SeqCst);
        let base = root.join(format!("jobd-test-postgres-{}-{n}", process::id()));
        match fs::DirBuilder::new().mode(0o700).create(&base) {
            Ok(()) => {
                if let Some(a) = account {
                    if let Err(e) = std::os::unix::fs::chown(&base, Some(a.uid), Some(a.gid)) {
                        let _ = fs::remove_dir(&base);
                        panic!(
                            "test PostgreSQL server: cannot chown {}: {e}",
                            base.display()
                        );
                    }
                }
                return base;
            }
            // Left by an earlier process with our pid that was killed during initdb.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!(
                "test PostgreSQL server: cannot create {}: {e}",
                base.display()
            ),
        }
    }
}

/// The data is thrown away, so memory will do, and creating files there is what a server's
/// first minutes are made of: on a disk-backed /tmp, initdb took 1.1 s and CREATE DATABASE
/// 220 ms; on tmpfs, 0.45 s and 17 ms. An explicit TMPDIR wins; so does a small /dev/shm
/// (Docker's default is 64 MB), which a few dozen databases and their WAL would fill.
fn scratch_root() -> PathBuf {
    const ROOM: u64 = 2 << 30;
    let shm = Path::new("/dev/shm");
    let roomy = free_bytes(shm).is_some_and(|free| free >= ROOM);
    if env::var_os("TMPDIR").is_none() && roomy && writable(shm) {
        shm.to_path_buf()
    } else {
        env::temp_dir()
    }
}

fn free_bytes(dir: &Path) -> Option<u64> {
    let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain integers, for which all zeroes is a valid value.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    #[allow(clippy::useless_conversion)] // The fields are u32 on some targets.
    (rc == 0).then(|| u64::from(stats.f_bavail) * u64::from(stats.f_frsize))
}

fn writable(dir: &Path) -> bool {
    let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: the pointer is valid for the call.
    unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

pub(super) struct RemoveOnDrop<'a>(pub(super) &'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(self.0);
    }
}

/// The account that runs initdb and postgres when we are root, which both refuse to be.
#[derive(Clone, Copy)]
pub(super) struct Account {
    pub(super) uid: u32,
    pub(super) gid: u32,
}

pub(super) fn as_server_user(cmd: &mut Command, account: Option<Account>) {
    if let Some(a) = account {
        // std drops the supplementary groups too when it changes the uid as root.
        cmd.uid(a.uid).gid(a.gid);
    }
}

/// `Some` when we are root: the `postgres` account, which Debian's postgresql package creates.
pub(super) fn server_account() -> Option<Account> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let account = lookup_account("postgres");
    assert!(
        account.is_some(),
        "test PostgreSQL server: as root, initdb and postgres must run as the `postgres` user, \
         which does not exist (apt-get install postgresql creates it)"
    );
    account
}

fn lookup_account(name: &str) -> Option<Account> {
    let name = CString::new(name).ok()?;
    // SAFETY: passwd is plain integers and pointers, for which all zeroes is a valid value.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf`'s length goes with it; the strings
    // `entry` points to live in `buf`, and only its two integers are read.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    (rc == 0 && !found.is_null()).then_some(Account {
        uid: entry.pw_uid,
        gid: entry.pw_gid,
    })
}

/// The folder holding initdb and postgres: `JOBD_PG_BIN`, else the newest Debian-style
/// `/usr/lib/postgresql/<version>/bin`, else `pg_config --bindir`, else the first on PATH.
pub(super) fn find_bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = env::var_os("JOBD_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if has_server(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "JOBD_PG_BIN={} holds no initdb and postgres",
                dir.display()
            ))
        };
    }
    newest_debian_bin()
        .or_else(pg_config_bindir)
        .or_else(|| env::split_paths(&env::var_os("PATH")?).find(|d| has_server(d)))
        .ok_or_else(|| {
            "the tests need PostgreSQL's server binaries (initdb, postgres), which are not \
             installed: apt-get install postgresql (Debian), or set JOBD_PG_BIN to their folder"
                .to_string()
        })
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

fn newest_debian_bin() -> Option<PathBuf> {
    fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            // "15", or "9.6" before PostgreSQL 10.
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_server(bin))
        .max()
        .map(|(_, bin)| bin)
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && has_server(&dir)).then_some(dir)
}
