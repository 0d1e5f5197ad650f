//! A pull that reads far behind the commit log's end (a cold get, which may
//! wait on the disk) does not hold up other connections: it runs on the
//! blocking pool. Checked on a single-threaded runtime with a cold get held
//! inside the store: if it ran on the runtime's only thread, nothing else
//! could be served until it let go.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use remoting::code::response_code as rc;
use store::{MessageStore, StoreConfig};

static BODY: [u8; 1000] = [b'x'; 1000];

#[tokio::test(flavor = "current_thread")]
async fn a_cold_pull_does_not_hold_up_a_hot_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), None);
    let store = MessageStore::open(StoreConfig {
        // Reads more than 100 KB behind the end are cold.
        cold_read_window_bytes: 100 * 1024,
        mapped_file_size_commit_log: cfg.mapped_file_size_commit_log,
        mapped_file_size_consume_queue: cfg.mapped_file_size_consume_queue,
        ..StoreConfig::with_root(dir.path())
    })
    .unwrap();
    let b = common::start_with_store(cfg, store.clone()).await;
    let cold_conn = connect(b.addr).await;
    let hot = connect(b.addr).await;
    assert_eq!(
        cold_conn.call(create_topic("COLD", 1)).await.code,
        rc::SUCCESS
    );
    assert_eq!(hot.call(create_topic("HOT", 1)).await.code, rc::SUCCESS);
    for _ in 0..400 {
        let r = cold_conn.call(send_v2("COLD", 0, &props(&[]), &BODY)).await;
        assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    }
    for _ in 0..3 {
        let r = hot.call(send_v2("HOT", 0, &props(&[]), &BODY)).await;
        assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    }

    // The first cold get stops in the hook until the test lets it go (or,
    // should the test never get to run, 20 s pass).
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
    let entered_tx = Mutex::new(Some(entered_tx));
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let released_by_test = Arc::new(AtomicBool::new(false));
    let cold_gets = Arc::new(AtomicUsize::new(0));
    let (rel, n) = (Arc::clone(&released_by_test), Arc::clone(&cold_gets));
    // The thread of the test's (single-threaded) runtime, and the one the
    // cold get ran on.
    let runtime_thread = std::thread::current().id();
    let get_thread = Arc::new(Mutex::new(None));
    let gt = Arc::clone(&get_thread);
    store.set_cold_read_hook(Some(Arc::new(move || {
        if n.fetch_add(1, Ordering::SeqCst) > 0 {
            return;
        }
        *gt.lock().unwrap() = Some(std::thread::current().id());
        if let Some(tx) = entered_tx.lock().unwrap().take() {
            let _ = tx.send(());
        }
        let got = release_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(20));
        rel.store(got.is_ok(), Ordering::SeqCst);
    })));

    assert!(store.is_cold_read("COLD", 0, store::QueueOffset(0)));
    assert!(!store.is_cold_read("HOT", 0, store::QueueOffset(0)));
    let cold_pull = tokio::spawn(async move {
        cold_conn
            .call(pull("g", "COLD", 0, 0, 0x4, Some("*"), 0))
            .await
    });
    tokio::time::timeout(TIMEOUT, entered_rx)
        .await
        .expect("the cold get starts")
        .unwrap();
    // The cold get is held; the hot connection is still served.
    let r = tokio::time::timeout(TIMEOUT, hot.call(pull("g", "HOT", 0, 0, 0x4, Some("*"), 0)))
        .await
        .expect("a hot pull is answered while a cold one waits");
    assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    assert!(!cold_pull.is_finished());
    release_tx.send(()).unwrap();
    let r = tokio::time::timeout(TIMEOUT, cold_pull)
        .await
        .expect("the cold pull finishes")
        .unwrap();
    assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    assert!(r.body.len() >= BODY.len());
    let ran_on = get_thread
        .lock()
        .unwrap()
        .expect("the cold get ran the hook");
    assert_ne!(
        ran_on, runtime_thread,
        "the cold get ran on the runtime's thread"
    );
    assert!(
        released_by_test.load(Ordering::SeqCst),
        "the cold get ran on the runtime's thread"
    );
    assert_eq!(
        cold_gets.load(Ordering::SeqCst),
        1,
        "the hot pull was not cold"
    );
    b.stop().await;
}
