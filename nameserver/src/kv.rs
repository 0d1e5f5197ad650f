//! The KV config table (`KVConfigManager`): namespace -> key -> value,
//! persisted as Java's `kvConfig.json`, `{"configTable":{"ns":{"k":"v"}}}`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The KV namespace whose entries become routes' `orderTopicConf`.
pub const NAMESPACE_ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("malformed KV config file {path}: {source}")]
    Malformed {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// `KVConfigSerializeWrapper`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct KvConfigFile {
    #[serde(deserialize_with = "null_as_default")]
    config_table: BTreeMap<String, BTreeMap<String, Option<String>>>,
}

fn null_as_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The table itself; no I/O.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KvConfig {
    table: BTreeMap<String, BTreeMap<String, String>>,
}

impl KvConfig {
    pub fn put(&mut self, namespace: &str, key: &str, value: &str) {
        self.table
            .entry(namespace.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
    }

    pub fn get(&self, namespace: &str, key: &str) -> Option<&str> {
        self.table.get(namespace)?.get(key).map(String::as_str)
    }

    /// Java keeps an emptied namespace (its list answers `{"table":{}}`).
    pub fn delete(&mut self, namespace: &str, key: &str) -> Option<String> {
        self.table.get_mut(namespace)?.remove(key)
    }

    pub fn namespace(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.table.get(namespace)
    }

    /// The file content, compact as Java writes it.
    pub fn to_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            config_table: &'a BTreeMap<String, BTreeMap<String, String>>,
        }
        remoting::body::to_json(&Out {
            config_table: &self.table,
        })
    }

    /// Parses a `kvConfig.json`; null values (fastjson may write them) are dropped.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let file: KvConfigFile = remoting::body::from_fastjson(bytes)?;
        let table = file
            .config_table
            .into_iter()
            .map(|(ns, kv)| {
                (
                    ns,
                    kv.into_iter().filter_map(|(k, v)| Some((k, v?))).collect(),
                )
            })
            .collect();
        Ok(KvConfig { table })
    }

    /// Loads `path`; a missing file is an empty table (Java `KVConfigManager.load`).
    pub fn load(path: &Path) -> Result<Self, KvError> {
        match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Self::default()),
            Ok(bytes) => Self::from_json(&bytes).map_err(|source| KvError::Malformed {
                path: path.to_owned(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(KvError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    pub fn persist(&self, path: &Path) -> std::io::Result<()> {
        write_with_backup(path, &self.to_json())
    }
}

/// Java `MixAll.string2File`: the previous content goes to `<file>.bak`, then
/// the new content replaces the file. Here the replacement is atomic (a
/// temporary file renamed over it), so a crash leaves one complete version.
pub fn write_with_backup(path: &Path, content: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let mut bak = path.as_os_str().to_owned();
    bak.push(".bak");
    match std::fs::copy(path, &bak) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn java_file_format_round_trips() {
        let mut kv = KvConfig::default();
        kv.put(NAMESPACE_ORDER_TOPIC_CONFIG, "T", "broker-a:4");
        kv.put("ns", "k", "v");
        let json = String::from_utf8(kv.to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"configTable":{"ORDER_TOPIC_CONFIG":{"T":"broker-a:4"},"ns":{"k":"v"}}}"#
        );
        assert_eq!(KvConfig::from_json(json.as_bytes()).unwrap(), kv);
        // Java may write pretty JSON or nulls.
        let pretty =
            b"{\n\t\"configTable\":{\n\t\t\"ns\":{\n\t\t\t\"k\":\"v\",\"n\":null\n\t\t}\n\t}\n}";
        let parsed = KvConfig::from_json(pretty).unwrap();
        assert_eq!(parsed.get("ns", "k"), Some("v"));
        assert_eq!(parsed.get("ns", "n"), None);
    }

    #[test]
    fn delete_keeps_the_namespace() {
        let mut kv = KvConfig::default();
        kv.put("ns", "k", "v");
        assert_eq!(kv.delete("ns", "k").as_deref(), Some("v"));
        assert_eq!(kv.delete("other", "k"), None);
        assert!(kv.namespace("ns").is_some_and(BTreeMap::is_empty));
    }

    #[test]
    fn load_persist_and_backup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("kvConfig.json");
        assert_eq!(KvConfig::load(&path).unwrap(), KvConfig::default());
        let mut kv = KvConfig::default();
        kv.put("a", "b", "c");
        kv.persist(&path).unwrap();
        kv.put("a", "d", "e");
        kv.persist(&path).unwrap();
        assert_eq!(KvConfig::load(&path).unwrap(), kv);
        let bak =
            std::fs::read_to_string(dir.path().join("sub").join("kvConfig.json.bak")).unwrap();
        assert_eq!(bak, r#"{"configTable":{"a":{"b":"c"}}}"#);
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            KvConfig::load(&path),
            Err(KvError::Malformed { .. })
        ));
    }
}
