//! The user and ACL admin calls (codes 3001–3010, spec acl.md §3.5) as pure
//! functions over [`Metadata`]: each returns the [`Change`]s to persist or
//! the refusal Java answers with, and the JSON bodies are fastjson's
//! (`UserInfo`, `AclInfo`: keys sorted, nulls left out).

use serde::{Deserialize, Serialize};

use super::decide::{AuthError, Metadata};
use super::model::{
    subject_key, subject_user, valid_ip_or_cidr, Acl, Action, Decision, Policy, PolicyEntry,
    PolicyType, Resource, User, UserStatus, UserType,
};

/// One durable edit of the metadata. The broker logs these; replaying them
/// in order rebuilds the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op")]
pub enum Change {
    PutUser { user: UserInfo },
    DeleteUser { username: String },
    PutAcl { acl: AclInfo },
    DeleteAcl { subject: String },
}

/// fastjson `UserInfo` (fields in fastjson's sorted order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub username: Option<String>,
}

/// fastjson `AclInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclInfo {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub policies: Option<Vec<PolicyInfo>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subject: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyInfo {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub entries: Option<Vec<PolicyEntryInfo>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub policy_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyEntryInfo {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub actions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub decision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_ips: Option<Vec<String>>,
}

impl From<&User> for UserInfo {
    fn from(u: &User) -> Self {
        UserInfo {
            password: Some(u.password.clone()),
            user_status: Some(u.user_status.name().into()),
            user_type: Some(u.user_type.name().into()),
            username: Some(u.username.clone()),
        }
    }
}

impl From<&Acl> for AclInfo {
    fn from(acl: &Acl) -> Self {
        AclInfo {
            subject: Some(acl.subject.clone()),
            policies: Some(
                acl.policies
                    .iter()
                    .map(|p| PolicyInfo {
                        policy_type: Some(p.policy_type.name().into()),
                        entries: Some(
                            p.entries
                                .iter()
                                .map(|e| PolicyEntryInfo {
                                    resource: Some(e.resource.key()),
                                    actions: (!e.actions.is_empty()).then(|| {
                                        e.actions.iter().map(|a| a.name().to_owned()).collect()
                                    }),
                                    source_ips: (!e.source_ips.is_empty())
                                        .then(|| e.source_ips.clone()),
                                    decision: Some(e.decision.name().into()),
                                })
                                .collect(),
                        ),
                    })
                    .collect(),
            ),
        }
    }
}

/// A stored user back from its logged form; `None` when it does not parse
/// (never written by us).
pub fn user_from_info(info: &UserInfo) -> Option<User> {
    Some(User {
        username: info.username.clone()?,
        password: info.password.clone().unwrap_or_default(),
        user_type: info
            .user_type
            .as_deref()
            .and_then(UserType::by_name)
            .unwrap_or(UserType::Normal),
        user_status: info
            .user_status
            .as_deref()
            .and_then(UserStatus::by_name)
            .unwrap_or(UserStatus::Enable),
    })
}

/// An ACL as the request body gives it, before validation (Java
/// `AclConverter.convertAcl`: unknown actions are dropped, unknown resource
/// types and decisions become null and fail validation).
struct RawEntry {
    resource: Option<Resource>,
    actions: Vec<Action>,
    source_ips: Vec<String>,
    decision: Option<Decision>,
}

struct RawPolicy {
    policy_type: PolicyType,
    entries: Vec<RawEntry>,
}

fn convert_policies(info: &AclInfo) -> Vec<RawPolicy> {
    let mut out = Vec::new();
    for p in info.policies.iter().flatten() {
        let entries = match &p.entries {
            Some(e) if !e.is_empty() => e,
            _ => continue,
        };
        out.push(RawPolicy {
            policy_type: p
                .policy_type
                .as_deref()
                .and_then(PolicyType::by_name)
                .unwrap_or(PolicyType::Custom),
            entries: entries
                .iter()
                .map(|e| RawEntry {
                    resource: e.resource.as_deref().and_then(Resource::parse),
                    actions: e
                        .actions
                        .iter()
                        .flatten()
                        .filter_map(|a| Action::by_name(a))
                        .collect(),
                    source_ips: e.source_ips.clone().unwrap_or_default(),
                    decision: e.decision.as_deref().and_then(Decision::by_name),
                })
                .collect(),
        });
    }
    out
}

/// `AuthorizationMetadataManagerImpl.validate`.
fn validate(policies: Vec<RawPolicy>) -> Result<Vec<Policy>, AuthError> {
    let deny = |m: &str| AuthError::Authorization(m.into());
    if policies.is_empty() {
        return Err(deny("The policies is empty."));
    }
    let mut out = Vec::new();
    for p in policies {
        let mut entries = Vec::new();
        for e in p.entries {
            let resource = e.resource.ok_or_else(|| deny("The resource is null."))?;
            if e.actions.is_empty() {
                return Err(deny("The actions is empty."));
            }
            if e.actions.contains(&Action::Any) {
                return Err(deny("The actions can not be Any."));
            }
            for ip in &e.source_ips {
                if ip.trim().is_empty() {
                    return Err(deny("The source ip is empty."));
                }
                if !valid_ip_or_cidr(ip) {
                    return Err(deny("The source ip is invalid."));
                }
            }
            let decision = e
                .decision
                .ok_or_else(|| deny("The decision is null or illegal."))?;
            entries.push(PolicyEntry {
                resource,
                actions: e.actions,
                source_ips: e.source_ips,
                decision,
            });
        }
        out.push(Policy {
            policy_type: p.policy_type,
            entries,
        });
    }
    Ok(out)
}

/// What Java's handler answers for a failure outside its futures: the
/// exception's text with its class (`RemotingHelper.exceptionSimpleDesc`).
fn thrown(class: &str, message: &str) -> AuthError {
    AuthError::System(format!("{class}: {message}"))
}

const SYSTEM: &str = "An system error occurred, please try again later.";

fn blank(s: Option<&str>) -> bool {
    s.map_or(true, |s| s.trim().is_empty())
}

fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<Option<T>, AuthError> {
    if body.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| thrown("com.alibaba.fastjson2.JSONException", &e.to_string()))
}

impl Metadata {
    /// Applies one logged change.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::PutUser { user } => {
                if let Some(u) = user_from_info(user) {
                    self.users.insert(u.username.clone(), u);
                }
            }
            Change::DeleteUser { username } => {
                self.users.remove(username);
            }
            Change::PutAcl { acl } => {
                let Some(subject) = acl.subject.clone() else {
                    return;
                };
                let policies = validate(convert_policies(acl)).unwrap_or_default();
                self.acls.insert(subject.clone(), Acl { subject, policies });
            }
            Change::DeleteAcl { subject } => {
                self.acls.remove(subject);
            }
        }
    }

    /// Java's `isNotSuperUserLogin`: a caller without AccessKey counts as Super.
    pub fn caller_is_super(&self, access_key: Option<&str>) -> bool {
        match access_key {
            None | Some("") => true,
            Some(k) => self
                .users
                .get(k)
                .is_some_and(|u| u.user_type == UserType::Super),
        }
    }

    /// 3001 AUTH_CREATE_USER.
    pub fn create_user(
        &self,
        caller_super: bool,
        username: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<Change>, AuthError> {
        let Some(username) = username.filter(|u| !u.is_empty()) else {
            return Err(AuthError::InvalidParameter("The username is blank".into()));
        };
        let info: UserInfo =
            decode(body)?.ok_or_else(|| thrown("java.lang.NullPointerException", "null"))?;
        let user_type = info.user_type.as_deref().and_then(UserType::by_name);
        if user_type == Some(UserType::Super) && !caller_super {
            return Err(AuthError::System(
                "The super user can only be create by super user".into(),
            ));
        }
        if username.trim().is_empty() {
            return Err(AuthError::Authentication(
                "username can not be blank".into(),
            ));
        }
        if blank(info.password.as_deref()) {
            return Err(AuthError::Authentication(
                "password can not be blank".into(),
            ));
        }
        if self.users.contains_key(username) {
            return Err(AuthError::Authentication("The user is existed".into()));
        }
        let user = User {
            username: username.to_owned(),
            password: info.password.unwrap_or_default(),
            user_type: user_type.unwrap_or(UserType::Normal),
            user_status: info
                .user_status
                .as_deref()
                .and_then(UserStatus::by_name)
                .unwrap_or(UserStatus::Enable),
        };
        Ok(vec![Change::PutUser {
            user: (&user).into(),
        }])
    }

    /// 3002 AUTH_UPDATE_USER: only a non-blank password and known type and
    /// status are applied.
    pub fn update_user(
        &self,
        caller_super: bool,
        username: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<Change>, AuthError> {
        let Some(username) = username.filter(|u| !u.is_empty()) else {
            return Err(AuthError::InvalidParameter("The username is blank".into()));
        };
        let info: UserInfo =
            decode(body)?.ok_or_else(|| thrown("java.lang.NullPointerException", "null"))?;
        let user_type = info.user_type.as_deref().and_then(UserType::by_name);
        if user_type == Some(UserType::Super) && !caller_super {
            return Err(AuthError::System(
                "The super user can only be update by super user".into(),
            ));
        }
        let Some(old) = self.users.get(username) else {
            return Err(AuthError::Authentication("The user is not exist".into()));
        };
        if old.user_type == UserType::Super && !caller_super {
            return Err(AuthError::Authentication(
                "The super user can only be update by super user".into(),
            ));
        }
        if username.trim().is_empty() {
            return Err(AuthError::Authentication(
                "username can not be blank".into(),
            ));
        }
        let mut user = old.clone();
        if let Some(p) = info.password.filter(|p| !p.trim().is_empty()) {
            user.password = p;
        }
        if let Some(t) = user_type {
            user.user_type = t;
        }
        if let Some(s) = info.user_status.as_deref().and_then(UserStatus::by_name) {
            user.user_status = s;
        }
        Ok(vec![Change::PutUser {
            user: (&user).into(),
        }])
    }

    /// 3003 AUTH_DELETE_USER: absent users are fine; the user's ACL goes too.
    pub fn delete_user(
        &self,
        caller_super: bool,
        username: Option<&str>,
    ) -> Result<Vec<Change>, AuthError> {
        let username = username.unwrap_or_default();
        if username.trim().is_empty() {
            return Err(AuthError::Authentication(
                "username can not be blank".into(),
            ));
        }
        let Some(user) = self.users.get(username) else {
            return Ok(Vec::new());
        };
        if user.user_type == UserType::Super && !caller_super {
            return Err(AuthError::Authentication(
                "The super user can only be update by super user".into(),
            ));
        }
        let mut changes = vec![Change::DeleteUser {
            username: username.to_owned(),
        }];
        let subject = subject_key(username);
        if self.acls.contains_key(&subject) {
            changes.push(Change::DeleteAcl { subject });
        }
        Ok(changes)
    }

    /// 3004 AUTH_GET_USER: the body, or none when the user is absent.
    pub fn get_user(&self, username: Option<&str>) -> Result<Option<Vec<u8>>, AuthError> {
        let Some(username) = username.filter(|u| !u.trim().is_empty()) else {
            return Err(AuthError::InvalidParameter("The username is blank".into()));
        };
        Ok(self.users.get(username).map(|u| json(&UserInfo::from(u))))
    }

    /// 3005 AUTH_LIST_USER: users whose name contains `filter`.
    pub fn list_users(&self, filter: Option<&str>) -> Option<Vec<u8>> {
        let list: Vec<UserInfo> = self
            .users
            .values()
            .filter(|u| blank(filter) || u.username.contains(filter.unwrap_or_default()))
            .map(UserInfo::from)
            .collect();
        (!list.is_empty()).then(|| json(&list))
    }

    /// 3006 AUTH_CREATE_ACL and 3007 AUTH_UPDATE_ACL (identical in Java):
    /// merged into an existing ACL, or created.
    pub fn put_acl(&self, subject: Option<&str>, body: &[u8]) -> Result<Vec<Change>, AuthError> {
        let info: Option<AclInfo> = decode(body)?;
        let Some(info) = info.filter(|i| i.policies.as_ref().is_some_and(|p| !p.is_empty())) else {
            return Err(thrown(
                "org.apache.rocketmq.auth.authorization.exception.AuthorizationException",
                "The body of acl is null",
            ));
        };
        let subject = info
            .subject
            .clone()
            .or_else(|| subject.map(str::to_owned))
            .unwrap_or_default();
        let Some(username) = subject_user(&subject) else {
            return Err(AuthError::System(SYSTEM.into()));
        };
        let policies = validate(convert_policies(&info))?;
        if !self.users.contains_key(username) {
            return Err(AuthError::Authorization(format!(
                "The subject of {} is not exist.",
                subject_key(username)
            )));
        }
        let key = subject_key(username);
        let acl = match self.acls.get(&key) {
            Some(old) => {
                let mut acl = old.clone();
                acl.merge(policies);
                acl
            }
            None => Acl {
                subject: key,
                policies,
            },
        };
        Ok(vec![Change::PutAcl { acl: (&acl).into() }])
    }

    /// 3008 AUTH_DELETE_ACL: one entry (policy type default Custom) or, without
    /// a resource, the whole ACL.
    pub fn delete_acl(
        &self,
        subject: Option<&str>,
        policy_type: Option<&str>,
        resource: Option<&str>,
    ) -> Result<Vec<Change>, AuthError> {
        let Some(username) = subject.and_then(subject_user) else {
            return Err(AuthError::Authorization("The subject is null.".into()));
        };
        let policy_type = policy_type
            .and_then(PolicyType::by_name)
            .unwrap_or(PolicyType::Custom);
        let resource = resource.and_then(Resource::parse);
        if !self.users.contains_key(username) {
            return Err(AuthError::Authorization("The subject is not exist.".into()));
        }
        let key = subject_key(username);
        let Some(old) = self.acls.get(&key) else {
            return Err(AuthError::Authorization("The acl is not exist.".into()));
        };
        let Some(resource) = resource else {
            return Ok(vec![Change::DeleteAcl { subject: key }]);
        };
        let mut acl = old.clone();
        acl.remove_entry(policy_type, &resource);
        if acl.policies.is_empty() {
            return Ok(vec![Change::DeleteAcl { subject: key }]);
        }
        Ok(vec![Change::PutAcl { acl: (&acl).into() }])
    }

    /// 3009 AUTH_GET_ACL.
    pub fn get_acl(&self, subject: Option<&str>) -> Result<Option<Vec<u8>>, AuthError> {
        let Some(username) = subject.and_then(subject_user) else {
            return Err(AuthError::System(SYSTEM.into()));
        };
        if !self.users.contains_key(username) {
            return Err(AuthError::Authorization("The subject is not exist.".into()));
        }
        Ok(self
            .acls
            .get(&subject_key(username))
            .map(|a| json(&AclInfo::from(a))))
    }

    /// 3010 AUTH_LIST_ACL: subjects containing `subject_filter`; entries whose
    /// resource key contains `resource_filter` (unless the subject key does).
    pub fn list_acls(
        &self,
        subject_filter: Option<&str>,
        resource_filter: Option<&str>,
    ) -> Option<Vec<u8>> {
        let mut list = Vec::new();
        for (key, acl) in &self.acls {
            if !blank(subject_filter) && !key.contains(subject_filter.unwrap_or_default()) {
                continue;
            }
            let mut acl = acl.clone();
            if let Some(rf) = resource_filter.filter(|r| !r.trim().is_empty()) {
                if !key.contains(rf) {
                    for p in &mut acl.policies {
                        p.entries.retain(|e| e.resource.key().contains(rf));
                    }
                    acl.policies.retain(|p| !p.entries.is_empty());
                }
            }
            if !acl.policies.is_empty() {
                list.push(AclInfo::from(&acl));
            }
        }
        (!list.is_empty()).then(|| json(&list))
    }
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing plain structs of strings cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(
        m: &mut Metadata,
        f: impl FnOnce(&Metadata) -> Result<Vec<Change>, AuthError>,
    ) -> Result<(), AuthError> {
        for c in f(m)? {
            m.apply(&c);
        }
        Ok(())
    }

    fn user_body(password: &str, user_type: Option<&str>) -> Vec<u8> {
        let mut v = serde_json::json!({ "password": password });
        if let Some(t) = user_type {
            v["userType"] = t.into();
        }
        serde_json::to_vec(&v).expect("json")
    }

    fn acl_body(resource: &str, actions: &[&str], decision: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "policies": [{ "entries": [{
                "resource": resource, "actions": actions, "decision": decision
            }] }]
        }))
        .expect("json")
    }

    #[test]
    fn users() {
        let mut m = Metadata::default();
        apply(&mut m, |m| {
            m.create_user(true, Some("root"), &user_body("p1", Some("Super")))
        })
        .expect("root");
        apply(&mut m, |m| {
            m.create_user(true, Some("alice"), &user_body("p2", None))
        })
        .expect("alice");
        let refusals = [
            (
                m.create_user(true, Some(""), &user_body("p", None)),
                29,
                "The username is blank",
            ),
            (
                m.create_user(true, Some("alice"), &user_body("p", None)),
                16,
                "The user is existed",
            ),
            (
                m.create_user(true, Some("bob"), &user_body("", None)),
                16,
                "password can not be blank",
            ),
            (
                m.create_user(false, Some("eve"), &user_body("p", Some("super"))),
                1,
                "The super user can only be create by super user",
            ),
            (
                m.update_user(true, Some("carol"), &user_body("p", None)),
                16,
                "The user is not exist",
            ),
            (
                m.update_user(false, Some("root"), &user_body("p", None)),
                16,
                "The super user can only be update by super user",
            ),
            (
                m.delete_user(false, Some("root")),
                16,
                "The super user can only be update by super user",
            ),
        ];
        for (i, (got, code, remark)) in refusals.into_iter().enumerate() {
            let e = got.expect_err(&format!("case {i}"));
            assert_eq!(
                (e.code(), e.to_string().as_str()),
                (code, remark),
                "case {i}"
            );
        }
        // Update applies only what is given; a blank password keeps the old one.
        let body = br#"{"password":"","userStatus":"disable"}"#;
        apply(&mut m, |m| m.update_user(true, Some("alice"), body)).expect("update");
        let alice = &m.users["alice"];
        assert_eq!(
            (alice.password.as_str(), alice.user_status),
            ("p2", UserStatus::Disable)
        );
        let got = m.get_user(Some("alice")).expect("get").expect("body");
        assert_eq!(
            String::from_utf8(got).expect("utf8"),
            r#"{"password":"p2","userStatus":"disable","userType":"Normal","username":"alice"}"#
        );
        assert_eq!(m.get_user(Some("nobody")), Ok(None));
        assert!(m.list_users(Some("zzz")).is_none());
        // Deleting a user deletes its ACL; deleting an absent user is fine.
        apply(&mut m, |m| {
            m.put_acl(Some("User:alice"), &acl_body("Topic:t", &["Pub"], "Allow"))
        })
        .expect("acl");
        apply(&mut m, |m| m.delete_user(true, Some("alice"))).expect("delete");
        assert!(m.acls.is_empty() && !m.users.contains_key("alice"));
        assert_eq!(m.delete_user(true, Some("alice")), Ok(vec![]));
    }

    #[test]
    fn acls() {
        let mut m = Metadata::default();
        apply(&mut m, |m| {
            m.create_user(true, Some("u"), &user_body("p", None))
        })
        .expect("u");
        let refusals = [
            (
                m.put_acl(Some("User:x"), &acl_body("Topic:t", &["Pub"], "Allow")),
                16,
                "The subject of User:x is not exist.",
            ),
            (
                m.put_acl(Some("User:u"), &acl_body("Queue:t", &["Pub"], "Allow")),
                16,
                "The resource is null.",
            ),
            (
                m.put_acl(Some("User:u"), &acl_body("Topic:t", &["Any"], "Allow")),
                16,
                "The actions can not be Any.",
            ),
            (
                m.put_acl(Some("User:u"), &acl_body("Topic:t", &["Publish"], "Allow")),
                16,
                "The actions is empty.",
            ),
            (
                m.put_acl(Some("User:u"), &acl_body("Topic:t", &["Pub"], "Maybe")),
                16,
                "The decision is null or illegal.",
            ),
            (
                m.delete_acl(Some("User:u"), None, None),
                16,
                "The acl is not exist.",
            ),
        ];
        for (i, (got, code, remark)) in refusals.into_iter().enumerate() {
            let e = got.expect_err(&format!("case {i}"));
            assert_eq!(
                (e.code(), e.to_string().as_str()),
                (code, remark),
                "case {i}"
            );
        }
        let e = m.put_acl(Some("User:u"), b"{}").expect_err("no policies");
        assert_eq!(e.code(), 1);
        // Create merges: same resource replaced, new one appended.
        apply(&mut m, |m| {
            m.put_acl(Some("User:u"), &acl_body("Topic:a", &["Pub"], "Allow"))
        })
        .expect("a");
        apply(&mut m, |m| {
            m.put_acl(Some("User:u"), &acl_body("topic:a", &["sub"], "deny"))
        })
        .expect("a again");
        apply(&mut m, |m| {
            m.put_acl(Some("User:u"), &acl_body("Topic:b*", &["Pub"], "Allow"))
        })
        .expect("b");
        let got = String::from_utf8(m.get_acl(Some("User:u")).expect("get").expect("body"))
            .expect("utf8");
        assert_eq!(
            got,
            r#"{"policies":[{"entries":[{"actions":["Sub"],"decision":"Deny","resource":"Topic:a"},{"actions":["Pub"],"decision":"Allow","resource":"Topic:b*"}],"policyType":"Custom"}],"subject":"User:u"}"#
        );
        let listed = String::from_utf8(m.list_acls(None, Some("b*")).expect("list")).expect("utf8");
        assert!(
            listed.contains("Topic:b*") && !listed.contains("Topic:a"),
            "{listed}"
        );
        apply(&mut m, |m| {
            m.delete_acl(Some("User:u"), None, Some("Topic:a"))
        })
        .expect("one entry");
        apply(&mut m, |m| {
            m.delete_acl(Some("User:u"), Some("Custom"), Some("Topic:b*"))
        })
        .expect("last entry");
        assert!(m.acls.is_empty());
    }
}
