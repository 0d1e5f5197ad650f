//! The Auth 2.0 model (spec acl.md §3.4): users, resources, actions and the
//! policies an ACL holds, with Java's names. Names are read in any case
//! (Java's `getByName` compares ignoring case) and shown in Java's spelling.

use std::fmt;

/// Defines a closed set of names read case-insensitively.
macro_rules! named {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// Java's spelling.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            /// Java `getByName`: any case, `None` when unknown.
            pub fn by_name(raw: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.name().eq_ignore_ascii_case(raw))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named!(
    /// `UserType`; absent means Normal.
    UserType { Super = "Super", Normal = "Normal" }
);
named!(
    /// `UserStatus`; absent means enable.
    UserStatus { Enable = "enable", Disable = "disable" }
);
named!(
    /// `ResourceType` (Java also has `Unknown`, which no key parses to usefully).
    ResourceType { Any = "Any", Cluster = "Cluster", Namespace = "Namespace", Topic = "Topic", Group = "Group" }
);
named!(
    /// `Action`. `Any` is what a request may ask for, never what an ACL grants.
    Action { All = "All", Any = "Any", Pub = "Pub", Sub = "Sub", Create = "Create", Update = "Update", Delete = "Delete", Get = "Get", List = "List" }
);
named!(
    /// `Decision`.
    Decision { Allow = "Allow", Deny = "Deny" }
);
named!(
    /// `PolicyType`; absent means Custom.
    PolicyType { Custom = "Custom", Default = "Default" }
);

/// A user of Auth 2.0: the access key is the user name, the secret key its
/// password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub username: String,
    pub password: String,
    pub user_type: UserType,
    pub user_status: UserStatus,
}

/// How a resource name is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourcePattern {
    /// `Type:*`, or the resource `*`.
    Any,
    Literal,
    /// `Type:prefix*` (the name holds the prefix).
    Prefixed,
}

/// A resource, as an ACL entry names it or as a request asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resource {
    pub kind: ResourceType,
    /// Empty for the `Any` pattern.
    pub name: String,
    pub pattern: ResourcePattern,
}

/// Java `NamespaceUtil.RETRY_PREFIX` / `DLQ_PREFIX`.
pub const RETRY_PREFIX: &str = "%RETRY%";
pub const DLQ_PREFIX: &str = "%DLQ%";

pub fn is_retry_topic(topic: &str) -> bool {
    topic.starts_with(RETRY_PREFIX)
}

impl Resource {
    pub fn literal(kind: ResourceType, name: impl Into<String>) -> Self {
        Resource {
            kind,
            name: name.into(),
            pattern: ResourcePattern::Literal,
        }
    }

    pub fn topic(name: &str) -> Self {
        Self::literal(ResourceType::Topic, name)
    }

    /// Java `Resource.ofGroup`: a retry topic names its group.
    pub fn group(name: &str) -> Self {
        let name = if is_retry_topic(name) {
            let rest = &name[RETRY_PREFIX.len()..];
            rest.strip_prefix(DLQ_PREFIX).unwrap_or(rest)
        } else {
            name
        };
        Self::literal(ResourceType::Group, name)
    }

    /// Java `Resource.of(resourceKey)`: `*`, `Type:*`, `Type:prefix*` or
    /// `Type:name`; `None` for a blank key or an unknown type.
    pub fn parse(key: &str) -> Option<Self> {
        if key.trim().is_empty() {
            return None;
        }
        if key == "*" {
            return Some(Resource {
                kind: ResourceType::Any,
                name: String::new(),
                pattern: ResourcePattern::Any,
            });
        }
        let (kind, name) = match key.split_once(':') {
            Some((k, n)) => (k, n),
            None => (key, ""),
        };
        let kind = ResourceType::by_name(kind)?;
        Some(if name == "*" {
            Resource {
                kind,
                name: String::new(),
                pattern: ResourcePattern::Any,
            }
        } else if let Some(prefix) = name.strip_suffix('*') {
            // Java keeps what precedes the first `*`.
            let prefix = prefix.split('*').next().unwrap_or_default();
            Resource {
                kind,
                name: prefix.to_owned(),
                pattern: ResourcePattern::Prefixed,
            }
        } else {
            Resource::literal(kind, name)
        })
    }

    /// Java `getResourceKey`.
    pub fn key(&self) -> String {
        if self.kind == ResourceType::Any {
            return "*".into();
        }
        match self.pattern {
            ResourcePattern::Any => format!("{}:*", self.kind),
            ResourcePattern::Literal => format!("{}:{}", self.kind, self.name),
            ResourcePattern::Prefixed => format!("{}:{}*", self.kind, self.name),
        }
    }

    /// Java `Resource.isMatch`: does this (entry) resource cover `asked`?
    pub fn covers(&self, asked: &Resource) -> bool {
        if self.kind == ResourceType::Any {
            return true;
        }
        if self.kind != asked.kind {
            return false;
        }
        match self.pattern {
            ResourcePattern::Any => true,
            ResourcePattern::Literal => asked.name == self.name,
            ResourcePattern::Prefixed => asked.name.starts_with(&self.name),
        }
    }
}

/// One rule of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEntry {
    pub resource: Resource,
    pub actions: Vec<Action>,
    /// IPs or CIDR blocks; empty = any source.
    pub source_ips: Vec<String>,
    pub decision: Decision,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub policy_type: PolicyType,
    pub entries: Vec<PolicyEntry>,
}

/// The policies of one subject (`User:<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub subject: String,
    pub policies: Vec<Policy>,
}

impl Acl {
    pub fn policy(&self, t: PolicyType) -> Option<&Policy> {
        self.policies.iter().find(|p| p.policy_type == t)
    }

    /// Java `Acl.updatePolicy`: a new policy type is added; into an existing
    /// one, each entry replaces the entry with an equal resource or is
    /// appended.
    pub fn merge(&mut self, policies: Vec<Policy>) {
        for new in policies {
            match self
                .policies
                .iter_mut()
                .find(|p| p.policy_type == new.policy_type)
            {
                None => self.policies.push(new),
                Some(old) => {
                    for entry in new.entries {
                        match old
                            .entries
                            .iter_mut()
                            .find(|e| e.resource == entry.resource)
                        {
                            Some(e) => {
                                e.actions = entry.actions;
                                e.source_ips = entry.source_ips;
                                e.decision = entry.decision;
                            }
                            None => old.entries.push(entry),
                        }
                    }
                }
            }
        }
    }

    /// Java `Acl.deletePolicy`: removes the entry for `resource` from the
    /// policy of type `t`, and the policy when it has no entry left.
    pub fn remove_entry(&mut self, t: PolicyType, resource: &Resource) {
        if let Some(i) = self.policies.iter().position(|p| p.policy_type == t) {
            let policy = &mut self.policies[i];
            if let Some(j) = policy.entries.iter().position(|e| &e.resource == resource) {
                policy.entries.remove(j);
            }
            if policy.entries.is_empty() {
                self.policies.remove(i);
            }
        }
    }
}

/// `User:<name>` → the name; `None` for another subject type (Java knows
/// only `User`).
pub fn subject_user(subject_key: &str) -> Option<&str> {
    let (kind, name) = match subject_key.split_once(':') {
        Some((k, n)) => (k, n),
        None => (subject_key, ""),
    };
    kind.eq_ignore_ascii_case("User").then_some(name)
}

pub fn subject_key(username: &str) -> String {
    format!("User:{username}")
}

/// Java `IPAddressUtils.isValidIPOrCidr`.
pub fn valid_ip_or_cidr(raw: &str) -> bool {
    match raw.split_once('/') {
        None => raw.parse::<std::net::IpAddr>().is_ok(),
        Some((ip, len)) => match (ip.parse::<std::net::IpAddr>(), len.parse::<u8>()) {
            (Ok(std::net::IpAddr::V4(_)), Ok(n)) => n <= 32 && !len.starts_with('+'),
            (Ok(std::net::IpAddr::V6(_)), Ok(n)) => n <= 128 && !len.starts_with('+'),
            _ => false,
        },
    }
}

/// Java `IPAddressUtils.isIPInRange(ip, cidr)`: a plain IP must equal the
/// source text; a CIDR block contains the address (same family).
pub fn ip_in_range(ip: &str, cidr: &str) -> bool {
    let Some((net, len)) = cidr.split_once('/') else {
        return ip == cidr;
    };
    let (Ok(net), Ok(len), Ok(ip)) = (
        net.parse::<std::net::IpAddr>(),
        len.parse::<u32>(),
        ip.parse::<std::net::IpAddr>(),
    ) else {
        return false;
    };
    use std::net::IpAddr::{V4, V6};
    let (net, ip, bits) = match (net, ip) {
        (V4(n), V4(i)) => (u32::from(n) as u128, u32::from(i) as u128, 32),
        (V6(n), V6(i)) => (u128::from(n), u128::from(i), 128),
        _ => return false,
    };
    if len > bits {
        return false;
    }
    let host_bits = bits - len;
    let mask = if host_bits >= 128 {
        0
    } else {
        (u128::MAX << host_bits)
            & if bits == 128 {
                u128::MAX
            } else {
                (1u128 << bits) - 1
            }
    };
    (net & mask) == (ip & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_in_any_case() {
        assert_eq!(Action::by_name("pUB"), Some(Action::Pub));
        assert_eq!(UserType::by_name("super"), Some(UserType::Super));
        assert_eq!(UserStatus::by_name("DISABLE"), Some(UserStatus::Disable));
        assert_eq!(Decision::by_name("deny"), Some(Decision::Deny));
        assert_eq!(PolicyType::by_name("default"), Some(PolicyType::Default));
        assert_eq!(Action::by_name("publish"), None);
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn resource_keys() {
        let cases: &[(&str, Option<(ResourceType, &str, ResourcePattern)>, &str)] = &[
            (
                "*",
                Some((ResourceType::Any, "", ResourcePattern::Any)),
                "*",
            ),
            (
                "Topic:*",
                Some((ResourceType::Topic, "", ResourcePattern::Any)),
                "Topic:*",
            ),
            (
                "topic:ab*",
                Some((ResourceType::Topic, "ab", ResourcePattern::Prefixed)),
                "Topic:ab*",
            ),
            (
                "GROUP:g1",
                Some((ResourceType::Group, "g1", ResourcePattern::Literal)),
                "Group:g1",
            ),
            (
                "Cluster:c",
                Some((ResourceType::Cluster, "c", ResourcePattern::Literal)),
                "Cluster:c",
            ),
            ("Queue:q", None, ""),
            ("  ", None, ""),
        ];
        for (raw, want, key) in cases {
            let got = Resource::parse(raw);
            assert_eq!(
                got.as_ref().map(|r| (r.kind, r.name.as_str(), r.pattern)),
                *want,
                "{raw}"
            );
            if let Some(r) = got {
                assert_eq!(r.key(), *key);
            }
        }
    }

    #[test]
    fn resource_matching() {
        let t = Resource::topic("orders-1");
        let cases = [
            ("*", true),
            ("Topic:*", true),
            ("Topic:orders*", true),
            ("Topic:orders-1", true),
            ("Topic:orders-2", false),
            ("Topic:x*", false),
            ("Group:*", false),
        ];
        for (entry, want) in cases {
            let e = Resource::parse(entry).expect("parses");
            assert_eq!(e.covers(&t), want, "{entry}");
        }
    }

    #[test]
    fn group_of_retry_topic() {
        assert_eq!(Resource::group("%RETRY%g1").name, "g1");
        assert_eq!(Resource::group("%RETRY%%DLQ%g1").name, "g1");
        assert_eq!(Resource::group("g1").name, "g1");
    }

    #[test]
    fn source_ips() {
        let cases = [
            ("10.1.2.3", "10.0.0.0/8", true),
            ("11.1.2.3", "10.0.0.0/8", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("127.0.0.1", "127.0.0.1/32", true),
            ("127.0.0.1", "0.0.0.0/0", true),
            ("::1", "::/0", true),
            ("::1", "10.0.0.0/8", false),
        ];
        for (ip, cidr, want) in cases {
            assert_eq!(ip_in_range(ip, cidr), want, "{ip} in {cidr}");
        }
        assert!(valid_ip_or_cidr("10.0.0.0/8"));
        assert!(valid_ip_or_cidr("::1"));
        assert!(!valid_ip_or_cidr("10.0.0.0/33"));
        assert!(!valid_ip_or_cidr("10.0.0"));
    }

    #[test]
    fn merge_replaces_equal_resources() {
        let e = |r: &str, a: Action, d: Decision| PolicyEntry {
            resource: Resource::parse(r).expect("parses"),
            actions: vec![a],
            source_ips: vec![],
            decision: d,
        };
        let mut acl = Acl {
            subject: "User:u".into(),
            policies: vec![Policy {
                policy_type: PolicyType::Custom,
                entries: vec![e("Topic:a", Action::Pub, Decision::Allow)],
            }],
        };
        acl.merge(vec![Policy {
            policy_type: PolicyType::Custom,
            entries: vec![
                e("Topic:a", Action::Sub, Decision::Deny),
                e("Topic:b", Action::Pub, Decision::Allow),
            ],
        }]);
        let custom = acl.policy(PolicyType::Custom).expect("custom");
        assert_eq!(custom.entries.len(), 2);
        assert_eq!(custom.entries[0].actions, vec![Action::Sub]);
        assert_eq!(custom.entries[0].decision, Decision::Deny);
        acl.remove_entry(PolicyType::Custom, &Resource::topic("a"));
        acl.remove_entry(PolicyType::Custom, &Resource::topic("b"));
        assert!(acl.policies.is_empty());
    }
}
