//! The official Java client's drivers and mqadmin (`Drivers`), and their
//! `RESULT` lines (`Results`).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use super::servers::{log, MQADMIN_TIMEOUT};
use super::{
    clk_tck, format_g, mkdir, output_within, status_within, write_file, Kid, Res, MAVEN_TIMEOUT,
};

/// awk's string -> number: the longest numeric prefix, 0 without one.
pub fn awk_num(s: &str) -> f64 {
    let s = s.trim_start();
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let from = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - from
    };
    let mut n = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        n += digits(&mut i);
    }
    if n == 0 {
        return 0.0;
    }
    let mantissa_end = i;
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if digits(&mut j) > 0 {
            i = j;
        } else {
            i = mantissa_end;
        }
    }
    s[..i].parse().unwrap_or(0.0)
}

/// awk's number -> string in a concatenation (integers as such, else %.6g).
pub fn awk_str(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format_g(x, 6)
    }
}

/// `<server> <key> <value>` records, also appended to `results.txt`.
pub struct Results {
    pub file: PathBuf,
    pub v: HashMap<(String, String), f64>,
}

impl Results {
    /// Records kept in memory and appended to `file` (created empty).
    pub fn create(file: PathBuf) -> Res<Results> {
        write_file(&file, "")?;
        Ok(Results {
            file,
            v: HashMap::new(),
        })
    }

    pub fn put(&mut self, s: &str, k: &str, v: &str) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
        {
            let _ = writeln!(f, "{s} {k} {v}");
        }
        self.v.insert((s.to_owned(), k.to_owned()), awk_num(v));
    }

    /// The drivers' `RESULT <kind> k=v ...` lines as `<kind><threads>_<k>`.
    pub fn record(&mut self, s: &str, output: &str) {
        for line in output.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() != Some(&"RESULT") || f.len() < 2 {
                continue;
            }
            let kv = |field: &str| {
                let mut it = field.split('=');
                (
                    it.next().unwrap_or("").to_owned(),
                    it.next().unwrap_or("").to_owned(),
                )
            };
            let t = f[2..]
                .iter()
                .map(|x| kv(x))
                .rfind(|(k, _)| k == "threads")
                .map(|(_, v)| v)
                .unwrap_or_default();
            for (k, v) in f[2..].iter().map(|x| kv(x)) {
                if k != "threads" {
                    self.put(s, &format!("{}{t}_{k}", f[1]), &v);
                }
            }
        }
    }

    /// The value, -1 when there is none.
    pub fn val(&self, s: &str, k: &str) -> f64 {
        self.v
            .get(&(s.to_owned(), k.to_owned()))
            .copied()
            .unwrap_or(-1.0)
    }
}

/// `cp -r from to` (bounded).
pub fn copy_dir(from: &Path, to: &Path) -> Res<()> {
    let mut c = Command::new("cp");
    c.arg("-r").arg(from).arg(to);
    match status_within("cp", c, Duration::from_secs(300)) {
        Some(s) if s.success() => Ok(()),
        _ => Err(format!("cp -r {} {} failed", from.display(), to.display())),
    }
}

/// The drivers, snapshotted into the work dir: a test run elsewhere may
/// re-run prepare.sh (which replaces target/<version>/lib) while the
/// benchmark is going.
pub fn snapshot_drivers(root: &Path, ver: &str, work: &Path) -> Res<PathBuf> {
    let jdir = work.join("drivers");
    for attempt in 1..=3 {
        let mut c = Command::new("bash");
        c.arg(root.join("compat-tests/java/prepare.sh"))
            .arg(ver)
            .current_dir(root);
        match status_within("prepare.sh", c, MAVEN_TIMEOUT) {
            Some(s) if s.success() => {}
            _ => return Err(format!("compat-tests/java/prepare.sh {ver} failed")),
        }
        let _ = std::fs::remove_dir_all(&jdir);
        mkdir(&jdir)?;
        let src = root.join("compat-tests/java/target").join(ver);
        let mut c = Command::new("cp");
        c.arg("-r")
            .args(["classes", "lib", "home"].map(|d| src.join(d)))
            .arg(&jdir)
            .stderr(Stdio::null());
        let copied = status_within("cp", c, Duration::from_secs(300)).is_some_and(|s| s.success())
            && jdir.join("classes/compat/BenchProducer.class").is_file()
            && jdir
                .join(format!("lib/rocketmq-client-{ver}.jar"))
                .is_file()
            && jdir.join(format!("lib/rocketmq-tools-{ver}.jar")).is_file();
        if copied {
            return Ok(jdir);
        }
        if attempt == 3 {
            break;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    Err("could not snapshot the Java drivers".into())
}

/// The drivers' snapshot (see [`snapshot_drivers`]) and what runs them.
pub struct Drivers {
    pub root: PathBuf,
    /// The work folder (mqadmin's home goes under it).
    pub work: PathBuf,
    /// The snapshot: classes, lib, home.
    pub jdir: PathBuf,
    /// Its classpath.
    pub cp: String,
}

impl Drivers {
    /// Compiles the drivers for client `ver` (Maven on the first run) and
    /// snapshots them into `work`.
    pub fn prepare(root: &Path, ver: &str, work: &Path) -> Res<Drivers> {
        let jdir = snapshot_drivers(root, ver, work)?;
        let cp = format!(
            "{}:{}/*",
            jdir.join("classes").display(),
            jdir.join("lib").display()
        );
        Ok(Drivers {
            root: root.to_owned(),
            work: work.to_owned(),
            jdir,
            cp,
        })
    }

    /// `java` with `heap` options, in the workspace root.
    pub fn java_cmd(&self, heap: &[&str]) -> Command {
        let mut c = Command::new("java");
        c.current_dir(&self.root).args(heap);
        c
    }

    /// `java_run`: a driver main class on the client classpath; its stdout
    /// to `out` and to our stderr as it comes, for at most `timeout`.
    /// Whether it exited 0, and its stdout.
    pub fn driver(
        &self,
        home: &Path,
        main: &str,
        args: &[String],
        out: &Path,
        timeout: Duration,
    ) -> Res<(bool, String)> {
        self.driver_with(home, main, args, out, timeout, |_| {})
    }

    /// [`Drivers::driver`], calling `on_line` with every line the driver
    /// prints (stdout and stderr, as they come; its stderr is passed on to
    /// ours): phase boundaries for whoever samples the servers meanwhile.
    pub fn driver_with(
        &self,
        home: &Path,
        main: &str,
        args: &[String],
        out: &Path,
        timeout: Duration,
        on_line: impl FnMut(&str) + Send + 'static,
    ) -> Res<(bool, String)> {
        mkdir(home)?;
        let mut c = self.java_cmd(&["-Xms512m", "-Xmx512m", "-XX:+UseG1GC"]);
        c.arg(format!("-Dbench.clkTck={}", clk_tck() as u64))
            .arg(format!("-Duser.home={}", home.display()))
            .arg(format!(
                "-Drocketmq.home.dir={}",
                self.jdir.join("home").display()
            ))
            .arg("-cp")
            .arg(&self.cp)
            .arg(main)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut file =
            std::fs::File::create(out).map_err(|e| format!("create {}: {e}", out.display()))?;
        let kid = Kid::spawn(main, c, Duration::from_secs(5))?;
        let on_line = Arc::new(Mutex::new(on_line));
        let stderr = kid.take_stderr();
        let cb = on_line.clone();
        std::thread::spawn(move || {
            if let Some(stderr) = stderr {
                let mut r = std::io::BufReader::new(stderr);
                let mut line = Vec::new();
                while r.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    let _ = std::io::stderr().write_all(&line);
                    (cb.lock().unwrap_or_else(|p| p.into_inner()))(&String::from_utf8_lossy(&line));
                    line.clear();
                }
            }
        });
        let stdout = kid.take_stdout();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(stdout) = stdout {
                let mut r = std::io::BufReader::new(stdout);
                let mut line = Vec::new();
                while r.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    let _ = std::io::stderr().write_all(&line);
                    let _ = file.write_all(&line);
                    (on_line.lock().unwrap_or_else(|p| p.into_inner()))(&String::from_utf8_lossy(
                        &line,
                    ));
                    text.extend_from_slice(&line);
                    line.clear();
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&text).into_owned());
        });
        let status = kid.wait_timeout(timeout);
        if status.is_none() {
            log(&format!(
                "{main}: still running after {timeout:?}, stopping it"
            ));
            kid.stop();
        }
        let text = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        Ok((status.is_some_and(|s| s.success()), text))
    }

    /// A driver that must succeed (the script ran with `set -o pipefail`).
    pub fn driver_ok(
        &self,
        home: &Path,
        main: &str,
        args: &[String],
        out: &Path,
        t: Duration,
    ) -> Res<String> {
        match self.driver(home, main, args, out, t)? {
            (true, text) => Ok(text),
            (false, _) => Err(format!(
                "{main} {} failed",
                args.first().map_or("", |a| a.as_str())
            )),
        }
    }

    /// The Java mqadmin tool (the reference version's jars): stdout, stderr.
    pub fn mqadmin(&self, args: &[&str]) -> (String, String) {
        let admin = self.work.join("admin");
        let mut c = self.java_cmd(&[
            "-Xms64m",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
        ]);
        c.arg(format!("-Duser.home={}", admin.display()))
            .arg(format!(
                "-Drocketmq.home.dir={}",
                self.jdir.join("home").display()
            ))
            .arg(format!(
                "-Drocketmq.log.root={}",
                admin.join("logs").display()
            ))
            .arg("-Drocketmq.log.level=WARN")
            .arg("-Drmq.logback.configurationFile=rmq.tools.logback.xml")
            .arg("-cp")
            .arg(&self.cp)
            .arg("org.apache.rocketmq.tools.command.MQAdminStartup")
            .args(args);
        match output_within("mqadmin", c, MQADMIN_TIMEOUT) {
            Ok((_, out, err)) => (out, err),
            Err(e) => (String::new(), e),
        }
    }

    /// `updateTopic -c`: a broker listening may not have registered with the
    /// name server yet (the cluster is then unknown): retried for up to 30 s.
    pub fn update_topic(&self, ns: &str, cluster: &str, topic: &str) -> Res<()> {
        let mut out = String::new();
        let attempts = 15;
        for _ in 0..attempts {
            let (o, e) = self.mqadmin(&[
                "updateTopic",
                "-n",
                ns,
                "-c",
                cluster,
                "-t",
                topic,
                "-r",
                "8",
                "-w",
                "8",
            ]);
            out = o + &e;
            if out.contains("success") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        Err(format!(
            "updateTopic {topic} failed ({attempts} attempts):\n{out}"
        ))
    }

    pub fn update_topic_b(&self, ns: &str, broker: &str, topic: &str) -> bool {
        let (o, e) = self.mqadmin(&[
            "updateTopic",
            "-n",
            ns,
            "-b",
            broker,
            "-t",
            topic,
            "-r",
            "8",
            "-w",
            "8",
        ]);
        o.contains("success") || e.contains("success")
    }

    /// The address the name server lists as broker id 0 of `cluster`.
    pub fn master_of(&self, ns: &str, cluster: &str) -> Option<String> {
        let (out, _) = self.mqadmin(&["clusterList", "-n", ns]);
        out.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&cluster) && f.get(2) == Some(&"0"))
                .then(|| f.get(3).map(|a| a.to_string()))
                .flatten()
        })
    }
}
