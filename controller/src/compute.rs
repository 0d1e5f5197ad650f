//! The leader's request handlers as pure functions (Java's
//! `ReplicasInfoManager`, spec controller.md §4): applied state and liveness
//! in, a [`Outcome`] out (code, remark, header fields, body, events). Only the
//! events are logged; nothing here changes state.

use std::collections::BTreeSet;

use remoting::RemotingCommand;

use crate::body::{self, MemberGroup, ReplicaIdentity, ReplicasInfoBody};
use crate::event::Event;
use crate::heartbeat::Heartbeat;
use crate::policy::{self, Liveness};
use crate::state::{ReplicasInfo, FIRST_BROKER_ID};

/// Request and response codes of the controller protocol.
pub mod codes {
    pub const BROKER_HEARTBEAT: i32 = 904;
    pub const ALTER_SYNC_STATE_SET: i32 = 1001;
    pub const ELECT_MASTER: i32 = 1002;
    pub const REGISTER_BROKER: i32 = 1003;
    pub const GET_REPLICA_INFO: i32 = 1004;
    pub const GET_METADATA_INFO: i32 = 1005;
    pub const GET_SYNC_STATE_DATA: i32 = 1006;
    pub const NOTIFY_BROKER_ROLE_CHANGED: i32 = 1008;
    pub const UPDATE_CONTROLLER_CONFIG: i32 = 1009;
    pub const GET_CONTROLLER_CONFIG: i32 = 1010;
    pub const CLEAN_BROKER_DATA: i32 = 1011;
    pub const GET_NEXT_BROKER_ID: i32 = 1012;
    pub const APPLY_BROKER_ID: i32 = 1013;

    pub const SUCCESS: i32 = 0;
    pub const SYSTEM_ERROR: i32 = 1;
    pub const SYSTEM_BUSY: i32 = 2;
    pub const NO_PERMISSION: i32 = 16;
    pub const FENCED_MASTER_EPOCH: i32 = 2000;
    pub const FENCED_SYNC_STATE_SET_EPOCH: i32 = 2001;
    pub const INVALID_MASTER: i32 = 2002;
    pub const INVALID_REPLICAS: i32 = 2003;
    pub const MASTER_NOT_AVAILABLE: i32 = 2004;
    pub const INVALID_REQUEST: i32 = 2005;
    pub const BROKER_NOT_ALIVE: i32 = 2006;
    pub const NOT_LEADER: i32 = 2007;
    pub const BROKER_METADATA_NOT_EXIST: i32 = 2008;
    pub const INVALID_CLEAN_BROKER_METADATA: i32 = 2009;
    pub const BROKER_NEED_TO_BE_REGISTERED: i32 = 2010;
    pub const MASTER_STILL_EXIST: i32 = 2011;
    pub const ELECT_MASTER_FAILED: i32 = 2012;
    pub const ALTER_SYNC_STATE_SET_FAILED: i32 = 2013;
    pub const BROKER_ID_INVALID: i32 = 2014;
}

/// `ControllerResult`: what a handler decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub code: i32,
    pub remark: Option<String>,
    /// Response header fields, in Java's order; null fields are left out.
    pub header: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    pub events: Vec<Event>,
}

impl Outcome {
    fn fail(code: i32, remark: impl Into<String>) -> Self {
        Outcome {
            code,
            remark: Some(remark.into()),
            ..Outcome::default()
        }
    }

    fn with_code(mut self, code: i32, remark: impl Into<String>) -> Self {
        self.code = code;
        self.remark = Some(remark.into());
        self
    }

    fn field(&mut self, key: &'static str, value: impl ToString) {
        self.header.push((key, value.to_string()));
    }

    fn opt(&mut self, key: &'static str, value: Option<impl ToString>) {
        if let Some(v) = value {
            self.field(key, v);
        }
    }

    /// The header field `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.header
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The response frame.
    pub fn into_response(self) -> RemotingCommand {
        let mut cmd = RemotingCommand::response(self.code);
        if let Some(r) = self.remark {
            cmd = cmd.with_remark(r);
        }
        for (k, v) in self.header {
            cmd = cmd.with_ext(k, v);
        }
        if let Some(b) = self.body {
            cmd = cmd.with_body(b);
        }
        cmd
    }
}

/// A header that could not be read (Java: the processor throws → code 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// Reads extFields leniently: numbers may come as strings with spaces, an
/// unparsable optional number is an error naming the key.
pub struct Ext<'a>(pub &'a RemotingCommand);

impl Ext<'_> {
    pub fn str(&self, key: &str) -> Option<String> {
        self.0.ext(key).map(str::to_owned)
    }
    pub fn req_str(&self, key: &str) -> Result<String, BadRequest> {
        self.str(key)
            .ok_or_else(|| BadRequest(format!("the custom field <{key}> is null")))
    }
    pub fn long(&self, key: &str) -> Result<Option<i64>, BadRequest> {
        match self.0.ext(key).map(str::trim) {
            None | Some("") | Some("null") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| BadRequest(format!("{key}: {v:?} is not a long"))),
        }
    }
    pub fn int(&self, key: &str) -> Result<Option<i32>, BadRequest> {
        match self.long(key)? {
            None => Ok(None),
            Some(v) => i32::try_from(v)
                .map(Some)
                .map_err(|_| BadRequest(format!("{key}: {v} is not an int"))),
        }
    }
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.0
            .ext(key)
            .map(|v| v.trim().eq_ignore_ascii_case("true"))
    }
}

/// A leader-only request, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    AlterSyncStateSet {
        broker_name: String,
        master_broker_id: Option<i64>,
        master_epoch: Option<i32>,
        new_set: BTreeSet<i64>,
        new_set_epoch: i32,
    },
    ElectMaster(ElectRequest),
    RegisterBroker {
        cluster_name: String,
        broker_name: String,
        broker_id: Option<i64>,
        broker_address: Option<String>,
    },
    GetReplicaInfo {
        broker_name: String,
    },
    GetSyncStateData {
        broker_names: Vec<String>,
    },
    CleanBrokerData {
        cluster_name: String,
        broker_name: String,
        ids: Option<String>,
        clean_living: bool,
    },
    GetNextBrokerId {
        cluster_name: Option<String>,
        broker_name: String,
    },
    ApplyBrokerId {
        cluster_name: Option<String>,
        broker_name: String,
        applied_broker_id: i64,
        register_check_code: String,
    },
}

/// `ElectMasterRequestHeader`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectRequest {
    pub cluster_name: String,
    pub broker_name: String,
    /// −1 (or absent) for a controller-triggered election.
    pub broker_id: Option<i64>,
    pub designate_elect: bool,
}

impl ElectRequest {
    /// `ElectMasterRequestHeader.ofControllerTrigger`.
    pub fn controller_trigger(broker_name: &str) -> Self {
        ElectRequest {
            cluster_name: String::new(),
            broker_name: broker_name.to_owned(),
            broker_id: Some(-1),
            designate_elect: false,
        }
    }
}

/// Decodes a leader-only request (codes 1001–1004, 1006, 1011–1013).
/// `Ok(None)` for codes that are not leader-only requests; a 1006 without a
/// body is [`Request::GetSyncStateData`] with no names.
pub fn decode(cmd: &RemotingCommand) -> Result<Option<Request>, BadRequest> {
    let e = Ext(cmd);
    let name = || e.str("brokerName").unwrap_or_default();
    Ok(Some(match cmd.code {
        codes::ALTER_SYNC_STATE_SET => {
            let (new_set, new_set_epoch) = body::parse_sync_state_set(&cmd.body)
                .map_err(|m| BadRequest(format!("SyncStateSet body: {m}")))?;
            Request::AlterSyncStateSet {
                broker_name: name(),
                master_broker_id: e.long("masterBrokerId")?,
                master_epoch: e.int("masterEpoch")?,
                new_set,
                new_set_epoch,
            }
        }
        codes::ELECT_MASTER => Request::ElectMaster(ElectRequest {
            cluster_name: e.str("clusterName").unwrap_or_default(),
            broker_name: name(),
            broker_id: e.long("brokerId")?,
            designate_elect: e.bool("designateElect").unwrap_or(false),
        }),
        codes::REGISTER_BROKER => Request::RegisterBroker {
            cluster_name: e.str("clusterName").unwrap_or_default(),
            broker_name: name(),
            broker_id: e.long("brokerId")?,
            broker_address: e.str("brokerAddress"),
        },
        codes::GET_REPLICA_INFO => Request::GetReplicaInfo {
            broker_name: name(),
        },
        codes::GET_SYNC_STATE_DATA => Request::GetSyncStateData {
            broker_names: if cmd.body.is_empty() {
                Vec::new()
            } else {
                body::parse_name_list(&cmd.body)
                    .map_err(|m| BadRequest(format!("broker name list: {m}")))?
            },
        },
        codes::CLEAN_BROKER_DATA => Request::CleanBrokerData {
            cluster_name: e.str("clusterName").unwrap_or_default(),
            broker_name: e.req_str("brokerName")?,
            ids: e
                .str("brokerControllerIdsToClean")
                .or_else(|| e.str("brokerIdSetToClean")),
            clean_living: e.bool("isCleanLivingBroker").unwrap_or(false),
        },
        codes::GET_NEXT_BROKER_ID => Request::GetNextBrokerId {
            cluster_name: e.str("clusterName"),
            broker_name: name(),
        },
        codes::APPLY_BROKER_ID => Request::ApplyBrokerId {
            cluster_name: e.str("clusterName"),
            broker_name: name(),
            applied_broker_id: e
                .long("appliedBrokerId")?
                .ok_or_else(|| BadRequest("the custom field <appliedBrokerId> is null".into()))?,
            register_check_code: e.req_str("registerCheckCode")?,
        },
        _ => return Ok(None),
    }))
}

/// Decodes BROKER_HEARTBEAT (904): absent fields stay `None` (the table
/// fills Java's defaults); a present field that is no number is an error.
pub fn decode_heartbeat(cmd: &RemotingCommand) -> Result<Heartbeat, BadRequest> {
    let e = Ext(cmd);
    Ok(Heartbeat {
        cluster_name: e.str("clusterName").unwrap_or_default(),
        broker_name: e.str("brokerName").unwrap_or_default(),
        broker_addr: e.str("brokerAddr").unwrap_or_default(),
        broker_id: e.long("brokerId")?,
        epoch: e.int("epoch")?,
        max_offset: e.long("maxOffset")?,
        confirm_offset: e.long("confirmOffset")?,
        heartbeat_timeout_ms: e.long("heartbeatTimeoutMills")?,
        election_priority: e.int("electionPriority")?,
    })
}

/// Runs one request against the applied state.
pub fn compute(state: &ReplicasInfo, live: &dyn Liveness, unclean: bool, req: &Request) -> Outcome {
    match req {
        Request::AlterSyncStateSet {
            broker_name,
            master_broker_id,
            master_epoch,
            new_set,
            new_set_epoch,
        } => alter_sync_state_set(
            state,
            live,
            broker_name,
            *master_broker_id,
            *master_epoch,
            new_set,
            *new_set_epoch,
        ),
        Request::ElectMaster(r) => elect_master(state, live, unclean, r),
        Request::RegisterBroker {
            cluster_name,
            broker_name,
            broker_id,
            broker_address,
        } => register_broker(
            state,
            live,
            cluster_name,
            broker_name,
            *broker_id,
            broker_address.as_deref(),
        ),
        Request::GetReplicaInfo { broker_name } => replica_info(state, broker_name),
        Request::GetSyncStateData { broker_names } => sync_state_data(state, live, broker_names),
        Request::CleanBrokerData {
            cluster_name,
            broker_name,
            ids,
            clean_living,
        } => clean_broker_data(
            state,
            live,
            cluster_name,
            broker_name,
            ids.as_deref(),
            *clean_living,
        ),
        Request::GetNextBrokerId {
            cluster_name,
            broker_name,
        } => next_broker_id(state, cluster_name.as_deref(), broker_name),
        Request::ApplyBrokerId {
            cluster_name,
            broker_name,
            applied_broker_id,
            register_check_code,
        } => apply_broker_id(
            state,
            cluster_name.as_deref(),
            broker_name,
            *applied_broker_id,
            register_check_code,
        ),
    }
}

/// 1012 (§4.1).
pub fn next_broker_id(state: &ReplicasInfo, cluster: Option<&str>, name: &str) -> Outcome {
    let mut o = Outcome::default();
    o.opt("clusterName", cluster);
    o.field("brokerName", name);
    let next = state
        .replicas
        .get(name)
        .map_or(FIRST_BROKER_ID, |r| r.next_assign_broker_id);
    o.field("nextBrokerId", next);
    o
}

/// 1013 (§4.2).
pub fn apply_broker_id(
    state: &ReplicasInfo,
    cluster: Option<&str>,
    name: &str,
    id: i64,
    check_code: &str,
) -> Outcome {
    let mut o = Outcome::default();
    o.opt("clusterName", cluster);
    o.field("brokerName", name);
    let event = Event::ApplyBrokerId {
        cluster_name: cluster.map(str::to_owned),
        broker_name: name.to_owned(),
        broker_address: check_code.split(';').next().map(str::to_owned),
        new_broker_id: id,
        register_check_code: Some(check_code.to_owned()),
    };
    let Some(replicas) = state.replicas.get(name) else {
        if id == FIRST_BROKER_ID {
            o.events.push(event);
            return o;
        }
        return o.with_code(
            codes::BROKER_ID_INVALID,
            format!(
                "Broker-set: {name} hasn't been registered in controller, but broker try to apply brokerId: {id}"
            ),
        );
    };
    let accepted = match replicas.members.get(&id) {
        None => true,
        Some(m) => m.register_check_code.as_deref() == Some(check_code),
    };
    if accepted {
        o.events.push(event);
        return o;
    }
    o.with_code(
        codes::BROKER_ID_INVALID,
        format!("Fail to apply brokerId: {id} in broker-set: {name}"),
    )
}

/// 1003 (§4.3).
pub fn register_broker(
    state: &ReplicasInfo,
    live: &dyn Liveness,
    cluster: &str,
    name: &str,
    id: Option<i64>,
    address: Option<&str>,
) -> Outcome {
    let mut o = Outcome::default();
    o.field("clusterName", cluster);
    o.field("brokerName", name);
    let Some((replicas, sync)) = state.get(name) else {
        return o.with_code(
            codes::BROKER_NEED_TO_BE_REGISTERED,
            format!("Broker-set: {name} hasn't been registered in controller"),
        );
    };
    let Some(id) = id.filter(|id| replicas.members.contains_key(id)) else {
        let shown = id.map_or("null".to_owned(), |i| i.to_string());
        return o.with_code(
            codes::BROKER_NEED_TO_BE_REGISTERED,
            format!("BrokerId: {shown} hasn't been registered in broker-set: {name}"),
        );
    };
    if let Some(master) = sync.master_broker_id {
        if live.is_alive(cluster, name, master) {
            o.field("masterBrokerId", master);
            o.opt("masterAddress", replicas.address(Some(master)));
            o.field("masterEpoch", sync.master_epoch);
            o.field("syncStateSetEpoch", sync.sync_state_set_epoch);
        }
    }
    o.body = Some(body::sync_state_set(
        &sync.sync_state_set,
        sync.sync_state_set_epoch,
    ));
    if address != replicas.address(Some(id)) {
        o.events.push(Event::UpdateBrokerAddress {
            cluster_name: Some(cluster.to_owned()),
            broker_name: name.to_owned(),
            broker_address: address.map(str::to_owned),
            broker_id: id,
        });
    }
    o
}

/// 1004 (§4.6).
pub fn replica_info(state: &ReplicasInfo, name: &str) -> Outcome {
    let Some((replicas, sync)) = state.get(name) else {
        return Outcome::fail(
            codes::BROKER_METADATA_NOT_EXIST,
            "Broker metadata is not existed",
        );
    };
    let mut o = Outcome::default();
    o.opt("masterBrokerId", sync.master_broker_id);
    o.opt("masterAddress", replicas.address(sync.master_broker_id));
    o.field("masterEpoch", sync.master_epoch);
    o.body = Some(body::sync_state_set(
        &sync.sync_state_set,
        sync.sync_state_set_epoch,
    ));
    o
}

/// 1006 (§4.7). No names → code 1 as Java's `createResponseCommand(null)`.
pub fn sync_state_data(state: &ReplicasInfo, live: &dyn Liveness, names: &[String]) -> Outcome {
    if names.is_empty() {
        return Outcome::fail(codes::SYSTEM_ERROR, "not set any response code");
    }
    let mut table: Vec<(String, ReplicasInfoBody)> = Vec::new();
    for name in names {
        if table.iter().any(|(n, _)| n == name) {
            continue;
        }
        let Some((replicas, sync)) = state.get(name) else {
            continue;
        };
        let mut info = ReplicasInfoBody {
            master_broker_id: sync.master_broker_id,
            master_address: replicas.address(sync.master_broker_id).map(str::to_owned),
            master_epoch: sync.master_epoch,
            sync_state_set_epoch: sync.sync_state_set_epoch,
            in_sync: Vec::new(),
            not_in_sync: Vec::new(),
        };
        for (id, m) in &replicas.members {
            let r = ReplicaIdentity {
                broker_name: name.clone(),
                broker_id: *id,
                broker_address: m.address.clone(),
                alive: live.is_alive(replicas.cluster(), name, *id),
            };
            if sync.sync_state_set.contains(id) {
                info.in_sync.push(r);
            } else {
                info.not_in_sync.push(r);
            }
        }
        table.push((name.clone(), info));
    }
    Outcome {
        body: Some(body::broker_replicas_info(&table)),
        ..Outcome::default()
    }
}

/// 1011 (§4.8).
pub fn clean_broker_data(
    state: &ReplicasInfo,
    live: &dyn Liveness,
    cluster: &str,
    name: &str,
    ids: Option<&str>,
    clean_living: bool,
) -> Outcome {
    let ids = ids.filter(|s| !s.trim().is_empty());
    let mut id_set: Option<BTreeSet<i64>> = None;
    if let Some(text) = ids {
        let mut set = BTreeSet::new();
        for part in text.split(';') {
            match part.trim().parse::<i64>() {
                Ok(id) => {
                    set.insert(id);
                }
                Err(_) => {
                    return Outcome::fail(
                        codes::INVALID_CLEAN_BROKER_METADATA,
                        format!("java.lang.NumberFormatException: For input string: \"{part}\""),
                    )
                }
            }
        }
        id_set = Some(set);
    }
    if !clean_living {
        if id_set.is_none()
            && state
                .sync_states
                .get(name)
                .is_some_and(|s| s.master_broker_id.is_some())
        {
            return Outcome::fail(
                codes::INVALID_CLEAN_BROKER_METADATA,
                format!("Broker {name} is still alive, clean up failure"),
            );
        }
        for id in id_set.iter().flatten() {
            if live.is_alive(cluster, name, *id) {
                return Outcome::fail(
                    codes::INVALID_CLEAN_BROKER_METADATA,
                    format!("Broker [{name},  {id}] is still alive, clean up failure"),
                );
            }
        }
    }
    if state.contains(name) {
        return Outcome {
            events: vec![Event::CleanBrokerData {
                broker_name: name.to_owned(),
                broker_id_set_to_clean: id_set,
            }],
            ..Outcome::default()
        };
    }
    Outcome::fail(
        codes::INVALID_CLEAN_BROKER_METADATA,
        format!("Broker {name} is not existed,clean broker data failure."),
    )
}

/// 1001 (§4.5), checks in Java's order.
pub fn alter_sync_state_set(
    state: &ReplicasInfo,
    live: &dyn Liveness,
    name: &str,
    master_broker_id: Option<i64>,
    master_epoch: Option<i32>,
    new_set: &BTreeSet<i64>,
    new_set_epoch: i32,
) -> Outcome {
    let mut o = Outcome::default();
    // Primitive int: present on errors too, as 0.
    o.field("newSyncStateSetEpoch", 0);
    let Some((replicas, sync)) = state.get(name) else {
        return o.with_code(
            codes::ALTER_SYNC_STATE_SET_FAILED,
            "Broker metadata is not existed",
        );
    };
    if &sync.sync_state_set == new_set {
        return o.with_code(
            codes::ALTER_SYNC_STATE_SET_FAILED,
            "The newSyncStateSet is equal with oldSyncStateSet, no needed to update syncStateSet",
        );
    }
    let show = |v: Option<i64>| v.map_or("null".to_owned(), |v| v.to_string());
    if sync.master_broker_id.is_none() || sync.master_broker_id != master_broker_id {
        return o.with_code(
            codes::INVALID_MASTER,
            format!(
                "Rejecting alter syncStateSet request because the current leader is:{{{}}}, not {{{}}}",
                show(sync.master_broker_id),
                show(master_broker_id)
            ),
        );
    }
    if master_epoch != Some(sync.master_epoch) {
        return o.with_code(
            codes::FENCED_MASTER_EPOCH,
            format!(
                "Rejecting alter syncStateSet request because the current master epoch is:{{{}}}, not {{{}}}",
                sync.master_epoch,
                show(master_epoch.map(i64::from))
            ),
        );
    }
    if new_set_epoch != sync.sync_state_set_epoch {
        return o.with_code(
            codes::FENCED_SYNC_STATE_SET_EPOCH,
            format!(
                "Rejecting alter syncStateSet request because the current syncStateSet epoch is:{{{}}}, not {{{}}}",
                sync.sync_state_set_epoch, new_set_epoch
            ),
        );
    }
    for id in new_set {
        if !replicas.members.contains_key(id) {
            return o.with_code(
                codes::INVALID_REPLICAS,
                format!("Rejecting alter syncStateSet request because the replicas {{{id}}} don't exist"),
            );
        }
        if !live.is_alive(replicas.cluster(), name, *id) {
            return o.with_code(
                codes::BROKER_NOT_ALIVE,
                format!("Rejecting alter syncStateSet request because the replicas {{{id}}} don't alive"),
            );
        }
    }
    let master = sync.master_broker_id.unwrap_or(-1);
    if !new_set.contains(&master) {
        return o.with_code(
            codes::ALTER_SYNC_STATE_SET_FAILED,
            format!("Rejecting alter syncStateSet request because the newSyncStateSet don't contains origin leader {{{master}}}"),
        );
    }
    let epoch = sync.sync_state_set_epoch.wrapping_add(1);
    let mut o = Outcome::default();
    o.field("newSyncStateSetEpoch", epoch);
    o.body = Some(body::sync_state_set(new_set, epoch));
    o.events.push(Event::AlterSyncStateSet {
        broker_name: name.to_owned(),
        new_sync_state_set: new_set.clone(),
    });
    o
}

/// The member group sent with a successful election (all registered members).
pub fn member_group(state: &ReplicasInfo, name: &str) -> Option<MemberGroup> {
    let r = state.replicas.get(name)?;
    Some(MemberGroup {
        cluster: r.cluster_name.clone(),
        broker_name: name.to_owned(),
        broker_addrs: r
            .members
            .iter()
            .filter_map(|(id, m)| m.address.clone().map(|a| (*id, a)))
            .collect(),
    })
}

/// 1002 (§4.4).
pub fn elect_master(
    state: &ReplicasInfo,
    live: &dyn Liveness,
    unclean: bool,
    req: &ElectRequest,
) -> Outcome {
    let name = req.broker_name.as_str();
    let Some((replicas, sync)) = state.get(name) else {
        return Outcome::fail(
            codes::BROKER_NEED_TO_BE_REGISTERED,
            "Broker hasn't been registered",
        );
    };
    let all: Option<BTreeSet<i64>> = unclean.then(|| replicas.members.keys().copied().collect());
    let old_master = sync.master_broker_id;
    let mut new_master = if sync.first_time_for_elect() {
        req.broker_id
    } else {
        None
    };
    if new_master.is_none() || new_master == Some(-1) {
        let preferred = if req.designate_elect {
            req.broker_id
        } else {
            None
        };
        new_master = policy::elect(
            live,
            replicas.cluster(),
            name,
            &sync.sync_state_set,
            all.as_ref(),
            old_master,
            preferred,
        );
    }
    let mut o = Outcome::default();
    if let Some(m) = new_master {
        if Some(m) == old_master {
            o.field("masterBrokerId", m);
            o.opt("masterAddress", replicas.address(Some(m)));
            o.field("masterEpoch", sync.master_epoch);
            o.field("syncStateSetEpoch", sync.sync_state_set_epoch);
            o.body = Some(body::elect_master_body(None, &sync.sync_state_set));
            return o.with_code(
                codes::MASTER_STILL_EXIST,
                format!(
                    "The old master {m} is still alive, not need to elect new master for broker {name}"
                ),
            );
        }
        o.field("masterBrokerId", m);
        o.opt("masterAddress", replicas.address(Some(m)));
        o.field("masterEpoch", sync.master_epoch.wrapping_add(1));
        o.field(
            "syncStateSetEpoch",
            sync.sync_state_set_epoch.wrapping_add(1),
        );
        o.body = Some(body::elect_master_body(
            member_group(state, name).as_ref(),
            &BTreeSet::from([m]),
        ));
        o.events.push(Event::ElectMaster {
            broker_name: name.to_owned(),
            new_master_broker_id: Some(m),
            new_master_elected: true,
        });
        return o;
    }
    if req.broker_id.is_none() || req.broker_id == Some(-1) {
        o.events.push(Event::ElectMaster {
            broker_name: name.to_owned(),
            new_master_broker_id: None,
            new_master_elected: false,
        });
        return o.with_code(
            codes::MASTER_NOT_AVAILABLE,
            "Old master has down and failed to elect a new broker master",
        );
    }
    o.with_code(codes::ELECT_MASTER_FAILED, "Failed to elect a new master")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::policy::tests::FakeLive;

    fn run(s: &mut ReplicasInfo, live: &dyn Liveness, req: &Request) -> Outcome {
        let o = compute(s, live, false, req);
        for e in &o.events {
            s.apply(e);
        }
        o
    }

    fn apply(name: &str, id: i64, code: &str) -> Request {
        Request::ApplyBrokerId {
            cluster_name: Some("c".into()),
            broker_name: name.into(),
            applied_broker_id: id,
            register_check_code: code.into(),
        }
    }

    fn next(s: &ReplicasInfo) -> String {
        next_broker_id(s, Some("c"), "b")
            .get("nextBrokerId")
            .unwrap()
            .to_owned()
    }

    fn elect(id: Option<i64>, designate: bool) -> Request {
        Request::ElectMaster(ElectRequest {
            cluster_name: "c".into(),
            broker_name: "b".into(),
            broker_id: id,
            designate_elect: designate,
        })
    }

    /// Two members registered, nobody elected yet.
    fn two_members() -> ReplicasInfo {
        let mut s = ReplicasInfo::default();
        let l = FakeLive::default();
        assert_eq!(run(&mut s, &l, &apply("b", 1, "a:1;1")).code, 0);
        assert_eq!(run(&mut s, &l, &apply("b", 2, "a:2;1")).code, 0);
        s
    }

    #[test]
    fn id_allocation() {
        let mut s = ReplicasInfo::default();
        let l = FakeLive::default();
        assert_eq!(next(&s), "1");
        // First id of an unknown set must be 1.
        let o = run(&mut s, &l, &apply("b", 2, "a:2;1"));
        assert_eq!(o.code, codes::BROKER_ID_INVALID);
        assert!(o.events.is_empty());
        let o = run(&mut s, &l, &apply("b", 1, "a:1;1"));
        assert_eq!((o.code, o.get("brokerName")), (0, Some("b")));
        assert_eq!(next(&s), "2");
        // Retry with the same check code: accepted, nothing changes.
        let o = run(&mut s, &l, &apply("b", 1, "a:1;1"));
        assert_eq!(o.code, 0);
        assert_eq!(next(&s), "2");
        // Another broker claiming id 1: refused.
        let o = run(&mut s, &l, &apply("b", 1, "a:9;1"));
        assert_eq!(o.code, codes::BROKER_ID_INVALID);
        assert_eq!(
            o.remark.as_deref(),
            Some("Fail to apply brokerId: 1 in broker-set: b")
        );
        assert_eq!(run(&mut s, &l, &apply("b", 2, "a:2;1")).code, 0);
        assert_eq!(next(&s), "3");
        assert_eq!(s.replicas["b"].members[&2].address.as_deref(), Some("a:2"));
    }

    #[test]
    fn first_election_takes_the_requester_without_liveness() {
        let mut s = two_members();
        let nobody = FakeLive::default();
        let o = run(&mut s, &nobody, &elect(Some(2), false));
        assert_eq!(o.code, 0);
        assert_eq!(o.get("masterBrokerId"), Some("2"));
        assert_eq!(o.get("masterAddress"), Some("a:2"));
        assert_eq!(o.get("masterEpoch"), Some("1"));
        assert_eq!(o.get("syncStateSetEpoch"), Some("1"));
        assert_eq!(
            String::from_utf8(o.body.unwrap()).unwrap(),
            r#"{"brokerMemberGroup":{"brokerAddrs":{1:"a:1",2:"a:2"},"brokerName":"b","cluster":"c"},"syncStateSet":[2]}"#
        );
        assert_eq!(s.sync_states["b"].master_broker_id, Some(2));
    }

    #[test]
    fn reelect_alive_master_is_2011_and_dead_master_2004_or_2012() {
        let mut s = two_members();
        let l1 = FakeLive::default().with(1, 1, 0, 0);
        assert_eq!(run(&mut s, &l1, &elect(Some(1), false)).code, 0);
        let o = run(&mut s, &l1, &elect(Some(2), false));
        assert_eq!(o.code, codes::MASTER_STILL_EXIST);
        assert_eq!(o.get("masterEpoch"), Some("1"));
        assert_eq!(o.body.as_deref(), Some(&br#"{"syncStateSet":[1]}"#[..]));
        assert!(o.events.is_empty());
        // Master dead, nobody else in the set: broker-triggered → 2012,
        // nothing logged.
        let nobody = FakeLive::default();
        let o = run(&mut s, &nobody, &elect(Some(2), false));
        assert_eq!(o.code, codes::ELECT_MASTER_FAILED);
        assert!(o.events.is_empty());
        // Controller-triggered → 2004 and a "no master" event.
        let o = run(
            &mut s,
            &nobody,
            &Request::ElectMaster(ElectRequest::controller_trigger("b")),
        );
        assert_eq!(o.code, codes::MASTER_NOT_AVAILABLE);
        assert_eq!(o.events.len(), 1);
        let st = &s.sync_states["b"];
        assert_eq!(
            (
                st.master_broker_id,
                st.master_epoch,
                st.sync_state_set_epoch
            ),
            (None, 2, 1)
        );
        // Unclean: id 2 alive outside the set.
        let l2 = FakeLive::default().with(2, 1, 0, 0);
        let o = compute(&s, &l2, true, &elect(Some(2), false));
        assert_eq!((o.code, o.get("masterBrokerId")), (0, Some("2")));
        assert_eq!(
            compute(&s, &l2, false, &elect(Some(2), false)).code,
            codes::ELECT_MASTER_FAILED
        );
        // Unknown set.
        let o = compute(&ReplicasInfo::default(), &l2, false, &elect(Some(2), false));
        assert_eq!(o.code, codes::BROKER_NEED_TO_BE_REGISTERED);
    }

    #[test]
    fn designated_election() {
        let mut s = two_members();
        let both = FakeLive::default().with(1, 1, 0, 0).with(2, 1, 0, 0);
        run(&mut s, &both, &elect(Some(1), false));
        run(
            &mut s,
            &both,
            &Request::AlterSyncStateSet {
                broker_name: "b".into(),
                master_broker_id: Some(1),
                master_epoch: Some(1),
                new_set: BTreeSet::from([1, 2]),
                new_set_epoch: 1,
            },
        );
        let o = run(&mut s, &both, &elect(Some(2), true));
        assert_eq!((o.code, o.get("masterBrokerId")), (0, Some("2")));
        assert_eq!(o.get("masterEpoch"), Some("2"));
        assert_eq!(o.get("syncStateSetEpoch"), Some("3"));
    }

    fn alter(master: i64, epoch: i32, set: &[i64], set_epoch: i32) -> Request {
        Request::AlterSyncStateSet {
            broker_name: "b".into(),
            master_broker_id: Some(master),
            master_epoch: Some(epoch),
            new_set: set.iter().copied().collect(),
            new_set_epoch: set_epoch,
        }
    }

    #[test]
    fn alter_check_order_and_epochs() {
        let mut s = ReplicasInfo::default();
        let l = FakeLive::default().with(1, 1, 0, 0).with(2, 1, 0, 0);
        // Unknown set.
        assert_eq!(run(&mut s, &l, &alter(1, 1, &[1, 2], 1)).code, 2013);
        s = two_members();
        run(&mut s, &l, &elect(Some(1), false));
        // Same set → 2013 before anything else (even a wrong master).
        assert_eq!(run(&mut s, &l, &alter(9, 9, &[1], 9)).code, 2013);
        assert_eq!(run(&mut s, &l, &alter(2, 9, &[1, 2], 9)).code, 2002);
        assert_eq!(run(&mut s, &l, &alter(1, 9, &[1, 2], 9)).code, 2000);
        assert_eq!(run(&mut s, &l, &alter(1, 1, &[1, 2], 9)).code, 2001);
        assert_eq!(run(&mut s, &l, &alter(1, 1, &[1, 3], 1)).code, 2003);
        let only1 = FakeLive::default().with(1, 1, 0, 0);
        assert_eq!(run(&mut s, &only1, &alter(1, 1, &[1, 2], 1)).code, 2006);
        assert_eq!(run(&mut s, &l, &alter(1, 1, &[2], 1)).code, 2013);
        let o = run(&mut s, &l, &alter(1, 1, &[1, 2], 1));
        assert_eq!(o.code, 0);
        assert_eq!(o.get("newSyncStateSetEpoch"), Some("2"));
        assert_eq!(
            o.body.as_deref(),
            Some(&br#"{"syncStateSet":[1,2],"syncStateSetEpoch":2}"#[..])
        );
        assert_eq!(s.sync_states["b"].sync_state_set_epoch, 2);
        // Errors carry the primitive header as 0.
        let o = run(&mut s, &l, &alter(1, 1, &[1, 2], 1));
        assert_eq!(o.get("newSyncStateSetEpoch"), Some("0"));
    }

    #[test]
    fn register_and_replica_info() {
        let mut s = two_members();
        let nobody = FakeLive::default();
        let reg = |id: i64, addr: &str| Request::RegisterBroker {
            cluster_name: "c".into(),
            broker_name: "b".into(),
            broker_id: Some(id),
            broker_address: Some(addr.into()),
        };
        let o = run(&mut s, &nobody, &reg(1, "a:1"));
        assert_eq!(o.code, 0);
        assert_eq!(o.get("masterBrokerId"), None);
        assert_eq!(
            o.body.as_deref(),
            Some(&br#"{"syncStateSet":[],"syncStateSetEpoch":0}"#[..])
        );
        assert!(o.events.is_empty());
        assert_eq!(run(&mut s, &nobody, &reg(7, "a:7")).code, 2010);
        run(&mut s, &nobody, &elect(Some(1), false));
        // Master not alive here: no master fields.
        assert_eq!(
            run(&mut s, &nobody, &reg(2, "a:2")).get("masterBrokerId"),
            None
        );
        let l = FakeLive::default().with(1, 1, 0, 0);
        let o = run(&mut s, &l, &reg(2, "new:2"));
        assert_eq!(o.get("masterAddress"), Some("a:1"));
        assert_eq!(o.events.len(), 1);
        assert_eq!(
            s.replicas["b"].members[&2].address.as_deref(),
            Some("new:2")
        );
        let o = replica_info(&s, "b");
        assert_eq!(o.get("masterBrokerId"), Some("1"));
        assert_eq!(o.get("masterEpoch"), Some("1"));
        assert_eq!(replica_info(&s, "x").code, 2008);
    }

    #[test]
    fn clean_rules() {
        let mut s = two_members();
        let l = FakeLive::default().with(1, 1, 0, 0);
        run(&mut s, &l, &elect(Some(1), false));
        let clean = |ids: Option<&str>, living: bool| Request::CleanBrokerData {
            cluster_name: "c".into(),
            broker_name: "b".into(),
            ids: ids.map(str::to_owned),
            clean_living: living,
        };
        assert_eq!(run(&mut s, &l, &clean(None, false)).code, 2009);
        assert_eq!(run(&mut s, &l, &clean(Some("1"), false)).code, 2009);
        assert_eq!(run(&mut s, &l, &clean(Some("x"), false)).code, 2009);
        assert_eq!(run(&mut s, &l, &clean(Some("2"), false)).code, 0);
        assert_eq!(s.replicas["b"].members.len(), 1);
        assert_eq!(run(&mut s, &l, &clean(None, true)).code, 0);
        assert!(!s.contains("b"));
        let o = run(&mut s, &l, &clean(None, true));
        assert_eq!(
            o.remark.as_deref(),
            Some("Broker b is not existed,clean broker data failure.")
        );
    }

    #[test]
    fn sync_state_data_body() {
        let mut s = two_members();
        let l = FakeLive::default().with(1, 1, 0, 0);
        run(&mut s, &l, &elect(Some(1), false));
        let o = sync_state_data(&s, &l, &["b".into(), "zz".into()]);
        assert_eq!(
            String::from_utf8(o.body.unwrap()).unwrap(),
            r#"{"replicasInfoTable":{"b":{"inSyncReplicas":[{"alive":true,"brokerAddress":"a:1","brokerId":1,"brokerName":"b"}],"masterAddress":"a:1","masterBrokerId":1,"masterEpoch":1,"notInSyncReplicas":[{"alive":false,"brokerAddress":"a:2","brokerId":2,"brokerName":"b"}],"syncStateSetEpoch":1}}}"#
        );
        assert_eq!(sync_state_data(&s, &l, &[]).code, 1);
    }

    #[test]
    fn decode_is_lenient_and_never_panics() {
        let mut cmd = RemotingCommand::request(codes::APPLY_BROKER_ID);
        assert!(decode(&cmd).is_err());
        cmd = cmd
            .with_ext("brokerName", "b")
            .with_ext("appliedBrokerId", " 2 ")
            .with_ext("registerCheckCode", "a:1;5");
        assert!(matches!(
            decode(&cmd).unwrap(),
            Some(Request::ApplyBrokerId {
                applied_broker_id: 2,
                ..
            })
        ));
        let bad = RemotingCommand::request(codes::ELECT_MASTER).with_ext("brokerId", "x");
        assert!(decode(&bad).is_err());
        let alter = RemotingCommand::request(codes::ALTER_SYNC_STATE_SET).with_body(&b"{"[..]);
        assert!(decode(&alter).is_err());
        assert_eq!(decode(&RemotingCommand::request(904)).unwrap(), None);
    }
}
