//! AutoSwitch HA around a master that dies before shipping any data: the
//! slave still learns its epoch from heartbeat frames (ha.md §4.8), and a
//! replica whose commit log is empty follows a successor whose epoch list
//! has nothing in common with its own (no consistent point is needed).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ha::autoswitch::{change_to_master, AutoSwitchClient, AutoSwitchConfig, AutoSwitchMaster};
use ha::HaConfig;
use store::{
    properties, EpochEntry, EpochFile, FlushDiskType, MessageStore, MessageToStore, PutStatus,
    StoreConfig,
};
use tokio::net::TcpListener;

const LIMIT: Duration = Duration::from_secs(20);

struct Node {
    store: Arc<MessageStore>,
    epochs: Arc<EpochFile>,
}

fn open(dir: &Path) -> Node {
    let store = Arc::new(
        MessageStore::open(StoreConfig {
            mapped_file_size_commit_log: 256 * 1024,
            mapped_file_size_consume_queue: 20 * 1000,
            flush_disk_type: FlushDiskType::AsyncFlush,
            ..StoreConfig::with_root(dir)
        })
        .expect("open store"),
    );
    let epochs = Arc::new(EpochFile::open(&dir.join("epochFileCheckpoint")).expect("epochs"));
    Node { store, epochs }
}

fn cfg() -> AutoSwitchConfig {
    AutoSwitchConfig {
        ha: HaConfig {
            heartbeat_interval: Duration::from_millis(200),
            reconnect_delay: Duration::from_millis(200),
            ..HaConfig::default()
        },
        handshake_timeout: Duration::from_millis(2000),
        ..AutoSwitchConfig::default()
    }
}

fn msg(i: usize) -> MessageToStore {
    MessageToStore {
        topic: "T".to_owned(),
        queue_id: 0,
        flag: 0,
        body: Bytes::from(vec![b'x'; 200 + i]),
        properties: properties::encode(&[(properties::UNIQ_KEY, format!("K{i}"))]),
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: "192.168.1.20:51234".parse().expect("addr"),
        store_host: "127.0.0.1:10911".parse().expect("addr"),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

fn e(epoch: i32, start_offset: i64) -> EpochEntry {
    EpochEntry {
        epoch,
        start_offset,
    }
}

async fn become_master(node: &Node, epoch: i32, id: i64) -> (Arc<AutoSwitchMaster>, String) {
    change_to_master(node.store.as_ref(), &node.epochs, epoch).expect("change to master");
    node.store.set_replica(false);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let m = AutoSwitchMaster::start(node.store.clone(), node.epochs.clone(), listener, cfg(), id);
    node.store.set_replication(Some(m.clone()));
    (m, addr)
}

fn become_slave(node: &Node, addr: &str, id: i64) -> AutoSwitchClient {
    node.store.set_replication(None);
    node.store.set_replica(true);
    AutoSwitchClient::start(
        node.store.clone(),
        node.epochs.clone(),
        Some(addr.to_owned()),
        cfg(),
        id,
    )
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn fill(store: &MessageStore, n: usize) {
    for i in 0..n {
        let r = store.put(&msg(i)).await.expect("put");
        assert_eq!(r.status, PutStatus::PutOk);
    }
}

fn same_bytes(a: &MessageStore, b: &MessageStore) -> bool {
    let end = a.commit_log_max_offset();
    b.commit_log_max_offset() == end
        && a.transfer_chunk(store::CommitLogOffset(0), end.get() as usize)
            == b.transfer_chunk(store::CommitLogOffset(0), end.get() as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_learns_the_epoch_from_heartbeats_before_any_data() {
    let (ad, bd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (a, b) = (open(ad.path()), open(bd.path()));
    let (a_master, a_addr) = become_master(&a, 1, 1).await;
    assert_eq!(a.epochs.entries(), [e(1, 0)]);
    let client = become_slave(&b, &a_addr, 2);
    // Nothing to ship: only heartbeat frames carry epoch 1.
    wait_until("B learns epoch 1 from a heartbeat", || {
        b.epochs.entries() == [e(1, 0)]
    })
    .await;
    assert_eq!(b.store.commit_log_max_offset().get(), 0);

    // A dies before shipping data; B succeeds it. Its epoch 1 holds no
    // bytes, so (as in Java) epoch 2 cannot start at the same offset and
    // B's list stays [1@0]; its writes extend it.
    client.shutdown();
    a_master.shutdown();
    a.store.set_replication(None);
    let (b_master, b_addr) = become_master(&b, 2, 2).await;
    assert_eq!(b.epochs.last_epoch(), 1);
    fill(&b.store, 20).await;

    // The old master (empty log, [1@0]) follows B.
    let _c = become_slave(&a, &b_addr, 1);
    wait_until("A follows B byte for byte", || {
        same_bytes(&b.store, &a.store)
    })
    .await;
    assert_eq!(a.epochs.entries(), b.epochs.entries());
    b_master.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_replica_follows_a_successor_without_a_common_epoch() {
    let (ad, bd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (a, b) = (open(ad.path()), open(bd.path()));
    // A was master of epoch 1 and died before anyone connected.
    let (a_master, _) = become_master(&a, 1, 1).await;
    a_master.shutdown();
    a.store.set_replication(None);
    assert_eq!(a.epochs.entries(), [e(1, 0)]);

    // B, which never heard of epoch 1, is master of epoch 2 and writes.
    let (b_master, b_addr) = become_master(&b, 2, 2).await;
    assert_eq!(b.epochs.entries(), [e(2, 0)]);
    fill(&b.store, 30).await;

    // A's log is empty: its [1@0] is dropped instead of failing "no
    // consistent point" forever; it starts at 0 and takes B's epochs.
    let c = become_slave(&a, &b_addr, 1);
    wait_until("A follows B byte for byte", || {
        same_bytes(&b.store, &a.store)
    })
    .await;
    assert_eq!(a.epochs.entries(), [e(2, 0)]);
    assert_eq!(c.status().truncated_to.get(), 0);
    // And keeps following.
    fill(&b.store, 5).await;
    wait_until("A follows more", || same_bytes(&b.store, &a.store)).await;
    b_master.shutdown();
}
