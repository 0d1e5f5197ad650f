//! An orderly consumer's failures through our broker, judged by the official
//! Java clients 4.9.8 and 5.3.3 side by side against one cluster (issue 6).
//! The Java side is `compat.OrderlyFailure`.
//!
//! Six messages K0..K5 go to queue 1 through a `MessageQueueSelector`; the
//! `MessageListenerOrderly` returns SUSPEND_CURRENT_QUEUE_A_MOMENT for K2 and
//! SUCCESS for the rest (maxReconsumeTimes=2, suspendCurrentQueueTimeMillis=200).
//!
//! Java's rules (`ConsumeMessageOrderlyService`, same in 4.9.8 and 5.3.3): the
//! client retries K2 locally while `reconsumeTimes < maxReconsumeTimes`, so it
//! is delivered 3 times (reconsumeTimes 0, 1, 2) about 200 ms apart with
//! nothing after it in between; the third failure makes the client send it
//! back with a plain SEND_MESSAGE (not CONSUMER_SEND_MSG_BACK) to
//! `%RETRY%<group>` (MAX_RECONSUME_TIMES=2, delay level 5, RECONSUME_TIME=2 from
//! 4.9.8 but 3 from 5.3.3) and commit, so K3..K5 follow. A Java broker puts
//! that message straight into `%DLQ%<group>` (1 queue, perm 6): 4.9.8 because
//! `reconsumeTimes >= maxReconsumeTimes`, 5.3.3 because `reconsumeTimes > max`
//! or the group still holds an unexpired queue lock (either rule catches both
//! clients' send-backs).

use std::time::{Duration, Instant};

use compat_tests::{java_client, serial, Cluster, JavaClient, Proc};

const VERSIONS: [&str; 2] = ["4.9.8", "5.3.3"];

fn prefix(version: &str) -> String {
    format!("Ord{}", version.replace('.', ""))
}

/// `name=value` from a driver output line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

struct Delivery {
    key: String,
    reconsume_times: String,
    queue_id: String,
    topic: String,
    at_ms: i64,
}

fn deliveries(out: &str) -> Vec<Delivery> {
    out.lines()
        .filter(|l| l.starts_with("delivery "))
        .map(|l| Delivery {
            key: field(l, "key").unwrap_or("?").to_owned(),
            reconsume_times: field(l, "reconsumeTimes").unwrap_or("?").to_owned(),
            queue_id: field(l, "queueId").unwrap_or("?").to_owned(),
            topic: field(l, "topic").unwrap_or("?").to_owned(),
            at_ms: field(l, "atMs").and_then(|v| v.parse().ok()).unwrap_or(0),
        })
        .collect()
}

/// Everything the driver printed that differs from Java's behaviour.
fn problems(version: &str, out: &str) -> Vec<String> {
    let topic = format!("{}Orderly", prefix(version));
    let group = format!("cg_{topic}");
    let mut bad = Vec::new();
    if !out.lines().any(|l| l == "done") {
        return vec!["driver did not finish".to_owned()];
    }

    // All six on the queue the selector picked.
    let sent: Vec<&str> = out.lines().filter(|l| l.starts_with("sent ")).collect();
    if sent.len() != 6 || sent.iter().any(|l| field(l, "queueId") != Some("1")) {
        bad.push(format!("sends: {sent:?}"));
    }

    // Exact delivery sequence: the poison three times in a row, nothing of
    // the queue after it in between, then the rest in order.
    let got = deliveries(out);
    let keys: Vec<&str> = got.iter().map(|d| d.key.as_str()).collect();
    if keys != ["K0", "K1", "K2", "K2", "K2", "K3", "K4", "K5"] {
        bad.push(format!("delivery order {keys:?}"));
    }
    let poison: Vec<&Delivery> = got.iter().filter(|d| d.key == "K2").collect();
    let times: Vec<&str> = poison.iter().map(|d| d.reconsume_times.as_str()).collect();
    if times != ["0", "1", "2"] {
        bad.push(format!("poison reconsumeTimes {times:?}, want [0, 1, 2]"));
    }
    for d in &got {
        if d.queue_id != "1" || d.topic != topic {
            bad.push(format!("{} from {} queue {}", d.key, d.topic, d.queue_id));
        }
        if d.key != "K2" && d.reconsume_times != "0" {
            bad.push(format!("{} redelivered", d.key));
        }
    }
    // The queue is suspended about 200 ms between local retries.
    for w in poison.windows(2) {
        let gap = w[1].at_ms - w[0].at_ms;
        if !(150..5000).contains(&gap) {
            bad.push(format!("local retry gap {gap} ms, want about 200"));
        }
    }

    // The poison went straight to the dead-letter queue, with its body and
    // keys, in a topic created as Java creates it. The client sent it back
    // with RECONSUME_TIME = reconsumeTimes (4.9.8) or reconsumeTimes + 1 (5.3.3).
    let sent_back = if version == "4.9.8" { "2" } else { "3" };
    let dlq: Vec<&str> = out.lines().filter(|l| l.starts_with("dlq ")).collect();
    let line = |p: &str| {
        out.lines()
            .find(|l| l.starts_with(p))
            .unwrap_or("(missing)")
            .to_owned()
    };
    if dlq.is_empty() || dlq.iter().any(|l| field(l, "found") != Some("true")) {
        bad.push(format!(
            "%DLQ%{group} is empty after the orderly client sent K2 back (SEND_MESSAGE to \
             %RETRY%{group}, RECONSUME_TIME={sent_back}, MAX_RECONSUME_TIMES=2, delay level 5); \
             instead our broker parked it for the retry topic ({}; {}). Java 4.9.8 dead-letters \
             when reconsumeTimes >= max, 5.3.3 when reconsumeTimes > max or the group holds an \
             unexpired queue lock; broker/src/processor/send.rs dead_letter_target only checks \
             reconsumeTimes > max",
            line("schedule "),
            line("retry ")
        ));
        return bad;
    }
    if dlq.len() != 1
        || field(dlq[0], "key") != Some("K2")
        || field(dlq[0], "bodyOk") != Some("true")
        || field(dlq[0], "reconsumeTimes") != Some(sent_back)
    {
        bad.push(format!(
            "DLQ holds {dlq:?}, want K2 with its body and reconsumeTimes {sent_back}"
        ));
    }
    let route: Vec<&str> = out.lines().filter(|l| l.starts_with("dlqroute ")).collect();
    if route != ["dlqroute perm=6 read=1 write=1"] {
        bad.push(format!("DLQ topic {route:?}, want 1 queue perm 6"));
    }
    if line("retry ") != "retry maxOffset=0" {
        bad.push(format!("%RETRY%{group}: {}", line("retry ")));
    }
    bad
}

fn spawn_driver(java: &JavaClient, cluster: &Cluster) -> Proc {
    let prefix = prefix(&java.version);
    let home = cluster.client_home(&format!("ord-{}", java.version));
    java.spawn(
        &home,
        "compat.OrderlyFailure",
        &[
            cluster.namesrv_addr.as_str(),
            cluster.broker_addr.as_str(),
            cluster.broker_name.as_str(),
            prefix.as_str(),
        ],
        cluster.dir.path().join(format!("ord-{}.log", java.version)),
    )
}

#[test]
fn orderly_suspend_retries_locally_then_dead_letters_java_4_9_8_and_5_3_3() {
    let _one_at_a_time = serial();
    let clients: Vec<JavaClient> = VERSIONS.iter().map(|v| java_client(v)).collect();
    let cluster = Cluster::start();
    let mut procs: Vec<Proc> = clients.iter().map(|j| spawn_driver(j, &cluster)).collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    while procs.iter_mut().any(Proc::is_running) {
        assert!(
            Instant::now() < deadline,
            "Java drivers did not finish in 180 s\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let outs: Vec<String> = procs.iter().map(Proc::log_text).collect();
    for (out, v) in outs.iter().zip(VERSIONS) {
        eprintln!("Java {v}:\n{out}");
    }
    let bad: Vec<String> = outs
        .iter()
        .zip(VERSIONS)
        .flat_map(|(out, v)| {
            problems(v, out)
                .into_iter()
                .map(move |p| format!("Java {v}: {p}"))
        })
        .collect();
    // (the cluster prints its logs when the test panics)
    assert!(bad.is_empty(), "differences from Java:\n{}", bad.join("\n"));
}
