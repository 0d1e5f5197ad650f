//! Broker config (get, update) and runtime info.

use std::collections::BTreeMap;

use remoting::body::{to_json, KvTable};
use remoting::RemotingCommand;
use store::MessageStore;

use super::{success_with_json, AdminProcessor};
use crate::error::BrokerError;
use crate::processor::read_config;

impl AdminProcessor {
    pub fn broker_config(&self) -> Result<RemotingCommand, BrokerError> {
        let text = read_config(&self.config).to_properties_text();
        let version = self
            .config_version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Ok(RemotingCommand::success()
            .with_ext(
                "version",
                String::from_utf8_lossy(&to_json(&version)).into_owned(),
            )
            .with_body(text.into_bytes()))
    }

    /// Keys that cannot change at runtime (Java `configBlackList`) are refused.
    pub fn update_broker_config(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let text = String::from_utf8_lossy(&req.body);
        let props = remoting::properties::parse(&text);
        const FIXED: &[&str] = &[
            "brokerConfigPath",
            "configBlackList",
            "storePathRootDir",
            "storePathCommitLog",
            "listenPort",
            "brokerName",
            "brokerClusterName",
            "brokerId",
        ];
        if let Some(k) = props.keys().find(|k| FIXED.contains(&k.as_str())) {
            return Err(BrokerError::NoPermission(format!(
                "Can not update config in black list: {k}"
            )));
        }
        {
            let mut cfg = self.config.write().unwrap_or_else(|p| p.into_inner());
            let mut updated = cfg.clone();
            for (k, v) in &props {
                match updated.set(k, v) {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(key = %k, "update broker config: unknown key ignored")
                    }
                    Err(e) => return Err(BrokerError::System(e.to_string())),
                }
            }
            *cfg = updated;
        }
        self.config_version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next();
        tracing::info!(keys = ?props.keys().collect::<Vec<_>>(), "broker config updated");
        self.register_now.notify_one();
        Ok(RemotingCommand::success())
    }

    pub fn runtime_info(&self) -> Result<RemotingCommand, BrokerError> {
        let s = &self.stats;
        let load = |a: &std::sync::atomic::AtomicU64| {
            a.load(std::sync::atomic::Ordering::Relaxed).to_string()
        };
        let puts = load(&s.put_count);
        let gets = load(&s.get_transferred);
        let elapsed = self.boot.elapsed().as_secs();
        let runtime = format!(
            "[ {} days, {} hours, {} minutes, {} seconds ]",
            elapsed / 86400,
            elapsed % 86400 / 3600,
            elapsed % 3600 / 60,
            elapsed % 60
        );
        let ratio = self.store.with(-1.0, MessageStore::disk_used_ratio);
        let put_count = s.put_count.load(std::sync::atomic::Ordering::Relaxed);
        let put_bytes = s.put_bytes.load(std::sync::atomic::Ordering::Relaxed);
        let put_tps = s.put_tps();
        let transferred_tps = s.get_transferred_tps();
        let mut t = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            t.insert(k.to_owned(), v);
        };
        put("brokerVersionDesc", "V5_3_3".into());
        put("brokerVersion", remoting::CURRENT_VERSION.to_string());
        // Java `isSpecialServiceRunning`: the master runs the services a
        // slave does not.
        put(
            "brokerActive",
            (!read_config(&self.config).broker_role.is_slave()).to_string(),
        );
        put("msgPutTotalYesterdayMorning", "0".into());
        put("msgPutTotalTodayMorning", "0".into());
        put("msgPutTotalTodayNow", puts);
        put("msgGetTotalYesterdayMorning", "0".into());
        put("msgGetTotalTodayMorning", "0".into());
        put("msgGetTotalTodayNow", gets);
        for (pool, cap) in [
            ("send", 10000),
            ("pull", 100000),
            ("litePull", 100000),
            ("ack", 100000),
            ("query", 20000),
        ] {
            put(&format!("{pool}ThreadPoolQueueSize"), "0".into());
            put(&format!("{pool}ThreadPoolQueueCapacity"), cap.to_string());
            put(
                &format!("{pool}ThreadPoolQueueHeadWaitTimeMills"),
                "0".into(),
            );
        }
        put("EndTransactionQueueSize", "0".into());
        put("EndTransactionThreadPoolQueueCapacity", "100000".into());
        put("dispatchBehindBytes", "0".into());
        put("pageCacheLockTimeMills", "0".into());
        put(
            "earliestMessageTimeStamp",
            self.store
                .with(-1, |s| s.earliest_message_time().unwrap_or(-1))
                .to_string(),
        );
        put("startAcceptSendRequestTimeStamp", "0".into());
        put("remainTransientStoreBufferNumbs", "0".into());
        put("remainHowManyDataToCommit", "0".into());
        put("remainHowManyDataToFlush", "0".into());
        if let Some((total, free)) = self.store.with(None, MessageStore::disk_capacity) {
            put(
                "commitLogDirCapacity",
                format!(
                    "Total : {}, Free : {}.",
                    human_bytes(total),
                    human_bytes(free)
                ),
            );
        }
        put(
            &format!(
                "commitLogDiskRatio_{}",
                read_config(&self.config).commit_log_dir().display()
            ),
            ratio.to_string(),
        );
        put("timerReadBehind", "0".into());
        put("timerOffsetBehind", "0".into());
        put("timerCongestNum", "0".into());
        put("timerEnqueueTps", "0.0".into());
        put("timerDequeueTps", "0.0".into());
        put("bootTimestamp", self.boot_timestamp.to_string());
        put("runtime", runtime);
        put("putMessageEntireTimeMax", "0".into());
        put("putMessageTimesTotal", put_count.to_string());
        put("putMessageFailedTimes", load(&s.put_failed));
        put("putMessageSizeTotal", put_bytes.to_string());
        put("putMessageDistributeTime", "".into());
        put(
            "putMessageAverageSize",
            format!(
                "{}",
                if put_count == 0 {
                    0.0
                } else {
                    put_bytes as f64 / put_count as f64
                }
            ),
        );
        put("dispatchMaxBuffer", "0".into());
        put("getMessageEntireTimeMax", "0".into());
        put("putTps", put_tps);
        put("getFoundTps", s.get_found_tps());
        put("getMissTps", s.get_miss_tps());
        put("getTotalTps", s.get_total_tps());
        put("getTransferredTps", transferred_tps.clone());
        put("getTransferedTps", transferred_tps);
        put("commitLogDiskRatio", format!("{ratio}"));
        put("consumeQueueDiskRatio", format!("{ratio}"));
        put(
            "commitLogMinOffset",
            self.store
                .with(-1, |s| s.commit_log_min_offset().get())
                .to_string(),
        );
        put(
            "commitLogMaxOffset",
            self.store
                .with(0, |s| s.commit_log_max_offset().get())
                .to_string(),
        );
        Ok(success_with_json(&KvTable { table: t }))
    }
}

/// Java `MixAll.humanReadableByteCount(bytes, false)`: binary units, one
/// decimal ("251.0 GiB"), plain bytes below 1 KiB.
fn human_bytes(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let exp = ((bytes as f64).ln() / 1024f64.ln()) as usize;
    let exp = exp.clamp(1, 6);
    let unit = ["K", "M", "G", "T", "P", "E"][exp - 1];
    format!("{:.1} {unit}iB", bytes as f64 / 1024f64.powi(exp as i32))
}

#[cfg(test)]
mod human_bytes_tests {
    #[test]
    fn human_bytes_follows_java() {
        assert_eq!(super::human_bytes(0), "0 B");
        assert_eq!(super::human_bytes(1023), "1023 B");
        assert_eq!(super::human_bytes(1024), "1.0 KiB");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(270_000_000_000), "251.5 GiB");
    }
}
