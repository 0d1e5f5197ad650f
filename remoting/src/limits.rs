//! The process's open-file limit (RLIMIT_NOFILE) and the connection cap
//! derived from it.
//!
//! Every accepted connection holds one file descriptor, so the number of
//! connections a server can hold is bounded by the soft open-file limit, less
//! what the store needs for its own files. Java's start scripts raise the soft
//! limit with `ulimit -n`; our binaries call [`raise_file_limit`] at start.

/// Used when the limit cannot be read (not a Unix, or getrlimit failed).
const FALLBACK_CONNECTIONS: usize = 16 * 1024;

/// Kept free for files, whatever the limit: the store's commit log, consume
/// queue and index files, config files, logs.
const MIN_FILE_RESERVE: u64 = 1024;

/// The soft and hard RLIMIT_NOFILE (`u64::MAX` for "unlimited").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    pub soft: u64,
    pub hard: u64,
}

/// The current open-file limit.
#[cfg(unix)]
#[allow(unsafe_code, clippy::unnecessary_cast)]
pub fn file_limit() -> std::io::Result<FileLimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(FileLimit {
        soft: as_u64(r.rlim_cur as u64),
        hard: as_u64(r.rlim_max as u64),
    })
}

#[cfg(not(unix))]
pub fn file_limit() -> std::io::Result<FileLimit> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(unix)]
#[allow(clippy::unnecessary_cast)]
fn as_u64(v: u64) -> u64 {
    if v == libc::RLIM_INFINITY as u64 {
        u64::MAX
    } else {
        v
    }
}

#[cfg(unix)]
#[allow(unsafe_code, clippy::unnecessary_cast)]
fn set_soft(soft: u64, hard: u64) -> std::io::Result<()> {
    let to_rlim = |v: u64| {
        if v == u64::MAX {
            libc::RLIM_INFINITY
        } else {
            v as libc::rlim_t
        }
    };
    let r = libc::rlimit {
        rlim_cur: to_rlim(soft),
        rlim_max: to_rlim(hard),
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Raises the soft open-file limit to the hard limit (what `ulimit -n
/// $(ulimit -Hn)` does in Java's start scripts) and returns the limit in
/// force afterwards. An unlimited hard limit is not a valid soft one for
/// RLIMIT_NOFILE on Linux: then the kernel's `fs.nr_open` (or 1 Mi) is tried.
#[cfg(unix)]
pub fn raise_file_limit() -> std::io::Result<FileLimit> {
    let before = file_limit()?;
    if before.soft >= before.hard {
        return Ok(before);
    }
    let mut last_error = match set_soft(before.hard, before.hard) {
        Ok(()) => return file_limit(),
        Err(e) => e,
    };
    if before.hard == u64::MAX {
        let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(1 << 20);
        match set_soft(nr_open.max(before.soft), before.hard) {
            Ok(()) => return file_limit(),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

#[cfg(not(unix))]
pub fn raise_file_limit() -> std::io::Result<FileLimit> {
    file_limit()
}

/// Raises the limit as [`raise_file_limit`] and logs the outcome at info (a
/// failure at warn): for the start of a server binary.
pub fn raise_and_log_file_limit() {
    match raise_file_limit() {
        Ok(limit) => tracing::info!(
            soft = limit.soft,
            hard = limit.hard,
            max_connections = connection_cap(limit.soft),
            "open-file limit"
        ),
        Err(e) => match file_limit() {
            Ok(limit) => tracing::warn!(
                soft = limit.soft,
                hard = limit.hard,
                max_connections = connection_cap(limit.soft),
                error = %e,
                "cannot raise the open-file limit"
            ),
            Err(_) => tracing::warn!(error = %e, "cannot read the open-file limit"),
        },
    }
}

/// Connections a server may hold with a soft open-file limit of `soft`: the
/// limit less a reserve for files of 10 % (at least 1024, at most half).
pub fn connection_cap(soft: u64) -> usize {
    let reserve = (soft / 10).max(MIN_FILE_RESERVE).min(soft / 2);
    usize::try_from(soft - reserve)
        .unwrap_or(usize::MAX)
        .clamp(1, tokio::sync::Semaphore::MAX_PERMITS)
}

/// [`connection_cap`] of the limit in force now.
pub fn default_connection_cap() -> usize {
    match file_limit() {
        Ok(limit) => connection_cap(limit.soft),
        Err(_) => FALLBACK_CONNECTIONS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_keeps_a_reserve_for_files() {
        assert_eq!(connection_cap(1024), 512);
        assert_eq!(connection_cap(4096), 3072);
        assert_eq!(connection_cap(20_000), 18_000);
        assert_eq!(connection_cap(1 << 20), (1 << 20) - (1 << 20) / 10);
        assert_eq!(connection_cap(1), 1);
        assert_eq!(connection_cap(0), 1);
        assert_eq!(
            connection_cap(u64::MAX),
            tokio::sync::Semaphore::MAX_PERMITS
        );
    }

    #[cfg(unix)]
    #[test]
    fn limit_is_readable_and_raising_reaches_the_hard_limit() {
        let before = file_limit().expect("getrlimit");
        assert!(before.soft <= before.hard);
        let after = raise_file_limit().expect("setrlimit to the hard limit");
        assert!(after.soft >= before.soft);
        assert_eq!(after.hard, before.hard);
        if before.hard != u64::MAX {
            assert_eq!(after.soft, before.hard);
        }
    }
}
