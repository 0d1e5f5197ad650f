//! The `Bench` state and the broker-mode sides: measuring one broker, Java, ours and echo.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use compat_tests::bench::{
    broker_conf_base, mkdir, pid_alive, start_our_namesrv, wait_listen, write_file, Drivers, Kid,
    OnExit, Res, Results, STOP_GRACE,
};

use crate::opts::Opts;
use crate::{
    free_block, kib, log, ms_since, print_file, CONSUME_TIMEOUT_SECS, DRIVER_SLACK, FILL_TIMEOUT,
};

pub(crate) struct Bench {
    pub(crate) o: Opts,
    pub(crate) root: PathBuf,
    pub(crate) bins: PathBuf,
    pub(crate) work: PathBuf,
    /// The drivers' snapshot and what runs them.
    pub(crate) drv: Drivers,
    /// The official broker's jars (`--dledger` with Java).
    pub(crate) reflib: PathBuf,
    pub(crate) results: Results,
}

impl Bench {
    pub(crate) fn bin(&self, name: &str) -> PathBuf {
        self.bins.join(name)
    }

    /// Measures one running broker: idle RSS, send phases, consume, peak RSS.
    pub(crate) fn measure(&mut self, s: &str, pid: u32, ns: &str, do_consume: bool) -> Res<()> {
        let o = self.o.clone();
        std::thread::sleep(o.settle);
        let idle = kib(pid, "VmRSS");
        self.results.put(s, "idle_rss_kib", &idle);
        log(&format!(
            "{s}: pid {pid}, idle RSS {idle} KiB; send load {}s x threads {} (warm-up {}s)",
            o.duration, o.threads, o.warmup
        ));
        let d = self.work.join(s);
        let home = d.join("client");
        let send_timeout =
            Duration::from_secs(o.warmup + o.duration * o.thread_counts.len() as u64)
                + DRIVER_SLACK;
        let args = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (pid_s, warmup, duration, size, count) = (
            pid.to_string(),
            o.warmup.to_string(),
            o.duration.to_string(),
            o.size.to_string(),
            o.consume.to_string(),
        );
        let out = self.drv.driver_ok(
            &home,
            "compat.BenchProducer",
            &args(&[
                "send",
                ns,
                "BenchTopic",
                &pid_s,
                &warmup,
                &duration,
                &o.threads,
                &size,
            ]),
            &d.join("send.out"),
            send_timeout,
        )?;
        self.results.record(s, &out);
        if do_consume && o.consume > 0 {
            log(&format!(
                "{s}: filling BenchConsume with {} messages",
                o.consume
            ));
            self.drv.driver_ok(
                &home,
                "compat.BenchProducer",
                &args(&["fill", ns, "BenchConsume", &count, &size]),
                &d.join("fill.out"),
                FILL_TIMEOUT,
            )?;
            log(&format!("{s}: consuming {} messages", o.consume));
            let out = self.drv.driver_ok(
                &home,
                "compat.BenchConsumer",
                &args(&[
                    ns,
                    "BenchConsume",
                    &count,
                    &pid_s,
                    &CONSUME_TIMEOUT_SECS.to_string(),
                    &o.consume_mode,
                ]),
                &d.join("consume.out"),
                // A warm-up pass and the measured one, each with that timeout.
                Duration::from_secs(2 * CONSUME_TIMEOUT_SECS) + DRIVER_SLACK,
            )?;
            self.results.record(s, &out);
        }
        self.results.put(s, "peak_rss_kib", &kib(pid, "VmHWM"));
        self.results.put(s, "end_anon_kib", &kib(pid, "RssAnon"));
        self.results.put(s, "end_file_kib", &kib(pid, "RssFile"));
        Ok(())
    }

    /// `reference-cluster.sh stop <d>`, bounded; its stdout dropped.
    pub(crate) fn reference_stop(root: &Path, d: &Path, quiet: bool) {
        let mut c = Command::new("bash");
        c.arg(root.join("compat-tests/java/reference-cluster.sh"))
            .arg("stop")
            .arg(d)
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if quiet {
            c.stderr(Stdio::null());
        }
        let _ = c.spawn().map(|mut ch| {
            // Its own bound: SIGKILL 30 s after SIGTERM, per process.
            let deadline = Instant::now() + Duration::from_secs(90);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = ch.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = ch.kill();
            let _ = ch.wait();
        });
    }

    // ---------------------------------------------------------- servers

    pub(crate) fn run_java(&mut self) -> Res<()> {
        let d = self.work.join("java");
        let (root, dd) = (self.root.clone(), d.clone());
        let _stop = OnExit::new(move || Self::reference_stop(&root, &dd, true));
        let bport = free_block()?;
        let nsport = free_block()?;
        mkdir(&d)?;
        let ver = self.o.ver.clone();
        log(&format!(
            "java: starting NamesrvStartup + BrokerStartup {ver} (reference-cluster.sh)"
        ));
        let mut c = Command::new("bash");
        c.arg(self.root.join("compat-tests/java/reference-cluster.sh"))
            .arg("start")
            .arg(&d)
            .arg(&ver)
            .current_dir(&self.root)
            .env("REF_NS_PORT", nsport.to_string())
            .env("REF_BROKER_PORT", bport.to_string());
        let start_log = d.join("start.log");
        let starter = Kid::spawn_logged("reference-cluster.sh", c, &start_log, STOP_GRACE)?;
        // The broker is spawned once the name server booted; broker.pid is
        // written right after.
        let pid_file = d.join("broker.pid");
        let read_pid = || {
            std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        let bpid = loop {
            if let Some(p) = read_pid() {
                break p;
            }
            if !starter.is_running() {
                if let Some(p) = read_pid() {
                    break p;
                }
                print_file(&start_log);
                return Err("reference-cluster.sh start failed".into());
            }
            if Instant::now() >= deadline {
                return Err("Java broker not spawned".into());
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let t0 = Instant::now();
        wait_listen(bport, || pid_alive(bpid), "Java broker")?;
        let ms = ms_since(t0);
        // It returns once the broker logged "boot success" (90 s at most).
        match starter.wait_timeout(Duration::from_secs(300)) {
            Some(s) if s.success() => {}
            _ => {
                print_file(&start_log);
                return Err("reference-cluster.sh start failed".into());
            }
        }
        self.results.put("java", "start_ms", &ms.to_string());
        log(&format!("java: broker pid {bpid} listening after {ms} ms"));
        let ns = format!("127.0.0.1:{nsport}");
        self.drv.update_topic(&ns, "RefCluster", "BenchTopic")?;
        self.drv.update_topic(&ns, "RefCluster", "BenchConsume")?;
        self.measure("java", bpid, &ns, true)?;
        Self::reference_stop(&self.root, &d, false);
        Ok(())
    }

    pub(crate) fn run_ours(&mut self) -> Res<()> {
        let d = self.work.join("ours");
        mkdir(&d)?;
        let ns = start_our_namesrv(&self.bin("mqnamesrv"), &d.join("ns"))?;
        let port = free_block()?;
        let conf = d.join("broker.conf");
        write_file(
            &conf,
            &format!(
                "brokerClusterName=BenchCluster\nbrokerName=bench-broker-a\nbrokerId=0\n{}\
                 enablePropertyFilter=true\n",
                broker_conf_base(&ns.addr, port, &d.join("store"))
            ),
        )?;
        log("ours: starting mqnamesrv + mqbroker");
        let t0 = Instant::now();
        let mut c = Command::new(self.bin("mqbroker"));
        c.arg("-c").arg(&conf).env("HOME", &d);
        let broker = Kid::spawn_logged("mqbroker", c, &d.join("broker.log"), STOP_GRACE)?;
        wait_listen(port, || broker.is_running(), "mqbroker")?;
        let ms = ms_since(t0);
        self.results.put("ours", "start_ms", &ms.to_string());
        log(&format!(
            "ours: broker pid {} listening after {ms} ms",
            broker.pid()
        ));
        self.drv
            .update_topic(&ns.addr, "BenchCluster", "BenchTopic")?;
        self.drv
            .update_topic(&ns.addr, "BenchCluster", "BenchConsume")?;
        self.measure("ours", broker.pid(), &ns.addr, true)?;
        broker.stop();
        ns.kid.stop();
        Ok(())
    }

    pub(crate) fn run_echo(&mut self) -> Res<()> {
        let d = self.work.join("echo");
        mkdir(&d)?;
        let ns = start_our_namesrv(&self.bin("mqnamesrv"), &d.join("ns"))?;
        let port = free_block()?;
        log("echo: starting echo_broker");
        let t0 = Instant::now();
        let mut c = Command::new(self.bin("examples/echo_broker"));
        c.args(["--namesrv", &ns.addr, "--port", &port.to_string()])
            .args(["--topics", "BenchTopic,BenchConsume", "--queues", "8"]);
        let echo = Kid::spawn_logged("echo_broker", c, &d.join("echo.log"), STOP_GRACE)?;
        wait_listen(port, || echo.is_running(), "echo_broker")?;
        let ms = ms_since(t0);
        self.results.put("echo", "start_ms", &ms.to_string());
        self.measure("echo", echo.pid(), &ns.addr, false)?;
        echo.stop();
        ns.kid.stop();
        Ok(())
    }
}
