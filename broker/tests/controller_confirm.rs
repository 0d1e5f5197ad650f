//! Controller mode's confirm offset and election retries, two of our
//! brokers under a fake controller (tests/common/controller.rs):
//! with `allAckInSyncStateSet` a message is pullable on the master only
//! once every SyncStateSet member has it, and a held pull wakes when that
//! happens; a broker that sees a newer epoch without a master keeps asking
//! for an election and follows a 2011 answer.
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::controller::*;
use common::{FakeNamesrv, TIMEOUT};
use remoting::code::{request_code as rq, response_code};
use remoting::RemotingCommand;
use tokio::net::TcpListener;

/// A TCP relay that can be paused (bytes held, connections kept open).
struct Proxy {
    addr: String,
    pause: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (pause, _) = tokio::sync::watch::channel(false);
        let p = pause.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(relay(ri, wo, p.subscribe()));
                tokio::spawn(relay(ro, wi, p.subscribe()));
            }
        });
        Proxy { addr, pause }
    }

    fn set_paused(&self, paused: bool) {
        self.pause.send_replace(paused);
    }
}

async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut pause: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if pause.wait_for(|p| !*p).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

const FOUND: i32 = response_code::SUCCESS;

/// PULL_MESSAGE of queue 0 of TopicC from `offset`; with `suspend_ms` > 0
/// a long poll.
async fn pull_at(client: &common::Client, offset: i64, suspend_ms: i64) -> RemotingCommand {
    const SUSPEND: i32 = 0x2;
    const SUBSCRIPTION: i32 = 0x4;
    let flag = SUBSCRIPTION | if suspend_ms > 0 { SUSPEND } else { 0 };
    client
        .conn
        .request(
            common::pull("cg", "TopicC", 0, offset, flag, Some("*"), suspend_ms),
            Duration::from_millis(suspend_ms as u64) + TIMEOUT,
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_ack_messages_are_pullable_only_once_the_slave_has_them() {
    let ns = RouteNamesrv::start().await;
    let fake_ns = FakeNamesrv::start().await;
    let ctl = FakeController::start().await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = |dir: &Path| {
        let mut c = controller_config(dir, &fake_ns, &[&ctl]);
        c.namesrv_addr = ns.addr.to_string();
        c.all_ack_in_sync_state_set = true;
        c.slave_timeout = 500;
        c.ha_send_heartbeat_interval = 200;
        c
    };
    let a = common::start(cfg(da.path())).await;
    wait_until("A registered as master", || async {
        ns.table.lock().unwrap().contains_key(&0)
    })
    .await;
    // B reaches A's HA port through a relay the test can pause.
    let a_ha = ns.table.lock().unwrap()[&0].1.clone();
    let proxy = Proxy::start(a_ha).await;
    *ns.ha_override.lock().unwrap() = Some(proxy.addr.clone());
    let b = common::start(cfg(db.path())).await;

    let ca = common::connect(a.addr).await;
    let cb = common::connect(b.addr).await;
    assert_eq!(ca.call(common::create_topic("TopicC", 1)).await.code, 0);
    assert_eq!(put(&ca, "TopicC").await.code, FOUND);
    let end = max_offset(&ca).await;
    wait_until("B caught up", || async { max_offset(&cb).await == end }).await;
    ctl.wait_for("SyncStateSet {1, 2}", |s| s.set == BTreeSet::from([1, 2]))
        .await;
    wait_until("A applied the set", || async {
        let r = ca
            .call(RemotingCommand::request(rq::GET_BROKER_HA_STATUS))
            .await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        v["inSyncSlaveNums"] == 1
    })
    .await;
    // Acked by both: pullable on the master.
    assert_eq!(pull_at(&ca, 0, 0).await.code, FOUND);

    // B's link stalls: the put is stored but times out waiting for B
    // (FLUSH_SLAVE_TIMEOUT), and consumers do not see it.
    proxy.set_paused(true);
    let r = put(&ca, "TopicC").await;
    assert_eq!(r.code, response_code::FLUSH_SLAVE_TIMEOUT, "{:?}", r.remark);
    assert!(max_offset(&ca).await > end);
    let r = pull_at(&ca, 1, 0).await;
    assert_eq!(r.code, response_code::PULL_NOT_FOUND);

    // A long poll held now is woken when B's ack moves the confirm offset
    // (no new message arrives), well before its 20 s hold.
    let held = {
        let ca = common::connect(a.addr).await;
        tokio::spawn(async move {
            let t = tokio::time::Instant::now();
            (pull_at(&ca, 1, 20_000).await, t.elapsed())
        })
    };
    // The held pull is registered before the link resumes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.set_paused(false);
    let (r, took) = held.await.unwrap();
    assert_eq!(r.code, FOUND, "{:?}", r.remark);
    assert!(took < Duration::from_secs(10), "held pull took {took:?}");
    let records = common::decode_records(r.body.clone());
    assert_eq!(records.len(), 1);
    a.stop().await;
    b.stop().await;
    ns.shutdown.cancel();
    ctl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_master_keeps_asking_for_an_election_and_follows_2011() {
    let dir = tempfile::tempdir().unwrap();
    let ns = FakeNamesrv::start().await;
    let ctl = FakeController::start().await;
    let b = common::start(controller_config(dir.path(), &ns, &[&ctl])).await;
    ns.wait_for("registration as master", |r| registered_as(r, 0))
        .await;
    let elects = || ctl.requests(ELECT).len();
    let before = elects();

    // The master was lost and no candidate is eligible: epoch 2, no master,
    // 2012 to every election. The broker asks again on later polls.
    ctl.with(|s| {
        s.master = None;
        s.master_epoch = 2;
        s.refuse_elect = true;
    });
    ctl.wait_for("three more ELECT_MASTER", |s| {
        s.log.iter().filter(|r| r.code == ELECT).count() >= before + 3
    })
    .await;
    // Still master of epoch 1 meanwhile (no newer role was given).
    assert!(ns
        .with_code(rq::REGISTER_BROKER)
        .iter()
        .all(|r| registered_as(r, 0)));

    // Eligible again: the next request elects it (epoch 3).
    ctl.with(|s| s.refuse_elect = false);
    let reg = ns
        .wait_for("registration at epoch 3", |r| {
            registered_as(r, 0) && state_version(r) == 3
        })
        .await;
    assert_eq!(state_version(&reg), 3);

    // 1004 hides a master another broker holds (epoch 5): the election
    // answers 2011 naming it, and the broker becomes its slave.
    ctl.with(|s| {
        s.members
            .insert(7, ("127.0.0.1:1".into(), "127.0.0.1:1;1".into()));
        s.master = Some(7);
        s.master_epoch = 5;
        s.set = BTreeSet::from([7]);
        s.set_epoch += 1;
        s.hide_master = true;
    });
    let id = ctl.with(|s| {
        s.members
            .iter()
            .find(|(_, (a, _))| *a == b.addr.to_string())
            .map(|(id, _)| *id)
            .unwrap()
    });
    let reg = ns
        .wait_for("registration as slave at epoch 5", |r| {
            registered_as(r, id) && state_version(r) == 5
        })
        .await;
    assert_eq!(state_version(&reg), 5);
    let client = common::connect(b.addr).await;
    put_code_eventually(&client, response_code::SYSTEM_BUSY).await;
    b.stop().await;
}
