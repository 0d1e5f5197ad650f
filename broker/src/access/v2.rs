//! Auth 2.0 on the broker (spec acl.md §3): the users and ACLs of
//! [`super::store::AuthStore`], checked before each request by an
//! [`remoting::Interceptor`], and managed with codes 3001–3010.
//!
//! The store is opened when either `authenticationMetadataProvider` or
//! `authorizationMetadataProvider` is set (any value: we have one store),
//! as Java only keeps metadata with a provider configured. Checks run when
//! `authenticationEnabled` / `authorizationEnabled` are on.

use std::sync::{Arc, RwLock};

use acl::sign::{self, SessionCredentials};
// `access::v1::sign_outbound` signs slave sync with the inner credentials.
use acl::v2::decide::{parse_whitelist, source_ip, Origin};
use acl::v2::{AuthConfig, AuthError, Change, Metadata};
use remoting::code::response_code;
use remoting::{CommandError, Connection, Interceptor, RemotingCommand};
use serde::Deserialize;
use tracing::{info, warn};

use super::store::AuthStore;
use crate::config::BrokerConfig;

/// The admin codes (Java `RequestCode.AUTH_*`).
pub(crate) mod code {
    pub const CREATE_USER: i32 = 3001;
    pub const UPDATE_USER: i32 = 3002;
    pub const DELETE_USER: i32 = 3003;
    pub const GET_USER: i32 = 3004;
    pub const LIST_USER: i32 = 3005;
    pub const CREATE_ACL: i32 = 3006;
    pub const UPDATE_ACL: i32 = 3007;
    pub const DELETE_ACL: i32 = 3008;
    pub const GET_ACL: i32 = 3009;
    pub const LIST_ACL: i32 = 3010;
    pub const ALL: [i32; 10] = [
        CREATE_USER,
        UPDATE_USER,
        DELETE_USER,
        GET_USER,
        LIST_USER,
        CREATE_ACL,
        UPDATE_ACL,
        DELETE_ACL,
        GET_ACL,
        LIST_ACL,
    ];
}

#[derive(Debug, thiserror::Error)]
pub enum AuthStartError {
    #[error(transparent)]
    Store(#[from] super::store::AuthStoreError),
    #[error("config key {key}: {why}")]
    BadKey { key: &'static str, why: String },
}

/// `initAuthenticationUser`.
#[derive(Deserialize)]
struct InitUser {
    username: Option<String>,
    password: Option<String>,
}

/// `innerClientAuthenticationCredentials`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InnerCredentials {
    access_key: Option<String>,
    secret_key: Option<String>,
}

fn parse_inner(raw: &str) -> Result<Option<SessionCredentials>, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let c: InnerCredentials = serde_json::from_str(raw).map_err(|e| e.to_string())?;
    match (c.access_key, c.secret_key) {
        (Some(a), Some(s)) if !a.is_empty() && !s.is_empty() => {
            Ok(Some(SessionCredentials::new(a, s)))
        }
        _ => Err("accessKey and secretKey are required".into()),
    }
}

pub(crate) struct Auth {
    config: AuthConfig,
    store: Option<RwLock<AuthStore>>,
}

impl Auth {
    /// Opens the store (when a metadata provider is configured) and creates
    /// the start-up users. `None` when Auth 2.0 is not configured at all.
    pub fn open(c: &BrokerConfig) -> Result<Option<Arc<Auth>>, AuthStartError> {
        let has_user_store = !c.authentication_metadata_provider.trim().is_empty();
        let has_acl_store = !c.authorization_metadata_provider.trim().is_empty();
        let config = AuthConfig {
            authentication_enabled: c.authentication_enabled,
            authorization_enabled: c.authorization_enabled,
            has_user_store,
            has_acl_store,
            authentication_whitelist: parse_whitelist(&c.authentication_whitelist),
            authorization_whitelist: parse_whitelist(&c.authorization_whitelist),
            cluster_name: c.broker_cluster_name.clone(),
        };
        let inner = parse_inner(&c.inner_client_authentication_credentials).map_err(|why| {
            AuthStartError::BadKey {
                key: "innerClientAuthenticationCredentials",
                why,
            }
        })?;
        let init: Option<InitUser> = if c.init_authentication_user.trim().is_empty() {
            None
        } else {
            Some(
                serde_json::from_str(&c.init_authentication_user).map_err(|e| {
                    AuthStartError::BadKey {
                        key: "initAuthenticationUser",
                        why: e.to_string(),
                    }
                })?,
            )
        };
        if !has_user_store && !has_acl_store {
            if init.is_some() {
                // Java's broker fails to start here too (spec trap 7).
                return Err(AuthStartError::BadKey {
                    key: "initAuthenticationUser",
                    why: "set without authenticationMetadataProvider".into(),
                });
            }
            if !config.authentication_enabled && !config.authorization_enabled {
                return Ok(None);
            }
            warn!("authentication/authorization on without a metadata provider: every request will be refused");
            return Ok(Some(Arc::new(Auth {
                config,
                store: None,
            })));
        }
        let dir = if c.auth_config_path.trim().is_empty() {
            std::path::Path::new(&c.store_path_root_dir).join("config")
        } else {
            std::path::PathBuf::from(&c.auth_config_path)
        }
        .join("auth");
        let mut store = AuthStore::open(&dir)?;
        let mut start_users = Vec::new();
        if let Some(InitUser {
            username: Some(u),
            password: Some(p),
        }) = init
        {
            start_users.push((u, p));
        }
        if let Some(inner) = inner {
            start_users.push((inner.access_key, inner.secret_key));
        }
        for (username, password) in start_users {
            if username.is_empty() || store.metadata().users.contains_key(&username) {
                continue;
            }
            let user = acl::v2::model::User {
                username: username.clone(),
                password,
                user_type: acl::v2::model::UserType::Super,
                user_status: acl::v2::model::UserStatus::Enable,
            };
            store.commit(&[Change::PutUser {
                user: (&user).into(),
            }])?;
            info!(%username, "auth: start-up super user created");
        }
        Ok(Some(Arc::new(Auth {
            config,
            store: Some(RwLock::new(store)),
        })))
    }

    /// No Auth 2.0 configured: admin codes answer Java's system error.
    pub fn absent() -> Arc<Auth> {
        Arc::new(Auth {
            config: AuthConfig::default(),
            store: None,
        })
    }

    fn with_meta<T>(&self, f: impl FnOnce(&Metadata) -> T) -> Option<T> {
        let store = self.store.as_ref()?;
        let guard = store.read().unwrap_or_else(|p| p.into_inner());
        Some(f(guard.metadata()))
    }

    /// Codes 3001–3010.
    pub fn admin(&self, request: &RemotingCommand) -> RemotingCommand {
        match self.admin_inner(request) {
            Ok(body) => {
                let r = RemotingCommand::success();
                match body {
                    Some(b) => r.with_body(b),
                    None => r,
                }
            }
            Err(e) => RemotingCommand::response(e.code()).with_remark(e.to_string()),
        }
    }

    fn admin_inner(&self, r: &RemotingCommand) -> Result<Option<Vec<u8>>, AuthError> {
        let system =
            || AuthError::System("An system error occurred, please try again later.".into());
        let Some(store) = self.store.as_ref() else {
            return Err(system());
        };
        let ext = |k: &str| r.ext(k);
        let caller = r.ext(sign::ACCESS_KEY);
        let change = |f: &dyn Fn(&Metadata) -> Result<Vec<Change>, AuthError>| {
            let mut guard = store.write().unwrap_or_else(|p| p.into_inner());
            let changes = f(guard.metadata())?;
            guard.commit(&changes).map_err(|e| {
                warn!(error = %e, "auth store write failed");
                system()
            })?;
            Ok(None)
        };
        match r.code {
            code::CREATE_USER => {
                change(&|m| m.create_user(m.caller_is_super(caller), ext("username"), &r.body))
            }
            code::UPDATE_USER => {
                change(&|m| m.update_user(m.caller_is_super(caller), ext("username"), &r.body))
            }
            code::DELETE_USER => {
                change(&|m| m.delete_user(m.caller_is_super(caller), ext("username")))
            }
            code::CREATE_ACL | code::UPDATE_ACL => change(&|m| m.put_acl(ext("subject"), &r.body)),
            code::DELETE_ACL => {
                change(&|m| m.delete_acl(ext("subject"), ext("policyType"), ext("resource")))
            }
            code::GET_USER => self
                .with_meta(|m| m.get_user(ext("username")))
                .unwrap_or_else(|| Err(system())),
            code::LIST_USER => Ok(self.with_meta(|m| m.list_users(ext("filter"))).flatten()),
            code::GET_ACL => self
                .with_meta(|m| m.get_acl(ext("subject")))
                .unwrap_or_else(|| Err(system())),
            code::LIST_ACL => Ok(self
                .with_meta(|m| m.list_acls(ext("subjectFilter"), ext("resourceFilter")))
                .flatten()),
            _ => Err(system()),
        }
    }
}

impl Interceptor for Auth {
    fn before(&self, conn: &Connection, request: &RemotingCommand) -> Result<(), CommandError> {
        if !self.config.authentication_enabled && !self.config.authorization_enabled {
            return Ok(());
        }
        let ip = source_ip(&conn.peer());
        let origin = Origin { source_ip: &ip };
        let result = match self.store.as_ref() {
            Some(store) => {
                let guard = store.read().unwrap_or_else(|p| p.into_inner());
                guard.metadata().check(&self.config, request, &origin)
            }
            None => Metadata::default().check(&self.config, request, &origin),
        };
        result.map_err(|e| {
            tracing::debug!(peer = %conn.peer(), code = request.code, remark = %e, "auth refused");
            CommandError::new(response_code::NO_PERMISSION, e.to_string())
        })
    }
}
