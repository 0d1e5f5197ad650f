//! AutoSwitch HA over loopback: our master and client replicating (files
//! byte-identical, epoch files agreeing), an old master rejoining a new one
//! and cutting its divergent tail (ha.md §5), and the SyncStateSet rules
//! (all-ack waits, minInSyncReplicas, expand and shrink proposals).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ha::autoswitch::frame::{self, MasterHandshake, MasterMessage, SlaveHandshake, TransferHeader};
use ha::autoswitch::{change_to_master, AutoSwitchClient, AutoSwitchConfig, AutoSwitchMaster};
use ha::HaConfig;
use store::{
    properties, CommitLogOffset, EpochEntry, EpochFile, FlushDiskType, MessageStore,
    MessageToStore, PutStatus, StoreConfig, StoreError,
};
use tokio::net::TcpListener;

const MIB: u64 = 1024 * 1024;
const MASTER_ID: i64 = 1;
const SLAVE_ID: i64 = 2;

struct Node {
    store: Arc<MessageStore>,
    epochs: Arc<EpochFile>,
}

fn open(dir: &Path, seg: u64) -> Node {
    let store = Arc::new(
        MessageStore::open(StoreConfig {
            mapped_file_size_commit_log: seg,
            mapped_file_size_consume_queue: 20 * 1000,
            flush_disk_type: FlushDiskType::AsyncFlush,
            ..StoreConfig::with_root(dir)
        })
        .expect("open store"),
    );
    let epochs = Arc::new(EpochFile::open(&dir.join("epochFileCheckpoint")).expect("epochs"));
    Node { store, epochs }
}

fn msg(i: usize, tag: u8) -> MessageToStore {
    let body = vec![tag; 300 + (i * 997) % 3000];
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

/// Makes `node` the master in `epoch` on a fresh loopback port.
async fn become_master(
    node: &Node,
    epoch: i32,
    cfg: AutoSwitchConfig,
) -> (Arc<AutoSwitchMaster>, String) {
    change_to_master(node.store.as_ref(), &node.epochs, epoch).expect("change to master");
    node.store.set_replica(false);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let m = AutoSwitchMaster::start(
        node.store.clone(),
        node.epochs.clone(),
        listener,
        cfg,
        MASTER_ID,
    );
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

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Puts `n` messages; their commit-log offsets.
async fn fill(store: &MessageStore, n: usize, tag: u8) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let r = store.put(&msg(i, tag)).await.expect("put");
        assert_eq!(r.status, PutStatus::PutOk);
        out.push(r.commit_log_offset.get());
    }
    out
}

fn commit_log_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("commitlog"))
        .expect("commitlog dir")
        .map(|e| {
            let p = e.expect("entry").path();
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect();
    v.sort();
    v
}

fn same_queues(a: &MessageStore, b: &MessageStore) -> bool {
    a.commit_log_max_offset() == b.commit_log_max_offset()
        && a.queues() == b.queues()
        && a.queues().iter().all(|(t, qs)| {
            qs.iter()
                .all(|q| a.max_offset(t, *q) == b.max_offset(t, *q))
        })
}

/// A slave speaking the wire by hand: handshake (id 9), report 0, then
/// every frame header until the data reaches `until`.
async fn raw_slave(addr: &str, until: i64) -> (MasterHandshake, Vec<TransferHeader>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let hello = SlaveHandshake {
        sync_from_last_file: false,
        async_learner: true,
        broker_id: 9,
    };
    sock.write_all(&hello.encode()).await.expect("handshake");
    let mut buf = BytesMut::new();
    let mut reply = None;
    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reached = 0i64;
    while reached < until {
        assert!(
            Instant::now() < deadline,
            "raw slave timed out at {reached}"
        );
        while let Some(m) = frame::decode_master(&mut buf).expect("valid frames") {
            match m {
                MasterMessage::Handshake(h) => {
                    assert!(reply.is_none(), "one handshake reply");
                    reply = Some(h);
                    sock.write_all(&frame::encode_report(0))
                        .await
                        .expect("report");
                }
                MasterMessage::Transfer { header, data } => {
                    assert_eq!(data.len(), header.body_size as usize);
                    reached = reached.max(header.offset + data.len() as i64);
                    frames.push(header);
                }
            }
        }
        if reached >= until {
            break;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read_buf(&mut buf))
            .await
            .expect("read in time")
            .expect("read");
        assert!(n > 0, "master closed");
    }
    (reply.expect("handshake reply"), frames)
}

fn e(epoch: i32, start_offset: i64) -> EpochEntry {
    EpochEntry {
        epoch,
        start_offset,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_replicates_across_1mib_files_byte_for_byte_and_is_proposed() {
    let (md, sd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let m = open(md.path(), MIB);
    let (master, addr) = become_master(&m, 1, cfg()).await;
    assert_eq!(m.epochs.entries(), vec![e(1, 0)]);
    let mut proposals = master.proposals();
    // Part of the log before the slave exists, part while it follows.
    fill(&m.store, 800, b'x').await;
    let s = open(sd.path(), MIB);
    let client = become_slave(&s, &addr, SLAVE_ID);
    fill(&m.store, 800, b'y').await;
    assert!(
        m.store.commit_log_max_offset().get() > 2 * MIB as i64,
        "spans files"
    );
    wait_until("the slave to catch up", Duration::from_secs(30), || {
        same_queues(&m.store, &s.store)
    })
    .await;
    assert_eq!(s.epochs.entries(), vec![e(1, 0)]);
    // The caught-up slave is proposed for the SyncStateSet.
    tokio::time::timeout(
        Duration::from_secs(10),
        proposals.wait_for(|p| p.as_ref().is_some_and(|s| s.contains(&SLAVE_ID))),
    )
    .await
    .expect("proposal in time")
    .expect("proposals open");
    assert_eq!(
        master.in_sync_replicas(),
        2,
        "pending: the larger set counts"
    );
    master.set_sync_state_set([MASTER_ID, SLAVE_ID]);
    assert_eq!(
        master.sync_state_set(),
        BTreeSet::from([MASTER_ID, SLAVE_ID])
    );
    let conns = master.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].slave_id, SLAVE_ID);
    assert!(conns[0].in_sync);
    // The slave learns the confirm offset (the log's end when not all-ack).
    wait_until("the confirm offset", Duration::from_secs(10), || {
        client.confirm_offset() == m.store.commit_log_max_offset()
    })
    .await;
    assert!(client.status().transferring);

    client.shutdown();
    master.shutdown();
    m.store.shutdown();
    s.store.shutdown();
    drop((m, s, client, master));
    assert_eq!(commit_log_files(md.path()), commit_log_files(sd.path()));
}

/// ha.md §5: A wrote epoch 1 to X; B, which had A's log to Y < X, became
/// master in epoch 2 and wrote on. A rejoins as B's slave: it cuts its log
/// to Y and then holds B's bytes exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_master_rejoining_cuts_its_divergent_tail() {
    let (ad, bd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let seg = 256 * 1024;
    let a = open(ad.path(), seg);
    let (a_master, _) = become_master(&a, 1, cfg()).await;
    let offsets = fill(&a.store, 300, b'a').await;
    let x = a.store.commit_log_max_offset().get();
    a_master.shutdown();
    a.store.set_replication(None);

    // B holds A's log up to record 200 (a record boundary), epoch 1.
    let b = open(bd.path(), seg);
    b.store.set_replica(true);
    b.epochs.append(e(1, 0)).expect("epoch");
    let y = offsets[200];
    let mut from = 0i64;
    while from < y {
        let c = a
            .store
            .transfer_chunk(CommitLogOffset(from), (y - from) as usize)
            .expect("chunk");
        from = b
            .store
            .append_replica(CommitLogOffset(from), &c)
            .expect("append")
            .get();
    }
    assert!(y < x);
    let (b_master, addr) = become_master(&b, 2, cfg()).await;
    assert_eq!(b.epochs.entries(), vec![e(1, 0), e(2, y)]);
    fill(&b.store, 250, b'b').await;
    assert_ne!(b.store.commit_log_max_offset().get(), x);

    let client = become_slave(&a, &addr, SLAVE_ID);
    // A new replica C follows B from its oldest byte, across the epoch
    // change at y: frames are cut there and C records both epochs.
    let cd = tempfile::tempdir().expect("tmp");
    let c = open(cd.path(), seg);
    let c_client = become_slave(&c, &addr, 3);
    wait_until("the old master to follow", Duration::from_secs(30), || {
        same_queues(&b.store, &a.store) && same_queues(&b.store, &c.store)
    })
    .await;
    assert_eq!(c.epochs.entries(), vec![e(1, 0), e(2, y)]);
    assert_eq!(c_client.status().truncated_to.get(), 0);
    c_client.shutdown();
    c.store.shutdown();
    drop((c, c_client));

    // On the wire: a raw slave sees B's epochs in the handshake reply and
    // frames that stay within one file and one epoch, each naming it.
    let b_end = b.store.commit_log_max_offset().get();
    let (hello, frames) = raw_slave(&addr, b_end).await;
    assert_eq!(hello.entries, vec![e(1, 0), e(2, y)]);
    assert_eq!((hello.max_offset, hello.last_epoch), (b_end, 2));
    let mut next = 0i64;
    for h in frames.iter().filter(|h| h.body_size > 0) {
        assert_eq!(h.offset, next);
        let end = h.offset + i64::from(h.body_size);
        assert_eq!(h.offset / seg as i64, (end - 1) / seg as i64, "one file");
        if h.epoch == 1 {
            assert_eq!(h.epoch_start_offset, 0);
            assert!(end <= y, "epoch 1 frame past {y}: {h:?}");
        } else {
            assert_eq!((h.epoch, h.epoch_start_offset), (2, y));
            assert!(h.offset >= y);
        }
        next = end;
    }
    assert_eq!(next, b_end);
    assert!(frames
        .iter()
        .any(|h| h.epoch == 1 && h.offset + i64::from(h.body_size) == y));
    assert_eq!(client.status().truncated_to.get(), y);
    assert_eq!(a.epochs.entries(), vec![e(1, 0), e(2, y)]);
    // Every message of A's cut tail is gone from A's queues.
    for (t, qs) in b.store.queues() {
        for q in qs {
            let r = a
                .store
                .get_messages(&t, q, store::QueueOffset(0), 10_000, i32::MAX, &|_| true);
            for m in &r.messages {
                let sm = store::StoredMessage::decode(m).expect("decode");
                let tag = sm.body[0];
                assert!(
                    (sm.physical_offset < y && tag == b'a')
                        || (sm.physical_offset >= y && tag == b'b'),
                    "{t}/{q} at {}",
                    sm.physical_offset
                );
            }
        }
    }
    client.shutdown();
    b_master.shutdown();
    a.store.shutdown();
    b.store.shutdown();
    drop((a, b, client, b_master, a_master));
    assert_eq!(commit_log_files(ad.path()), commit_log_files(bd.path()));
    assert_eq!(commit_log_files(cd.path()), commit_log_files(bd.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_ack_waits_for_every_member_and_times_out_without_one() {
    let (md, sd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let m = open(md.path(), MIB);
    let c = AutoSwitchConfig {
        all_ack_in_sync_state_set: true,
        // Keep the test's sets: no shrink during it.
        max_time_slave_not_catchup: Duration::from_secs(3600),
        check_sync_state_set_period: Duration::from_secs(3600),
        ..cfg()
    };
    let (master, addr) = become_master(&m, 1, c).await;
    // Alone in the set: no waiting.
    fill(&m.store, 5, b'x').await;
    let s = open(sd.path(), MIB);
    let _client = become_slave(&s, &addr, SLAVE_ID);
    wait_until("the slave to catch up", Duration::from_secs(10), || {
        same_queues(&m.store, &s.store)
    })
    .await;
    master.set_sync_state_set([MASTER_ID, SLAVE_ID]);
    // Both members hold it: acknowledged.
    let r = m.store.put(&msg(1, b'z')).await.expect("put");
    assert_eq!(r.status, PutStatus::PutOk);
    assert_eq!(master.confirm_offset(), m.store.commit_log_max_offset());
    assert!(s.store.commit_log_max_offset() >= master.confirm_offset());
    // Consumers read up to the confirm offset, on both sides.
    assert_eq!(m.store.read_limit(), Some(master.confirm_offset()));
    let readable = m.store.max_offset("B", 1);
    wait_until("the slave's read limit", Duration::from_secs(5), || {
        s.store.read_limit().is_some() && s.store.max_offset("B", 1) == readable
    })
    .await;

    // A member that never connects: the put is stored but times out.
    master.set_sync_state_set([MASTER_ID, SLAVE_ID, 3]);
    let before = master.confirm_offset();
    let readable_a2 = m.store.max_offset("A", 2);
    let started = Instant::now();
    let r = m.store.put(&msg(2, b'z')).await.expect("put");
    assert_eq!(r.status, PutStatus::FlushSlaveTimeout);
    assert!(started.elapsed() >= Duration::from_millis(600));
    // The confirm offset stays while a member has no connection, and so
    // the unacknowledged message stays hidden from consumers.
    assert_eq!(master.confirm_offset(), before);
    assert!(m.store.commit_log_max_offset() > before);
    assert_eq!(m.store.read_limit(), Some(before));
    assert_eq!(m.store.max_offset("A", 2), readable_a2);
    m.store.set_read_limit(None);
    assert_eq!(m.store.max_offset("A", 2).get(), readable_a2.get() + 1);
    // The periodic check proposes the set without the absent member.
    assert_eq!(
        master.maybe_shrink_sync_state_set(),
        BTreeSet::from([MASTER_ID, SLAVE_ID])
    );
    assert_eq!(
        *master.proposals().borrow(),
        Some(BTreeSet::from([MASTER_ID, SLAVE_ID]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_in_sync_replicas_refuse_and_a_lagging_member_is_shrunk() {
    let (md, sd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let m = open(md.path(), MIB);
    let c = AutoSwitchConfig {
        min_in_sync_replicas: 2,
        in_sync_replicas: 2,
        max_time_slave_not_catchup: Duration::from_millis(300),
        ..cfg()
    };
    let (master, addr) = become_master(&m, 1, c).await;
    // Alone: fewer than minInSyncReplicas, nothing stored.
    let err = m.store.put(&msg(0, b'x')).await.expect_err("refused");
    assert!(matches!(err, StoreError::InSyncReplicasNotEnough), "{err}");
    assert_eq!(m.store.commit_log_max_offset().get(), 0);

    // A slave joins: proposed, confirmed, puts wait for its ack.
    let s = open(sd.path(), MIB);
    let client = become_slave(&s, &addr, SLAVE_ID);
    let mut proposals = master.proposals();
    tokio::time::timeout(
        Duration::from_secs(10),
        proposals.wait_for(|p| p.as_ref().is_some_and(|s| s.contains(&SLAVE_ID))),
    )
    .await
    .expect("expand proposal")
    .expect("open");
    master.set_sync_state_set([MASTER_ID, SLAVE_ID]);
    let r = m.store.put(&msg(1, b'y')).await.expect("put");
    assert_eq!(r.status, PutStatus::PutOk);
    wait_until("the slave to hold it", Duration::from_secs(5), || {
        s.store.commit_log_max_offset() == m.store.commit_log_max_offset()
    })
    .await;

    // The slave goes away: its connection's end proposes it out, and so
    // does the periodic check once it has not caught up for 300 ms.
    client.shutdown();
    tokio::time::timeout(
        Duration::from_secs(10),
        proposals.wait_for(|p| p.as_ref() == Some(&BTreeSet::from([MASTER_ID]))),
    )
    .await
    .expect("shrink proposal")
    .expect("open");
    // While the shrink is pending the larger set still counts.
    assert_eq!(master.in_sync_replicas(), 2);
    master.set_sync_state_set([MASTER_ID]);
    assert_eq!(master.in_sync_replicas(), 1);
    let err = m.store.put(&msg(2, b'x')).await.expect_err("refused");
    assert!(matches!(err, StoreError::InSyncReplicasNotEnough));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_to_master_refuses_an_older_epoch_and_cuts_a_torn_tail() {
    let (ad, bd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let a = open(ad.path(), MIB);
    change_to_master(a.store.as_ref(), &a.epochs, 3).expect("master");
    let offsets = fill(&a.store, 20, b'a').await;
    // B got A's log up to the middle of record 10, then B is elected.
    let b = open(bd.path(), MIB);
    b.store.set_replica(true);
    b.epochs.append(e(3, 0)).expect("epoch");
    let torn = offsets[10] + 50;
    let c = a
        .store
        .transfer_chunk(CommitLogOffset(0), torn as usize)
        .expect("chunk");
    b.store
        .append_replica(CommitLogOffset(0), &c)
        .expect("append");
    assert!(matches!(
        change_to_master(b.store.as_ref(), &b.epochs, 2),
        Err(ha::autoswitch::RoleChangeError::StaleEpoch { epoch: 2, last: 3 })
    ));
    let entry = change_to_master(b.store.as_ref(), &b.epochs, 4).expect("master");
    assert_eq!(entry, Some(e(4, offsets[10])));
    assert_eq!(b.store.commit_log_max_offset().get(), offsets[10]);
    assert_eq!(b.epochs.entries(), vec![e(3, 0), e(4, offsets[10])]);
    // Re-elected with the same epoch: the entry is replaced, not doubled.
    change_to_master(b.store.as_ref(), &b.epochs, 4).expect("again");
    assert_eq!(b.epochs.entries(), vec![e(3, 0), e(4, offsets[10])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_waits_for_an_address_and_follows_a_new_one() {
    let (md, sd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let m = open(md.path(), MIB);
    let (master, addr) = become_master(&m, 1, cfg()).await;
    fill(&m.store, 50, b'x').await;
    let s = open(sd.path(), MIB);
    s.store.set_replica(true);
    let client = AutoSwitchClient::start(s.store.clone(), s.epochs.clone(), None, cfg(), SLAVE_ID);
    // No address: nothing happens.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.store.commit_log_max_offset().get(), 0);
    assert_eq!(client.status().master_addr, None);
    // A port nobody serves, then the master's.
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead_addr = dead.local_addr().expect("addr").to_string();
    drop(dead);
    client.update_master_address(Some(dead_addr));
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.update_master_address(Some(addr.clone()));
    wait_until("the slave to catch up", Duration::from_secs(10), || {
        same_queues(&m.store, &s.store)
    })
    .await;
    assert_eq!(client.status().master_addr, Some(addr));
    // Stopped: the master's later puts stay there.
    client.shutdown();
    wait_until("the connection to close", Duration::from_secs(5), || {
        master.connections().is_empty()
    })
    .await;
    fill(&m.store, 5, b'y').await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(s.store.commit_log_max_offset() < m.store.commit_log_max_offset());
}

/// An address change wakes the client at once: it dials the new master
/// well within the (5 s) reconnect delay kept for failed connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_master_address_is_dialled_at_once() {
    use tokio::io::AsyncReadExt;
    let (md, sd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let m = open(md.path(), MIB);
    let (master, a_addr) = become_master(&m, 1, cfg()).await;
    fill(&m.store, 20, b'x').await;
    let s = open(sd.path(), MIB);
    s.store.set_replica(true);
    let mut slow = cfg();
    slow.ha.reconnect_delay = Duration::from_secs(5);
    let client = AutoSwitchClient::start(
        s.store.clone(),
        s.epochs.clone(),
        Some(a_addr.clone()),
        slow,
        SLAVE_ID,
    );
    wait_until("the slave to follow A", Duration::from_secs(10), || {
        client.status().transferring && same_queues(&m.store, &s.store)
    })
    .await;

    let b = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let b_addr = b.local_addr().expect("addr").to_string();
    let asked = Instant::now();
    client.update_master_address(Some(b_addr.clone()));
    let (mut sock, _) = tokio::time::timeout(Duration::from_secs(2), b.accept())
        .await
        .expect("the client dials B within 2 s")
        .expect("accept");
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(2), "dialled B after {took:?}");
    // It is our slave saying hello.
    let mut buf = BytesMut::with_capacity(64);
    let hello = loop {
        match frame::decode_slave(&mut buf).expect("slave frame") {
            Some(frame::SlaveMessage::Handshake(h)) => break h,
            Some(other) => panic!("expected a handshake, got {other:?}"),
            None => {}
        }
        let n = tokio::time::timeout(Duration::from_secs(2), sock.read_buf(&mut buf))
            .await
            .expect("handshake in time")
            .expect("read");
        assert!(n > 0, "closed before the handshake");
    };
    assert_eq!(hello.broker_id, SLAVE_ID);
    assert_eq!(client.status().master_addr, Some(b_addr));
    wait_until("A to lose the slave", Duration::from_secs(5), || {
        master.connections().is_empty()
    })
    .await;

    client.shutdown();
    master.shutdown();
}
