//! The DLedger server's options from the broker's keys, and the append hook
//! that writes PHYSICALOFFSET into each stored entry.

use std::sync::Arc;

use anyhow::Context;
use dledger::config::DLedgerConfig;
use dledger::server::{ServerOptions, SharedAppendHook};
use dledger::store::StoreConfig as DLedgerStoreConfig;

use crate::config::BrokerConfig;

/// `n2` → 2: the number after the first character of `dLegerSelfId`.
pub fn self_id_number(self_id: &str) -> Option<i64> {
    let mut chars = self_id.chars();
    chars.next()?;
    chars.as_str().parse().ok()
}

/// DLedger server options from the broker's keys (docs/protocol/dledger.md §4.1).
pub fn server_options(config: &BrokerConfig) -> anyhow::Result<ServerOptions> {
    let self_id = config.d_leger_self_id.trim();
    if self_id_number(self_id).is_none() {
        anyhow::bail!("dLegerSelfId {self_id:?} must be one letter and a number (e.g. n0)");
    }
    let group = if config.d_leger_group.is_empty() {
        config.broker_name.clone()
    } else {
        config.d_leger_group.clone()
    };
    let mut dl = DLedgerConfig::new(&group, self_id, &config.d_leger_peers)
        .context("dLegerPeers / dLegerSelfId")?;
    if !config.preferred_leader_id.trim().is_empty() {
        dl.preferred_leader_ids = Some(
            config
                .preferred_leader_id
                .split(';')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        );
    }
    if config.d_leger_java_timers {
        dl.use_java_timers();
    }
    let timer = |v: i64, key: &str| -> anyhow::Result<Option<u64>> {
        match v {
            0 => Ok(None),
            v if v > 0 => Ok(Some(v as u64)),
            _ => anyhow::bail!("{key} must be positive, got {v}"),
        }
    };
    if let Some(v) = timer(
        config.heart_beat_time_interval_ms,
        "heartBeatTimeIntervalMs",
    )? {
        dl.heart_beat_time_interval_ms = v;
    }
    if let Some(v) = timer(config.max_heart_beat_leak, "maxHeartBeatLeak")? {
        dl.max_heart_beat_leak = v;
    }
    if let Some(v) = timer(config.min_vote_interval_ms, "minVoteIntervalMs")? {
        dl.min_vote_interval_ms = v;
    }
    if let Some(v) = timer(config.max_vote_interval_ms, "maxVoteIntervalMs")? {
        dl.max_vote_interval_ms = v;
    }
    if let Some(v) = timer(config.vote_wait_base_ms, "voteWaitBaseMs")? {
        dl.vote_wait_base_ms = v;
    }
    if dl.min_vote_interval_ms > dl.max_vote_interval_ms {
        anyhow::bail!("minVoteIntervalMs must not exceed maxVoteIntervalMs");
    }
    let mut st = DLedgerStoreConfig::new(config.store_root(), self_id);
    st.mapped_file_size_for_entry_data =
        usize::try_from(config.mapped_file_size_commit_log).context("mappedFileSizeCommitLog")?;
    st.file_reserved_hours = (config.file_reserved_time.max(0) as u64) + 1;
    let mut opts = ServerOptions::new(dl, st);
    opts.append_hook = Some(SharedAppendHook(Arc::new(physical_offset_hook)));
    if let Ok(ip) = config.bind_address.parse() {
        if config.bind_address != "0.0.0.0" {
            opts.bind = Some(ip);
        }
    }
    Ok(opts)
}

/// Java's DLedgerCommitLog append hook: PHYSICALOFFSET = the body's
/// data-log position (entry pos + 48).
fn physical_offset_hook(body: &mut [u8], body_pos: i64) {
    const AT: usize = store::record::POS_PHYSICAL_OFFSET;
    if let Some(field) = body.get_mut(AT..AT + 8) {
        field.copy_from_slice(&body_pos.to_be_bytes());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn self_id_numbers() {
        assert_eq!(self_id_number("n0"), Some(0));
        assert_eq!(self_id_number("n12"), Some(12));
        assert_eq!(self_id_number("n"), None);
        assert_eq!(self_id_number("n-1x"), None);
    }

    #[test]
    fn options_from_broker_keys() {
        let mut c = BrokerConfig::default();
        c.apply(&remoting::properties::parse(
            "brokerName=b\nenableDLegerCommitLog=true\ndLegerGroup=g\ndLegerSelfId=n1\n\
             dLegerPeers=n0-127.0.0.1:40911;n1-127.0.0.1:40912;n2-127.0.0.1:40913\n\
             storePathRootDir=/tmp/x\nmappedFileSizeCommitLog=65536\npreferredLeaderId=n2\n",
        ))
        .unwrap();
        let o = server_options(&c).unwrap();
        assert_eq!(o.config.group, "g");
        assert_eq!(o.config.self_id, "n1");
        assert_eq!(o.config.peers.len(), 3);
        assert_eq!(o.config.preferred_leader_ids, Some(vec!["n2".to_owned()]));
        assert_eq!(o.store.mapped_file_size_for_entry_data, 65536);
        assert_eq!(
            o.store.default_path(),
            std::path::PathBuf::from("/tmp/x/dledger-n1")
        );
        assert_eq!(o.config.timers(), dledger::config::OUR_TIMERS);
        c.d_leger_self_id = "x".into();
        assert!(server_options(&c).is_err());
    }

    #[test]
    fn timer_keys_and_the_java_switch() {
        let base = "brokerName=b\nenableDLegerCommitLog=true\ndLegerSelfId=n0\n\
                    dLegerPeers=n0-127.0.0.1:40911;n1-127.0.0.1:40912\n";
        let opts = |extra: &str| {
            let mut c = BrokerConfig::default();
            c.apply(&remoting::properties::parse(&format!("{base}{extra}")))
                .unwrap();
            server_options(&c)
        };
        let java = opts("dLegerJavaTimers=true\n").unwrap();
        assert_eq!(java.config.timers(), dledger::config::JAVA_TIMERS);
        let keys = opts(
            "heartBeatTimeIntervalMs=2000\nmaxHeartBeatLeak=4\nminVoteIntervalMs=300\n\
             maxVoteIntervalMs=1000\nvoteWaitBaseMs=1500\n",
        )
        .unwrap();
        let t = keys.config.timers();
        assert_eq!(
            (t.heart_beat_time_interval_ms, t.max_heart_beat_leak),
            (2000, 4)
        );
        assert_eq!(
            (
                t.min_vote_interval_ms,
                t.max_vote_interval_ms,
                t.vote_wait_base_ms
            ),
            (300, 1000, 1500)
        );
        assert!(opts("heartBeatTimeIntervalMs=-5\n").is_err());
        assert!(opts("minVoteIntervalMs=900\nmaxVoteIntervalMs=100\n").is_err());
    }
}
