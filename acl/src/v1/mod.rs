//! ACL 1.0 (spec acl.md §2): accounts and whitelists from `plain_acl.yml`,
//! decided as Java 5.3.2's `PlainPermissionManager.validate` decides.
//!
//! - [`file`]: the YAML files, parsed and edited (admin codes 50–53).
//! - [`address`]: the whitelist address patterns.
//! - [`perm`]: permission bits and the resources each request demands.
//! - [`Rules`]: everything loaded, and [`Rules::check`], the decision.

pub mod address;
pub mod file;
pub mod perm;

use std::collections::HashMap;

use remoting::RemotingCommand;

pub use address::{java_host, AddressPattern};
pub use file::{AccountConfig, AclFile, DataVersion};

use crate::sign;

/// A rule file or an edit Java would reject: the text is Java's
/// `AclException` message where there is one.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum V1Error {
    #[error("{0}")]
    Acl(String),
    #[error("{path}: {message}")]
    Yaml { path: String, message: String },
}

/// Java's exception class in refusals.
const ACL_EXCEPTION: &str = "org.apache.rocketmq.acl.common.AclException";

/// A refused request: Java throws `AclException` from its RPC hook and the
/// remoting layer answers code 1 with `exception.toString() + ", " + frame`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// `None` for Java exceptions without a message.
    pub message: Option<String>,
    /// The first stack frame Java would print.
    pub frame: &'static str,
}

const FRAME_VALIDATE: &str =
    "org.apache.rocketmq.acl.plain.PlainPermissionManager.validate(PlainPermissionManager.java:604)";
const FRAME_KEY: &str =
    "org.apache.rocketmq.acl.plain.PlainPermissionManager.validate(PlainPermissionManager.java:608)";
const FRAME_SIGNATURE: &str =
    "org.apache.rocketmq.acl.plain.PlainPermissionManager.validate(PlainPermissionManager.java:625)";
const FRAME_CHECK: &str =
    "org.apache.rocketmq.acl.plain.PlainPermissionChecker.check(PlainPermissionChecker.java:33)";
const FRAME_PARSE: &str =
    "org.apache.rocketmq.acl.plain.PlainAccessResource.parse(PlainAccessResource.java:178)";

impl Denied {
    fn new(message: String, frame: &'static str) -> Self {
        Denied {
            message: Some(message),
            frame,
        }
    }

    fn parse(message: String) -> Self {
        Self::new(message, FRAME_PARSE)
    }

    fn parse_opt(message: Option<String>) -> Self {
        Denied {
            message,
            frame: FRAME_PARSE,
        }
    }

    /// The response remark, as Java's `RemotingHelper.exceptionSimpleDesc`.
    pub fn remark(&self) -> String {
        match &self.message {
            Some(m) => format!("{ACL_EXCEPTION}: {m}, {}", self.frame),
            None => format!("{ACL_EXCEPTION}, {}", self.frame),
        }
    }
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message.as_deref().unwrap_or("denied"))
    }
}

/// One account, ready to decide with.
#[derive(Debug, Clone)]
pub struct Account {
    pub access_key: String,
    pub secret_key: String,
    pub white: AddressPattern,
    pub admin: bool,
    pub default_topic_perm: u8,
    pub default_group_perm: u8,
    /// Topic names and `%RETRY%group` names with their permission.
    pub resources: HashMap<String, u8>,
}

impl Account {
    /// `buildPlainAccessResource`: validates keys, parses perms and pattern.
    pub fn build(cfg: &AccountConfig) -> Result<Self, V1Error> {
        check_keys(cfg.access_key.as_deref(), cfg.secret_key.as_deref())?;
        let mut resources = HashMap::new();
        parse_resource_perms(&mut resources, false, &cfg.group_perms)?;
        parse_resource_perms(&mut resources, true, &cfg.topic_perms)?;
        Ok(Account {
            access_key: cfg.access_key.clone().unwrap_or_default(),
            secret_key: cfg.secret_key.clone().unwrap_or_default(),
            white: AddressPattern::parse(cfg.white_remote_address.as_deref())?,
            admin: cfg.admin,
            default_topic_perm: perm::parse_perm(cfg.default_topic_perm.as_deref()),
            default_group_perm: perm::parse_perm(cfg.default_group_perm.as_deref()),
            resources,
        })
    }
}

/// `AclConstants.ACCESS_KEY_MIN_LENGTH` / `SECRET_KEY_MIN_LENGTH`.
const KEY_MIN_LENGTH: usize = 6;

/// `checkPlainAccessConfig`.
pub fn check_keys(access_key: Option<&str>, secret_key: Option<&str>) -> Result<(), V1Error> {
    let long = |k: Option<&str>| k.is_some_and(|k| k.encode_utf16().count() > KEY_MIN_LENGTH);
    if long(access_key) && long(secret_key) {
        return Ok(());
    }
    let show = |k: Option<&str>| k.unwrap_or("null").to_owned();
    Err(V1Error::Acl(format!(
        "The accessKey={} and secretKey={} cannot be null and length should longer than 6",
        show(access_key),
        show(secret_key)
    )))
}

/// `StringUtils.split(s, "=")`: non-empty pieces.
fn split_eq(s: &str) -> Vec<&str> {
    s.split('=').filter(|t| !t.is_empty()).collect()
}

/// `Permission.parseResourcePerms`.
fn parse_resource_perms(
    into: &mut HashMap<String, u8>,
    is_topic: bool,
    items: &[String],
) -> Result<(), V1Error> {
    for item in items {
        match split_eq(item)[..] {
            [name, word] => {
                let name = name.trim();
                let key = if is_topic {
                    name.to_owned()
                } else {
                    perm::retry_topic(name)
                };
                into.insert(key, perm::parse_perm(Some(word)));
            }
            _ => {
                return Err(V1Error::Acl(format!(
                    "Parse resource permission failed for {}:{item}",
                    if is_topic { "topic" } else { "group" }
                )))
            }
        }
    }
    Ok(())
}

/// `Permission.checkResourcePerms` (admin code 50 input check).
pub fn check_resource_perms(items: &[String]) -> Result<(), V1Error> {
    for item in items {
        let parts = split_eq(item);
        if parts.len() != 2 {
            return Err(V1Error::Acl(format!(
                "Parse Resource format error for {item}.\nThe expected resource format is 'Res=Perm'. For example: topicA=SUB"
            )));
        }
        let word = parts[1].trim();
        if word != "DENY" && perm::parse_perm(Some(word)) == perm::DENY {
            return Err(V1Error::Acl(format!(
                "Parse resource permission error for {item}.\nThe expected permissions are 'SUB' or 'PUB' or 'SUB|PUB' or 'PUB|SUB'."
            )));
        }
    }
    Ok(())
}

/// Everything loaded from the ACL files: what a request is checked against.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Global whitelist patterns of every file.
    pub global_white: Vec<AddressPattern>,
    /// Access key → (file path, account); the first file defining a key wins.
    pub accounts: HashMap<String, (String, Account)>,
    /// File path → its `dataVersion` (first element), in load order.
    pub versions: Vec<(String, DataVersion)>,
}

impl Rules {
    /// Builds the rules from parsed files in Java's load order (the
    /// `conf/acl` folder's files first, then the main file). Any bad
    /// account or pattern fails the whole load, as in Java.
    pub fn build(files: &[(String, AclFile)]) -> Result<Self, V1Error> {
        let mut rules = Rules::default();
        for (path, f) in files {
            for p in &f.global_white_remote_addresses {
                rules.global_white.push(AddressPattern::parse(Some(p))?);
            }
            for cfg in &f.accounts {
                let account = Account::build(cfg)?;
                if rules.accounts.contains_key(&account.access_key) {
                    tracing::warn!(access_key = %account.access_key, file = %path, "access key repeated in several ACL files; the first wins");
                    continue;
                }
                rules
                    .accounts
                    .insert(account.access_key.clone(), (path.clone(), account));
            }
            rules
                .versions
                .push((path.clone(), f.data_version.clone().unwrap_or_default()));
        }
        Ok(rules)
    }

    /// The decision of spec §2.5 for `request` from client address `host`
    /// ([`java_host`] of the peer's IP).
    pub fn check(&self, request: &RemotingCommand, host: &str) -> Result<(), Denied> {
        // Java parses the resources before deciding: a malformed header is
        // refused even from a whitelisted address.
        let demanded = match request.ext_fields {
            Some(_) => perm::demanded(request)?,
            None => perm::Demanded::default(),
        };
        if self.global_white.iter().any(|p| p.matches(host)) {
            return Ok(());
        }
        let Some(access_key) = request.ext(sign::ACCESS_KEY) else {
            return Err(Denied::new(
                "No accessKey is configured".into(),
                FRAME_VALIDATE,
            ));
        };
        let Some((_, account)) = self.accounts.get(access_key) else {
            return Err(Denied::new(
                format!("No acl config for {access_key}"),
                FRAME_KEY,
            ));
        };
        if account.white.matches(host) {
            return Ok(());
        }
        if !sign::verify(request, &account.secret_key) {
            return Err(Denied::new(
                format!("Check signature failed for accessKey={access_key}"),
                FRAME_SIGNATURE,
            ));
        }
        if demanded.get(perm::TRACE_TOPIC) == Some(perm::PUB) {
            return Ok(());
        }
        check_perm(request.code, &demanded, account)
    }
}

/// `PlainPermissionChecker.check` (5.3.2).
fn check_perm(code: i32, demanded: &perm::Demanded, owned: &Account) -> Result<(), Denied> {
    if owned.admin {
        return Ok(());
    }
    if perm::ADMIN_CODES.contains(&code) {
        return Err(Denied::new(
            format!(
                "Need admin permission for request code={code}, but accessKey={} is not",
                owned.access_key
            ),
            FRAME_CHECK,
        ));
    }
    for (resource, needed) in &demanded.0 {
        let is_group = perm::is_retry_topic(resource);
        match owned.resources.get(resource) {
            None => {
                let default = if is_group {
                    owned.default_group_perm
                } else {
                    owned.default_topic_perm
                };
                if !perm::check_permission(*needed, default) {
                    return Err(Denied::new(
                        format!(
                            "No default permission for {}",
                            perm::print_resource(resource, is_group)
                        ),
                        FRAME_CHECK,
                    ));
                }
            }
            Some(p) => {
                if !perm::check_permission(*needed, *p) {
                    return Err(Denied::new(
                        format!(
                            "No permission for {}",
                            perm::print_resource(resource, is_group)
                        ),
                        FRAME_CHECK,
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
