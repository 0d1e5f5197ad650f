#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use store::{
    properties, BatchToStore, FlushDiskType, MessageStore, MessageToStore, PutResult, StoreConfig,
    StoreError,
};

pub const SEG: u64 = 64 * 1024;

pub fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        mapped_file_size_commit_log: SEG,
        mapped_file_size_consume_queue: 20 * 50,
        flush_disk_type: FlushDiskType::AsyncFlush,
        ..StoreConfig::with_root(dir)
    }
}

pub fn open(dir: &Path) -> MessageStore {
    MessageStore::open(config(dir)).expect("open store")
}

pub fn born() -> SocketAddr {
    "192.168.1.20:51234".parse().expect("addr")
}

pub fn host() -> SocketAddr {
    "10.0.0.5:10911".parse().expect("addr")
}

pub fn msg(topic: &str, queue_id: i32, body: &[u8], tags: Option<&str>) -> MessageToStore {
    let mut props = vec![("UNIQ_KEY", "ABC".to_owned())];
    if let Some(t) = tags {
        props.push((properties::TAGS, t.to_owned()));
    }
    MessageToStore {
        topic: topic.to_owned(),
        queue_id,
        flag: 0,
        body: Bytes::copy_from_slice(body),
        properties: properties::encode(&props),
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: born(),
        store_host: host(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

pub fn all(_: i64) -> bool {
    true
}

/// Every message of a queue, read through `get_messages`.
pub fn read_queue(store: &MessageStore, topic: &str, queue_id: i32) -> Vec<store::StoredMessage> {
    let mut out = Vec::new();
    let mut offset = store.min_offset(topic, queue_id);
    loop {
        let r = store.get_messages(topic, queue_id, offset, 32, 1 << 20, &all);
        if r.status != store::GetStatus::Found {
            break;
        }
        for b in &r.messages {
            out.push(store::StoredMessage::decode(b).expect("decode"));
        }
        offset = r.next_begin_offset;
    }
    out
}

/// A store's puts awaited on the calling thread (the tests' synchronous
/// view of [`store::PendingPut`]).
pub trait PutNow {
    fn put_now(&self, msg: &MessageToStore) -> Result<PutResult, StoreError>;
    fn put_messages_now(&self, msgs: &[MessageToStore]) -> Result<PutResult, StoreError>;
    fn put_batch_now(&self, batch: &BatchToStore) -> Result<PutResult, StoreError>;
}

impl PutNow for MessageStore {
    fn put_now(&self, msg: &MessageToStore) -> Result<PutResult, StoreError> {
        futures::executor::block_on(self.put(msg))
    }

    fn put_messages_now(&self, msgs: &[MessageToStore]) -> Result<PutResult, StoreError> {
        futures::executor::block_on(self.put_messages(msgs))
    }

    fn put_batch_now(&self, batch: &BatchToStore) -> Result<PutResult, StoreError> {
        futures::executor::block_on(self.put_batch(batch))
    }
}
