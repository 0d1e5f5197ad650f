//! A master and a slave store replicating over loopback with our HA
//! service and client: what synchronous puts answer, where a slave starts,
//! and that a slave's files and queues end up the master's.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ha::{HaClient, HaConfig, HaMaster, ReplicaLog, SyncRule};
use store::{
    properties, FlushDiskType, GetStatus, MessageStore, MessageToStore, PutStatus, StoreConfig,
    StoredMessage,
};
use tokio::net::TcpListener;

const SEG: u64 = 64 * 1024;

fn open(dir: &Path) -> Arc<MessageStore> {
    Arc::new(
        MessageStore::open(StoreConfig {
            mapped_file_size_commit_log: SEG,
            mapped_file_size_consume_queue: 20 * 500,
            flush_disk_type: FlushDiskType::AsyncFlush,
            ..StoreConfig::with_root(dir)
        })
        .expect("open store"),
    )
}

fn msg(i: usize) -> MessageToStore {
    let body = vec![b'a' + (i % 26) as u8; 200 + (i * 53) % 1500];
    MessageToStore {
        topic: ["A", "B"][i % 2].to_owned(),
        queue_id: (i % 3) as i32,
        flag: 0,
        body: Bytes::from(body),
        properties: properties::encode(&[(properties::UNIQ_KEY, format!("K{i}"))]),
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: "192.168.1.20:51234".parse().expect("addr"),
        store_host: "127.0.0.1:10911".parse().expect("addr"),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

fn cfg(sync: SyncRule) -> HaConfig {
    HaConfig {
        sync,
        slave_timeout: Duration::from_millis(700),
        reconnect_delay: Duration::from_millis(200),
        ..HaConfig::default()
    }
}

async fn master(store: &Arc<MessageStore>, sync: SyncRule) -> (Arc<HaMaster>, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let log: Arc<dyn ReplicaLog> = store.clone();
    let m = HaMaster::start(log, listener, cfg(sync));
    store.set_replication(Some(m.clone()));
    (m, addr)
}

fn slave(store: &Arc<MessageStore>, addr: &str) -> HaClient {
    let log: Arc<dyn ReplicaLog> = store.clone();
    HaClient::start(log, Some(addr.to_owned()), cfg(SyncRule::Async))
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn queue(store: &MessageStore, topic: &str, q: i32) -> Vec<StoredMessage> {
    let mut out = Vec::new();
    let mut offset = store.min_offset(topic, q);
    loop {
        let r = store.get_messages(topic, q, offset, 32, 1 << 20, &|_| true);
        if r.status != GetStatus::Found {
            return out;
        }
        out.extend(
            r.messages
                .iter()
                .map(|b| StoredMessage::decode(b).expect("decode")),
        );
        offset = r.next_begin_offset;
    }
}

/// The slave holds the master's log end and has dispatched all of it
/// (`append_replica` moves the end before it builds the queues).
fn caught_up(master: &MessageStore, slave: &MessageStore) -> bool {
    slave.commit_log_max_offset() == master.commit_log_max_offset()
        && master.queues().iter().all(|(t, qs)| {
            qs.iter()
                .all(|q| slave.max_offset(t, *q) == master.max_offset(t, *q))
        })
}

/// Every queue of the master from commit-log offset `from` on, on the slave.
fn assert_replica(master: &MessageStore, slave: &MessageStore, from: i64) {
    let mut seen = 0;
    for (topic, qs) in master.queues() {
        for q in qs {
            let want: Vec<_> = queue(master, &topic, q)
                .into_iter()
                .filter(|m| m.physical_offset >= from)
                .collect();
            let got = queue(slave, &topic, q);
            assert_eq!(got, want, "{topic}/{q}");
            seen += got.len();
        }
    }
    assert!(seen > 0, "nothing replicated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_puts_wait_for_the_slave_and_it_holds_the_masters_log() {
    let (md, sd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let m = open(md.path());
    let (ha, addr) = master(
        &m,
        SyncRule::Sync {
            in_sync_replicas: 2,
        },
    )
    .await;
    let s = open(sd.path());
    let client = slave(&s, &addr);
    wait_until("the slave's first report", Duration::from_secs(10), || {
        ha.connections()
            .iter()
            .any(|c| c.slave_ack_offset.get() >= 0)
    })
    .await;
    for i in 0..300 {
        let r = m.put(&msg(i)).await.expect("put");
        assert_eq!(r.status, PutStatus::PutOk, "put {i}");
        // Acknowledged means the slave holds it.
        let end = r.commit_log_offset + r.wrote_bytes as i64;
        assert!(
            s.commit_log_max_offset() >= end,
            "put {i} acked before the slave had it"
        );
    }
    assert!(
        m.commit_log_max_offset().get() > 3 * SEG as i64,
        "spans files"
    );
    assert_eq!(s.commit_log_max_offset(), m.commit_log_max_offset());
    assert_replica(&m, &s, 0);
    let info = ha.connections();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].slave_ack_offset, m.commit_log_max_offset());
    assert_eq!(ha.in_sync_replicas(), 2);
    assert!(client.status().connected);
    let end = m.commit_log_max_offset().get();
    wait_until(
        "the client's status to show its report",
        Duration::from_secs(5),
        || client.status().reported_offset.get() == end,
    )
    .await;

    // Stopped, the files are byte-identical (blank end-of-file records too).
    client.shutdown();
    ha.shutdown();
    m.shutdown();
    s.shutdown();
    for name in std::fs::read_dir(md.path().join("commitlog")).expect("dir") {
        let name = name.expect("entry").file_name();
        let a = std::fs::read(md.path().join("commitlog").join(&name)).expect("read");
        let b = std::fs::read(sd.path().join("commitlog").join(&name)).expect("read");
        assert!(a == b, "commit log file {name:?} differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_slave_puts_answer_as_java_does() {
    let dir = tempfile::tempdir().expect("tmp");
    let m = open(dir.path());
    // 5.x SYNC_MASTER with inSyncReplicas 2: stored, FLUSH_SLAVE_TIMEOUT.
    let (ha, _) = master(
        &m,
        SyncRule::Sync {
            in_sync_replicas: 2,
        },
    )
    .await;
    let r = m.put(&msg(0)).await.expect("put");
    assert_eq!(
        (r.status, r.queue_offset.get()),
        (PutStatus::FlushSlaveTimeout, 0)
    );
    ha.shutdown();
    // 5.x default inSyncReplicas 1: no waiting at all.
    let (ha, _) = master(
        &m,
        SyncRule::Sync {
            in_sync_replicas: 1,
        },
    )
    .await;
    assert_eq!(m.put(&msg(6)).await.expect("put").status, PutStatus::PutOk);
    ha.shutdown();
    // 4.x SYNC_MASTER: stored, SLAVE_NOT_AVAILABLE at once.
    let (ha, _) = master(&m, SyncRule::SyncV4).await;
    let started = Instant::now();
    let r = m.put(&msg(12)).await.expect("put");
    assert_eq!(
        (r.status, r.queue_offset.get()),
        (PutStatus::SlaveNotAvailable, 2)
    );
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "did not wait for a slave"
    );
    ha.shutdown();
    let (_ha, _) = master(&m, SyncRule::Async).await;
    assert_eq!(m.put(&msg(18)).await.expect("put").status, PutStatus::PutOk);
    // Every one of them was stored.
    assert_eq!(queue(&m, "A", 0).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4x_sync_master_waits_for_its_slave() {
    let (md, sd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let m = open(md.path());
    let (ha, addr) = master(&m, SyncRule::SyncV4).await;
    let s = open(sd.path());
    let _client = slave(&s, &addr);
    wait_until("the slave's first report", Duration::from_secs(10), || {
        ha.connections()
            .iter()
            .any(|c| c.slave_ack_offset.get() >= 0)
    })
    .await;
    for i in 0..50 {
        let r = m.put(&msg(i)).await.expect("put");
        assert_eq!(r.status, PutStatus::PutOk, "put {i}");
        assert!(s.commit_log_max_offset() >= r.commit_log_offset + r.wrote_bytes as i64);
    }
    assert_eq!(ha.push_to_slave_max_offset(), m.commit_log_max_offset());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_slave_starts_at_the_last_file_and_a_restarted_one_resumes() {
    let (md, sd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let m = open(md.path());
    for i in 0..200 {
        m.put(&msg(i)).await.expect("put");
    }
    let (_ha, addr) = master(&m, SyncRule::Async).await;
    let end = m.commit_log_max_offset().get();
    let start = end - end % SEG as i64;
    assert!(start > 0);

    let s = open(sd.path());
    let client = slave(&s, &addr);
    wait_until("the slave to catch up", Duration::from_secs(10), || {
        caught_up(&m, &s)
    })
    .await;
    assert_eq!(
        s.commit_log_min_offset().get(),
        start,
        "an empty slave gets the last file only"
    );
    assert_replica(&m, &s, start);

    // The slave stops; the master goes on; the slave restarts and resumes.
    client.shutdown();
    drop(client);
    s.shutdown();
    drop(s);
    for i in 200..400 {
        m.put(&msg(i)).await.expect("put");
    }
    let s = open(sd.path());
    assert_eq!(s.commit_log_min_offset().get(), start);
    let _client = slave(&s, &addr);
    wait_until(
        "the restarted slave to catch up",
        Duration::from_secs(10),
        || s.commit_log_max_offset() == m.commit_log_max_offset(),
    )
    .await;
    assert_replica(&m, &s, start);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_follows_a_new_master_address() {
    let (ad, bd, sd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let a = open(ad.path());
    let (_ha_a, addr_a) = master(&a, SyncRule::Async).await;
    let s = open(sd.path());
    // No address yet: the client waits.
    let log: Arc<dyn ReplicaLog> = s.clone();
    let client = HaClient::start(log, None, cfg(SyncRule::Async));
    for i in 0..20 {
        a.put(&msg(i)).await.expect("put");
    }
    assert!(!client.status().connected);
    client.set_master(Some(addr_a.clone()));
    wait_until(
        "the slave to catch up with a",
        Duration::from_secs(10),
        || s.commit_log_max_offset() == a.commit_log_max_offset(),
    )
    .await;
    // A master whose log ends before the slave's (a lagging slave promoted
    // elsewhere): it closes the connection on the slave's first report
    // instead of streaming its own bytes after the slave's tail.
    let b = open(bd.path());
    for i in 0..5 {
        b.put(&msg(i)).await.expect("put");
    }
    let (ha_b, addr_b) = master(&b, SyncRule::Async).await;
    let before = s.commit_log_max_offset();
    assert!(b.commit_log_max_offset() < before);
    client.set_master(Some(addr_b));
    wait_until("b to refuse the slave", Duration::from_secs(10), || {
        ha_b.refused_slaves() >= 1
    })
    .await;
    assert_eq!(
        s.commit_log_max_offset(),
        before,
        "nothing of b was appended"
    );
    assert!(ha_b
        .connections()
        .iter()
        .all(|c| c.slave_ack_offset.get() < 0));
    assert_replica(&a, &s, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_closes_a_peer_that_sends_garbage() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tmp");
    let m = open(dir.path());
    m.put(&msg(0)).await.expect("put");
    let (ha, addr) = master(&m, SyncRule::Async).await;
    for garbage in [[0xFFu8; 8], (i64::MAX).to_be_bytes()] {
        let before = ha.refused_slaves();
        let mut peer = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        peer.write_all(&garbage).await.expect("write");
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match peer.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "the master kept a peer that sent {garbage:?}"
        );
        assert_eq!(ha.refused_slaves(), before + 1);
    }
    // The master still serves: its log is untouched and puts go on.
    assert_eq!(m.put(&msg(6)).await.expect("put").queue_offset.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_waits_do_not_pile_up_without_a_slave() {
    let dir = tempfile::tempdir().expect("tmp");
    let m = open(dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let log: Arc<dyn ReplicaLog> = m.clone();
    let ha = HaMaster::start(
        log,
        listener,
        HaConfig {
            sync: SyncRule::Sync {
                in_sync_replicas: 2,
            },
            slave_timeout: Duration::from_millis(1),
            ..HaConfig::default()
        },
    );
    m.set_replication(Some(ha.clone()));
    // Past two prune points.
    for i in 0..2100 {
        let r = m.put(&msg(i)).await.expect("put");
        assert_eq!(r.status, PutStatus::FlushSlaveTimeout);
    }
    // Every wait timed out; at most one prune period of them is left.
    assert!(
        ha.waiting_puts() <= 1024,
        "{} waits kept",
        ha.waiting_puts()
    );
}
