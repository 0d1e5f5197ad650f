//! The official mqadmin commands of controller mode, parsed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::VERSION;
use crate::{java_client, JavaClient};

/// The official 5.3.3 mqadmin with a home of its own, parsing the output of
/// the controller-mode commands (spec controller.md §11).
pub struct Admin {
    pub java: JavaClient,
    pub home: PathBuf,
}

/// `getControllerMetaData`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminMetadata {
    pub group: String,
    pub leader_id: String,
    pub leader_addr: String,
    /// `id:addr` per `#Peer:` line.
    pub peers: Vec<String>,
}

/// One broker set of `getSyncStateSet`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminSyncState {
    pub broker_name: String,
    pub master_broker_id: i64,
    pub master_addr: String,
    pub master_epoch: i64,
    pub sync_state_set_epoch: i64,
    pub sync_state_set_nums: i64,
    /// (brokerId, address, alive) per `InSyncReplica:` line.
    pub in_sync: Vec<(i64, String, bool)>,
    pub not_in_sync: Vec<(i64, String, bool)>,
}

/// One `EpochEntry{epoch=…, startOffset=…, endOffset=…}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Epoch {
    pub epoch: i64,
    pub start: i64,
    pub end: i64,
}

/// One broker of `getBrokerEpoch`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminBrokerEpoch {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addr: String,
    pub broker_id: i64,
    pub epochs: Vec<Epoch>,
}

/// `electMaster`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminElect {
    pub cluster: String,
    pub broker_name: String,
    pub master_addr: String,
    pub master_epoch: i64,
    pub sync_state_set_epoch: i64,
}

/// `\t`/space separated `#key value` lines of mqadmin output.
fn hash_fields(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix('#')?;
            let (k, v) = rest.split_once(|c: char| c == '\t' || c == ' ')?;
            Some((k.trim_end_matches(':').to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// `Name{a=1, b='x', …}` → key → value (quotes removed).
fn to_string_fields(s: &str) -> BTreeMap<String, String> {
    let inner = s
        .split_once('{')
        .map(|(_, r)| r.trim_end().trim_end_matches('}'))
        .unwrap_or("");
    inner
        .split(", ")
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('\'').to_owned()))
        .collect()
}

fn replica_line(s: &str) -> Option<(i64, String, bool)> {
    let f = to_string_fields(s);
    Some((
        f.get("brokerId")?.parse().ok()?,
        f.get("brokerAddress")?.clone(),
        f.get("alive")? == "true",
    ))
}

/// Parses `getControllerMetaData` output.
pub fn parse_controller_metadata(out: &str) -> Option<AdminMetadata> {
    let mut m = AdminMetadata::default();
    let mut seen = false;
    for (k, v) in hash_fields(out) {
        match k.as_str() {
            "ControllerGroup" => {
                m.group = v;
                seen = true;
            }
            "ControllerLeaderId" => m.leader_id = v,
            "ControllerLeaderAddress" => m.leader_addr = v,
            "Peer" => m.peers.push(v),
            _ => {}
        }
    }
    seen.then_some(m)
}

/// Parses `getSyncStateSet` output (one entry per `#brokerName`).
pub fn parse_sync_state_set(out: &str) -> Vec<AdminSyncState> {
    let mut sets: Vec<AdminSyncState> = Vec::new();
    for line in out.lines() {
        let l = line.trim();
        if let Some(r) = l.strip_prefix("InSyncReplica:") {
            if let (Some(s), Some(x)) = (sets.last_mut(), replica_line(r)) {
                s.in_sync.push(x);
            }
            continue;
        }
        if let Some(r) = l.strip_prefix("NotInSyncReplica:") {
            if let (Some(s), Some(x)) = (sets.last_mut(), replica_line(r)) {
                s.not_in_sync.push(x);
            }
            continue;
        }
        let Some((k, v)) = hash_fields(l).pop() else {
            continue;
        };
        if k == "brokerName" {
            sets.push(AdminSyncState {
                broker_name: v,
                ..AdminSyncState::default()
            });
            continue;
        }
        let Some(s) = sets.last_mut() else { continue };
        let n = v.parse::<i64>().unwrap_or(-1);
        match k.as_str() {
            "MasterBrokerId" => s.master_broker_id = n,
            "MasterAddr" => s.master_addr = v,
            "MasterEpoch" => s.master_epoch = n,
            "SyncStateSetEpoch" => s.sync_state_set_epoch = n,
            "SyncStateSetNums" => s.sync_state_set_nums = n,
            _ => {}
        }
    }
    sets
}

/// Parses `getBrokerEpoch` output (one entry per `#clusterName`).
pub fn parse_broker_epochs(out: &str) -> Vec<AdminBrokerEpoch> {
    let mut v: Vec<AdminBrokerEpoch> = Vec::new();
    for (k, val) in hash_fields(out) {
        if k == "clusterName" {
            v.push(AdminBrokerEpoch {
                cluster: val,
                ..AdminBrokerEpoch::default()
            });
            continue;
        }
        let Some(b) = v.last_mut() else { continue };
        match k.as_str() {
            "brokerName" => b.broker_name = val,
            "brokerAddr" => b.broker_addr = val,
            "brokerId" => b.broker_id = val.parse().unwrap_or(-1),
            "Epoch" => {
                let f = to_string_fields(&val);
                let num = |k: &str| f.get(k).and_then(|x| x.parse::<i64>().ok());
                if let (Some(epoch), Some(start), Some(end)) =
                    (num("epoch"), num("startOffset"), num("endOffset"))
                {
                    b.epochs.push(Epoch { epoch, start, end });
                }
            }
            _ => {}
        }
    }
    v
}

/// Parses `getControllerConfig` output: address → key → value.
pub fn parse_controller_config(out: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut all: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut cur: Option<String> = None;
    for line in out.lines() {
        let l = line.trim_end();
        if let Some(a) = l
            .strip_prefix("============")
            .and_then(|r| r.strip_suffix("============"))
        {
            cur = Some(a.to_owned());
            all.entry(a.to_owned()).or_default();
            continue;
        }
        let (Some(c), Some((k, v))) = (&cur, l.split_once("=  ")) else {
            continue;
        };
        if let Some(m) = all.get_mut(c) {
            m.insert(k.trim().to_owned(), v.to_owned());
        }
    }
    all
}

impl Admin {
    /// Prepares the 5.3.3 tools (cached) in `dir`.
    pub fn new(dir: &Path) -> Admin {
        let java = java_client(VERSION).snapshot(dir);
        let home = dir.join("clients").join("admin");
        std::fs::create_dir_all(&home).expect("admin home");
        Admin { java, home }
    }

    pub fn run(&self, args: &[&str]) -> String {
        self.java.mqadmin(&self.home, args)
    }

    /// `getControllerMetaData -a addr`: parsed, and the text.
    pub fn controller_metadata(&self, addr: &str) -> (Option<AdminMetadata>, String) {
        let out = self.run(&["getControllerMetaData", "-a", addr]);
        (parse_controller_metadata(&out), out)
    }

    /// `getSyncStateSet -a addrs -b name`: parsed, and the text.
    pub fn sync_state_set(&self, addrs: &str, name: &str) -> (Option<AdminSyncState>, String) {
        let out = self.run(&["getSyncStateSet", "-a", addrs, "-b", name]);
        let s = parse_sync_state_set(&out)
            .into_iter()
            .find(|s| s.broker_name == name);
        (s, out)
    }

    /// `getBrokerEpoch -n ns -b name`: parsed, and the text.
    pub fn broker_epochs(&self, ns: &str, name: &str) -> (Vec<AdminBrokerEpoch>, String) {
        let out = self.run(&["getBrokerEpoch", "-n", ns, "-b", name]);
        (parse_broker_epochs(&out), out)
    }

    /// `electMaster -a addr -c cluster -bn name -b id`: parsed on success,
    /// else the text.
    pub fn elect_master(
        &self,
        addr: &str,
        cluster: &str,
        name: &str,
        id: i64,
    ) -> Result<AdminElect, String> {
        let id = id.to_string();
        let out = self.run(&[
            "electMaster",
            "-a",
            addr,
            "-c",
            cluster,
            "-bn",
            name,
            "-b",
            &id,
        ]);
        if out.contains("command failed") || !out.contains("#BrokerMasterAddr") {
            return Err(out);
        }
        let mut e = AdminElect::default();
        for (k, v) in hash_fields(&out) {
            let n = v.parse::<i64>().unwrap_or(-1);
            match k.as_str() {
                "ClusterName" => e.cluster = v,
                "BrokerName" => e.broker_name = v,
                "BrokerMasterAddr" => e.master_addr = v,
                "MasterEpoch" => e.master_epoch = n,
                "SyncStateSetEpoch" => e.sync_state_set_epoch = n,
                _ => {}
            }
        }
        Ok(e)
    }

    /// `cleanBrokerMetadata -a addr -c cluster -bn name [-b ids] [-l]`: the
    /// text; an error unless it reports success.
    pub fn clean_broker_metadata(
        &self,
        addr: &str,
        cluster: &str,
        name: &str,
        ids: Option<&str>,
        living: bool,
    ) -> Result<String, String> {
        let mut args = vec![
            "cleanBrokerMetadata",
            "-a",
            addr,
            "-c",
            cluster,
            "-bn",
            name,
        ];
        if let Some(ids) = ids {
            args.extend(["-b", ids]);
        }
        if living {
            args.push("-l");
        }
        let out = self.run(&args);
        if out.contains(&format!(
            "clear broker {name} metadata from controller success!"
        )) {
            Ok(out)
        } else {
            Err(out)
        }
    }

    /// `updateControllerConfig -a addrs -k key -v value`: the text; an error
    /// unless it reports success.
    pub fn update_controller_config(
        &self,
        addrs: &str,
        key: &str,
        value: &str,
    ) -> Result<String, String> {
        let out = self.run(&[
            "updateControllerConfig",
            "-a",
            addrs,
            "-k",
            key,
            "-v",
            value,
        ]);
        if out.contains("update controller config success!") && !out.contains("command failed") {
            Ok(out)
        } else {
            Err(out)
        }
    }

    /// `getControllerConfig -a addrs`: address → key → value, and the text.
    pub fn controller_config(
        &self,
        addrs: &str,
    ) -> (BTreeMap<String, BTreeMap<String, String>>, String) {
        let out = self.run(&["getControllerConfig", "-a", addrs]);
        (parse_controller_config(&out), out)
    }

    /// `haStatus -n ns -b brokerAddr`: `#key value` fields, and the text.
    pub fn ha_status(&self, ns: &str, broker_addr: &str) -> (BTreeMap<String, String>, String) {
        let out = self.run(&["haStatus", "-n", ns, "-b", broker_addr]);
        (hash_fields(&out).into_iter().collect(), out)
    }

    /// `updateTopic -b addr` with `queues` queues; panics unless it succeeds.
    pub fn create_topic(&self, ns: &str, topic: &str, queues: u32, broker_addr: &str) {
        if let Err(e) = self
            .java
            .update_topic_on_broker(&self.home, ns, topic, queues, broker_addr)
        {
            panic!("updateTopic {topic} on {broker_addr}: {e}");
        }
    }
}
