//! The cross-version compatibility matrix: the client and tool versions of
//! `compat-tests/versions.txt` through the scenario groups, against each
//! server pairing, rendered as `docs/COMPATIBILITY.md`.
//!
//! Rows reuse the suite's drivers: `compat.Scenarios`,
//! `compat.FilterTraceCompress`, `compat.DelayTx` and `compat.AdminBatch`
//! (Java, per client version), `cmd/scenarios` and `cmd/produce-consume`
//! (Go, per module version) and `node/ali_ons_scenarios.js` (ali-ons).
//! A cell passes when every scenario of its group printed `ok`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::dledger_group::{Group as DlGroup, Spec as DlSpec};
use crate::{
    check_acks, compat_dir, java_client_with_classes, run_with_timeout, text, workspace_root,
    Cluster, JavaBroker, JavaClient, JavaNamesrv, OurNamesrv, StandaloneBroker,
};

#[path = "matrix_render.rs"]
mod render;
#[path = "matrix_rows.rs"]
mod rows;
pub use render::render;

// ------------------------------------------------------------------ versions

/// A client family of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Java,
    Mqadmin,
    Go,
    AliOns,
}

impl Family {
    fn parse(s: &str) -> Option<Family> {
        match s {
            "java" => Some(Family::Java),
            "mqadmin" => Some(Family::Mqadmin),
            "go" => Some(Family::Go),
            "ali-ons" => Some(Family::AliOns),
            _ => None,
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Family::Java => "java",
            Family::Mqadmin => "mqadmin",
            Family::Go => "go",
            Family::AliOns => "ali-ons",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Family::Java => "Java client",
            Family::Mqadmin => "mqadmin",
            Family::Go => "Go client",
            Family::AliOns => "ali-ons (npm)",
        }
    }
}

/// One row: a client or tool version.
#[derive(Clone, Debug)]
pub struct Entry {
    pub family: Family,
    pub version: String,
    /// Part of the reduced matrix `.ci/run` runs.
    pub ci: bool,
    /// Java drivers compiled against this version instead (old clients).
    pub classes: Option<String>,
}

impl Entry {
    pub fn label(&self) -> String {
        format!("{} {}", self.family.title(), self.version)
    }
}

/// A failure documented as the Java servers' own behaviour.
#[derive(Clone, Debug)]
pub struct Known {
    pub pairing: String,
    pub family: String,
    pub version: String,
    pub group: String,
    pub reason: String,
}

impl Known {
    fn matches(&self, pairing: Pairing, entry: &Entry, group: Group) -> bool {
        let m = |pat: &str, v: &str| pat == "*" || pat == v;
        m(&self.pairing, pairing.key())
            && m(&self.family, entry.family.key())
            && m(&self.version, &entry.version)
            && m(&self.group, group.key())
    }
}

/// `compat-tests/versions.txt`.
#[derive(Clone, Debug)]
pub struct Versions {
    /// The Java server version of the mixed pairings.
    pub server: String,
    pub entries: Vec<Entry>,
    pub known: Vec<Known>,
}

pub fn versions_file() -> PathBuf {
    compat_dir().join("versions.txt")
}

/// Reads the versions file; an unknown line is an error naming it.
pub fn load_versions(path: &Path) -> Result<Versions, String> {
    let body = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut v = Versions {
        server: "5.5.0".to_owned(),
        entries: Vec::new(),
        known: Vec::new(),
    };
    for (n, line) in body.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("{}:{}: cannot read {line:?}", path.display(), n + 1);
        match w.as_slice() {
            ["server", version] => v.server = (*version).to_owned(),
            ["client", family, version, ci, rest @ ..] => {
                let family = Family::parse(family).ok_or_else(bad)?;
                let mut classes = None;
                for opt in rest {
                    match opt.split_once('=') {
                        Some(("classes", c)) => classes = Some(c.to_owned()),
                        _ => return Err(bad()),
                    }
                }
                v.entries.push(Entry {
                    family,
                    version: (*version).to_owned(),
                    ci: *ci == "ci",
                    classes,
                });
            }
            ["known", pairing, family, version, group, reason @ ..] if !reason.is_empty() => {
                v.known.push(Known {
                    pairing: (*pairing).to_owned(),
                    family: (*family).to_owned(),
                    version: (*version).to_owned(),
                    group: (*group).to_owned(),
                    reason: reason.join(" "),
                })
            }
            _ => return Err(bad()),
        }
    }
    Ok(v)
}

// -------------------------------------------------------------------- groups

/// A column: one scenario group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    SendConsume,
    Ordered,
    Broadcast,
    Filters,
    RetryDlq,
    Delay,
    Transactions,
    Admin,
}

pub const ALL_GROUPS: [Group; 8] = [
    Group::SendConsume,
    Group::Ordered,
    Group::Broadcast,
    Group::Filters,
    Group::RetryDlq,
    Group::Delay,
    Group::Transactions,
    Group::Admin,
];

impl Group {
    pub fn key(self) -> &'static str {
        match self {
            Group::SendConsume => "send-consume",
            Group::Ordered => "ordered",
            Group::Broadcast => "broadcast",
            Group::Filters => "filters",
            Group::RetryDlq => "retry-dlq",
            Group::Delay => "delay",
            Group::Transactions => "transactions",
            Group::Admin => "admin",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Group::SendConsume => "send/consume",
            Group::Ordered => "ordered",
            Group::Broadcast => "broadcast",
            Group::Filters => "filters (tag, SQL92)",
            Group::RetryDlq => "retry/DLQ",
            Group::Delay => "delay",
            Group::Transactions => "transactions",
            Group::Admin => "admin",
        }
    }
}

/// What one cell shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    Pass,
    /// The failing assertion.
    Fail(String),
    /// Fails the same way against the Java servers: (reason, failure).
    Known(String, String),
    /// The client version has no API for it (or the driver path uses one it lacks).
    Absent(String),
    /// Not a scenario of this client or tool.
    NotApplicable,
}

// ------------------------------------------------------------------ pairings

/// Which servers the clients talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pairing {
    Ours,
    JavaBroker,
    JavaNamesrv,
    /// A three-member DLedger broker group: two of ours and one Java broker
    /// of the server version, with our name server.
    DledgerMixed,
}

pub const ALL_PAIRINGS: [Pairing; 4] = [
    Pairing::Ours,
    Pairing::JavaBroker,
    Pairing::JavaNamesrv,
    Pairing::DledgerMixed,
];

impl Pairing {
    pub fn key(self) -> &'static str {
        match self {
            Pairing::Ours => "ours",
            Pairing::JavaBroker => "java-broker",
            Pairing::JavaNamesrv => "java-namesrv",
            Pairing::DledgerMixed => "dledger-mixed",
        }
    }

    pub fn parse(s: &str) -> Option<Pairing> {
        ALL_PAIRINGS.into_iter().find(|p| p.key() == s)
    }

    pub fn title(self, server: &str) -> String {
        match self {
            Pairing::Ours => "Our name server and our broker".to_owned(),
            Pairing::JavaBroker => format!("The Java {server} broker with our name server"),
            Pairing::JavaNamesrv => format!("Our broker with the Java {server} name server"),
            Pairing::DledgerMixed => format!(
                "A DLedger group of two of our brokers and the Java {server} broker, \
                 with our name server"
            ),
        }
    }

    /// The groups run against this pairing.
    pub fn groups(self) -> &'static [Group] {
        match self {
            Pairing::Ours => &ALL_GROUPS,
            Pairing::JavaBroker | Pairing::JavaNamesrv => &[Group::SendConsume, Group::Admin],
            Pairing::DledgerMixed => &[Group::SendConsume, Group::Admin],
        }
    }
}

/// Broker keys every pairing's broker runs with (ours and Java's alike):
/// SQL92 on, quick transaction check-backs.
pub const MATRIX_BROKER_KEYS: &str = "enablePropertyFilter=true\ntransactionCheckInterval=3000\n\
     transactionTimeOut=3000\ntransactionCheckMax=15\n";

/// The running servers of one pairing.
pub struct Servers {
    pub pairing: Pairing,
    pub namesrv: String,
    pub broker_addr: String,
    pub broker_name: String,
    pub cluster: String,
    // Dropped in this order: brokers before name servers.
    dledger: Option<DlGroup>,
    ours: Option<Cluster>,
    java_broker: Option<JavaBroker>,
    our_broker: Option<StandaloneBroker>,
    our_ns: Option<OurNamesrv>,
    java_ns: Option<JavaNamesrv>,
    homes: tempfile::TempDir,
}

impl Servers {
    pub fn start(pairing: Pairing, server_version: &str) -> Servers {
        let homes = tempfile::Builder::new()
            .prefix("rmq-matrix-")
            .tempdir()
            .expect("temp dir");
        let mut s = Servers {
            pairing,
            namesrv: String::new(),
            broker_addr: String::new(),
            broker_name: String::new(),
            cluster: String::new(),
            dledger: None,
            ours: None,
            java_broker: None,
            our_broker: None,
            our_ns: None,
            java_ns: None,
            homes,
        };
        match pairing {
            Pairing::Ours => {
                let c = Cluster::start_with(MATRIX_BROKER_KEYS);
                s.namesrv = c.namesrv_addr.clone();
                s.broker_addr = c.broker_addr.clone();
                s.broker_name = c.broker_name.clone();
                s.cluster = c.cluster_name.clone();
                s.ours = Some(c);
            }
            Pairing::JavaBroker => {
                let ns = OurNamesrv::start();
                let b = JavaBroker::start_with(server_version, &ns.addr, MATRIX_BROKER_KEYS);
                s.namesrv = ns.addr.clone();
                s.broker_addr = b.addr.clone();
                s.broker_name = b.broker_name.clone();
                s.cluster = b.cluster_name.clone();
                s.our_ns = Some(ns);
                s.java_broker = Some(b);
            }
            Pairing::JavaNamesrv => {
                let ns = JavaNamesrv::start(server_version);
                let b = StandaloneBroker::start(&ns.addr, MATRIX_BROKER_KEYS);
                s.namesrv = ns.addr.clone();
                s.broker_addr = b.addr.clone();
                s.broker_name = b.broker_name.clone();
                s.cluster = b.cluster_name.clone();
                s.java_ns = Some(ns);
                s.our_broker = Some(b);
            }
            Pairing::DledgerMixed => {
                let g = DlGroup::start(dledger_spec(server_version));
                let m = g.wait_formed("the matrix's mixed group");
                s.namesrv = g.ns.addr.clone();
                s.broker_addr = g.nodes[m].addr.clone();
                s.broker_name = g.spec.name.to_owned();
                s.cluster = g.spec.cluster.to_owned();
                s.dledger = Some(g);
            }
        }
        s
    }

    /// A fresh folder for one client's home, logs and offsets.
    pub fn client_home(&self, name: &str) -> PathBuf {
        crate::client_home_in(self.homes.path(), name)
    }

    /// The servers' logs, last lines.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Some(g) = &self.dledger {
            out.push_str(&g.logs());
        }
        if let Some(c) = &self.ours {
            out.push_str(&c.logs());
        }
        if let Some(b) = &self.java_broker {
            out.push_str(&b.logs());
        }
        if let Some(b) = &self.our_broker {
            out.push_str(&b.logs());
        }
        if let Some(n) = &self.our_ns {
            out.push_str(&n.logs());
        }
        if let Some(n) = &self.java_ns {
            out.push_str(&n.logs());
        }
        out
    }
}

/// The `dledger-mixed` group: members n0, n1 ours, n2 the Java broker of
/// `server_version` (its client drives the leader kill), 1 MiB DLedger
/// segments, every member on DLedger's default timers (Java's broker passes
/// none to DLedger; ours get them as keys), as `dledger_broker_java.rs`.
fn dledger_spec(server_version: &str) -> DlSpec {
    // Spec wants a 'static version; one group per run of the matrix.
    let version: &'static str = Box::leak(server_version.to_owned().into_boxed_str());
    DlSpec {
        version,
        java: [false, false, true],
        ours_extra: format!(
            "heartBeatTimeIntervalMs=2000\nmaxHeartBeatLeak=3\nminVoteIntervalMs=300\n\
             maxVoteIntervalMs=1000\n{MATRIX_BROKER_KEYS}"
        ),
        master_timeout: Duration::from_secs(90),
        slave_timeout: Duration::from_secs(120),
        log_lines: 80,
        ..DlSpec::new("MatrixDLedgerCluster", "mx-dledger", 1024 * 1024)
    }
}

/// The once-per-pairing check of `dledger-mixed`, after the rows: the Java
/// client of the server version sends (compat.StoreDriver `produce-until`,
/// sync sends) the whole time while DLedger leadership is handed to the
/// Java member (LEADERSHIP_TRANSFER) and that master is then SIGKILLed; one
/// of ours must take over and acknowledge sends, and every acknowledged
/// message (written under either kind of leader) must then be readable
/// through it at the queue offset it was acknowledged with, no two
/// acknowledgements at one (queue, offset) (`compat_tests::invariant`).
/// Ok: what happened; Err: the failing assertion.
fn leader_kill(g: &mut DlGroup) -> Result<String, String> {
    const TOPIC: &str = "MxDLeaderKill";
    let within = Duration::from_secs(90);
    let kind = |g: &DlGroup, i: usize| if g.nodes[i].is_java() { "Java" } else { "ours" };
    let first = g.wait_master("before the leader kill", |_| true);
    for i in 0..g.nodes.len() {
        g.create_topic(TOPIC, i);
    }
    let mut producer = g.produce_until(TOPIC, 200, None);
    g.wait_acks(&mut producer, 100, "100 sends before the transfer", within);
    let java = g.nodes.iter().position(|n| n.is_java()).unwrap_or(first);
    g.transfer(java);
    g.wait_acks(
        &mut producer,
        100,
        "100 sends through the Java master",
        within,
    );
    // Leadership may have moved on its own since: hand it back first.
    g.transfer(java);
    let old = java;
    let t0 = Instant::now();
    g.nodes[old].kill();
    let new = g.wait_master("a new master after the SIGKILL", |m| m != old);
    let took = t0.elapsed();
    g.wait_acks(&mut producer, 100, "100 sends after the failover", within);
    producer.stop(Duration::from_secs(10));
    let sent = producer.log_text();
    let m = g.wait_master("before the read-back", |m| m != old);
    let out = g.dump(TOPIC, "MxDLeaderKillCheck", 90, Duration::from_secs(150));
    let check = check_acks(&sent, &out);
    if !check.ok() {
        return Err(format!(
            "through master n{m} ({}): {}; {}",
            kind(g, m),
            check.summary(),
            first_line(&check.failure())
        ));
    }
    Ok(format!(
        "first master n{first} ({}); leadership handed to n{old} ({}), which \
         acknowledged sends, then SIGKILLed while sending: n{new} ({}) routed as master \
         after {} s; all {} acknowledged messages read back through n{m} ({}) at their offsets",
        kind(g, first),
        kind(g, old),
        kind(g, new),
        took.as_secs(),
        check.acked,
        kind(g, m)
    ))
}

// ---------------------------------------------------------------------- runs

/// One row's outcome against one pairing.
#[derive(Clone, Debug)]
pub struct Row {
    pub entry: Entry,
    pub cells: Vec<(Group, Cell)>,
    pub took: Duration,
}

/// One pairing's rows.
#[derive(Clone, Debug)]
pub struct Table {
    pub pairing: Pairing,
    pub rows: Vec<Row>,
    /// Checks run once per pairing (after its rows): (what, cell).
    pub checks: Vec<(String, Cell)>,
    /// The servers did not start: the whole table failed with this.
    pub error: Option<String>,
}

/// Runs `entries` against `pairing` through the pairing's groups that are
/// also in `only_groups` (all when None); panics of the harness (a Maven or
/// Go build that failed, a server that did not start) become failed cells.
pub fn run_pairing(
    pairing: Pairing,
    versions: &Versions,
    entries: &[Entry],
    only_groups: Option<&[Group]>,
) -> Table {
    let started = std::panic::catch_unwind(|| Servers::start(pairing, &versions.server));
    let mut servers = match started {
        Ok(s) => s,
        Err(p) => {
            return Table {
                pairing,
                rows: Vec::new(),
                checks: Vec::new(),
                error: Some(panic_text(&p)),
            }
        }
    };
    let tool = newest_mqadmin(versions);
    let mut rows = Vec::new();
    for e in entries {
        let t0 = Instant::now();
        eprintln!("matrix: {} / {} ...", pairing.key(), e.label());
        let groups: Vec<Group> = pairing
            .groups()
            .iter()
            .filter(|g| only_groups.is_none_or(|o| o.contains(g)))
            .copied()
            .collect();
        let groups = groups.as_slice();
        let cells = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rows::run_row(&servers, e, groups, &tool)
        }))
        .unwrap_or_else(|p| {
            let why = format!("harness: {}", first_line(&panic_text(&p)));
            groups
                .iter()
                .map(|g| (*g, Cell::Fail(why.clone())))
                .collect()
        });
        let cells = cells
            .into_iter()
            .map(|(g, c)| match c {
                Cell::Fail(why) => match versions.known.iter().find(|k| k.matches(pairing, e, g)) {
                    Some(k) => (g, Cell::Known(k.reason.clone(), why)),
                    None => (g, Cell::Fail(why)),
                },
                other => (g, other),
            })
            .collect::<Vec<_>>();
        for (g, c) in &cells {
            if let Cell::Fail(why) = c {
                eprintln!(
                    "matrix: {} / {} / {}: FAIL {why}",
                    pairing.key(),
                    e.label(),
                    g.key()
                );
            }
        }
        eprintln!(
            "matrix: {} / {} took {:?}",
            pairing.key(),
            e.label(),
            t0.elapsed()
        );
        rows.push(Row {
            entry: e.clone(),
            cells,
            took: t0.elapsed(),
        });
    }
    let mut checks = Vec::new();
    if let Some(g) = servers.dledger.as_mut() {
        eprintln!("matrix: {} / leader kill ...", pairing.key());
        let t0 = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| leader_kill(g)))
            .unwrap_or_else(|p| Err(format!("harness: {}", first_line(&panic_text(&p)))));
        eprintln!(
            "matrix: {} / leader kill took {:?}: {r:?}",
            pairing.key(),
            t0.elapsed()
        );
        checks.push(match r {
            Ok(what) => (format!("leader kill: {what}"), Cell::Pass),
            Err(why) => ("leader kill".to_owned(), Cell::Fail(why)),
        });
    }
    if rows
        .iter()
        .any(|r| r.cells.iter().any(|(_, c)| matches!(c, Cell::Fail(_))))
        || checks.iter().any(|(_, c)| matches!(c, Cell::Fail(_)))
    {
        eprintln!(
            "matrix: servers' logs of {}:\n{}",
            pairing.key(),
            tail(&servers.logs(), 80)
        );
    }
    Table {
        pairing,
        rows,
        checks,
        error: None,
    }
}

/// The mqadmin that creates topics for the non-Java rows: the newest listed.
fn newest_mqadmin(versions: &Versions) -> String {
    versions
        .entries
        .iter()
        .filter(|e| e.family == Family::Mqadmin)
        .map(|e| e.version.clone())
        .max_by(|a, b| version_key(a).cmp(&version_key(b)))
        .unwrap_or_else(|| versions.server.clone())
}

fn version_key(v: &str) -> Vec<u32> {
    v.trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// The Java drivers of `version` (Maven, cached).
fn java(version: &str, classes: Option<&str>) -> JavaClient {
    java_client_with_classes(version, classes)
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic".to_owned())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(300).collect()
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `git rev-parse --short HEAD` of the workspace, or "unknown".
pub fn commit() -> String {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(workspace_root())
        .args(["rev-parse", "--short", "HEAD"]);
    let out = run_with_timeout(c, Duration::from_secs(20));
    let s = text(&out).trim().to_owned();
    if out.status.success() && !s.is_empty() {
        s
    } else {
        "unknown".to_owned()
    }
}

/// Counts of the cells of `tables`: (passed, failed, known, absent).
pub fn totals(tables: &[Table]) -> (usize, usize, usize, usize) {
    let mut t = (0, 0, 0, 0);
    for table in tables {
        for row in &table.rows {
            for (_, c) in &row.cells {
                match c {
                    Cell::Pass => t.0 += 1,
                    Cell::Fail(_) => t.1 += 1,
                    Cell::Known(..) => t.2 += 1,
                    Cell::Absent(_) => t.3 += 1,
                    Cell::NotApplicable => {}
                }
            }
        }
        for (_, c) in &table.checks {
            match c {
                Cell::Pass => t.0 += 1,
                Cell::Fail(_) => t.1 += 1,
                _ => {}
            }
        }
        if table.error.is_some() {
            t.1 += 1;
        }
    }
    t
}

/// Every failure not documented as Java's own: "pairing / row / group: why".
pub fn unexpected_failures(tables: &[Table]) -> Vec<String> {
    let mut out = Vec::new();
    for table in tables {
        if let Some(e) = &table.error {
            out.push(format!(
                "{}: servers did not start: {}",
                table.pairing.key(),
                first_line(e)
            ));
        }
        for (what, c) in &table.checks {
            if let Cell::Fail(why) = c {
                out.push(format!("{} / {what}: {why}", table.pairing.key()));
            }
        }
        for row in &table.rows {
            for (g, c) in &row.cells {
                if let Cell::Fail(why) = c {
                    out.push(format!(
                        "{} / {} / {}: {why}",
                        table.pairing.key(),
                        row.entry.label(),
                        g.key()
                    ));
                }
            }
        }
    }
    out
}
