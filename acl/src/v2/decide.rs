//! Auth 2.0 decisions on one request (spec acl.md §3.2, §3.3): who is
//! asking (authentication), and whether the policies let them touch what
//! the request names (authorization). Refusals carry Java's messages and
//! become NO_PERMISSION (16) on the wire.

use std::collections::{BTreeMap, HashSet};

use remoting::code::response_code;
use remoting::RemotingCommand;

use super::contexts::{contexts, Asked};
use super::model::{
    ip_in_range, subject_key, Acl, Action, Decision, PolicyEntry, PolicyType, ResourcePattern,
    ResourceType, User, UserStatus, UserType,
};
use crate::sign;

/// Why a request or an admin call is refused; [`AuthError::code`] is the
/// response code Java answers with, the message its remark.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Java `AuthenticationException`: 16.
    #[error("{0}")]
    Authentication(String),
    /// Java `AuthorizationException`: 16.
    #[error("{0}")]
    Authorization(String),
    /// A handler's own parameter check: 29.
    #[error("{0}")]
    InvalidParameter(String),
    /// Anything else Java turns into SYSTEM_ERROR (1).
    #[error("{0}")]
    System(String),
}

impl AuthError {
    pub fn code(&self) -> i32 {
        match self {
            AuthError::Authentication(_) | AuthError::Authorization(_) => {
                response_code::NO_PERMISSION
            }
            AuthError::InvalidParameter(_) => response_code::INVALID_PARAMETER,
            AuthError::System(_) => response_code::SYSTEM_ERROR,
        }
    }
}

/// The Auth 2.0 keys of the broker config that decisions depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    pub authentication_enabled: bool,
    pub authorization_enabled: bool,
    /// `authenticationMetadataProvider` / `authorizationMetadataProvider`
    /// set: without a user store every authentication fails (trap 7).
    pub has_user_store: bool,
    pub has_acl_store: bool,
    /// Request codes exempt from each check.
    pub authentication_whitelist: HashSet<i32>,
    pub authorization_whitelist: HashSet<i32>,
    /// `brokerClusterName`: the `Cluster:` resource of cluster-wide codes.
    pub cluster_name: String,
}

/// Java's whitelist keys: comma-separated decimal codes; others are ignored.
pub fn parse_whitelist(raw: &str) -> HashSet<i32> {
    raw.split(',')
        .filter_map(|c| c.trim().parse::<i32>().ok())
        .collect()
}

/// Users by name and ACLs by subject key, in key order (as Java's RocksDB
/// iterates them for the list calls).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub users: BTreeMap<String, User>,
    pub acls: BTreeMap<String, Acl>,
}

/// The request's caller and origin, for the checks.
pub struct Origin<'a> {
    /// The remote address without its port (Java: text before the last `:`).
    pub source_ip: &'a str,
}

/// Java's source IP: the remote address up to its last `:`.
pub fn source_ip(addr: &std::net::SocketAddr) -> String {
    addr.ip().to_string()
}

impl Metadata {
    /// `AuthenticationPipeline` then `AuthorizationPipeline`.
    pub fn check(
        &self,
        config: &AuthConfig,
        request: &RemotingCommand,
        origin: &Origin<'_>,
    ) -> Result<(), AuthError> {
        if config.authentication_enabled {
            self.authenticate(config, request)?;
        }
        if config.authorization_enabled {
            self.authorize(config, request, origin)?;
        }
        Ok(())
    }

    /// Java `DefaultAuthenticationHandler` behind the stateless strategy.
    pub fn authenticate(
        &self,
        config: &AuthConfig,
        request: &RemotingCommand,
    ) -> Result<(), AuthError> {
        if config.authentication_whitelist.contains(&request.code) {
            return Ok(());
        }
        if !config.has_user_store {
            return Err(AuthError::Authentication(
                "The authenticationMetadataProvider is not configured".into(),
            ));
        }
        let username = match request.ext(sign::ACCESS_KEY) {
            Some(u) if !u.is_empty() => u,
            _ => return Err(AuthError::Authentication("username cannot be null.".into())),
        };
        let Some(user) = self.users.get(username) else {
            return Err(AuthError::Authentication(format!(
                "User:{username} is not found."
            )));
        };
        if user.user_status == UserStatus::Disable {
            return Err(AuthError::Authentication(format!(
                "User:{username} is disabled."
            )));
        }
        if !sign::verify(request, &user.password) {
            return Err(AuthError::Authentication("check signature failed.".into()));
        }
        Ok(())
    }

    /// Java `DefaultAuthorizationProvider`: every resource the request names
    /// must be allowed, in order; the first refusal ends the request.
    pub fn authorize(
        &self,
        config: &AuthConfig,
        request: &RemotingCommand,
        origin: &Origin<'_>,
    ) -> Result<(), AuthError> {
        let asked = contexts(request, &config.cluster_name)?;
        if asked.is_empty() || config.authorization_whitelist.contains(&request.code) {
            return Ok(());
        }
        let subject = request.ext(sign::ACCESS_KEY);
        for a in &asked {
            self.authorize_one(config, subject, a, origin)?;
        }
        Ok(())
    }

    fn authorize_one(
        &self,
        config: &AuthConfig,
        subject: Option<&str>,
        asked: &Asked,
        origin: &Origin<'_>,
    ) -> Result<(), AuthError> {
        // A request without AccessKey has no subject; Java fails on it with
        // a NullPointerException, reported with this generic text.
        let Some(username) = subject else {
            return Err(AuthError::Authorization(
                "Authorization failed. Please verify your access rights and try again.".into(),
            ));
        };
        if !config.has_user_store {
            return Err(AuthError::Authorization(
                "Authorization failed. Please verify your access rights and try again.".into(),
            ));
        }
        let Some(user) = self.users.get(username) else {
            return Err(AuthError::Authorization(format!(
                "User:{username} not found."
            )));
        };
        if user.user_type == UserType::Super {
            return Ok(());
        }
        if !config.has_acl_store {
            return Err(AuthError::Authorization(
                "The authorizationMetadataProvider is not configured".into(),
            ));
        }
        let refuse = |detail: &str| {
            AuthError::Authorization(format!(
                "{} has no permission to access {} from {}, {detail}",
                subject_key(username),
                asked.resource.key(),
                origin.source_ip
            ))
        };
        let Some(acl) = self.acls.get(&subject_key(username)) else {
            return Err(refuse("no matched policies."));
        };
        match best_entry(acl, asked, origin.source_ip) {
            None => Err(refuse("no matched policies.")),
            Some(e) if e.decision == Decision::Deny => Err(refuse("the decision is deny.")),
            Some(_) => Ok(()),
        }
    }
}

/// The entries that match, from the Custom policy, or from the Default one
/// when no Custom entry matches; then the most specific
/// (`AclAuthorizationHandler.comparePolicyEntries`). On an exact tie Java's
/// comparator sorts Deny *after* Allow, so Allow wins; a tie needs two
/// entries with the same resource in one policy, which only a hand-written
/// body can store (mqadmin and merging replace equal resources).
pub fn best_entry<'a>(acl: &'a Acl, asked: &Asked, ip: &str) -> Option<&'a PolicyEntry> {
    let matching = |t: PolicyType| -> Vec<&'a PolicyEntry> {
        acl.policy(t)
            .map(|p| p.entries.iter().filter(|e| matches(e, asked, ip)).collect())
            .unwrap_or_default()
    };
    let mut found = matching(PolicyType::Custom);
    if found.is_empty() {
        found = matching(PolicyType::Default);
    }
    // A stable sort, as Java's List.sort, so equal entries keep their order.
    found.sort_by(|a, b| compare(a, b));
    found.first().copied()
}

fn matches(e: &PolicyEntry, asked: &Asked, ip: &str) -> bool {
    if !e.resource.covers(&asked.resource) {
        return false;
    }
    let action_ok = !e.actions.is_empty()
        && (asked.actions.contains(&Action::Any)
            || asked
                .actions
                .iter()
                .any(|a| e.actions.contains(a) || e.actions.contains(&Action::All)));
    if !action_ok {
        return false;
    }
    e.source_ips.is_empty() || e.source_ips.iter().any(|s| ip_in_range(ip, s))
}

fn compare(a: &PolicyEntry, b: &PolicyEntry) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    let (r1, r2) = (&a.resource, &b.resource);
    let rank = |p: ResourcePattern| match p {
        ResourcePattern::Literal => 0,
        ResourcePattern::Prefixed => 1,
        ResourcePattern::Any => 2,
    };
    let specific = if r1.kind != r2.kind {
        if r2.kind == ResourceType::Any {
            Less
        } else if r1.kind == ResourceType::Any {
            Greater
        } else {
            Equal
        }
    } else if r1.pattern == r2.pattern {
        if r1.pattern == ResourcePattern::Prefixed {
            r2.name.chars().count().cmp(&r1.name.chars().count())
        } else {
            Equal
        }
    } else {
        rank(r1.pattern).cmp(&rank(r2.pattern))
    };
    if specific != Equal {
        return specific;
    }
    match (a.decision, b.decision) {
        (Decision::Deny, _) => Greater,
        (_, Decision::Deny) => Less,
        _ => Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::{sign_request, SessionCredentials};
    use crate::v2::model::{Policy, Resource};

    fn user(name: &str, t: UserType, s: UserStatus) -> User {
        User {
            username: name.into(),
            password: format!("{name}-secret"),
            user_type: t,
            user_status: s,
        }
    }

    fn entry(r: &str, actions: &[Action], ips: &[&str], d: Decision) -> PolicyEntry {
        PolicyEntry {
            resource: Resource::parse(r).expect("resource"),
            actions: actions.to_vec(),
            source_ips: ips.iter().map(|s| s.to_string()).collect(),
            decision: d,
        }
    }

    fn meta() -> Metadata {
        use Action::*;
        use Decision::*;
        let mut m = Metadata::default();
        for u in [
            user("root", UserType::Super, UserStatus::Enable),
            user("alice", UserType::Normal, UserStatus::Enable),
            user("bob", UserType::Normal, UserStatus::Disable),
            user("nobody", UserType::Normal, UserStatus::Enable),
        ] {
            m.users.insert(u.username.clone(), u);
        }
        let custom = vec![
            entry("Topic:pub-only", &[Pub], &[], Allow),
            entry("Topic:orders*", &[Pub, Sub], &[], Allow),
            entry("Topic:orders-secret", &[All], &[], Deny),
            entry("Topic:lan", &[Pub], &["10.0.0.0/8"], Allow),
            entry("Group:g1", &[Sub], &[], Allow),
            entry("*", &[Get], &[], Allow),
        ];
        let default = vec![entry("Topic:*", &[Sub], &[], Allow)];
        m.acls.insert(
            "User:alice".into(),
            Acl {
                subject: "User:alice".into(),
                policies: vec![
                    Policy {
                        policy_type: PolicyType::Custom,
                        entries: custom,
                    },
                    Policy {
                        policy_type: PolicyType::Default,
                        entries: default,
                    },
                ],
            },
        );
        m
    }

    fn config() -> AuthConfig {
        AuthConfig {
            authentication_enabled: true,
            authorization_enabled: true,
            has_user_store: true,
            has_acl_store: true,
            cluster_name: "C1".into(),
            ..AuthConfig::default()
        }
    }

    fn send(topic: &str) -> RemotingCommand {
        RemotingCommand::request(remoting::code::request_code::SEND_MESSAGE_V2)
            .with_ext("a", "pg")
            .with_ext("b", topic)
            .with_body(&b"hello"[..])
    }

    /// A send to a retry topic without a producer group: checked as the
    /// group the topic names.
    fn send_retry(topic: &str) -> RemotingCommand {
        RemotingCommand::request(remoting::code::request_code::SEND_MESSAGE_V2).with_ext("b", topic)
    }

    fn pull(topic: &str, group: &str) -> RemotingCommand {
        RemotingCommand::request(remoting::code::request_code::PULL_MESSAGE)
            .with_ext("topic", topic)
            .with_ext("consumerGroup", group)
    }

    fn signed(mut r: RemotingCommand, user: &str, secret: &str) -> RemotingCommand {
        sign_request(&mut r, &SessionCredentials::new(user, secret));
        r
    }

    /// (who, secret override, request, source ip, expected remark or Ok)
    #[test]
    #[allow(clippy::type_complexity)]
    fn decisions() {
        let m = meta();
        let c = config();
        let ok = None;
        let cases: Vec<(&str, Option<&str>, RemotingCommand, &str, Option<&str>)> = vec![
            ("alice", None, send("pub-only"), "127.0.0.1", ok),
            ("alice", Some("wrong"), send("pub-only"), "127.0.0.1", Some("check signature failed.")),
            ("carol", None, send("pub-only"), "127.0.0.1", Some("User:carol is not found.")),
            ("bob", None, send("pub-only"), "127.0.0.1", Some("User:bob is disabled.")),
            ("root", None, send("anything"), "127.0.0.1", ok),
            ("nobody", None, send("pub-only"), "127.0.0.1",
                Some("User:nobody has no permission to access Topic:pub-only from 127.0.0.1, no matched policies.")),
            // Pub only: pulling it falls to... the Custom policy has no Sub
            // entry for it, so Default's Topic:* Sub applies.
            ("alice", None, pull("pub-only", "g1"), "127.0.0.1", ok),
            ("alice", None, pull("pub-only", "g2"), "127.0.0.1",
                Some("User:alice has no permission to access Group:g2 from 127.0.0.1, no matched policies.")),
            ("alice", None, send("orders-1"), "127.0.0.1", ok),
            ("alice", None, send("orders-secret"), "127.0.0.1",
                Some("User:alice has no permission to access Topic:orders-secret from 127.0.0.1, the decision is deny.")),
            ("alice", None, send("lan"), "10.1.2.3", ok),
            ("alice", None, send("lan"), "127.0.0.1",
                Some("User:alice has no permission to access Topic:lan from 127.0.0.1, no matched policies.")),
            // The retry topic of a group is checked as the group.
            ("alice", None, send_retry("%RETRY%g1"), "127.0.0.1", ok),
            ("alice", None, send_retry("%RETRY%g2"), "127.0.0.1",
                Some("User:alice has no permission to access Group:g2 from 127.0.0.1, no matched policies.")),
        ];
        for (i, (who, secret, req, ip, want)) in cases.into_iter().enumerate() {
            let secret = secret.map(str::to_owned).unwrap_or(format!("{who}-secret"));
            let req = signed(req, who, &secret);
            let got = m.check(&c, &req, &Origin { source_ip: ip });
            match want {
                None => assert_eq!(got, Ok(()), "case {i}"),
                Some(remark) => {
                    let e = got.expect_err(&format!("case {i} refused"));
                    assert_eq!(e.code(), 16, "case {i}");
                    assert_eq!(e.to_string(), remark, "case {i}");
                }
            }
        }
    }

    #[test]
    fn unsigned_and_whitelisted() {
        let m = meta();
        let mut c = config();
        let req = send("pub-only");
        let e = m
            .check(
                &c,
                &req,
                &Origin {
                    source_ip: "127.0.0.1",
                },
            )
            .expect_err("refused");
        assert_eq!(e.to_string(), "username cannot be null.");
        c.authentication_whitelist = parse_whitelist("310, x");
        let e = m
            .check(
                &c,
                &req,
                &Origin {
                    source_ip: "127.0.0.1",
                },
            )
            .expect_err("refused");
        assert_eq!(
            e.to_string(),
            "Authorization failed. Please verify your access rights and try again."
        );
        c.authorization_whitelist = parse_whitelist("310");
        assert_eq!(
            m.check(
                &c,
                &req,
                &Origin {
                    source_ip: "127.0.0.1"
                }
            ),
            Ok(())
        );
        // No user store configured: every authentication fails.
        let c = AuthConfig {
            has_user_store: false,
            ..config()
        };
        let req = signed(send("pub-only"), "alice", "alice-secret");
        let e = m
            .check(
                &c,
                &req,
                &Origin {
                    source_ip: "127.0.0.1",
                },
            )
            .expect_err("refused");
        assert_eq!(
            e.to_string(),
            "The authenticationMetadataProvider is not configured"
        );
    }

    #[test]
    fn admin_codes_need_the_cluster() {
        let mut m = meta();
        let c = config();
        let req = signed(
            RemotingCommand::request(3004).with_ext("username", "bob"),
            "alice",
            "alice-secret",
        );
        // alice's `*` Get entry covers Cluster:C1.
        assert_eq!(
            m.check(
                &c,
                &req,
                &Origin {
                    source_ip: "127.0.0.1"
                }
            ),
            Ok(())
        );
        let req = signed(
            RemotingCommand::request(3001).with_ext("username", "eve"),
            "alice",
            "alice-secret",
        );
        let e = m
            .check(
                &c,
                &req,
                &Origin {
                    source_ip: "127.0.0.1",
                },
            )
            .expect_err("refused");
        assert_eq!(
            e.to_string(),
            "User:alice has no permission to access Cluster:C1 from 127.0.0.1, no matched policies."
        );
        m.acls.clear();
        let req = signed(send("t"), "alice", "alice-secret");
        assert!(m
            .check(
                &c,
                &req,
                &Origin {
                    source_ip: "127.0.0.1"
                }
            )
            .is_err());
    }

    #[test]
    fn precedence() {
        use Action::*;
        use Decision::*;
        let acl = |entries: Vec<PolicyEntry>| Acl {
            subject: "User:u".into(),
            policies: vec![Policy {
                policy_type: PolicyType::Custom,
                entries,
            }],
        };
        let asked = Asked {
            resource: Resource::topic("abcd"),
            actions: vec![Pub],
        };
        let cases = vec![
            (
                vec![
                    entry("*", &[Pub], &[], Deny),
                    entry("Topic:*", &[Pub], &[], Allow),
                ],
                Allow,
            ),
            (
                vec![
                    entry("Topic:*", &[Pub], &[], Deny),
                    entry("Topic:ab*", &[Pub], &[], Allow),
                ],
                Allow,
            ),
            (
                vec![
                    entry("Topic:a*", &[Pub], &[], Allow),
                    entry("Topic:abc*", &[Pub], &[], Deny),
                ],
                Deny,
            ),
            (
                vec![
                    entry("Topic:ab*", &[Pub], &[], Allow),
                    entry("Topic:abcd", &[Pub], &[], Deny),
                ],
                Deny,
            ),
            (
                vec![
                    entry("Topic:abcd", &[All], &[], Deny),
                    entry("Topic:*", &[Pub], &[], Allow),
                ],
                Deny,
            ),
            // An exact tie: Java's comparator puts Allow first.
            (
                vec![
                    entry("Topic:abcd", &[Pub], &[], Deny),
                    entry("Topic:abcd", &[Pub], &[], Allow),
                ],
                Allow,
            ),
        ];
        for (i, (entries, want)) in cases.into_iter().enumerate() {
            let a = acl(entries);
            let best = best_entry(&a, &asked, "1.2.3.4").expect("matches");
            assert_eq!(best.decision, want, "case {i}");
        }
        // An entry without actions matches nothing.
        let a = acl(vec![entry("Topic:abcd", &[], &[], Allow)]);
        assert!(best_entry(&a, &asked, "1.2.3.4").is_none());
    }
}
