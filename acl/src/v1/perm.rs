//! ACL 1.0 permission bits and the resources each request demands
//! (spec acl.md §2.4, Java 5.3.2 `PlainAccessResource.parse`).

use remoting::body::{from_fastjson, HeartbeatData};
use remoting::request_code as rc;
use remoting::RemotingCommand;

use super::Denied;

pub const DENY: u8 = 1;
pub const ANY: u8 = 1 << 1;
pub const PUB: u8 = 1 << 2;
pub const SUB: u8 = 1 << 3;

/// `MixAll.RETRY_GROUP_TOPIC_PREFIX`.
pub const RETRY_PREFIX: &str = "%RETRY%";
/// `TopicValidator.RMQ_SYS_TRACE_TOPIC`.
pub const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";

/// Codes only admin accounts may call (5.3.2 `Permission.ADMIN_CODE`).
pub const ADMIN_CODES: [i32; 9] = [
    rc::UPDATE_AND_CREATE_TOPIC,
    rc::UPDATE_BROKER_CONFIG,
    rc::DELETE_TOPIC_IN_BROKER,
    rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
    rc::DELETE_SUBSCRIPTIONGROUP,
    513, // UPDATE_AND_CREATE_STATIC_TOPIC
    50,  // UPDATE_AND_CREATE_ACL_CONFIG
    51,  // DELETE_ACL_CONFIG
    52,  // GET_BROKER_CLUSTER_ACL_INFO
];

/// `Permission.parsePermFromString`: unknown words and absence are DENY.
pub fn parse_perm(word: Option<&str>) -> u8 {
    match word.map(str::trim) {
        Some("PUB") => PUB,
        Some("SUB") => SUB,
        Some("PUB|SUB") | Some("SUB|PUB") => PUB | SUB,
        _ => DENY,
    }
}

/// `Permission.checkPermission(needed, owned)`.
pub fn check_permission(needed: u8, owned: u8) -> bool {
    if owned & DENY != 0 {
        return false;
    }
    if needed & ANY != 0 {
        return owned & (PUB | SUB) != 0;
    }
    needed & owned != 0
}

pub fn is_retry_topic(topic: &str) -> bool {
    topic.starts_with(RETRY_PREFIX)
}

pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_PREFIX}{group}")
}

/// `PlainAccessResource.printStr`: `topic:t` or `group:g`.
pub fn print_resource(resource: &str, is_group: bool) -> String {
    if is_group {
        format!("group:{}", resource.get(RETRY_PREFIX.len()..).unwrap_or(""))
    } else {
        format!("topic:{resource}")
    }
}

/// The resources a request demands, in the order Java adds them; a resource
/// added twice keeps the last permission (a map in Java).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Demanded(pub Vec<(String, u8)>);

impl Demanded {
    fn add(&mut self, resource: Option<&str>, perm: u8) {
        let Some(resource) = resource else { return };
        match self.0.iter_mut().find(|(r, _)| r == resource) {
            Some(slot) => slot.1 = perm,
            None => self.0.push((resource.to_owned(), perm)),
        }
    }

    fn add_group(&mut self, group: Option<&str>, perm: u8) {
        self.add(group.map(retry_topic).as_deref(), perm);
    }

    pub fn get(&self, resource: &str) -> Option<u8> {
        self.0.iter().find(|(r, _)| r == resource).map(|(_, p)| *p)
    }
}

/// Java's `decodeCommandCustomHeader` refusal for a missing `@CFNotNull` field.
fn required<'a>(req: &'a RemotingCommand, field: &str) -> Result<&'a str, Denied> {
    req.ext(field)
        .ok_or_else(|| Denied::parse(format!("the custom field <{field}> is null")))
}

/// The resources `request` demands (only called when it has `extFields`).
pub fn demanded(req: &RemotingCommand) -> Result<Demanded, Denied> {
    let mut d = Demanded::default();
    let f = |k: &str| req.ext(k);
    let pub_or_sub = |t: Option<&str>| {
        if t.is_some_and(is_retry_topic) {
            SUB
        } else {
            PUB
        }
    };
    match req.code {
        rc::SEND_MESSAGE => d.add(f("topic"), pub_or_sub(f("topic"))),
        rc::SEND_MESSAGE_V2 | rc::SEND_BATCH_MESSAGE => d.add(f("b"), pub_or_sub(f("b"))),
        370 => d.add(f("topic"), PUB), // RECALL_MESSAGE
        rc::CONSUMER_SEND_MSG_BACK => d.add_group(f("group"), SUB),
        rc::PULL_MESSAGE => {
            d.add(f("topic"), SUB);
            d.add_group(f("consumerGroup"), SUB);
        }
        rc::QUERY_MESSAGE => d.add(f("topic"), SUB),
        rc::HEART_BEAT => {
            let data: HeartbeatData = from_fastjson(&req.body).map_err(|e| {
                // An empty body decodes to null in Java: a NullPointerException
                // without a message.
                Denied::parse_opt((!req.body.is_empty()).then(|| e.to_string()))
            })?;
            for c in &data.consumer_data_set {
                d.add_group(Some(&c.group_name), SUB);
                for s in &c.subscription_data_set {
                    d.add(Some(&s.topic), SUB);
                }
            }
        }
        rc::UNREGISTER_CLIENT => {
            required(req, "clientID")?;
            d.add_group(f("consumerGroup"), SUB);
        }
        rc::GET_CONSUMER_LIST_BY_GROUP => {
            d.add_group(Some(required(req, "consumerGroup")?), SUB);
        }
        rc::UPDATE_CONSUMER_OFFSET => {
            let group = required(req, "consumerGroup")?;
            let topic = required(req, "topic")?;
            required(req, "queueId")?;
            required(req, "commitOffset")?;
            d.add_group(Some(group), SUB);
            d.add(Some(topic), SUB);
        }
        _ => {}
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(code: i32, fields: &[(&str, &str)], body: &str) -> RemotingCommand {
        let mut r = RemotingCommand::request(code).with_body(body.as_bytes().to_vec());
        for (k, v) in fields {
            r.set_ext(*k, *v);
        }
        r
    }

    #[test]
    fn perms() {
        assert_eq!(parse_perm(Some(" PUB|SUB ")), PUB | SUB);
        assert_eq!(parse_perm(Some("SUB|PUB")), PUB | SUB);
        assert_eq!(parse_perm(Some("pub")), DENY);
        assert_eq!(parse_perm(None), DENY);
        assert!(check_permission(PUB, PUB | SUB));
        assert!(!check_permission(PUB, SUB));
        assert!(!check_permission(SUB, DENY | SUB));
        assert!(check_permission(ANY, SUB));
        assert!(!check_permission(ANY, DENY));
    }

    #[test]
    fn resources_per_code() {
        let hb = r#"{"clientID":"c","consumerDataSet":[{"groupName":"G","subscriptionDataSet":[{"topic":"T1"},{"topic":"%RETRY%G"}]}],"producerDataSet":[]}"#;
        let cases: Vec<(RemotingCommand, Vec<(&str, u8)>)> = vec![
            (req(10, &[("topic", "T")], ""), vec![("T", PUB)]),
            (
                req(10, &[("topic", "%RETRY%G"), ("group", "G")], ""),
                vec![("%RETRY%G", SUB)],
            ),
            (req(310, &[("b", "T"), ("a", "P")], ""), vec![("T", PUB)]),
            (req(320, &[("b", "T")], ""), vec![("T", PUB)]),
            (req(36, &[("group", "G")], ""), vec![("%RETRY%G", SUB)]),
            (
                req(11, &[("topic", "T"), ("consumerGroup", "G")], ""),
                vec![("T", SUB), ("%RETRY%G", SUB)],
            ),
            (req(12, &[("topic", "T")], ""), vec![("T", SUB)]),
            (req(34, &[], hb), vec![("%RETRY%G", SUB), ("T1", SUB)]),
            (
                req(35, &[("clientID", "c"), ("consumerGroup", "G")], ""),
                vec![("%RETRY%G", SUB)],
            ),
            (
                req(35, &[("clientID", "c"), ("producerGroup", "P")], ""),
                vec![],
            ),
            (
                req(38, &[("consumerGroup", "G")], ""),
                vec![("%RETRY%G", SUB)],
            ),
            (
                req(
                    15,
                    &[
                        ("consumerGroup", "G"),
                        ("topic", "T"),
                        ("queueId", "0"),
                        ("commitOffset", "1"),
                    ],
                    "",
                ),
                vec![("%RETRY%G", SUB), ("T", SUB)],
            ),
            (req(17, &[("topic", "T")], ""), vec![]),
        ];
        for (r, want) in cases {
            let got = demanded(&r).unwrap();
            let want: Vec<(String, u8)> =
                want.into_iter().map(|(a, b)| (a.to_owned(), b)).collect();
            assert_eq!(got.0, want, "code {}", r.code);
        }
    }

    #[test]
    fn malformed_requests_are_refused_not_panicking() {
        assert!(demanded(&req(34, &[], "{not json")).is_err());
        assert!(demanded(&req(34, &[], "")).is_err());
        let e = demanded(&req(38, &[], "")).unwrap_err();
        assert_eq!(
            e.message.as_deref(),
            Some("the custom field <consumerGroup> is null")
        );
        assert!(demanded(&req(15, &[("consumerGroup", "G")], "")).is_err());
        assert!(demanded(&req(35, &[("consumerGroup", "G")], "")).is_err());
    }
}
