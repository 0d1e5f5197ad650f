//! ACL 1.0 on the broker: `plain_acl.yml`, checked before each request
//! (Java `PlainAccessValidator` as a server RPC hook), reloaded when the
//! files change, edited by admin codes 50–53.
//!
//! Files: `<rocketmqHome>/<rocketmq.acl.plain.file>` (default
//! `conf/plain_acl.yml`, created empty when missing, as Java does) and every
//! `*.yml`/`*.yaml` under `<rocketmqHome>/conf/acl/` except `conf/tools.yml`.
//! A bad file at start refuses the start; a bad file later keeps the last
//! good rules and logs why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use acl::v1::file::{self as aclfile, AccountUpdate};
use acl::v1::{java_host, AclFile, Rules, V1Error};
use remoting::body::{now_millis, DataVersion};
use remoting::code::response_code;
use remoting::{CommandError, Connection, Interceptor, RemotingCommand};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::BrokerConfig;

/// How often the files are looked at for changes (Java's watcher: 5 s).
pub(crate) const WATCH_PERIOD: Duration = Duration::from_millis(500);

pub(crate) const UPDATE_AND_CREATE_ACL_CONFIG: i32 = 50;
pub(crate) const DELETE_ACL_CONFIG: i32 = 51;
pub(crate) const GET_BROKER_CLUSTER_ACL_INFO: i32 = 52;
pub(crate) const UPDATE_GLOBAL_WHITE_ADDRS_CONFIG: i32 = 53;

const UPDATE_AND_CREATE_ACL_CONFIG_FAILED: i32 = 209;
const DELETE_ACL_CONFIG_FAILED: i32 = 210;
const UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED: i32 = 211;

#[derive(Debug, thiserror::Error)]
pub(crate) enum AclLoadError {
    #[error("aclEnable=true but ROCKETMQ_HOME (rocketmqHome) is not set")]
    NoHome,
    #[error("cannot create ACL file {path}: {error}")]
    Create { path: String, error: String },
    #[error("cannot read ACL file {path}: {error}")]
    Read { path: String, error: String },
    #[error("bad ACL rules: {0}")]
    Rules(#[from] V1Error),
}

/// What a file looked like when last loaded.
type Stamp = Vec<(PathBuf, Option<SystemTime>, u64)>;

struct Loaded {
    rules: Arc<Rules>,
    stamp: Stamp,
}

/// The loaded ACL 1.0 rules and the files they come from.
pub(crate) struct PlainAcl {
    home: PathBuf,
    main_file: PathBuf,
    acl_dir: PathBuf,
    loaded: RwLock<Loaded>,
    /// One admin edit at a time (Java's handlers are `synchronized`).
    writer: Mutex<()>,
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PlainAcl {
    /// Loads the rules at start; any problem refuses the start.
    pub(crate) fn open(config: &BrokerConfig) -> Result<Arc<Self>, AclLoadError> {
        if config.rocketmq_home.trim().is_empty() {
            return Err(AclLoadError::NoHome);
        }
        let home = PathBuf::from(config.rocketmq_home.trim());
        let main_file = home.join(config.acl_plain_file.trim());
        let acl_dir = home.join("conf").join("acl");
        if !main_file.exists() {
            if let Some(parent) = main_file.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            std::fs::write(&main_file, b"").map_err(|e| AclLoadError::Create {
                path: path_str(&main_file),
                error: e.to_string(),
            })?;
        }
        let mut acl = PlainAcl {
            home,
            main_file,
            acl_dir,
            loaded: RwLock::new(Loaded {
                rules: Arc::new(Rules::default()),
                stamp: Vec::new(),
            }),
            writer: Mutex::new(()),
        };
        let loaded = acl.load()?;
        info!(
            accounts = loaded.rules.accounts.len(),
            files = loaded.stamp.len(),
            main = %acl.main_file.display(),
            "ACL 1.0 enabled"
        );
        acl.loaded = RwLock::new(loaded);
        Ok(Arc::new(acl))
    }

    /// The files in Java's order: the `conf/acl` folder, then the main file.
    fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let tools = self.home.join("conf").join("tools.yml");
        collect_yaml(&self.acl_dir, &tools, &mut files, 0);
        files.sort();
        if self.main_file.exists() && !files.contains(&self.main_file) {
            files.push(self.main_file.clone());
        }
        files
    }

    fn stamp(files: &[PathBuf]) -> Stamp {
        files
            .iter()
            .map(|f| {
                let meta = std::fs::metadata(f).ok();
                let modified = meta.as_ref().and_then(|m| m.modified().ok());
                (f.clone(), modified, meta.map_or(0, |m| m.len()))
            })
            .collect()
    }

    fn load(&self) -> Result<Loaded, AclLoadError> {
        let files = self.files();
        let stamp = Self::stamp(&files);
        let mut parsed: Vec<(String, AclFile)> = Vec::with_capacity(files.len());
        for f in &files {
            let text = std::fs::read_to_string(f).map_err(|e| AclLoadError::Read {
                path: path_str(f),
                error: e.to_string(),
            })?;
            let mut file = aclfile::parse(&path_str(f), &text)?;
            if file.data_version.is_none() {
                file.data_version = Some(DataVersion::now());
            }
            parsed.push((path_str(f), file));
        }
        Ok(Loaded {
            rules: Arc::new(Rules::build(&parsed)?),
            stamp,
        })
    }

    /// Reloads when a file changed, appeared or went away; a bad file keeps
    /// the last good rules.
    pub(crate) fn reload_if_changed(&self) {
        // Under the writer's lock: a reload that read the files before an
        // admin edit must not install its older rules after the edit's.
        let _no_edit = lock(&self.writer);
        let current = Self::stamp(&self.files());
        {
            let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
            if loaded.stamp == current {
                return;
            }
        }
        self.reload();
    }

    fn reload(&self) {
        match self.load() {
            Ok(new) => {
                info!(
                    accounts = new.rules.accounts.len(),
                    files = new.stamp.len(),
                    "ACL 1.0 rules reloaded"
                );
                *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = new;
            }
            Err(e) => {
                warn!(error = %e, "ACL 1.0 files changed but do not load; keeping the last good rules");
                // Do not retry the same bad content on every tick.
                let stamp = Self::stamp(&self.files());
                self.loaded.write().unwrap_or_else(|p| p.into_inner()).stamp = stamp;
            }
        }
    }

    pub(crate) fn rules(&self) -> Arc<Rules> {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .rules
            .clone()
    }

    /// Polls the files until shutdown.
    pub(crate) fn spawn_watcher(self: &Arc<Self>, shutdown: CancellationToken) {
        let acl = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(WATCH_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let acl = acl.clone();
                let _ = tokio::task::spawn_blocking(move || acl.reload_if_changed()).await;
            }
        });
    }

    /// Reads, edits and atomically replaces one file, then reloads.
    fn edit(
        &self,
        path: &Path,
        f: impl FnOnce(&mut aclfile::Mapping) -> Result<bool, V1Error>,
    ) -> Result<bool, String> {
        let _one_writer = lock(&self.writer);
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e.to_string()),
        };
        let mut doc = aclfile::load_doc(&path_str(path), &text).map_err(|e| e.to_string())?;
        if !f(&mut doc).map_err(|e| e.to_string())? {
            return Ok(false);
        }
        aclfile::next_version(&mut doc, now_millis());
        write_atomically(path, aclfile::to_yaml(&doc).as_bytes()).map_err(|e| e.to_string())?;
        self.reload();
        Ok(true)
    }

    /// Code 50 (`CreateAccessConfigRequestHeader`).
    pub(crate) fn update_account(&self, req: &RemotingCommand) -> RemotingCommand {
        let u = AccountUpdate {
            access_key: req.ext("accessKey").map(str::to_owned),
            secret_key: req.ext("secretKey").map(str::to_owned),
            white_remote_address: req.ext("whiteRemoteAddress").map(str::to_owned),
            admin: req
                .ext("admin")
                .is_some_and(|a| a.trim().eq_ignore_ascii_case("true")),
            default_topic_perm: req.ext("defaultTopicPerm").map(str::to_owned),
            default_group_perm: req.ext("defaultGroupPerm").map(str::to_owned),
            topic_perms: aclfile::split_list(req.ext("topicPerms")),
            group_perms: aclfile::split_list(req.ext("groupPerms")),
        };
        if let Err(e) = aclfile::check_update(&u) {
            return fail(UPDATE_AND_CREATE_ACL_CONFIG_FAILED, e.to_string());
        }
        let ak = u.access_key.clone().unwrap_or_default();
        let target = self
            .rules()
            .accounts
            .get(&ak)
            .map(|(path, _)| PathBuf::from(path))
            .unwrap_or_else(|| self.main_file.clone());
        match self.edit(&target, |doc| {
            aclfile::upsert_account(doc, &u).map(|()| true)
        }) {
            Ok(_) => RemotingCommand::success(),
            Err(e) => fail(UPDATE_AND_CREATE_ACL_CONFIG_FAILED, e),
        }
    }

    /// Code 51 (`DeleteAccessConfigRequestHeader`).
    pub(crate) fn delete_account(&self, req: &RemotingCommand) -> RemotingCommand {
        let ak = req.ext("accessKey").unwrap_or("").to_owned();
        let failed = || {
            fail(
                DELETE_ACL_CONFIG_FAILED,
                format!(
                    "The accesskey[{ak}] corresponding to accessConfig has been deleted failed."
                ),
            )
        };
        let Some(path) = self
            .rules()
            .accounts
            .get(&ak)
            .map(|(p, _)| PathBuf::from(p))
        else {
            return failed();
        };
        match self.edit(&path, |doc| Ok(aclfile::delete_account(doc, &ak))) {
            Ok(true) => RemotingCommand::success(),
            Ok(false) => failed(),
            Err(e) => fail(DELETE_ACL_CONFIG_FAILED, e),
        }
    }

    /// Code 53 (`UpdateGlobalWhiteAddrsConfigRequestHeader`).
    pub(crate) fn update_global_white(&self, req: &RemotingCommand) -> RemotingCommand {
        let addrs = req.ext("globalWhiteAddrs");
        let failed = || {
            fail(
                UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED,
                format!(
                    "The globalWhiteAddresses[{}] has been updated failed.",
                    addrs.unwrap_or("null")
                ),
            )
        };
        let Some(list) = aclfile::split_list(addrs) else {
            return failed();
        };
        let path = match req.ext("aclFileFullPath").map(str::trim) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => self.main_file.clone(),
        };
        // Java: the file must exist, be a file and sit under ROCKETMQ_HOME.
        if !path.is_file()
            || !path_str(&path).starts_with(&path_str(&self.home))
            || path
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return failed();
        }
        match self.edit(&path, |doc| {
            aclfile::set_global_white(doc, &list);
            Ok(true)
        }) {
            Ok(_) => RemotingCommand::success(),
            Err(e) => fail(UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED, e),
        }
    }

    /// Code 52: the versions of the main file and of every file.
    pub(crate) fn versions(&self, config: &BrokerConfig) -> RemotingCommand {
        let rules = self.rules();
        let main = path_str(&self.main_file);
        let main_version = rules
            .versions
            .iter()
            .find(|(p, _)| *p == main)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let all: serde_json::Map<String, serde_json::Value> = rules
            .versions
            .iter()
            .map(|(p, v)| (p.clone(), serde_json::to_value(v).unwrap_or_default()))
            .collect();
        RemotingCommand::success()
            .with_ext(
                "version",
                serde_json::to_string(&main_version).unwrap_or_default(),
            )
            .with_ext(
                "allAclFileVersion",
                serde_json::Value::Object(all).to_string(),
            )
            .with_ext("brokerName", config.broker_name.clone())
            .with_ext("brokerAddr", config.broker_addr())
            .with_ext("clusterName", config.broker_cluster_name.clone())
    }
}

fn fail(code: i32, remark: impl Into<String>) -> RemotingCommand {
    RemotingCommand::response(code).with_remark(remark)
}

/// Answer of codes 50–53 when `aclEnable=false` (Java 5.3.2's text).
pub(crate) fn not_enabled(code: i32) -> RemotingCommand {
    let failed = match code {
        UPDATE_AND_CREATE_ACL_CONFIG => UPDATE_AND_CREATE_ACL_CONFIG_FAILED,
        DELETE_ACL_CONFIG => DELETE_ACL_CONFIG_FAILED,
        UPDATE_GLOBAL_WHITE_ADDRS_CONFIG => UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED,
        _ => response_code::SYSTEM_ERROR,
    };
    fail(failed, "The broker does not enable acl.")
}

/// `*.yml`/`*.yaml` files under `dir`, recursively (bounded depth).
fn collect_yaml(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 16 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p == skip {
            continue;
        }
        let name = path_str(&p);
        if name.ends_with(".yml") || name.ends_with(".yaml") {
            out.push(p);
        } else if p.is_dir() {
            collect_yaml(&p, skip, out, depth + 1);
        }
    }
}

/// Write to a temporary file beside `path`, sync, then rename over it: a
/// reader (or a crash) sees the old file or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The interceptor: Java's `validator.validate(validator.parse(request, addr))`.
pub(crate) struct AclV1Check(pub Arc<PlainAcl>);

impl Interceptor for AclV1Check {
    fn before(&self, conn: &Connection, request: &RemotingCommand) -> Result<(), CommandError> {
        let host = java_host(conn.peer().ip());
        self.0
            .rules()
            .check(request, &host)
            .map_err(|d| CommandError::system(d.remark()))
    }
}

/// Credentials the broker signs its own outbound calls with
/// (`innerClientAuthenticationCredentials`), when set and complete.
pub(crate) fn inner_credentials(config: &BrokerConfig) -> Option<acl::sign::SessionCredentials> {
    // Looked up by key: the field belongs to Auth 2.0's settings.
    let entries = config.entries();
    let raw = entries
        .iter()
        .find(|(k, _)| *k == "innerClientAuthenticationCredentials")
        .map(|(_, v)| v.trim())
        .unwrap_or("");
    if raw.is_empty() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    let ak = v.get("accessKey")?.as_str()?.trim();
    let sk = v.get("secretKey")?.as_str()?.trim();
    if ak.is_empty() || sk.is_empty() {
        return None;
    }
    let mut c = acl::sign::SessionCredentials::new(ak, sk);
    if let Some(t) = v.get("securityToken").and_then(|t| t.as_str()) {
        c = c.with_security_token(t);
    }
    Some(c)
}

/// Signs an outbound request when the broker has inner credentials.
pub(crate) fn sign_outbound(config: &BrokerConfig, request: &mut RemotingCommand) {
    if let Some(c) = inner_credentials(config) {
        acl::sign::sign_request(request, &c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(home: &Path) -> BrokerConfig {
        let mut c = BrokerConfig::default();
        c.acl_enable = true;
        c.rocketmq_home = path_str(home);
        c
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn start_refuses_bad_rules_and_creates_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let acl = PlainAcl::open(&config(dir.path())).unwrap();
        assert!(dir.path().join("conf/plain_acl.yml").is_file());
        assert!(acl.rules().accounts.is_empty());

        write(
            &dir.path().join("conf/plain_acl.yml"),
            "accounts: [{accessKey: short, secretKey: x}]",
        );
        let e = PlainAcl::open(&config(dir.path())).err().unwrap();
        assert!(
            e.to_string()
                .contains("cannot be null and length should longer than 6"),
            "{e}"
        );

        let mut c = config(dir.path());
        c.rocketmq_home.clear();
        assert!(matches!(PlainAcl::open(&c), Err(AclLoadError::NoHome)));
    }

    #[test]
    fn reload_keeps_last_good_rules() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("conf/plain_acl.yml");
        write(
            &main,
            "accounts: [{accessKey: firstKey1, secretKey: secret123}]",
        );
        write(
            &dir.path().join("conf/acl/extra.yaml"),
            "accounts: [{accessKey: extraKey1, secretKey: secret123}]",
        );
        write(
            &dir.path().join("conf/tools.yml"),
            "accessKey: ignoredKey\nsecretKey: whatever1\n",
        );
        let acl = PlainAcl::open(&config(dir.path())).unwrap();
        assert!(acl.rules().accounts.contains_key("firstKey1"));
        assert!(acl.rules().accounts.contains_key("extraKey1"));

        write(
            &main,
            "accounts: [{accessKey: secondKey1, secretKey: secret123}]\n# longer",
        );
        acl.reload_if_changed();
        assert!(acl.rules().accounts.contains_key("secondKey1"));
        assert!(!acl.rules().accounts.contains_key("firstKey1"));

        write(&main, "accounts: [ {{{ broken");
        acl.reload_if_changed();
        assert!(acl.rules().accounts.contains_key("secondKey1"));
    }

    #[test]
    fn admin_codes_edit_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let acl = PlainAcl::open(&config(dir.path())).unwrap();
        let req = RemotingCommand::request(50)
            .with_ext("accessKey", "newAccount1")
            .with_ext("secretKey", "newSecret1")
            .with_ext("topicPerms", "t1=PUB,t2=SUB")
            .with_ext("admin", "false");
        assert_eq!(acl.update_account(&req).code, 0);
        let rules = acl.rules();
        let (_, a) = &rules.accounts["newAccount1"];
        assert_eq!(a.resources.get("t1"), Some(&acl::v1::perm::PUB));
        let v = &rules.versions.last().unwrap().1;
        assert_eq!(v.counter, 1);

        let bad = RemotingCommand::request(50).with_ext("accessKey", "short");
        let r = acl.update_account(&bad);
        assert_eq!(r.code, 209);

        let c = BrokerConfig::default();
        let r = acl.versions(&c);
        assert_eq!(r.code, 0);
        assert!(r
            .ext("allAclFileVersion")
            .unwrap()
            .contains("plain_acl.yml"));
        assert!(r.ext("version").unwrap().contains("\"counter\":1"));

        let w = RemotingCommand::request(53).with_ext("globalWhiteAddrs", "10.0.0.*,127.0.0.1");
        assert_eq!(acl.update_global_white(&w).code, 0);
        assert_eq!(acl.rules().global_white.len(), 2);
        let outside = RemotingCommand::request(53)
            .with_ext("globalWhiteAddrs", "1.1.1.1")
            .with_ext("aclFileFullPath", "/etc/passwd");
        assert_eq!(acl.update_global_white(&outside).code, 211);

        let d = RemotingCommand::request(51).with_ext("accessKey", "newAccount1");
        assert_eq!(acl.delete_account(&d).code, 0);
        assert_eq!(acl.delete_account(&d).code, 210);
        assert!(acl.rules().accounts.is_empty());
    }

    #[test]
    fn inner_credentials_sign_outbound_calls() {
        let mut c = BrokerConfig::default();
        let mut r = RemotingCommand::request(21);
        sign_outbound(&c, &mut r);
        assert!(r.ext("Signature").is_none());
        let mut props = indexmap::IndexMap::new();
        props.insert(
            "innerClientAuthenticationCredentials".to_owned(),
            r#"{"accessKey":"brokerKey1","secretKey":"brokerSecret1"}"#.to_owned(),
        );
        c.apply(&props).unwrap();
        if !c
            .entries()
            .iter()
            .any(|(k, _)| *k == "innerClientAuthenticationCredentials")
        {
            return; // The key comes with Auth 2.0's settings.
        }
        sign_outbound(&c, &mut r);
        assert_eq!(r.ext("AccessKey"), Some("brokerKey1"));
        assert!(acl::sign::verify(&r, "brokerSecret1"));
    }
}
