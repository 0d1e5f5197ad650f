//! Retention and the periodic threads: the clean pass, disk-space checks
//! and their logging, and the flush and clean loops.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use crate::consumequeue::ConsumeQueue;
use crate::error::StoreError;
use crate::offset::CommitLogOffset;

use super::types::RetentionReport;
use super::{lock, now_ms, read_lock, Inner, MessageStore};

impl MessageStore {
    /// Whether the store is refusing writes for lack of disk space: set by
    /// the first put that fails with [`StoreError::DiskFull`] (logged once at
    /// ERROR), cleared by the next put that succeeds (logged once at INFO).
    pub fn disk_full(&self) -> bool {
        self.inner.disk_full.load(Ordering::Acquire)
    }

    /// Used fraction (0.0..=1.0) of the disk holding the store (Java
    /// `getDiskPartitionSpaceUsedPercent`: used / (used + available to us),
    /// rounded up to a whole percent).
    pub fn disk_used_ratio(&self) -> f64 {
        disk_used_ratio_of(&self.inner.config.store_path_root_dir)
    }

    /// Total and free bytes of the filesystem holding the store (Java
    /// `File.getTotalSpace` / `getFreeSpace`, the free space counting blocks
    /// reserved for root); `None` when it cannot be read.
    pub fn disk_capacity(&self) -> Option<(u64, u64)> {
        let d = DiskSpace::of(&self.inner.config.store_path_root_dir)?;
        Some((d.total, d.free))
    }

    /// One retention pass now (what the periodic cleaner runs every
    /// `cleanResourceInterval`).
    pub fn clean_expired_files(&self) -> Result<RetentionReport, StoreError> {
        self.clean_expired_files_at(now_ms(), self.disk_used_ratio())
    }

    /// One retention pass (Java `CleanCommitLogService` then
    /// `CleanConsumeQueueService`) as if the clock read `now_ms` and the
    /// disk were `disk_used_ratio` full (0.0..=1.0; negative = unknown):
    /// - at a `deleteWhen` hour, or above `diskMaxUsedSpaceRatio`, commit-log
    ///   segments last modified more than `fileReservedTime` ago are deleted,
    ///   oldest first, stopping at the first younger one; above 0.85 with
    ///   `cleanFileForciblyEnable` their age does not matter; the active
    ///   segment is never deleted, at most `deleteFileBatchMax` per pass;
    /// - then consume-queue files and index files wholly below the new
    ///   commit-log start are deleted and queue min offsets move up.
    pub fn clean_expired_files_at(
        &self,
        now_ms: i64,
        disk_used_ratio: f64,
    ) -> Result<RetentionReport, StoreError> {
        clean_pass(&self.inner, now_ms, disk_used_ratio)
    }
}

fn clean_pass(
    inner: &Inner,
    now_ms: i64,
    disk_used_ratio: f64,
) -> Result<RetentionReport, StoreError> {
    let cfg = &inner.config;
    if inner.replicated.is_some() {
        // The replicated log owns its own retention.
        return Ok(RetentionReport {
            commit_log_min_offset: CommitLogOffset(-1),
            ..RetentionReport::default()
        });
    }
    let hour = u32::try_from(now_ms.rem_euclid(86_400_000) / 3_600_000).unwrap_or(0);
    let time_up = cfg.delete_hours().contains(&hour);
    let max_ratio = f64::from(cfg.disk_max_used_space_ratio.clamp(10, 95)) / 100.0;
    let space_full = disk_used_ratio < 0.0 || disk_used_ratio > max_ratio;
    let clean_immediately = disk_used_ratio > DISK_SPACE_CLEAN_FORCIBLY_RATIO;
    inner.note_disk_ratio(space_full, disk_used_ratio, max_ratio);
    let mut report = RetentionReport::default();
    if time_up || space_full {
        let at_once = cfg.clean_file_forcibly_enable && clean_immediately;
        let expire_ms = i64::try_from(cfg.file_reserved_time_hours)
            .unwrap_or(i64::MAX / 3_600_000)
            .saturating_mul(3_600_000);
        let _writer = lock(&inner.writer);
        if inner.shut_down.load(Ordering::Acquire) {
            return Err(StoreError::ShutDown);
        }
        report.commit_log_files = inner
            .commit_log
            .delete_expired(now_ms, expire_ms, at_once, cfg.delete_file_batch_max)?
            .len();
    }
    let cl_min = inner.commit_log.min_offset();
    report.commit_log_min_offset = CommitLogOffset(cl_min);
    if report.commit_log_files > 0 && cl_min > 0 {
        trim_epochs(inner, cl_min);
    }
    if cl_min > 0 {
        let queues: Vec<Arc<ConsumeQueue>> = read_lock(&inner.queues)
            .values()
            .flat_map(|m| m.values().cloned())
            .collect();
        for q in queues {
            report.consume_queue_files += q.delete_below(cl_min)?;
        }
        report.index_files = inner.index.delete_below(cl_min)?;
    }
    Ok(report)
}

/// Controller mode: drop the epoch entries wholly below the new oldest
/// commit-log byte (Java `truncateEpochFilePrefix(minPhyOffset - 1)`).
fn trim_epochs(inner: &Inner, cl_min: i64) {
    let epochs = inner
        .epochs
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if let Some(epochs) = epochs {
        if let Err(e) = epochs.truncate_prefix(cl_min - 1) {
            tracing::warn!(error = %e, min_offset = cl_min, "epoch file prefix not trimmed");
        }
    }
}

/// One `statvfs` of the filesystem holding a path, in bytes.
struct DiskSpace {
    total: u64,
    /// Free blocks, those reserved for root included (Java `getFreeSpace`).
    free: u64,
    /// Free blocks an unprivileged writer may use (Java `getUsableSpace`).
    available: u64,
}

impl DiskSpace {
    fn of(path: &Path) -> Option<Self> {
        let st = rustix::fs::statvfs(path).ok()?;
        Some(DiskSpace {
            total: st.f_blocks.saturating_mul(st.f_frsize),
            free: st.f_bfree.saturating_mul(st.f_frsize),
            available: st.f_bavail.saturating_mul(st.f_frsize),
        })
    }

    /// [`used_ratio`] of this disk; -1.0 for an empty filesystem.
    fn used_ratio(&self) -> f64 {
        used_ratio(self.total.saturating_sub(self.free), self.available)
    }
}

/// Available-to-us and total bytes of the filesystem holding `path`, for log lines.
fn disk_space_of(path: &Path) -> (u64, u64) {
    DiskSpace::of(path).map_or((0, 0), |d| (d.available, d.total))
}

impl Inner {
    /// Follows a write's outcome: the first `DiskFull` after a success logs
    /// an ERROR, the first success after a `DiskFull` an INFO line; other
    /// errors leave the state alone. Only transitions log, so a full disk
    /// costs two lines however many puts it refuses.
    pub(super) fn note_write<T>(&self, r: &Result<T, StoreError>) {
        match r {
            Err(StoreError::DiskFull) => {
                if self
                    .disk_full
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    let path = &self.config.store_path_root_dir;
                    let (free, total) = disk_space_of(path);
                    tracing::error!(
                        path = %path.display(),
                        free_bytes = free,
                        total_bytes = total,
                        segment_bytes = self.config.mapped_file_size_commit_log,
                        "disk full: commit log refuses writes until space is freed \
                         (clients get SERVICE_NOT_AVAILABLE; nothing stored is lost)"
                    );
                }
            }
            Ok(_) => {
                if self.disk_full.load(Ordering::Acquire)
                    && self
                        .disk_full
                        .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    let path = &self.config.store_path_root_dir;
                    let (free, total) = disk_space_of(path);
                    tracing::info!(
                        path = %path.display(),
                        free_bytes = free,
                        total_bytes = total,
                        "disk space available again: commit log accepts writes"
                    );
                }
            }
            Err(_) => {}
        }
    }

    /// Logs when the disk goes above `diskMaxUsedSpaceRatio` (retention then
    /// deletes expired files at any hour) and when it comes back below.
    fn note_disk_ratio(&self, over: bool, ratio: f64, max_ratio: f64) {
        if self
            .over_ratio
            .compare_exchange(!over, over, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let path = self.config.store_path_root_dir.display();
        if over {
            tracing::warn!(
                path = %path,
                used_ratio = ratio,
                max_ratio,
                "disk usage above diskMaxUsedSpaceRatio: retention deletes expired \
                 commit-log files at any hour"
            );
        } else {
            tracing::info!(
                path = %path,
                used_ratio = ratio,
                max_ratio,
                "disk usage back below diskMaxUsedSpaceRatio"
            );
        }
    }
}

fn disk_used_ratio_of(path: &Path) -> f64 {
    DiskSpace::of(path)
        .filter(|d| d.total > 0)
        .map_or(-1.0, |d| d.used_ratio())
}

/// Java's used share of a disk: `used / (used + usable)` in whole percent,
/// rounded up (so a disk just over a threshold counts as over it).
fn used_ratio(used: u64, usable: u64) -> f64 {
    let entire = used.saturating_add(usable);
    if entire == 0 {
        return -1.0;
    }
    let percent = u128::from(used) * 100;
    percent.div_ceil(u128::from(entire)) as f64 / 100.0
}

/// Java `diskSpaceCleanForciblyRatio` (system property default 0.85).
const DISK_SPACE_CLEAN_FORCIBLY_RATIO: f64 = 0.85;

pub(super) fn clean_loop(
    weak: Weak<Inner>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    first: Duration,
    interval: Duration,
) {
    let mut wait = first;
    loop {
        {
            let guard = lock(&stop.0);
            let (guard, _) = stop
                .1
                .wait_timeout_while(guard, std::mem::replace(&mut wait, interval), |stopped| {
                    !*stopped
                })
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *guard {
                return;
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        let ratio = disk_used_ratio_of(&inner.config.store_path_root_dir);
        if let Err(e) = clean_pass(&inner, now_ms(), ratio) {
            tracing::error!(error = %e, "retention pass failed");
        }
    }
}

pub(super) fn flush_loop(weak: Weak<Inner>, stop: Arc<(Mutex<bool>, Condvar)>, interval: Duration) {
    loop {
        {
            let guard = lock(&stop.0);
            let (guard, _) = stop
                .1
                .wait_timeout_while(guard, interval, |stopped| !*stopped)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *guard {
                return;
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        if let Err(e) = inner.flush_all() {
            tracing::error!(error = %e, "periodic flush failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::used_ratio;

    #[test]
    fn used_ratio_is_javas_rounded_up_percent_of_used_plus_usable() {
        assert_eq!(used_ratio(0, 100), 0.0);
        assert_eq!(used_ratio(50, 50), 0.5);
        // 1 used of 301 is 0.33 %: rounded up to 1 %.
        assert_eq!(used_ratio(1, 300), 0.01);
        // Blocks reserved for root are neither used nor usable.
        assert_eq!(used_ratio(47, 53), 0.47);
        assert_eq!(used_ratio(100, 0), 1.0);
        assert_eq!(used_ratio(0, 0), -1.0);
    }
}
