//! `plain_acl.yml` files: read leniently as Java's fastjson conversion of a
//! SnakeYAML map reads them, and edited as the admin codes 50–53 edit them.

pub use serde_yaml_ng::Mapping;
use serde_yaml_ng::Value;

pub use remoting::body::DataVersion;

use super::V1Error;

pub const GLOBAL_WHITE: &str = "globalWhiteRemoteAddresses";
pub const ACCOUNTS: &str = "accounts";
pub const DATA_VERSION: &str = "dataVersion";

/// One account as written in the file (`PlainAccessConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountConfig {
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub white_remote_address: Option<String>,
    pub admin: bool,
    pub default_topic_perm: Option<String>,
    pub default_group_perm: Option<String>,
    pub topic_perms: Vec<String>,
    pub group_perms: Vec<String>,
}

/// One parsed file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFile {
    pub global_white_remote_addresses: Vec<String>,
    pub accounts: Vec<AccountConfig>,
    /// The first element of `dataVersion`, when present.
    pub data_version: Option<DataVersion>,
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(t) => scalar(&t.value),
        _ => None,
    }
}

fn list(v: Option<&Value>, key: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Sequence(items)) => Ok(items.iter().filter_map(scalar).collect()),
        Some(other) => Err(format!("{key} is not a list: {other:?}")),
    }
}

fn as_bool(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true") || s == "1",
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

fn as_i64(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// Loads a file's text as a YAML mapping; an empty file is an empty mapping
/// (Java: "No data in file").
pub fn load_doc(path: &str, text: &str) -> Result<Mapping, V1Error> {
    let err = |message: String| V1Error::Yaml {
        path: path.to_owned(),
        message,
    };
    if text.trim().is_empty() {
        return Ok(Mapping::new());
    }
    match serde_yaml_ng::from_str::<Value>(text).map_err(|e| err(e.to_string()))? {
        Value::Null => Ok(Mapping::new()),
        Value::Mapping(m) => Ok(m),
        other => Err(err(format!("not a mapping: {other:?}"))),
    }
}

/// Parses a file's text.
pub fn parse(path: &str, text: &str) -> Result<AclFile, V1Error> {
    from_doc(path, &load_doc(path, text)?)
}

pub fn from_doc(path: &str, doc: &Mapping) -> Result<AclFile, V1Error> {
    let err = |message: String| V1Error::Yaml {
        path: path.to_owned(),
        message,
    };
    let global_white_remote_addresses = list(doc.get(GLOBAL_WHITE), GLOBAL_WHITE).map_err(err)?;
    let mut accounts = Vec::new();
    match doc.get(ACCOUNTS) {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(items)) => {
            for item in items {
                let Value::Mapping(a) = item else {
                    return Err(err(format!("an account is not a mapping: {item:?}")));
                };
                let s = |k: &str| a.get(k).and_then(scalar);
                accounts.push(AccountConfig {
                    access_key: s("accessKey"),
                    secret_key: s("secretKey"),
                    white_remote_address: s("whiteRemoteAddress"),
                    admin: as_bool(a.get("admin")),
                    default_topic_perm: s("defaultTopicPerm"),
                    default_group_perm: s("defaultGroupPerm"),
                    topic_perms: list(a.get("topicPerms"), "topicPerms").map_err(err)?,
                    group_perms: list(a.get("groupPerms"), "groupPerms").map_err(err)?,
                });
            }
        }
        Some(other) => return Err(err(format!("accounts is not a list: {other:?}"))),
    }
    let data_version = match doc.get(DATA_VERSION) {
        Some(Value::Sequence(items)) => items.first().map(|v| DataVersion {
            counter: as_i64(v.get("counter")),
            state_version: as_i64(v.get("stateVersion")),
            timestamp: as_i64(v.get("timestamp")),
        }),
        _ => None,
    };
    Ok(AclFile {
        global_white_remote_addresses,
        accounts,
        data_version,
    })
}

/// What admin code 50 asks for (`CreateAccessConfigRequestHeader` turned
/// into a `PlainAccessConfig`): `None` = field not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountUpdate {
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub white_remote_address: Option<String>,
    pub admin: bool,
    pub default_topic_perm: Option<String>,
    pub default_group_perm: Option<String>,
    pub topic_perms: Option<Vec<String>>,
    pub group_perms: Option<Vec<String>>,
}

/// `UtilAll.split(s, ",")`: `None` stays `None`, blank is empty.
pub fn split_list(s: Option<&str>) -> Option<Vec<String>> {
    let s = s?;
    if s.trim().is_empty() {
        return Some(Vec::new());
    }
    Some(s.split(',').map(str::to_owned).collect())
}

fn seq(items: &[String]) -> Value {
    Value::Sequence(items.iter().map(|s| Value::String(s.clone())).collect())
}

/// Checks an update as Java's `updateAccessConfig` does before touching a file.
pub fn check_update(u: &AccountUpdate) -> Result<(), V1Error> {
    super::check_keys(u.access_key.as_deref(), u.secret_key.as_deref())?;
    super::check_resource_perms(u.topic_perms.as_deref().unwrap_or(&[]))?;
    super::check_resource_perms(u.group_perms.as_deref().unwrap_or(&[]))?;
    Ok(())
}

/// `createAclAccessConfigMap`: writes the fields given into `account`.
fn write_account(account: &mut Mapping, u: &AccountUpdate) -> Result<(), V1Error> {
    let ak = u.access_key.clone().unwrap_or_default();
    if ak.encode_utf16().count() <= 6 {
        return Err(V1Error::Acl(format!(
            "The accessKey={ak} cannot be null and length should longer than 6"
        )));
    }
    let mut put = |k: &str, v: Value| {
        account.insert(Value::String(k.to_owned()), v);
    };
    put("accessKey", Value::String(ak));
    if let Some(sk) = u.secret_key.as_ref().filter(|s| !s.is_empty()) {
        if sk.encode_utf16().count() <= 6 {
            return Err(V1Error::Acl(format!(
                "The secretKey={sk} value length should longer than 6"
            )));
        }
        put("secretKey", Value::String(sk.clone()));
    }
    if let Some(w) = &u.white_remote_address {
        put("whiteRemoteAddress", Value::String(w.clone()));
    }
    put("admin", Value::Bool(u.admin));
    if let Some(p) = u.default_topic_perm.as_ref().filter(|s| !s.is_empty()) {
        put("defaultTopicPerm", Value::String(p.clone()));
    }
    if let Some(p) = u.default_group_perm.as_ref().filter(|s| !s.is_empty()) {
        put("defaultGroupPerm", Value::String(p.clone()));
    }
    if let Some(t) = &u.topic_perms {
        put("topicPerms", seq(t));
    }
    if let Some(g) = &u.group_perms {
        put("groupPerms", seq(g));
    }
    Ok(())
}

fn accounts_mut(doc: &mut Mapping) -> &mut Vec<Value> {
    let key = Value::String(ACCOUNTS.to_owned());
    if !matches!(doc.get(&key), Some(Value::Sequence(_))) {
        doc.insert(key.clone(), Value::Sequence(Vec::new()));
    }
    match doc.get_mut(&key) {
        Some(Value::Sequence(s)) => s,
        // Just inserted above.
        _ => unreachable!("accounts is a sequence"),
    }
}

fn access_key_of(v: &Value) -> Option<String> {
    v.get("accessKey").and_then(scalar)
}

/// Creates or replaces an account in `doc` (the update is checked first).
pub fn upsert_account(doc: &mut Mapping, u: &AccountUpdate) -> Result<(), V1Error> {
    check_update(u)?;
    let ak = u.access_key.clone().unwrap_or_default();
    let accounts = accounts_mut(doc);
    match accounts
        .iter()
        .position(|a| access_key_of(a).as_deref() == Some(ak.as_str()))
    {
        Some(i) => {
            // Java removes the old entry and appends the updated one.
            let mut m = match accounts.remove(i) {
                Value::Mapping(m) => m,
                _ => Mapping::new(),
            };
            write_account(&mut m, u)?;
            accounts.push(Value::Mapping(m));
        }
        None => {
            let mut m = Mapping::new();
            write_account(&mut m, u)?;
            accounts.push(Value::Mapping(m));
        }
    }
    Ok(())
}

/// Removes an account; false when `doc` has none with that key.
pub fn delete_account(doc: &mut Mapping, access_key: &str) -> bool {
    let accounts = accounts_mut(doc);
    match accounts
        .iter()
        .position(|a| access_key_of(a).as_deref() == Some(access_key))
    {
        Some(i) => {
            accounts.remove(i);
            true
        }
        None => false,
    }
}

pub fn set_global_white(doc: &mut Mapping, addrs: &[String]) {
    doc.insert(Value::String(GLOBAL_WHITE.to_owned()), seq(addrs));
}

/// `updateAclConfigFileVersion`: the file's version moves on; returns it.
pub fn next_version(doc: &mut Mapping, now_ms: i64) -> DataVersion {
    let mut v = from_doc("", doc)
        .ok()
        .and_then(|f| f.data_version)
        .unwrap_or_default();
    v.counter += 1;
    v.timestamp = now_ms;
    let mut entry = Mapping::new();
    entry.insert("counter".into(), Value::Number(v.counter.into()));
    entry.insert("timestamp".into(), Value::Number(v.timestamp.into()));
    doc.insert(
        Value::String(DATA_VERSION.to_owned()),
        Value::Sequence(vec![Value::Mapping(entry)]),
    );
    v
}

pub fn to_yaml(doc: &Mapping) -> String {
    serde_yaml_ng::to_string(doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
globalWhiteRemoteAddresses:
  - 10.10.103.*
  - 192.168.0.*
accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
    groupPerms:
      - groupA=DENY
  - accessKey: rocketmq2
    secretKey: "12345678"
    whiteRemoteAddress: 192.168.1.*
    admin: "true"
dataVersion:
  - {timestamp: 1700000000000, counter: 3}
"#;

    #[test]
    fn parses_the_sample() {
        let f = parse("p", SAMPLE).unwrap();
        assert_eq!(
            f.global_white_remote_addresses,
            ["10.10.103.*", "192.168.0.*"]
        );
        assert_eq!(f.accounts.len(), 2);
        let a = &f.accounts[0];
        assert_eq!(a.access_key.as_deref(), Some("RocketMQ"));
        assert_eq!(a.secret_key.as_deref(), Some("12345678"));
        assert_eq!(a.white_remote_address, None);
        assert!(!a.admin);
        assert_eq!(a.topic_perms, ["topicA=DENY", "topicB=PUB|SUB"]);
        assert!(f.accounts[1].admin);
        assert_eq!(f.data_version.as_ref().map(|v| v.counter), Some(3));
        assert_eq!(parse("p", "").unwrap(), AclFile::default());
        assert_eq!(parse("p", "# nothing\n").unwrap(), AclFile::default());
    }

    #[test]
    fn bad_files_are_errors() {
        for text in ["accounts: [", "accounts: 5", "- a\n- b", "accounts:\n  - 5"] {
            assert!(parse("p", text).is_err(), "{text}");
        }
    }

    #[test]
    fn edits_round_trip() {
        let mut doc = load_doc("p", SAMPLE).unwrap();
        let u = AccountUpdate {
            access_key: Some("newAccount".into()),
            secret_key: Some("newSecret1".into()),
            default_topic_perm: Some("PUB".into()),
            topic_perms: split_list(Some("t1=PUB,t2=SUB")),
            ..Default::default()
        };
        upsert_account(&mut doc, &u).unwrap();
        let v = next_version(&mut doc, 42);
        assert_eq!((v.counter, v.timestamp), (4, 42));
        let text = to_yaml(&doc);
        let f = parse("p", &text).unwrap();
        assert_eq!(f.accounts.len(), 3);
        assert_eq!(f.accounts[2].topic_perms, ["t1=PUB", "t2=SUB"]);
        assert_eq!(f.data_version.map(|v| v.counter), Some(4));

        // Update keeps fields not sent and moves the account to the end.
        let u2 = AccountUpdate {
            access_key: Some("RocketMQ".into()),
            secret_key: Some("87654321".into()),
            admin: true,
            ..Default::default()
        };
        upsert_account(&mut doc, &u2).unwrap();
        let f = from_doc("p", &doc).unwrap();
        let last = f.accounts.last().unwrap();
        assert_eq!(last.access_key.as_deref(), Some("RocketMQ"));
        assert_eq!(last.secret_key.as_deref(), Some("87654321"));
        assert!(last.admin);
        assert_eq!(last.topic_perms, ["topicA=DENY", "topicB=PUB|SUB"]);

        assert!(delete_account(&mut doc, "newAccount"));
        assert!(!delete_account(&mut doc, "newAccount"));
        set_global_white(&mut doc, &["127.0.0.1".to_owned()]);
        let f = from_doc("p", &doc).unwrap();
        assert_eq!(f.accounts.len(), 2);
        assert_eq!(f.global_white_remote_addresses, ["127.0.0.1"]);
    }

    #[test]
    fn bad_updates_are_refused_with_java_messages() {
        let mut doc = Mapping::new();
        let short = AccountUpdate {
            access_key: Some("short".into()),
            secret_key: Some("12345678".into()),
            ..Default::default()
        };
        let e = upsert_account(&mut doc, &short).unwrap_err();
        assert_eq!(
            e.to_string(),
            "The accessKey=short and secretKey=12345678 cannot be null and length should longer than 6"
        );
        let bad_perm = AccountUpdate {
            access_key: Some("longenough".into()),
            secret_key: Some("12345678".into()),
            topic_perms: split_list(Some("t1=WRITE")),
            ..Default::default()
        };
        assert!(upsert_account(&mut doc, &bad_perm).is_err());
        assert!(from_doc("p", &doc).unwrap().accounts.is_empty());
        assert_eq!(split_list(None), None);
        assert_eq!(split_list(Some(" ")), Some(vec![]));
    }
}
