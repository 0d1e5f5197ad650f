//! A three-node DLedger group (ours or Java): start, launch, kill, stop, and its processes.

use std::process::Command;
use std::time::Duration;

use compat_tests::bench::{cpu_ticks, rss_kib};
use compat_tests::{bin_dir, free_port, Proc};
use dledger::config::{Timers, JAVA_TIMERS, OUR_TIMERS};

use crate::opts::Opts;
use crate::{GROUP, NODES};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Ours,
    Java,
}

pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) addr: String,
    pub(crate) proc: Option<Proc>,
    pub(crate) starts: usize,
}

/// Three members of one implementation.
pub(crate) struct Group {
    pub(crate) label: String,
    pub(crate) kind: Kind,
    pub(crate) timers: Timers,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) peers: String,
    pub(crate) members: Vec<Member>,
    pub(crate) java_cp: Option<String>,
    pub(crate) java_heap: String,
}

impl Group {
    pub(crate) fn start(
        label: &str,
        kind: Kind,
        timers: Timers,
        java_cp: Option<String>,
        o: &Opts,
    ) -> Group {
        let dir = tempfile::Builder::new()
            .prefix("dledger-bench-")
            .tempdir()
            .expect("temp dir");
        let members: Vec<Member> = (0..NODES)
            .map(|i| Member {
                id: format!("n{i}"),
                addr: format!("127.0.0.1:{}", free_port()),
                proc: None,
                starts: 0,
            })
            .collect();
        let peers = members
            .iter()
            .map(|m| format!("{}-{}", m.id, m.addr))
            .collect::<Vec<_>>()
            .join(";");
        let mut g = Group {
            label: label.to_owned(),
            kind,
            timers,
            dir,
            peers,
            members,
            java_cp,
            java_heap: o.java_heap.clone(),
        };
        for i in 0..NODES {
            g.launch(i);
        }
        g
    }

    pub(crate) fn launch(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.starts += 1;
        let store = self.dir.path().join(format!("store-{}", m.id));
        let log = self.dir.path().join(format!("{}-{}.log", m.id, m.starts));
        let t = self.timers;
        let timer_args = |hb: &str, leak: &str, min: &str, max: &str| -> Vec<String> {
            vec![
                hb.to_owned(),
                t.heart_beat_time_interval_ms.to_string(),
                leak.to_owned(),
                t.max_heart_beat_leak.to_string(),
                min.to_owned(),
                t.min_vote_interval_ms.to_string(),
                max.to_owned(),
                t.max_vote_interval_ms.to_string(),
            ]
        };
        let cmd = match self.kind {
            Kind::Ours => {
                let exe = bin_dir().join("dledger");
                assert!(
                    exe.exists(),
                    "{} missing (run scripts/bench-dledger.sh)",
                    exe.display()
                );
                let mut c = Command::new(exe);
                c.args(["server", "--group", GROUP, "--id", &m.id, "--peers"])
                    .arg(&self.peers)
                    .arg("--store-base-dir")
                    .arg(&store)
                    .args(["--bind", "127.0.0.1"]);
                if t != OUR_TIMERS {
                    c.args(timer_args(
                        "--heartbeat-interval-ms",
                        "--max-heartbeat-leak",
                        "--min-vote-interval-ms",
                        "--max-vote-interval-ms",
                    ));
                }
                c.env("RUST_LOG", "info");
                c
            }
            Kind::Java => {
                let home = self.dir.path().join(format!("home-{}", m.id));
                std::fs::create_dir_all(&home).expect("java home");
                let mut c = Command::new("java");
                c.arg(format!("-Xms{}", self.java_heap))
                    .arg(format!("-Xmx{}", self.java_heap))
                    .arg("-XX:+UseG1GC")
                    .args(["--add-opens", "java.base/java.nio=ALL-UNNAMED"])
                    .args(["--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED"])
                    .args(["--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED"])
                    .arg(format!("-Duser.home={}", home.display()))
                    .arg("-Drmq.logback.configurationFile=rmq.compat.logback.xml")
                    .arg("-cp")
                    .arg(self.java_cp.as_deref().expect("java classpath"))
                    .args(["compat.DLedgerWire", "server", "--group", GROUP])
                    .args(["--id", &m.id, "--peers", &self.peers])
                    .arg("--store-base-dir")
                    .arg(&store);
                if t != JAVA_TIMERS {
                    c.args(timer_args(
                        "--heartbeat-ms",
                        "--max-heartbeat-leak",
                        "--min-vote-interval-ms",
                        "--max-vote-interval-ms",
                    ));
                }
                c
            }
        };
        m.proc = Some(Proc::spawn(&format!("{} {}", self.label, m.id), cmd, log));
    }

    pub(crate) fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.proc.as_ref().map(Proc::pid))
            .collect()
    }

    pub(crate) fn addrs(&self) -> Vec<(String, String)> {
        self.members
            .iter()
            .map(|m| (m.id.clone(), m.addr.clone()))
            .collect()
    }

    pub(crate) fn logs(&self) -> String {
        let mut s = String::new();
        for m in &self.members {
            for n in 1..=m.starts {
                let f = self.dir.path().join(format!("{}-{n}.log", m.id));
                let t = std::fs::read_to_string(&f).unwrap_or_default();
                let tail: String = t
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                s.push_str(&format!(
                    "--- {} {} (start {n}) ---\n{tail}\n",
                    self.label, m.id
                ));
            }
        }
        s
    }

    pub(crate) fn check_running(&mut self) {
        for m in &mut self.members {
            if let Some(p) = m.proc.as_mut() {
                if !p.is_running() {
                    panic!("{} {} exited:\n{}", self.label, m.id, p.log_text());
                }
            }
        }
    }

    pub(crate) fn rss_kib(&self) -> u64 {
        self.pids().iter().filter_map(|p| rss_kib(*p)).sum()
    }

    pub(crate) fn cpu_ticks(&self) -> u64 {
        self.pids().iter().map(|p| cpu_ticks(*p)).sum()
    }

    /// SIGKILL member `i` and reap it.
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.members[i].proc.take() {
            // SAFETY: sending a signal to our own child process id.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(p.pid() as i32, libc::SIGKILL);
            }
            p.stop(Duration::from_secs(10));
        }
    }

    pub(crate) fn stop(&mut self) {
        for m in &mut self.members {
            if let Some(mut p) = m.proc.take() {
                p.stop(Duration::from_secs(20));
            }
        }
    }
}
