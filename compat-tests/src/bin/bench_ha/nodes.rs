//! The `Bench` state and starting brokers: nodes, master/slave pairs, sends.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use compat_tests::bench::{
    broker_conf_base, free_port_block, mkdir, spawn_java_broker, start_our_namesrv, wait_listen,
    write_file, Drivers, Kid, Ns, Res, Results, STOP_GRACE,
};
use compat_tests::cluster_info;

use crate::ha_status::{HaClient, HaStatus};
use crate::opts::Opts;
use crate::{log, CLUSTER, DRIVER_SLACK, NAME, TOPIC};

pub(crate) struct Bench {
    pub(crate) o: Opts,
    pub(crate) root: PathBuf,
    pub(crate) bins: PathBuf,
    pub(crate) work: PathBuf,
    pub(crate) drv: Drivers,
    pub(crate) reflib: PathBuf,
    pub(crate) results: Results,
}

/// One broker of a pair.
pub(crate) struct Node {
    pub(crate) kid: Kid,
    pub(crate) addr: String,
}

impl Bench {
    /// Starts a broker of `kind` in `dir` with `keys` after the common ones,
    /// commit-log files of `file_size` bytes; waits until it listens.
    pub(crate) fn start_node(
        &self,
        kind: &str,
        role: &str,
        dir: &Path,
        ns: &str,
        keys: &str,
        file_size: u64,
    ) -> Res<Node> {
        mkdir(dir)?;
        let port = free_port_block(15000, 30000).ok_or("no free port block")?;
        let base = broker_conf_base(ns, port, &dir.join("store")).replace(
            "mappedFileSizeCommitLog=67108864",
            &format!("mappedFileSizeCommitLog={file_size}"),
        );
        let conf = dir.join("broker.conf");
        write_file(
            &conf,
            &format!("brokerClusterName={CLUSTER}\nbrokerName={NAME}\n{base}{keys}"),
        )?;
        let kid = if kind == "java" {
            spawn_java_broker(
                &self.root,
                &self.reflib,
                dir,
                &conf,
                &["-Xms1g", "-Xmx1g", "-XX:MaxDirectMemorySize=1g"],
            )?
        } else {
            let mut c = Command::new(self.bins.join("mqbroker"));
            c.arg("-c").arg(&conf).env("HOME", dir);
            Kid::spawn_logged("mqbroker", c, &dir.join("broker.log"), STOP_GRACE)?
        };
        wait_listen(port, || kid.is_running(), &format!("{kind} {role}"))?;
        log(&format!(
            "{kind}: {role} pid {} listening on {port}",
            kid.pid()
        ));
        Ok(Node {
            kid,
            addr: format!("127.0.0.1:{port}"),
        })
    }

    /// Waits (90 s) until the name server lists `node` as broker `id`.
    pub(crate) fn wait_registered(ns: &str, node: &Node, id: i64, what: &str) -> Res<()> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let listed = cluster_info(ns)
                .and_then(|i| i.broker_addr_table.get(NAME).cloned())
                .and_then(|b| b.broker_addrs.get(&id).cloned());
            if listed.as_deref() == Some(node.addr.as_str()) {
                return Ok(());
            }
            if !node.kid.is_running() {
                return Err(format!("{what} exited before registering"));
            }
            if Instant::now() >= deadline {
                return Err(format!("{what} not registered after 90 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (`limit`) until the master's 907 lists a slave (in sync if
    /// `in_sync`).
    pub(crate) fn wait_slave(master: &str, in_sync: bool, limit: Duration) -> Res<HaStatus> {
        let mut c = HaClient::new(master)?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = c.status() {
                if st.slave.is_some() && (!in_sync || st.in_sync >= 1) {
                    return Ok(st);
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("no slave on master {master} after {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Name server, master with `master_keys`, then (unless `no_slave`) a
    /// slave registered after it (it learns the master's HA address from
    /// the name server).
    pub(crate) fn start_pair(
        &self,
        kind: &str,
        phase: &str,
        master_keys: &str,
        file_size: u64,
        with_slave: bool,
    ) -> Res<(Ns, Node, Option<Node>)> {
        let d = self.work.join(kind).join(phase);
        let ns = start_our_namesrv(&self.bins.join("mqnamesrv"), &d.join("ns"))?;
        let master = self.start_node(
            kind,
            "master",
            &d.join("master"),
            &ns.addr,
            &format!("brokerId=0\n{master_keys}"),
            file_size,
        )?;
        Self::wait_registered(&ns.addr, &master, 0, &format!("{kind} master"))?;
        let slave = if with_slave {
            let s = self.start_slave(kind, &d.join("slave"), &ns.addr, file_size)?;
            Self::wait_registered(&ns.addr, &s, 1, &format!("{kind} slave"))?;
            Some(s)
        } else {
            None
        };
        self.drv.update_topic(&ns.addr, CLUSTER, TOPIC)?;
        Ok((ns, master, slave))
    }

    pub(crate) fn start_slave(
        &self,
        kind: &str,
        dir: &Path,
        ns: &str,
        file_size: u64,
    ) -> Res<Node> {
        self.start_node(
            kind,
            "slave",
            dir,
            ns,
            "brokerId=1\nbrokerRole=SLAVE\n",
            file_size,
        )
    }

    /// BenchProducer `send`; `on_line` sees every line it prints.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send(
        &self,
        kind: &str,
        name: &str,
        ns: &str,
        master_pid: u32,
        warmup: u64,
        duration: u64,
        threads: &str,
        on_line: impl FnMut(&str) + Send + 'static,
    ) -> Res<String> {
        let d = self.work.join(kind);
        let n = threads.split(',').count() as u64;
        let args = [
            "send".to_owned(),
            ns.to_owned(),
            TOPIC.into(),
            master_pid.to_string(),
            warmup.to_string(),
            duration.to_string(),
            threads.to_owned(),
            self.o.size.to_string(),
        ];
        let (ok, out) = self.drv.driver_with(
            &d.join("client"),
            "compat.BenchProducer",
            &args,
            &d.join(format!("{name}.out")),
            Duration::from_secs(warmup + duration * n) + DRIVER_SLACK,
            on_line,
        )?;
        if !ok {
            log(&format!("{kind}: BenchProducer {name} failed (see above)"));
        }
        Ok(out)
    }
}
