//! The official Java broker in controller mode, and routes.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{BROKER_FILE_SIZE, BROKER_NAME, CLUSTER, VERSION};
use crate::{cluster_info, JavaBroker};

/// The keys of a Java broker of [`BROKER_NAME`] in controller mode.
pub fn controller_broker_keys(controller_addrs: &str, extra: &str) -> String {
    format!(
        "brokerClusterName={CLUSTER}\nbrokerName={BROKER_NAME}\nbrokerId=-1\nbrokerRole=SLAVE\n\
         enableControllerMode=true\ncontrollerAddr={controller_addrs}\nallAckInSyncStateSet=true\n\
         mappedFileSizeCommitLog={BROKER_FILE_SIZE}\nslaveReadEnable=true\n{extra}"
    )
}

/// The official Java 5.3.3 broker in controller mode, launched (not waited
/// for): registered with the name servers `namesrv_addrs` (`;`-list).
pub fn controller_broker(namesrv_addrs: &str, controller_addrs: &str, extra: &str) -> JavaBroker {
    JavaBroker::launch(
        VERSION,
        namesrv_addrs,
        &controller_broker_keys(controller_addrs, extra),
    )
}

/// SIGKILLs a Java broker and reaps it.
pub fn kill_broker(b: &mut JavaBroker) {
    b.proc.signal(libc::SIGKILL);
    b.proc.stop(Duration::from_secs(10));
}

/// [`BROKER_NAME`]'s brokers as name server `ns` lists them: id → address.
pub fn route(ns: &str) -> BTreeMap<i64, String> {
    cluster_info(ns)
        .and_then(|info| info.broker_addr_table.get(BROKER_NAME).cloned())
        .map(|bd| bd.broker_addrs)
        .unwrap_or_default()
}
