//! The broker's controller identity files (controller.md §6.1):
//! `brokerIdentity` = `cluster#name#id` and `brokerIdentity-temp` =
//! `cluster#name#id#checkCode`, UTF-8 without a newline. As Java's
//! `MetadataFile.writeToFile` a write deletes the old file first, then
//! writes a `.tmp` and renames it into place (so no `.bak` appears).

use std::path::{Path, PathBuf};

/// Why an identity file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: malformed content {content:?}")]
    Malformed { path: String, content: String },
    #[error(
        "{path} belongs to {cluster}#{name}, not to this broker {want_cluster}#{want_name} \
         (Check and find that metadata/tempMetadata invalid)"
    )]
    Mismatch {
        path: String,
        cluster: String,
        name: String,
        want_cluster: String,
        want_name: String,
    },
}

/// `brokerIdentity-temp`: the id asked for and the check code sent with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempIdentity {
    pub broker_id: i64,
    pub check_code: String,
}

/// Both files of one broker.
#[derive(Debug, Clone)]
pub struct IdentityFiles {
    path: PathBuf,
    temp: PathBuf,
    cluster: String,
    name: String,
}

impl IdentityFiles {
    /// `path` is `storePathBrokerIdentity`; the temp file is `path-temp`.
    pub fn new(path: PathBuf, cluster: &str, name: &str) -> IdentityFiles {
        let mut temp = path.clone().into_os_string();
        temp.push("-temp");
        IdentityFiles {
            path,
            temp: PathBuf::from(temp),
            cluster: cluster.to_owned(),
            name: name.to_owned(),
        }
    }

    /// Splits `content` into at most `parts` `#`-fields and checks the
    /// cluster and broker name.
    fn fields(
        &self,
        path: &Path,
        content: &str,
        parts: usize,
    ) -> Result<Vec<String>, IdentityError> {
        let malformed = || IdentityError::Malformed {
            path: path.display().to_string(),
            content: content.to_owned(),
        };
        let f: Vec<String> = content.splitn(parts, '#').map(str::to_owned).collect();
        if f.len() != parts {
            return Err(malformed());
        }
        if f[0] != self.cluster || f[1] != self.name {
            return Err(IdentityError::Mismatch {
                path: path.display().to_string(),
                cluster: f[0].clone(),
                name: f[1].clone(),
                want_cluster: self.cluster.clone(),
                want_name: self.name.clone(),
            });
        }
        if f[2].trim().parse::<i64>().is_err() {
            return Err(malformed());
        }
        Ok(f)
    }

    fn read(path: &Path) -> Result<Option<String>, IdentityError> {
        match std::fs::read_to_string(path) {
            Ok(s) if s.trim().is_empty() => Ok(None),
            Ok(s) => Ok(Some(s.trim().to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(IdentityError::Io {
                path: path.display().to_string(),
                error,
            }),
        }
    }

    /// The id in `brokerIdentity`, if the file exists.
    pub fn load(&self) -> Result<Option<i64>, IdentityError> {
        let Some(content) = Self::read(&self.path)? else {
            return Ok(None);
        };
        let f = self.fields(&self.path, &content, 3)?;
        Ok(f[2].trim().parse().ok())
    }

    /// The content of `brokerIdentity-temp`, if the file exists.
    pub fn load_temp(&self) -> Result<Option<TempIdentity>, IdentityError> {
        let Some(content) = Self::read(&self.temp)? else {
            return Ok(None);
        };
        let f = self.fields(&self.temp, &content, 4)?;
        Ok(Some(TempIdentity {
            broker_id: f[2].trim().parse().unwrap_or(-1),
            check_code: f[3].clone(),
        }))
    }

    /// Checks both files without changing anything (start-up refuses a
    /// broker whose files name another cluster or broker).
    pub fn check(&self) -> Result<(), IdentityError> {
        self.load()?;
        self.load_temp()?;
        Ok(())
    }

    fn write(path: &Path, content: &str) -> Result<(), IdentityError> {
        let io = |error| IdentityError::Io {
            path: path.display().to_string(),
            error,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, content.as_bytes()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn write_temp(&self, t: &TempIdentity) -> Result<(), IdentityError> {
        let content = format!(
            "{}#{}#{}#{}",
            self.cluster, self.name, t.broker_id, t.check_code
        );
        Self::write(&self.temp, &content)
    }

    pub fn delete_temp(&self) -> Result<(), IdentityError> {
        match std::fs::remove_file(&self.temp) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(IdentityError::Io {
                path: self.temp.display().to_string(),
                error,
            }),
        }
    }

    /// Writes `brokerIdentity`, then deletes the temp file.
    pub fn commit(&self, broker_id: i64) -> Result<(), IdentityError> {
        Self::write(
            &self.path,
            &format!("{}#{}#{}", self.cluster, self.name, broker_id),
        )?;
        self.delete_temp()
    }
}

/// Java's check code: `brokerIP1:listenPort;nowMillis`.
pub fn check_code(broker_addr: &str) -> String {
    format!("{broker_addr};{}", remoting::body::now_millis())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn files_have_java_bytes_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let f = IdentityFiles::new(dir.path().join("brokerIdentity"), "C", "broker-a");
        assert_eq!(f.load().unwrap(), None);
        assert_eq!(f.load_temp().unwrap(), None);
        let t = TempIdentity {
            broker_id: 2,
            check_code: "10.0.0.2:30921;1726700000000".into(),
        };
        f.write_temp(&t).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("brokerIdentity-temp")).unwrap(),
            b"C#broker-a#2#10.0.0.2:30921;1726700000000"
        );
        assert_eq!(f.load_temp().unwrap(), Some(t));
        f.commit(2).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("brokerIdentity")).unwrap(),
            b"C#broker-a#2"
        );
        assert!(!dir.path().join("brokerIdentity-temp").exists());
        assert_eq!(f.load().unwrap(), Some(2));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["brokerIdentity".to_owned()]);
    }

    #[test]
    fn other_broker_or_junk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("brokerIdentity");
        std::fs::write(&p, "C#broker-b#1").unwrap();
        let f = IdentityFiles::new(p.clone(), "C", "broker-a");
        assert!(matches!(f.load(), Err(IdentityError::Mismatch { .. })));
        assert!(f.check().is_err());
        std::fs::write(&p, "C#broker-a#x").unwrap();
        assert!(matches!(f.load(), Err(IdentityError::Malformed { .. })));
        std::fs::write(&p, "garbage").unwrap();
        assert!(matches!(f.load(), Err(IdentityError::Malformed { .. })));
    }
}
