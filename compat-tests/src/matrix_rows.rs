//! One matrix row per client family: which driver runs which scenarios for
//! a group, and how its output becomes a cell.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use super::{java, tail, Cell, Entry, Family, Group, Servers};
use crate::{compat_dir, run_with_timeout, text, workspace_root};

/// The cells of `entry` for `groups` against `servers`; `tool` is the
/// mqadmin version that creates topics for the non-Java rows.
pub(super) fn run_row(
    servers: &Servers,
    entry: &Entry,
    groups: &[Group],
    tool: &str,
) -> Vec<(Group, Cell)> {
    match entry.family {
        Family::Java => java_row(servers, entry, groups),
        Family::Mqadmin => groups
            .iter()
            .map(|g| match g {
                Group::Admin => (*g, admin_cell(servers, entry)),
                _ => (*g, Cell::NotApplicable),
            })
            .collect(),
        Family::Go => go_row(servers, entry, groups),
        Family::AliOns => ali_ons_row(servers, entry, groups, tool),
    }
}

/// A prefix of topic and group names unique per row and pairing.
fn prefix(servers: &Servers, entry: &Entry, short: &str) -> String {
    let v: String = entry
        .version
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    let p = match servers.pairing.key() {
        "ours" => "O",
        "java-broker" => "B",
        "dledger-mixed" => "D",
        _ => "N",
    };
    format!("Mx{p}{short}{v}")
}

// --------------------------------------------------------------- verdicts

/// The cell of driver scenario `name` from `scenario=NAME ok|FAIL ...` lines.
fn scenario_cell(out: &str, name: &str) -> Cell {
    let want = format!("scenario={name} ");
    match out.lines().find_map(|l| l.strip_prefix(want.as_str())) {
        Some(v) if v.starts_with("ok") => Cell::Pass,
        Some(v) => {
            let v = v.trim_start_matches("FAIL").trim();
            if [
                "NoSuchMethodError",
                "NoClassDefFoundError",
                "AbstractMethodError",
                "ClassNotFoundException",
            ]
            .iter()
            .any(|e| v.contains(e))
            {
                Cell::Absent(format!("{name}: {}", short(v)))
            } else {
                Cell::Fail(format!("{name}: {}", short(v)))
            }
        }
        None => Cell::Fail(format!(
            "{name}: no result line; output ends: {}",
            short(&tail(out, 4).replace('\n', " / "))
        )),
    }
}

/// Every scenario must pass; the first failure (then the first absent API) wins.
fn all_of(cells: Vec<Cell>) -> Cell {
    if let Some(f) = cells.iter().find(|c| matches!(c, Cell::Fail(_))) {
        return f.clone();
    }
    if let Some(a) = cells.iter().find(|c| matches!(c, Cell::Absent(_))) {
        return a.clone();
    }
    Cell::Pass
}

/// `MATRIX_VERBOSE=1`: every driver's whole output on stderr.
fn show(what: &str, out: &str) {
    if std::env::var_os("MATRIX_VERBOSE").is_some_and(|v| v == "1") {
        eprintln!("----- {what} -----\n{out}");
    }
}

fn short(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 240 {
        format!("{}…", s.chars().take(240).collect::<String>())
    } else {
        s.to_owned()
    }
}

// -------------------------------------------------------------------- Java

/// The scenarios of `compat.Scenarios` (S), `compat.FilterTraceCompress`
/// (F) and `compat.DelayTx` (D) that make up a group.
fn java_scenarios(g: Group) -> &'static [(char, &'static str)] {
    match g {
        Group::SendConsume => &[('S', "sends"), ('S', "clustering")],
        Group::Ordered => &[('S', "ordered")],
        Group::Broadcast => &[('S', "broadcasting")],
        Group::Filters => &[('S', "tags"), ('F', "sql")],
        Group::RetryDlq => &[('D', "retry")],
        Group::Delay => &[('D', "delay")],
        Group::Transactions => &[('D', "tx")],
        Group::Admin => &[],
    }
}

fn java_row(servers: &Servers, entry: &Entry, groups: &[Group]) -> Vec<(Group, Cell)> {
    let java = java(&entry.version, entry.classes.as_deref());
    let prefix = prefix(servers, entry, "J");
    let home = servers.client_home(&format!("java-{}", entry.version));
    let wanted = |driver: char| -> Vec<&'static str> {
        groups
            .iter()
            .flat_map(|g| java_scenarios(*g).iter())
            .filter(|(d, _)| *d == driver)
            .map(|(_, s)| *s)
            .collect()
    };
    let ns = servers.namesrv.as_str();
    let addr = servers.broker_addr.as_str();
    let mut outs: Vec<(char, String)> = Vec::new();
    let s = wanted('S');
    if !s.is_empty() {
        let mut args = vec![ns, addr, prefix.as_str()];
        args.extend(s);
        let out = java.run(&home, "compat.Scenarios", &args, Duration::from_secs(400));
        outs.push(('S', text(&out)));
        show("compat.Scenarios", &outs[outs.len() - 1].1);
    }
    let f = wanted('F');
    if !f.is_empty() {
        let mut args = vec![ns, addr, prefix.as_str()];
        args.extend(f);
        let out = java.run(
            &home,
            "compat.FilterTraceCompress",
            &args,
            Duration::from_secs(300),
        );
        outs.push(('F', text(&out)));
    }
    let d = wanted('D');
    if !d.is_empty() {
        let flag = home.join("restarted.txt").display().to_string();
        let mut args = vec![ns, addr, servers.broker_name.as_str(), prefix.as_str()];
        args.push(&flag);
        args.extend(d);
        let out = java.run(&home, "compat.DelayTx", &args, Duration::from_secs(400));
        outs.push(('D', text(&out)));
    }
    groups
        .iter()
        .map(|g| {
            let scn = java_scenarios(*g);
            if scn.is_empty() {
                return (*g, Cell::NotApplicable);
            }
            let cells = scn
                .iter()
                .map(|(d, name)| {
                    let out = outs
                        .iter()
                        .find(|(k, _)| k == d)
                        .map(|(_, o)| o.as_str())
                        .unwrap_or("");
                    scenario_cell(out, name)
                })
                .collect();
            (*g, all_of(cells))
        })
        .collect()
}

// ----------------------------------------------------------------- mqadmin

/// Topic, route, cluster, broker and subscription-group commands of the
/// tool, in one JVM (`compat.AdminBatch`), each judged by its printed text.
fn admin_cell(servers: &Servers, entry: &Entry) -> Cell {
    let java = java(&entry.version, entry.classes.as_deref());
    let home = servers.client_home(&format!("mqadmin-{}", entry.version));
    let ns = servers.namesrv.as_str();
    let addr = servers.broker_addr.as_str();
    let cluster = servers.cluster.as_str();
    let bname = servers.broker_name.as_str();
    let topic = format!("{}Admin", prefix(servers, entry, "A"));
    let group = format!("{}Group", prefix(servers, entry, "A"));
    let commands: Vec<Vec<&str>> = vec![
        vec![
            "updateTopic",
            "-n",
            ns,
            "-c",
            cluster,
            "-t",
            &topic,
            "-r",
            "4",
            "-w",
            "4",
        ],
        vec!["topicList", "-n", ns],
        vec!["topicRoute", "-n", ns, "-t", &topic],
        vec!["topicStatus", "-n", ns, "-t", &topic],
        vec!["clusterList", "-n", ns],
        vec!["brokerStatus", "-n", ns, "-b", addr],
        vec!["getBrokerConfig", "-n", ns, "-b", addr],
        vec!["updateSubGroup", "-n", ns, "-b", addr, "-g", &group],
        vec!["getConsumerConfig", "-n", ns, "-g", &group],
        vec!["deleteTopic", "-n", ns, "-c", cluster, "-t", &topic],
        vec!["topicList", "-n", ns],
    ];
    let mut args: Vec<&str> = Vec::new();
    for (i, c) in commands.iter().enumerate() {
        if i > 0 {
            args.push(";;");
        }
        args.extend(c.iter().copied());
    }
    let out = text(&java.run(&home, "compat.AdminBatch", &args, Duration::from_secs(300)));
    show("compat.AdminBatch", &out);
    let section = |i: usize| -> String {
        let begin = format!("@@@ BEGIN {i} ");
        let end = format!("@@@ END {i} ");
        let start = out.find(&begin).map(|p| p + begin.len());
        let stop = out.find(&end);
        match (start, stop) {
            (Some(a), Some(b)) if b >= a => out[a..b].to_owned(),
            _ => String::new(),
        }
    };
    let route: String = section(2).split_whitespace().collect();
    let listed = |o: &str| o.lines().any(|l| l.trim() == topic);
    let checks: Vec<(usize, &str, bool)> = vec![
        (
            0,
            "updateTopic prints the success line",
            section(0).contains(&format!("create topic to {addr} success")),
        ),
        (1, "topicList lists the new topic", listed(&section(1))),
        (
            2,
            "topicRoute shows 4/4 queues on the broker",
            route.contains("\"writeQueueNums\":4") && route.contains(&format!("\"{addr}\"")),
        ),
        (
            3,
            "topicStatus prints the queue table",
            section(3).contains("#Broker Name") && section(3).contains(bname),
        ),
        (
            4,
            "clusterList shows the broker",
            section(4).contains(bname) && section(4).contains(addr),
        ),
        (
            5,
            "brokerStatus prints the runtime keys",
            section(5).contains("putTps") && section(5).contains("brokerVersionDesc"),
        ),
        (
            6,
            "getBrokerConfig prints brokerName",
            section(6).contains("brokerName") && section(6).contains(bname),
        ),
        (
            7,
            "updateSubGroup prints the success line",
            section(7).contains(&format!("create subscription group to {addr} success")),
        ),
        (
            8,
            "getConsumerConfig shows the group",
            section(8).contains(&group),
        ),
        (
            9,
            "deleteTopic prints both success lines",
            section(9).contains(&format!(
                "delete topic [{topic}] from cluster [{cluster}] success"
            )) && section(9).contains("from NameServer success"),
        ),
        (10, "topicList no longer lists it", !listed(&section(10))),
    ];
    match checks.iter().find(|(_, _, ok)| !ok) {
        None => Cell::Pass,
        Some((i, what, _)) => Cell::Fail(format!(
            "{}: {what}; printed: {}",
            commands[*i][0],
            short(&section(*i).trim().replace('\n', " / "))
        )),
    }
}

// ---------------------------------------------------------------------- Go

/// Builds `cmd/scenarios` and `cmd/produce-consume` against `version`
/// (the one pinned in go.mod unless another is named), once per version.
fn go_bins(version: &str) -> Result<PathBuf, String> {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, p)) = built.iter().find(|(v, _)| v == version) {
        return Ok(p.clone());
    }
    let go = compat_dir().join("go");
    let pinned = std::fs::read_to_string(go.join("go.mod"))
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains("rocketmq-client-go/v2 ") && l.trim().ends_with(version));
    let out_dir = workspace_root()
        .join("target")
        .join("compat-go-matrix")
        .join(version);
    let mut c = Command::new("bash");
    c.arg(go.join("build.sh")).arg(&out_dir);
    if !pinned {
        c.arg(version);
    }
    c.env("GO_TARGETS", "produce-consume scenarios");
    let out = run_with_timeout(c, Duration::from_secs(900));
    if !out.status.success() {
        return Err(format!("go build {version}: {}", short(&text(&out))));
    }
    built.push((version.to_owned(), out_dir.clone()));
    Ok(out_dir)
}

/// Runs one `cmd/scenarios` subcommand; its `RESULT <name> k=v ...` fields.
fn go_scenario(
    servers: &Servers,
    bins: &std::path::Path,
    pfx: &str,
    name: &str,
    count: u32,
    timeout_s: u64,
) -> Result<Vec<(String, String)>, String> {
    let home = servers.client_home(&format!("go-{pfx}-{name}"));
    let topic = format!("{pfx}_{}", name.replace('-', "_"));
    let mut cmd = Command::new(bins.join("scenarios"));
    cmd.arg(name)
        .args(["-namesrv", &servers.namesrv])
        .args(["-broker-addr", &servers.broker_addr])
        .args(["-topic", &topic])
        .args(["-count", &count.to_string()])
        .args(["-timeout", &format!("{timeout_s}s")])
        .env("HOME", &home);
    let out = run_with_timeout(cmd, Duration::from_secs(timeout_s + 40));
    let all = text(&out);
    show(&format!("go scenarios {name}"), &all);
    let line = all
        .lines()
        .find_map(|l| l.strip_prefix(&format!("RESULT {name} ")))
        .map(str::to_owned);
    match (out.status.success(), line) {
        (true, Some(line)) => Ok(line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()),
        _ => Err(format!(
            "{name}: exited {:?}; output ends: {}",
            out.status.code(),
            short(&tail(&all, 4).replace('\n', " / "))
        )),
    }
}

/// The Go checks of `go_scenarios.rs` and `delay_and_transactions.rs`.
fn go_group(servers: &Servers, bins: &std::path::Path, pfx: &str, g: Group) -> Cell {
    let field = |f: &[(String, String)], k: &str| -> String {
        f.iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    // (scenario, count, timeout, expected fields)
    let (name, count, timeout, want): (&str, u32, u64, Vec<(&str, &str)>) = match g {
        Group::SendConsume => (
            "send-modes",
            30,
            90,
            vec![
                ("asyncCallbacksOK", "30"),
                ("sync", "30"),
                ("async", "30"),
                ("oneway", "30"),
                ("batch", "30"),
            ],
        ),
        Group::Ordered => (
            "orderly",
            25,
            120,
            vec![("keys", "8"), ("perKey", "25"), ("outOfOrder", "0")],
        ),
        Group::Broadcast => ("broadcast", 30, 90, vec![("b1", "30"), ("b2", "30")]),
        Group::Filters => {
            let tag = go_scenario(servers, bins, pfx, "tag-filter", 40, 90);
            let sql = go_scenario(servers, bins, pfx, "sql92", 60, 90);
            let check = |r: Result<Vec<(String, String)>, String>, name: &str| match r {
                Err(e) => Cell::Fail(e),
                Ok(f) => {
                    if field(&f, "matching") == "16" && field(&f, "received") == "16" {
                        Cell::Pass
                    } else {
                        Cell::Fail(format!("{name}: want matching=16 received=16, got {f:?}"))
                    }
                }
            };
            return all_of(vec![check(tag, "tag-filter"), check(sql, "sql92")]);
        }
        Group::RetryDlq => ("retry", 3, 100, vec![("first", "3"), ("redelivered", "3")]),
        Group::Delay => return go_delay(servers, bins, pfx),
        Group::Transactions => (
            "transaction",
            5,
            90,
            vec![
                ("executed", "15"),
                ("unknownChecked", "5"),
                ("states", "commit:1,rollback:2,unknown:3"),
            ],
        ),
        Group::Admin => (
            "admin",
            1,
            90,
            vec![
                ("queues", "3"),
                ("listed", "true"),
                ("gone", "true"),
                ("routeGone", "true"),
            ],
        ),
    };
    match go_scenario(servers, bins, pfx, name, count, timeout) {
        Err(e) => Cell::Fail(e),
        Ok(f) => match want.iter().find(|(k, v)| field(&f, k) != *v) {
            None => Cell::Pass,
            Some((k, v)) => Cell::Fail(format!("{name}: want {k}={v}, got {k}={}", field(&f, k))),
        },
    }
}

/// `produce-consume -delay-level 2`: all 5 arrive, none before 5 s.
fn go_delay(servers: &Servers, bins: &std::path::Path, pfx: &str) -> Cell {
    let home = servers.client_home(&format!("go-{pfx}-delay"));
    let mut cmd = Command::new(bins.join("produce-consume"));
    cmd.args(["-namesrv", &servers.namesrv])
        .args(["-broker-addr", &servers.broker_addr])
        .args(["-topic", &format!("{pfx}_delay")])
        .args(["-count", "5", "-queues", "2"])
        .args(["-group", &format!("{pfx}_delay_g")])
        .args(["-delay-level", "2", "-timeout", "90s"])
        .env("HOME", &home)
        .env("rocketmq.client.localOffsetStoreDir", home.join("offsets"));
    let out = text(&run_with_timeout(cmd, Duration::from_secs(150)));
    if !out.contains("sent=5 received=5 duplicates=0 missing=0") {
        return Cell::Fail(format!(
            "delay level 2: not all 5 arrived once; output ends: {}",
            short(&tail(&out, 3).replace('\n', " / "))
        ));
    }
    let min = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix("minDelayMs="))
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(-1);
    if min < 5000 {
        return Cell::Fail(format!("delay level 2: one arrived after {min} ms (< 5 s)"));
    }
    Cell::Pass
}

fn go_row(servers: &Servers, entry: &Entry, groups: &[Group]) -> Vec<(Group, Cell)> {
    let bins = match go_bins(&entry.version) {
        Ok(b) => b,
        Err(e) => return groups.iter().map(|g| (*g, Cell::Fail(e.clone()))).collect(),
    };
    let pfx = prefix(servers, entry, "G");
    groups
        .iter()
        .map(|g| (*g, go_group(servers, &bins, &pfx, *g)))
        .collect()
}

// ----------------------------------------------------------------- ali-ons

/// The driver's scenario and topic suffix of a group (None: no such API in
/// ali-ons: no orderly consumer, no transaction producer, no admin).
fn ali_ons_scenario(g: Group) -> Option<(&'static str, &'static str)> {
    match g {
        Group::SendConsume => Some(("send-consume", "Sends")),
        Group::Filters => Some(("filters", "Filter")),
        Group::Broadcast => Some(("broadcast", "Bcast")),
        Group::RetryDlq => Some(("retry", "Retry")),
        Group::Delay => Some(("delay", "Delay")),
        _ => None,
    }
}

/// `npm ci` in compat-tests/node unless the installed ali-ons is the pinned one.
fn ali_ons_installed(version: &str) -> Result<PathBuf, String> {
    let dir = compat_dir().join("node");
    let installed = std::fs::read_to_string(dir.join("node_modules/ali-ons/package.json"))
        .unwrap_or_default()
        .contains(&format!("\"version\": \"{version}\""));
    if !installed {
        let mut c = Command::new("npm");
        c.args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir);
        let out = run_with_timeout(c, Duration::from_secs(600));
        if !out.status.success() {
            return Err(format!("npm ci: {}", short(&text(&out))));
        }
    }
    Ok(dir)
}

fn ali_ons_row(
    servers: &Servers,
    entry: &Entry,
    groups: &[Group],
    tool: &str,
) -> Vec<(Group, Cell)> {
    let run: Vec<(Group, &str, &str)> = groups
        .iter()
        .filter_map(|g| ali_ons_scenario(*g).map(|(s, t)| (*g, s, t)))
        .collect();
    let outcome = (|| -> Result<String, String> {
        let dir = ali_ons_installed(&entry.version)?;
        let pfx = prefix(servers, entry, "N");
        // ali-ons sends to existing topics only: create them with mqadmin.
        let admin = java(tool, None);
        let home = servers.client_home("ali-ons");
        for (_, _, suffix) in &run {
            admin.update_topic(
                &home,
                &servers.namesrv,
                &servers.cluster,
                &format!("{pfx}{suffix}"),
                4,
                &servers.broker_addr,
            )?;
        }
        let mut c = Command::new("node");
        c.arg(dir.join("ali_ons_scenarios.js"))
            .arg(&servers.namesrv)
            .arg(&pfx)
            .args(run.iter().map(|(_, s, _)| *s))
            .env("HOME", &home);
        Ok(text(&run_with_timeout(c, Duration::from_secs(400))))
    })();
    groups
        .iter()
        .map(|g| match (ali_ons_scenario(*g), &outcome) {
            (None, _) => (*g, Cell::NotApplicable),
            (Some(_), Err(e)) => (*g, Cell::Fail(short(e))),
            (Some((s, _)), Ok(out)) => (*g, scenario_cell(out, s)),
        })
        .collect()
}
