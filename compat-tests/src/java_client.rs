//! The official Java client drivers and mqadmin of one version (`JavaClient`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use remoting::body::{from_fastjson, TopicRouteData};

use crate::{compat_dir, run_with_timeout, Proc};

// ---------------------------------------------------------------------- Java

/// The Java drivers and mqadmin built against one official client version.
pub struct JavaClient {
    pub version: String,
    dir: PathBuf,
}

/// Prepares (Maven, cached) the drivers for `version` and returns a runner.
pub fn java_client(version: &str) -> JavaClient {
    java_client_with_classes(version, None)
}

/// Like [`java_client`], but with the drivers compiled against
/// `classes_from` and run on `version`'s jars (clients too old to compile
/// the drivers: 4.3.x to 4.9.0).
pub fn java_client_with_classes(version: &str, classes_from: Option<&str>) -> JavaClient {
    let dir = compat_dir().join("java");
    let out = run_with_timeout(
        {
            let mut c = Command::new("bash");
            c.arg(dir.join("prepare.sh")).arg(version);
            c.args(classes_from);
            c
        },
        Duration::from_secs(1200),
    );
    assert!(
        out.status.success(),
        "prepare.sh {version} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    JavaClient {
        version: version.to_owned(),
        dir: dir.join("target").join(version),
    }
}

impl JavaClient {
    /// The prepared drivers and jars hard-linked (copied if that fails) under
    /// `dir`, so a long test keeps a working classpath even if another
    /// process re-runs `prepare.sh` meanwhile.
    pub fn snapshot(&self, dir: &Path) -> JavaClient {
        let to = dir.join(format!("java-{}", self.version));
        let copied = ["-al", "-a"].iter().any(|mode| {
            let _ = std::fs::remove_dir_all(&to);
            Command::new("cp")
                .arg(mode)
                .arg(&self.dir)
                .arg(&to)
                .status()
                .is_ok_and(|s| s.success())
        });
        assert!(copied, "copying {} to {}", self.dir.display(), to.display());
        JavaClient {
            version: self.version.clone(),
            dir: to,
        }
    }

    fn command(&self, home: &Path, jvm_args: &[&str], main: &str) -> Command {
        let mut c = Command::new("java");
        let cp = format!(
            "{}:{}/*",
            self.dir.join("classes").display(),
            self.dir.join("lib").display()
        );
        // Java DLedger (and RocketMQ's store) unmap files through internal
        // classes that Java 17 closes unless opened; harmless for clients.
        c.arg("-Xms64m")
            .args(["--add-opens", "java.base/java.nio=ALL-UNNAMED"])
            .args(["--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED"])
            .arg("-Xmx512m")
            .arg("-XX:+UseSerialGC")
            .arg("-XX:TieredStopAtLevel=1")
            .arg(format!("-Duser.home={}", home.display()))
            .arg(format!(
                "-Drocketmq.home.dir={}",
                self.dir.join("home").display()
            ))
            .arg(format!(
                "-Drocketmq.client.logRoot={}",
                home.join("logs").display()
            ))
            .arg("-Drocketmq.client.logLevel=WARN")
            .arg(format!(
                "-Drocketmq.log.root={}",
                home.join("logs").display()
            ))
            .arg("-Drocketmq.log.level=WARN")
            .args(old_netty_flags(&self.version))
            .arg("-cp")
            .arg(cp)
            .env("ROCKETMQ_HOME", self.dir.join("home"))
            .env_remove("NAMESRV_ADDR");
        c.args(jvm_args).arg(main);
        c
    }

    /// Runs a driver main class; returns its output.
    pub fn run(&self, home: &Path, main: &str, args: &[&str], timeout: Duration) -> Output {
        let mut c = self.command(home, &[], main);
        c.args(args);
        run_with_timeout(c, timeout)
    }

    /// Starts a driver main class in the background; its output goes to `log`.
    pub fn spawn(&self, home: &Path, main: &str, args: &[&str], log: PathBuf) -> Proc {
        let mut c = self.command(home, &[], main);
        c.args(args);
        Proc::spawn(main, c, log)
    }

    /// Runs one mqadmin subcommand. mqadmin exits 0 even when the command
    /// failed, so callers judge by the printed text.
    pub fn mqadmin(&self, home: &Path, args: &[&str]) -> String {
        // 5.x picks its tools logging from the classpath; name it anyway so a
        // client logback file on the same classpath can never win.
        let mut c = self.command(
            home,
            &["-Drmq.logback.configurationFile=rmq.tools.logback.xml"],
            "org.apache.rocketmq.tools.command.MQAdminStartup",
        );
        c.args(args);
        let out = run_with_timeout(c, Duration::from_secs(120));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// Clients before 4.9 bundle netty 4.0, whose direct-buffer tricks need these
/// on Java 17 (`java.nio` is opened for every version above).
fn old_netty_flags(version: &str) -> &'static [&'static str] {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if major < 4 || (major == 4 && minor < 9) {
        &[
            "-Dio.netty.noUnsafe=true",
            "--add-opens",
            "java.base/jdk.internal.misc=ALL-UNNAMED",
            "--add-opens",
            "java.base/sun.nio.ch=ALL-UNNAMED",
        ]
    } else {
        &[]
    }
}

impl JavaClient {
    /// `mqadmin updateTopic -c <cluster>` with `queues` read and write queues;
    /// returns what mqadmin printed, or that text as the error when it does
    /// not report success on `broker_addr`.
    pub fn update_topic(
        &self,
        home: &Path,
        namesrv: &str,
        cluster: &str,
        topic: &str,
        queues: u32,
        broker_addr: &str,
    ) -> Result<String, String> {
        self.update_topic_at(home, namesrv, ("-c", cluster), topic, queues, broker_addr)
    }

    /// `mqadmin updateTopic -b <broker_addr>`: the topic on that one broker;
    /// returns like [`JavaClient::update_topic`].
    pub fn update_topic_on_broker(
        &self,
        home: &Path,
        namesrv: &str,
        topic: &str,
        queues: u32,
        broker_addr: &str,
    ) -> Result<String, String> {
        self.update_topic_at(
            home,
            namesrv,
            ("-b", broker_addr),
            topic,
            queues,
            broker_addr,
        )
    }

    /// `updateTopic` with `target` = `("-c", cluster)` or `("-b", addr)`.
    fn update_topic_at(
        &self,
        home: &Path,
        namesrv: &str,
        target: (&str, &str),
        topic: &str,
        queues: u32,
        broker_addr: &str,
    ) -> Result<String, String> {
        let q = queues.to_string();
        let out = self.mqadmin(
            home,
            &[
                "updateTopic",
                "-n",
                namesrv,
                target.0,
                target.1,
                "-t",
                topic,
                "-r",
                &q,
                "-w",
                &q,
            ],
        );
        if out.contains(&format!("create topic to {broker_addr} success")) {
            Ok(out)
        } else {
            Err(format!("mqadmin {} updateTopic:\n{out}", self.version))
        }
    }

    /// `mqadmin topicRoute`, retried until a route is printed (a broker reports
    /// a new topic to the name server right after creating it). mqadmin
    /// pretty-prints fastjson's own form, with unquoted integer keys.
    pub fn topic_route(
        &self,
        home: &Path,
        namesrv: &str,
        topic: &str,
        timeout: Duration,
    ) -> (TopicRouteData, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.mqadmin(home, &["topicRoute", "-n", namesrv, "-t", topic]);
            if let Some(start) = out.find('{') {
                let route = from_fastjson(out[start..].trim().as_bytes())
                    .unwrap_or_else(|e| panic!("topicRoute output does not parse ({e}):\n{out}"));
                return (route, out);
            }
            assert!(
                Instant::now() < deadline,
                "mqadmin {} topicRoute printed no route:\n{out}",
                self.version
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// A route served by one master: `queues` read and write queues, perm 6.
pub fn assert_single_broker_route(
    route: &TopicRouteData,
    out: &str,
    broker_name: &str,
    broker_addr: &str,
    queues: i32,
) {
    assert_eq!(route.queue_datas.len(), 1, "{out}");
    let queue = &route.queue_datas[0];
    assert_eq!(queue.broker_name, broker_name, "{out}");
    assert_eq!(
        (queue.read_queue_nums, queue.write_queue_nums, queue.perm),
        (queues, queues, 6),
        "{out}"
    );
    assert_eq!(route.broker_datas.len(), 1, "{out}");
    assert_eq!(route.broker_datas[0].broker_name, broker_name, "{out}");
    assert_eq!(
        route.broker_datas[0]
            .broker_addrs
            .get(&0)
            .map(String::as_str),
        Some(broker_addr),
        "{out}"
    );
}
