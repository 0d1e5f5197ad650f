//! AutoSwitch master logging: a caught-up slave's proposal is logged once,
//! not on every ack while it is pending. Its own test binary, as it installs
//! the process-wide subscriber (a thread-local one misses events when other
//! tests register the same callsites first).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ha::autoswitch::{change_to_master, AutoSwitchClient, AutoSwitchConfig, AutoSwitchMaster};
use ha::HaConfig;
use store::{
    properties, EpochFile, FlushDiskType, MessageStore, MessageToStore, PutStatus, StoreConfig,
};
use tokio::net::TcpListener;

const MIB: u64 = 1024 * 1024;
const MASTER_ID: i64 = 1;
const SLAVE_ID: i64 = 2;

struct Node {
    store: Arc<MessageStore>,
    epochs: Arc<EpochFile>,
}

fn open(dir: &Path) -> Node {
    let store = Arc::new(
        MessageStore::open(StoreConfig {
            mapped_file_size_commit_log: MIB,
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
            slave_timeout: Duration::from_millis(700),
            reconnect_delay: Duration::from_millis(200),
            ..HaConfig::default()
        },
        check_sync_state_set_period: Duration::from_millis(100),
        handshake_timeout: Duration::from_millis(2000),
        ..AutoSwitchConfig::default()
    }
}

async fn fill(store: &MessageStore, n: usize, tag: u8) {
    for i in 0..n {
        let m = MessageToStore {
            topic: ["A", "B"][i % 2].to_owned(),
            queue_id: (i % 3) as i32,
            flag: 0,
            body: Bytes::from(vec![tag; 300 + (i * 997) % 3000]),
            properties: properties::encode(&[(properties::UNIQ_KEY, format!("K{i}"))]),
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            born_host: "192.168.1.20:51234".parse().expect("addr"),
            store_host: "127.0.0.1:10911".parse().expect("addr"),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        let r = store.put(&m).await.expect("put");
        assert_eq!(r.status, PutStatus::PutOk);
    }
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn become_master(node: &Node) -> (Arc<AutoSwitchMaster>, String) {
    change_to_master(node.store.as_ref(), &node.epochs, 1).expect("change to master");
    node.store.set_replica(false);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let m = AutoSwitchMaster::start(
        node.store.clone(),
        node.epochs.clone(),
        listener,
        cfg(),
        MASTER_ID,
    );
    node.store.set_replication(Some(m.clone()));
    (m, addr)
}

/// Messages of every event logged in this process, with their levels.
#[derive(Clone, Default)]
struct LogRecorder {
    events: Arc<std::sync::Mutex<Vec<(tracing::Level, String)>>>,
}

impl LogRecorder {
    fn count(&self, message: &str) -> usize {
        self.events
            .lock()
            .expect("log lock")
            .iter()
            .filter(|(_, m)| m == message)
            .count()
    }
}

struct MessageField(Option<String>);

impl tracing::field::Visit for MessageField {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl tracing::Subscriber for LogRecorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut m = MessageField(None);
        event.record(&mut m);
        if let Some(m) = m.0 {
            let level = *event.metadata().level();
            self.events.lock().expect("log lock").push((level, m));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Waits until the master has the slave's ack for its whole log.
async fn acked_to_end(master: &AutoSwitchMaster, store: &MessageStore) {
    wait_until(
        "the slave's ack of the log's end",
        Duration::from_secs(10),
        || {
            master
                .connections()
                .first()
                .is_some_and(|c| c.slave_ack_offset == store.commit_log_max_offset())
        },
    )
    .await;
}

/// A caught-up slave acks every frame and heartbeat while its proposal is
/// pending; the proposal is logged once, not per ack, and again only when
/// a new one is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_proposal_is_logged_once_not_per_ack() {
    let rec = LogRecorder::default();
    tracing::subscriber::set_global_default(rec.clone()).expect("the only subscriber");
    const CAUGHT_UP: &str = "slave caught up; proposing it for the SyncStateSet";
    const PROPOSED: &str = "SyncStateSet change proposed";
    const APPLIED: &str = "SyncStateSet applied";
    let (md, sd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let m = open(md.path());
    let (master, addr) = become_master(&m).await;
    let mut proposals = master.proposals();
    fill(&m.store, 20, b'x').await;
    let s = open(sd.path());
    s.store.set_replica(true);
    let client = AutoSwitchClient::start(
        s.store.clone(),
        s.epochs.clone(),
        Some(addr.clone()),
        cfg(),
        SLAVE_ID,
    );
    tokio::time::timeout(
        Duration::from_secs(10),
        proposals.wait_for(|p| p.as_ref().is_some_and(|s| s.contains(&SLAVE_ID))),
    )
    .await
    .expect("proposal in time")
    .expect("proposals open");
    // Many acks of a caught-up slave while the proposal is pending: data
    // frames in rounds, then heartbeats (every 200 ms) for a while.
    for round in 0..5u8 {
        fill(&m.store, 30, b'a' + round).await;
        acked_to_end(&master, &m.store).await;
    }
    let since = s.store.commit_log_max_offset();
    let idle_from = client.status().last_write_ms;
    wait_until("heartbeat reports", Duration::from_secs(10), || {
        client.status().last_write_ms >= idle_from + 600
    })
    .await;
    assert_eq!(s.store.commit_log_max_offset(), since);
    assert_eq!(rec.count(CAUGHT_UP), 1, "one proposal, one line");
    assert_eq!(rec.count(PROPOSED), 1);

    // The controller answers without the slave: the next ack makes a new
    // proposal, logged once more.
    master.set_sync_state_set([MASTER_ID]);
    assert_eq!(rec.count(APPLIED), 0, "an unchanged set is not news");
    fill(&m.store, 10, b'z').await;
    wait_until("a second proposal", Duration::from_secs(10), || {
        rec.count(CAUGHT_UP) == 2
    })
    .await;
    for round in 0..3u8 {
        fill(&m.store, 30, b'k' + round).await;
        acked_to_end(&master, &m.store).await;
    }
    assert_eq!(rec.count(CAUGHT_UP), 2);
    assert_eq!(rec.count(PROPOSED), 2);

    // Accepted: no more proposals however many acks follow.
    master.set_sync_state_set([MASTER_ID, SLAVE_ID]);
    assert_eq!(rec.count(APPLIED), 1);
    for round in 0..3u8 {
        fill(&m.store, 30, b'p' + round).await;
        acked_to_end(&master, &m.store).await;
    }
    assert_eq!(rec.count(CAUGHT_UP), 2);
    assert_eq!(rec.count(PROPOSED), 2);
    // Nothing at info or above is logged per ack or per frame: the whole
    // run stays far below one line per frame.
    let loud = rec
        .events
        .lock()
        .expect("log lock")
        .iter()
        .filter(|(l, _)| *l <= tracing::Level::INFO)
        .count();
    assert!(loud < 40, "{loud} info/warn lines");

    client.shutdown();
    master.shutdown();
}
