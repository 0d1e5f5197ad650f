//! Store configuration; field names follow Java's `MessageStoreConfig` keys.

use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushDiskType {
    /// A background thread msyncs every `flush_interval_commit_log_ms`.
    #[default]
    AsyncFlush,
    /// `put` returns after its bytes are msynced.
    SyncFlush,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `storePathRootDir`; Java's default is `$HOME/store`.
    pub store_path_root_dir: PathBuf,
    /// `mappedFileSizeCommitLog`, default 1 GiB.
    pub mapped_file_size_commit_log: u64,
    /// `mappedFileSizeConsumeQueue`, default 300 000 entries * 20 bytes;
    /// rounded up to a multiple of 20 like Java.
    pub mapped_file_size_consume_queue: u64,
    pub flush_disk_type: FlushDiskType,
    /// `flushIntervalCommitLog`, default 500 ms.
    pub flush_interval_commit_log_ms: u64,
    /// `maxMessageSize`: the largest body (or whole batch body), default 4 MiB.
    pub max_message_size: usize,
    /// `checkCRCOnRecover`, default true.
    pub check_crc_on_recover: bool,
    /// `maxTransferBytesOnMessageInMemory`: cap per get, default 256 KiB.
    pub max_transfer_bytes_on_message_in_memory: usize,
    /// `maxTransferCountOnMessageInMemory`: cap per get, default 32.
    pub max_transfer_count_on_message_in_memory: usize,
    /// `maxTransferBytesOnMessageInDisk`: cap per get when the message is
    /// "in disk" (see `access_message_in_memory_max_ratio`), default 64 KiB.
    pub max_transfer_bytes_on_message_in_disk: usize,
    /// `maxTransferCountOnMessageInDisk`: cap per get when the message is
    /// "in disk", default 8.
    pub max_transfer_count_on_message_in_disk: usize,
    /// `accessMessageInMemoryMaxRatio` (percent of the machine's memory),
    /// default 40: a get whose last record lies further than this behind the
    /// commit log's end is "in disk" and suggests pulling from a slave; a
    /// message that far behind is read with the in-disk caps.
    pub access_message_in_memory_max_ratio: u32,
    /// Not a Java key: a get whose first message lies further than this
    /// behind the commit log's end (or further than the in-memory share,
    /// whichever is smaller) is "cold": [`MessageStore::is_cold_read`] says
    /// so, so that the caller can run it off its event loop, and the get
    /// faults its pages in itself and asks the kernel to read ahead.
    /// Default 64 MiB.
    ///
    /// [`MessageStore::is_cold_read`]: crate::MessageStore::is_cold_read
    pub cold_read_window_bytes: u64,
    /// `messageDelayLevel`: used for `SCHEDULE_TOPIC_XXXX`, whose consume-queue
    /// tags slot holds the delivery time (docs/protocol/messages.md §3).
    pub message_delay_level: String,
    /// `maxHashSlotNum`: hash slots per index file, default 5 000 000.
    pub max_hash_slot_num: u32,
    /// `maxIndexNum`: entries per index file, default 20 000 000.
    pub max_index_num: u32,
    /// `syncFlushTimeout`: how long a SYNC_FLUSH put waits for its flush
    /// before answering `FlushDiskTimeout`, default 5 000 ms.
    pub sync_flush_timeout_ms: u64,
    /// `fileReservedTime`: hours a commit-log segment is kept after its last
    /// modification, default 72.
    pub file_reserved_time_hours: u64,
    /// `deleteWhen`: hours of the day (`"04"`, `"04;05"`) at which expired
    /// files are deleted; outside them only a full disk triggers deletion.
    /// Hours are UTC here (Java uses the JVM's local time zone).
    pub delete_when: String,
    /// `diskMaxUsedSpaceRatio` (percent, clamped to 10..=95 like Java),
    /// default 75: above it expired files are deleted at any hour.
    pub disk_max_used_space_ratio: u32,
    /// `cleanFileForciblyEnable`, default true: above the forced-clean ratio
    /// (0.85, Java's `diskSpaceCleanForciblyRatio`) segments are deleted
    /// whatever their age (never the active one).
    pub clean_file_forcibly_enable: bool,
    /// `destroyMapedFileIntervalForcibly`, default 120 000 ms. Accepted for
    /// compatibility; readers hold their own reference to a mapping, so a
    /// segment can always be unlinked at once and this has no effect.
    pub destroy_maped_file_interval_forcibly_ms: u64,
    /// `cleanResourceInterval`: period of the cleaner, default 10 000 ms.
    pub clean_resource_interval_ms: u64,
    /// `deleteFileBatchMax`: segments deleted per cleaner pass, default 10.
    pub delete_file_batch_max: usize,
    /// Not a Java key: the cleaner's first pass comes this long after open
    /// (Java: fixed 60 000 ms, the default).
    pub clean_initial_delay_ms: u64,
}

pub const DEFAULT_MESSAGE_DELAY_LEVEL: &str =
    "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

impl Default for StoreConfig {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        StoreConfig {
            store_path_root_dir: home.join("store"),
            mapped_file_size_commit_log: 1024 * 1024 * 1024,
            mapped_file_size_consume_queue: 300_000 * 20,
            flush_disk_type: FlushDiskType::AsyncFlush,
            flush_interval_commit_log_ms: 500,
            max_message_size: 4 * 1024 * 1024,
            check_crc_on_recover: true,
            max_transfer_bytes_on_message_in_memory: 256 * 1024,
            max_transfer_count_on_message_in_memory: 32,
            max_transfer_bytes_on_message_in_disk: 64 * 1024,
            max_transfer_count_on_message_in_disk: 8,
            access_message_in_memory_max_ratio: 40,
            cold_read_window_bytes: 64 * 1024 * 1024,
            message_delay_level: DEFAULT_MESSAGE_DELAY_LEVEL.to_owned(),
            max_hash_slot_num: 5_000_000,
            max_index_num: 20_000_000,
            sync_flush_timeout_ms: 5_000,
            file_reserved_time_hours: 72,
            delete_when: "04".to_owned(),
            disk_max_used_space_ratio: 75,
            clean_file_forcibly_enable: true,
            destroy_maped_file_interval_forcibly_ms: 120_000,
            clean_resource_interval_ms: 10_000,
            delete_file_batch_max: 10,
            clean_initial_delay_ms: 60_000,
        }
    }
}

impl StoreConfig {
    /// A config rooted at `dir` with the other defaults.
    pub fn with_root(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            store_path_root_dir: dir.into(),
            ..StoreConfig::default()
        }
    }

    /// Bytes of commit log behind its end that count as "in memory"
    /// (Java: total physical memory × `accessMessageInMemoryMaxRatio` / 100);
    /// `u64::MAX` when the machine's memory size is unknown.
    pub fn in_memory_bytes(&self) -> u64 {
        total_memory().map_or(u64::MAX, |m| {
            m / 100 * u64::from(self.access_message_in_memory_max_ratio.min(100))
        })
    }

    /// Bytes behind the commit log's end past which a get is cold (see
    /// `cold_read_window_bytes`).
    pub fn cold_read_bytes(&self) -> u64 {
        self.in_memory_bytes().min(self.cold_read_window_bytes)
    }

    pub(crate) fn consume_queue_file_size(&self) -> usize {
        let unit = crate::consumequeue::CQ_UNIT as u64;
        (self.mapped_file_size_consume_queue.max(unit).div_ceil(unit) * unit) as usize
    }

    /// The hours of `deleteWhen` (`"04;05"` → [4, 5]); bad items skipped.
    pub fn delete_hours(&self) -> Vec<u32> {
        self.delete_when
            .split(';')
            .filter_map(|h| h.trim().parse::<u32>().ok())
            .filter(|h| *h < 24)
            .collect()
    }

    /// Delay per level in ms (index 0 = level 1), as Java parses
    /// `messageDelayLevel` (units s, m, h, d). Bad items are skipped.
    pub fn delay_levels_ms(&self) -> Vec<i64> {
        self.message_delay_level
            .split_whitespace()
            .filter_map(|item| {
                let (num, unit) = item.split_at(item.len().checked_sub(1)?);
                let n: i64 = num.parse().ok()?;
                let mul = match unit {
                    "s" => 1000,
                    "m" => 60_000,
                    "h" => 3_600_000,
                    "d" => 86_400_000,
                    _ => return None,
                };
                Some(n * mul)
            })
            .collect()
    }
}

/// `MemTotal` of /proc/meminfo in bytes, read once.
fn total_memory() -> Option<u64> {
    static TOTAL: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        let m = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib.saturating_mul(1024))
    })
}
