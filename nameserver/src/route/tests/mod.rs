//! Unit tests of the route table: the fixtures every file shares, then one
//! file per part of the table.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::register_body::RegisterPayload;
use remoting::body::{TopicConfig, TopicConfigSerializeWrapper};

mod admin;
mod liveness;
mod query;
mod register;

const T0: i64 = 1_700_000_000_000;

const OPTS: RouteOptions = RouteOptions {
    delete_topic_with_broker_registration: false,
    support_acting_master: false,
};

fn dv(counter: i64) -> DataVersion {
    DataVersion {
        counter,
        state_version: 0,
        timestamp: T0,
    }
}

fn payload(counter: i64, topics: &[(&str, i32)]) -> RegisterPayload {
    let mut wrapper = TopicConfigSerializeWrapper {
        data_version: dv(counter),
        ..Default::default()
    };
    for (name, queues) in topics {
        wrapper.topic_config_table.insert(
            (*name).to_owned(),
            TopicConfig::new(*name, *queues, *queues, 6),
        );
    }
    RegisterPayload {
        wrapper,
        filter_server_list: Some(vec![]),
        mapping_info: BTreeMap::new(),
    }
}

fn reg(name: &str, id: i64, addr: &str, payload: RegisterPayload) -> RegisterBroker {
    RegisterBroker {
        cluster_name: "DefaultCluster".into(),
        broker_addr: addr.into(),
        broker_name: name.into(),
        broker_id: id,
        ha_server_addr: format!("{addr}-ha"),
        payload: payload.into(),
        ..Default::default()
    }
}

/// Broker `name`/`id` at `addr` registers `topics` at data version 1 over
/// connection `conn`, at `T0` under the default options.
fn register(
    t: &mut RouteTable,
    name: &str,
    id: i64,
    addr: &str,
    topics: &[(&str, i32)],
    conn: ConnId,
) -> Option<RegisterBrokerResult> {
    t.register_broker(reg(name, id, addr, payload(1, topics)), conn, T0, OPTS)
}

fn addr(a: &str) -> BrokerAddrInfo {
    BrokerAddrInfo::new("DefaultCluster", a)
}
