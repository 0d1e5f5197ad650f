//! The `--dledger` mode: starting a 3-member DLedger group per side and measuring it.

use std::process::Command;
use std::time::{Duration, Instant};

use compat_tests::bench::{
    broker_conf_base, mkdir, spawn_java_broker, start_our_namesrv, wait_listen, write_file, Kid,
    Ns, Res, STOP_GRACE,
};

use crate::bench::Bench;
use crate::{free_block, log, DRIVER_SLACK, FAILOVER_TIMEOUT_SECS};

impl Bench {
    /// Starts a 3-member DLedger group (`kind` java|ours) behind our name
    /// server; the master's pid and `addr=pid,...` of all members.
    pub(crate) fn start_group(&self, kind: &str) -> Res<Group> {
        let d = self.work.join(format!("dl-{kind}"));
        mkdir(&d)?;
        let ns = start_our_namesrv(&self.bin("mqnamesrv"), &d.join("ns"))?;
        let mut dports = Vec::new();
        let mut bports = Vec::new();
        for _ in 0..3 {
            dports.push(free_block()?);
            bports.push(free_block()?);
        }
        let peers = dports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("n{i}-127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(";");
        let mut members: Vec<Kid> = Vec::new();
        let mut addrs = Vec::new();
        for (i, bport) in bports.iter().enumerate() {
            let n = d.join(format!("n{i}"));
            mkdir(&n)?;
            let conf = n.join("broker.conf");
            write_file(
                &conf,
                &format!(
                    "brokerClusterName=DLedgerBench\nbrokerName=bench-dl\nbrokerId=0\n{}\
                     enableDLegerCommitLog=true\ndLegerGroup=bench-dl\ndLegerPeers={peers}\n\
                     dLegerSelfId=n{i}\n",
                    broker_conf_base(&ns.addr, *bport, &n.join("store"))
                ),
            )?;
            let kid = if kind == "java" {
                spawn_java_broker(
                    &self.root,
                    &self.reflib,
                    &n,
                    &conf,
                    &["-Xms512m", "-Xmx512m", "-XX:MaxDirectMemorySize=512m"],
                )?
            } else {
                let mut c = Command::new(self.bin("mqbroker"));
                c.arg("-c").arg(&conf).env("HOME", &n);
                Kid::spawn_logged("mqbroker", c, &n.join("broker.log"), STOP_GRACE)?
            };
            addrs.push(format!("127.0.0.1:{bport}={}", kid.pid()));
            members.push(kid);
        }
        for (i, (port, kid)) in bports.iter().zip(&members).enumerate() {
            wait_listen(*port, || kid.is_running(), &format!("{kind} broker n{i}"))?;
        }
        // A master elected and registered (broker id 0), then the topic on
        // every member.
        let deadline = Instant::now() + Duration::from_secs(180);
        let master = loop {
            if Instant::now() >= deadline {
                return Err(format!("no {kind} DLedger master after 180 s"));
            }
            std::thread::sleep(Duration::from_secs(1));
            if let Some(m) = self.drv.master_of(&ns.addr, "DLedgerBench") {
                break m;
            }
        };
        for port in &bports {
            let addr = format!("127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(60);
            while !self.drv.update_topic_b(&ns.addr, &addr, "BenchTopic") {
                if Instant::now() >= deadline {
                    return Err(format!("updateTopic on {kind} {addr} failed"));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        let master_pid = addrs
            .iter()
            .find_map(|a| a.strip_prefix(&format!("{master}=")))
            .unwrap_or("0")
            .to_owned();
        log(&format!(
            "{kind}: DLedger group up, master {master} (pid {master_pid})"
        ));
        Ok(Group {
            ns,
            members,
            addrs: addrs.join(","),
            master_pid,
        })
    }

    pub(crate) fn run_dledger(&mut self, kind: &str) -> Res<()> {
        let group = match self.start_group(kind) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("bench_broker: {e}");
                self.results.put(kind, "failed", "1");
                return Ok(());
            }
        };
        let o = self.o.clone();
        let d = self.work.join(format!("dl-{kind}"));
        let home = d.join("client");
        let args = [
            "send".to_owned(),
            group.ns.addr.clone(),
            "BenchTopic".into(),
            group.master_pid.clone(),
            o.warmup.to_string(),
            o.duration.to_string(),
            o.threads.clone(),
            o.size.to_string(),
        ];
        let send_timeout =
            Duration::from_secs(o.warmup + o.duration * o.thread_counts.len() as u64)
                + DRIVER_SLACK;
        let (_, out) = self.drv.driver(
            &home,
            "compat.BenchProducer",
            &args,
            &d.join("send.out"),
            send_timeout,
        )?;
        self.results.record(kind, &out);
        let args = [
            group.ns.addr.clone(),
            "BenchTopic".into(),
            "bench-dl".into(),
            group.addrs.clone(),
            FAILOVER_TIMEOUT_SECS.to_string(),
        ];
        let (_, out) = self.drv.driver(
            &home,
            "compat.BenchFailover",
            &args,
            &d.join("failover.out"),
            Duration::from_secs(FAILOVER_TIMEOUT_SECS) + DRIVER_SLACK,
        )?;
        for line in out.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() == Some(&"RESULT") && f.get(1) == Some(&"failover") {
                let v = f.get(2).and_then(|kv| kv.split('=').nth(1)).unwrap_or("");
                self.results.put(kind, "failover_ms", v);
            }
        }
        for m in &group.members {
            m.stop();
        }
        group.ns.kid.stop();
        Ok(())
    }
}

pub(crate) struct Group {
    pub(crate) ns: Ns,
    pub(crate) members: Vec<Kid>,
    pub(crate) addrs: String,
    pub(crate) master_pid: String,
}
