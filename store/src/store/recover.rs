//! Recovery at open: where to start scanning, the key index and the
//! consume queues rebuilt against the recovered commit log.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::commitlog::CommitLog;
use crate::config::StoreConfig;
use crate::consumequeue::{ConsumeQueue, CqEntry};
use crate::error::StoreError;
use crate::index::IndexService;
use crate::mmap::MappedFile;
use crate::properties;
use crate::record::{self, RecordView, ScanItem};

use super::{tags_code, QueueMap};

/// Open the key index and index the records it does not hold yet.
pub(super) fn open_index(
    root: &Path,
    config: &StoreConfig,
    log: &CommitLog,
) -> Result<IndexService, StoreError> {
    let index = IndexService::open(
        &root.join("index"),
        config.max_hash_slot_num,
        config.max_index_num,
    )?;
    let from = index.recover_from();
    walk(log, from.unwrap_or(0), log.max_offset(), |v| {
        if from.is_none_or(|f| v.physical_offset > f) {
            index.build(
                v.topic,
                v.properties,
                v.physical_offset,
                v.store_timestamp,
                v.sys_flag,
            );
        }
        Ok(())
    })?;
    Ok(index)
}

/// Java `recoverAbnormally`: the last segment whose first record was stored
/// no later than the checkpoint's minimum timestamp; else the first.
pub(super) fn start_by_checkpoint(segs: &[Arc<MappedFile>], min_ts: i64) -> usize {
    for (i, seg) in segs.iter().enumerate().rev() {
        let Some(data) = seg.read(0, seg.size()) else {
            continue;
        };
        if let Ok(v) = record::decode(data) {
            if v.store_timestamp != 0 && v.store_timestamp <= min_ts {
                return i;
            }
        }
    }
    0
}

/// Visit the records in `[from, to)` of a recovered log.
fn walk(
    log: &CommitLog,
    from: i64,
    to: i64,
    mut f: impl FnMut(&RecordView<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let segs = log.segments();
    let Some(first) = segs.first() else {
        return Ok(());
    };
    let seg_size = log.seg_size() as i64;
    let mut off = from.max(first.base() as i64);
    while off < to {
        let idx = ((off - first.base() as i64) / seg_size) as usize;
        let Some(seg) = segs.get(idx) else { break };
        let pos = (off - seg.base() as i64) as usize;
        let data = seg.read(0, seg.published()).unwrap_or(&[]);
        match record::scan(data.get(pos..).unwrap_or(&[]), off, false) {
            ScanItem::Record(v) => {
                f(&v)?;
                off += i64::from(v.total_size);
            }
            ScanItem::Blank => off = seg.base() as i64 + seg_size,
            ScanItem::End | ScanItem::Invalid(_) => {
                tracing::warn!(offset = off, "unreadable record while re-dispatching");
                break;
            }
        }
    }
    Ok(())
}

/// Load the consume queues, cut them to the recovered commit log, and
/// re-dispatch the scanned range. Any queue that disagrees with the commit
/// log (a hole, a wrong entry) is rebuilt from the whole commit log.
pub(super) fn recover_queues(
    log: &CommitLog,
    cq_root: &Path,
    file_size: usize,
    scan_from: i64,
    delay_levels: &[i64],
) -> Result<QueueMap, StoreError> {
    std::fs::create_dir_all(cq_root)?;
    let cl_min = log.min_offset().max(0);
    let cl_end = log.max_offset();
    let mut queues: HashMap<String, HashMap<i32, ConsumeQueue>> = HashMap::new();
    let mut rebuild: HashSet<(String, i32)> = HashSet::new();
    for topic_entry in std::fs::read_dir(cq_root)? {
        let topic_entry = topic_entry?;
        let Ok(topic) = topic_entry.file_name().into_string() else {
            continue;
        };
        if !topic_entry.file_type()?.is_dir() {
            continue;
        }
        for q_entry in std::fs::read_dir(topic_entry.path())? {
            let q_entry = q_entry?;
            let Some(queue_id) = q_entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            match ConsumeQueue::load(&q_entry.path(), file_size, cl_min, cl_end) {
                Ok(q) => {
                    queues.entry(topic.clone()).or_default().insert(queue_id, q);
                }
                Err(e) => {
                    tracing::warn!(%topic, queue_id, error = %e, "consume queue unreadable; rebuilding");
                    std::fs::remove_dir_all(q_entry.path())?;
                    rebuild.insert((topic.clone(), queue_id));
                }
            }
        }
    }

    let cq_dir = |topic: &str, q: i32| cq_root.join(topic).join(q.to_string());
    let tags = |v: &RecordView<'_>| {
        tags_code(
            v.topic,
            &properties::Scanned::scan(v.properties),
            v.store_timestamp,
            delay_levels,
        )
    };
    walk(log, scan_from, cl_end, |v| {
        let key = (v.topic.to_owned(), v.queue_id);
        if rebuild.contains(&key) {
            return Ok(());
        }
        let topic_map = queues.entry(key.0.clone()).or_default();
        let cq = match topic_map.entry(v.queue_id) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => slot.insert(ConsumeQueue::create(
                &cq_dir(v.topic, v.queue_id),
                file_size,
            )?),
        };
        let max = cq.max_offset();
        if v.queue_offset < max {
            let ok = cq
                .entry(v.queue_offset)
                .is_some_and(|e| e.phys == v.physical_offset && e.size == v.total_size);
            if !ok {
                rebuild.insert(key);
            }
        } else if v.queue_offset == max {
            cq.ensure_capacity(1)?;
            cq.append(CqEntry {
                phys: v.physical_offset,
                size: v.total_size,
                tags_code: tags(v),
            });
        } else {
            rebuild.insert(key);
        }
        Ok(())
    })?;

    if !rebuild.is_empty() {
        for (topic, q) in &rebuild {
            tracing::warn!(%topic, queue_id = q, "rebuilding consume queue from the commit log");
            if let Some(old) = queues.get_mut(topic).and_then(|m| m.remove(q)) {
                old.destroy()?;
            }
            queues
                .entry(topic.clone())
                .or_default()
                .insert(*q, ConsumeQueue::create(&cq_dir(topic, *q), file_size)?);
        }
        let mut started: HashSet<(String, i32)> = HashSet::new();
        walk(log, cl_min, cl_end, |v| {
            let key = (v.topic.to_owned(), v.queue_id);
            if !rebuild.contains(&key) {
                return Ok(());
            }
            let Some(cq) = queues.get_mut(v.topic).and_then(|m| m.get_mut(&v.queue_id)) else {
                return Ok(());
            };
            if started.insert(key) && v.queue_offset > 0 {
                cq.start_at(v.queue_offset)?;
            }
            let max = cq.max_offset();
            if v.queue_offset < max {
                tracing::warn!(
                    topic = v.topic,
                    queue_offset = v.queue_offset,
                    "duplicate queue offset skipped"
                );
                return Ok(());
            }
            for _ in max..v.queue_offset {
                cq.ensure_capacity(1)?;
                cq.append(CqEntry {
                    phys: 0,
                    size: i32::MAX,
                    tags_code: 0,
                });
            }
            cq.ensure_capacity(1)?;
            cq.append(CqEntry {
                phys: v.physical_offset,
                size: v.total_size,
                tags_code: tags(v),
            });
            Ok(())
        })?;
    }

    Ok(queues
        .into_iter()
        .map(|(t, m)| (t, m.into_iter().map(|(q, cq)| (q, Arc::new(cq))).collect()))
        .collect())
}
