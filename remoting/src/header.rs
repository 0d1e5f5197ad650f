//! Typed custom headers <-> `extFields`.
//!
//! Java flattens a `CommandCustomHeader` object into string fields by
//! reflection; here a header is a plain struct declared with
//! [`command_header!`], naming each field's wire key. Reading follows Java's
//! leniency: a required field that is absent or unparsable is an error (Java
//! NPEs later and answers SYSTEM_ERROR); an optional one is simply `None`.

use crate::command::ExtFields;
use crate::error::HeaderError;

/// A typed view of `extFields`.
pub trait CommandHeader: Sized {
    fn read_fields(fields: &ExtFields) -> Result<Self, HeaderError>;
    fn write_fields(&self, fields: &mut ExtFields);
}

/// A value that can stand in a header field.
pub trait HeaderValue: Sized {
    fn read(raw: Option<&str>, field: &'static str) -> Result<Self, HeaderError>;
    /// `None` leaves the field out, as Java does for null fields.
    fn write(&self) -> Option<String>;
}

impl HeaderValue for String {
    fn read(raw: Option<&str>, field: &'static str) -> Result<Self, HeaderError> {
        raw.map(str::to_owned).ok_or(HeaderError::Missing(field))
    }
    fn write(&self) -> Option<String> {
        Some(self.clone())
    }
}

macro_rules! numeric_header_value {
    ($($t:ty),*) => {$(
        impl HeaderValue for $t {
            fn read(raw: Option<&str>, field: &'static str) -> Result<Self, HeaderError> {
                let raw = raw.ok_or(HeaderError::Missing(field))?;
                raw.trim().parse().map_err(|_| HeaderError::Invalid { field, value: raw.to_owned() })
            }
            fn write(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}
numeric_header_value!(i32, i64, u32, u64);

impl HeaderValue for bool {
    /// `Boolean.parseBoolean`: true only for "true", ignoring case.
    fn read(raw: Option<&str>, field: &'static str) -> Result<Self, HeaderError> {
        raw.map(|r| r.trim().eq_ignore_ascii_case("true"))
            .ok_or(HeaderError::Missing(field))
    }
    fn write(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl<T: HeaderValue> HeaderValue for Option<T> {
    /// Java logs an unparsable optional field and leaves it null.
    fn read(raw: Option<&str>, field: &'static str) -> Result<Self, HeaderError> {
        Ok(raw.and_then(|r| T::read(Some(r), field).ok()))
    }
    fn write(&self) -> Option<String> {
        self.as_ref().and_then(HeaderValue::write)
    }
}

/// Declares a header struct and its `extFields` mapping:
///
/// ```
/// remoting::command_header! {
///     pub struct GetRouteInfoRequestHeader {
///         pub topic: String = "topic",
///         pub accept_standard_json_only: Option<bool> = "acceptStandardJsonOnly",
///     }
/// }
/// ```
#[macro_export]
macro_rules! command_header {
    ($(#[$meta:meta])* $vis:vis struct $name:ident {
        $($(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty = $key:literal),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Default)]
        $vis struct $name { $($(#[$fmeta])* $fvis $field: $ty),* }

        impl $crate::header::CommandHeader for $name {
            fn read_fields(fields: &$crate::ExtFields) -> Result<Self, $crate::HeaderError> {
                let _ = fields; // unused by a header without fields
                Ok(Self {
                    $($field: <$ty as $crate::header::HeaderValue>::read(
                        fields.get($key), $key)?),*
                })
            }
            fn write_fields(&self, fields: &mut $crate::ExtFields) {
                // Room for every field plus a couple the caller may add
                // (e.g. a send response's MSG_REGION and TRACE_ON): one
                // allocation instead of regrowing the map field by field.
                fields.reserve(<[&str]>::len(&[$($key),*]) + 2);
                $(if let Some(v) = $crate::header::HeaderValue::write(&self.$field) {
                    fields.insert_static($key, v);
                })*
            }
        }
    };
}

command_header! {
    /// GET_ROUTEINFO_BY_TOPIC (105).
    pub struct GetRouteInfoRequestHeader {
        pub topic: String = "topic",
        pub accept_standard_json_only: Option<bool> = "acceptStandardJsonOnly",
    }
}

command_header! {
    /// SEND_MESSAGE (10) header, with Java's field names. SEND_MESSAGE_V2 (310)
    /// and SEND_BATCH_MESSAGE (320) carry the same fields under one-letter keys
    /// ([`SendMessageRequestHeaderV2`]); [`SendMessageRequestHeader::from_command`]
    /// reads either.
    pub struct SendMessageRequestHeader {
        pub producer_group: String = "producerGroup",
        pub topic: String = "topic",
        pub default_topic: String = "defaultTopic",
        pub default_topic_queue_nums: i32 = "defaultTopicQueueNums",
        pub queue_id: i32 = "queueId",
        pub sys_flag: i32 = "sysFlag",
        pub born_timestamp: i64 = "bornTimestamp",
        pub flag: i32 = "flag",
        pub properties: Option<String> = "properties",
        pub reconsume_times: Option<i32> = "reconsumeTimes",
        pub unit_mode: Option<bool> = "unitMode",
        pub batch: Option<bool> = "batch",
        pub max_reconsume_times: Option<i32> = "maxReconsumeTimes",
        pub broker_name: Option<String> = "bname",
    }
}

command_header! {
    /// `SendMessageRequestHeaderV2`: the short-letter form (`FastCodesHeader`).
    pub struct SendMessageRequestHeaderV2 {
        pub a: String = "a",
        pub b: String = "b",
        pub c: String = "c",
        pub d: i32 = "d",
        pub e: i32 = "e",
        pub f: i32 = "f",
        pub g: i64 = "g",
        pub h: i32 = "h",
        pub i: Option<String> = "i",
        pub j: Option<i32> = "j",
        pub k: Option<bool> = "k",
        pub l: Option<i32> = "l",
        pub m: Option<bool> = "m",
        pub n: Option<String> = "n",
    }
}

impl From<SendMessageRequestHeaderV2> for SendMessageRequestHeader {
    fn from(v2: SendMessageRequestHeaderV2) -> Self {
        SendMessageRequestHeader {
            producer_group: v2.a,
            topic: v2.b,
            default_topic: v2.c,
            default_topic_queue_nums: v2.d,
            queue_id: v2.e,
            sys_flag: v2.f,
            born_timestamp: v2.g,
            flag: v2.h,
            properties: v2.i,
            reconsume_times: v2.j,
            unit_mode: v2.k,
            max_reconsume_times: v2.l,
            batch: v2.m,
            broker_name: v2.n,
        }
    }
}

impl From<SendMessageRequestHeader> for SendMessageRequestHeaderV2 {
    fn from(v1: SendMessageRequestHeader) -> Self {
        SendMessageRequestHeaderV2 {
            a: v1.producer_group,
            b: v1.topic,
            c: v1.default_topic,
            d: v1.default_topic_queue_nums,
            e: v1.queue_id,
            f: v1.sys_flag,
            g: v1.born_timestamp,
            h: v1.flag,
            i: v1.properties,
            j: v1.reconsume_times,
            k: v1.unit_mode,
            l: v1.max_reconsume_times,
            m: v1.batch,
            n: v1.broker_name,
        }
    }
}

impl SendMessageRequestHeader {
    /// Reads the header of any send request: letters for 310/320, names for
    /// 10 (Java `SendMessageRequestHeader.parseRequestHeader`).
    pub fn from_command(cmd: &crate::RemotingCommand) -> Result<Self, HeaderError> {
        SendHeaderRef::from_command(cmd).map(SendHeaderRef::to_owned)
    }
}

/// A send request's header read in place: its strings borrow the command's
/// `extFields`, so the broker's hot path copies none of them.
/// [`SendMessageRequestHeader`] is the owned form; both read the same values
/// and report the same errors.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SendHeaderRef<'a> {
    pub producer_group: &'a str,
    pub topic: &'a str,
    pub default_topic: &'a str,
    pub default_topic_queue_nums: i32,
    pub queue_id: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub flag: i32,
    pub properties: Option<&'a str>,
    pub reconsume_times: Option<i32>,
    pub unit_mode: Option<bool>,
    pub max_reconsume_times: Option<i32>,
    pub batch: Option<bool>,
    pub broker_name: Option<&'a str>,
}

/// The send header's keys in [`SendHeaderRef`]'s field order: Java's names
/// (SEND_MESSAGE) and the letters standing for them (SEND_MESSAGE_V2 and
/// SEND_BATCH_MESSAGE, `SendMessageRequestHeaderV2`).
const SEND_NAMES: [&str; 14] = [
    "producerGroup",
    "topic",
    "defaultTopic",
    "defaultTopicQueueNums",
    "queueId",
    "sysFlag",
    "bornTimestamp",
    "flag",
    "properties",
    "reconsumeTimes",
    "unitMode",
    "maxReconsumeTimes",
    "batch",
    "bname",
];
const SEND_LETTERS: [&str; 14] = [
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n",
];

impl<'a> SendHeaderRef<'a> {
    /// Reads the header of any send request; for the letters, one pass over
    /// the fields instead of fourteen look-ups.
    pub fn from_command(cmd: &'a crate::RemotingCommand) -> Result<Self, HeaderError> {
        use crate::code::request_code::{SEND_BATCH_MESSAGE, SEND_MESSAGE_V2};
        let fields = cmd.fields();
        match cmd.code {
            SEND_MESSAGE_V2 | SEND_BATCH_MESSAGE => {
                let mut v: [Option<&str>; 14] = [None; 14];
                for (k, value) in fields {
                    if let [c @ b'a'..=b'n'] = k.as_bytes() {
                        v[(c - b'a') as usize] = Some(value);
                    }
                }
                Self::read(v, &SEND_LETTERS)
            }
            _ => Self::read(SEND_NAMES.map(|k| fields.get(k)), &SEND_NAMES),
        }
    }

    /// The values as the declared headers read them (required strings and
    /// numbers are errors when absent, optional ones `None` when unparsable).
    fn read(v: [Option<&'a str>; 14], keys: &[&'static str; 14]) -> Result<Self, HeaderError> {
        let text = |i: usize| v[i].ok_or(HeaderError::Missing(keys[i]));
        Ok(SendHeaderRef {
            producer_group: text(0)?,
            topic: text(1)?,
            default_topic: text(2)?,
            default_topic_queue_nums: HeaderValue::read(v[3], keys[3])?,
            queue_id: HeaderValue::read(v[4], keys[4])?,
            sys_flag: HeaderValue::read(v[5], keys[5])?,
            born_timestamp: HeaderValue::read(v[6], keys[6])?,
            flag: HeaderValue::read(v[7], keys[7])?,
            properties: v[8],
            reconsume_times: HeaderValue::read(v[9], keys[9])?,
            unit_mode: HeaderValue::read(v[10], keys[10])?,
            max_reconsume_times: HeaderValue::read(v[11], keys[11])?,
            batch: HeaderValue::read(v[12], keys[12])?,
            broker_name: v[13],
        })
    }

    pub fn to_owned(self) -> SendMessageRequestHeader {
        SendMessageRequestHeader {
            producer_group: self.producer_group.to_owned(),
            topic: self.topic.to_owned(),
            default_topic: self.default_topic.to_owned(),
            default_topic_queue_nums: self.default_topic_queue_nums,
            queue_id: self.queue_id,
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            flag: self.flag,
            properties: self.properties.map(str::to_owned),
            reconsume_times: self.reconsume_times,
            unit_mode: self.unit_mode,
            batch: self.batch,
            max_reconsume_times: self.max_reconsume_times,
            broker_name: self.broker_name.map(str::to_owned),
        }
    }
}

command_header! {
    /// Response to the send requests.
    pub struct SendMessageResponseHeader {
        pub msg_id: String = "msgId",
        pub queue_id: i32 = "queueId",
        pub queue_offset: i64 = "queueOffset",
        pub transaction_id: Option<String> = "transactionId",
        pub batch_uniq_id: Option<String> = "batchUniqId",
    }
}

command_header! {
    /// PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361).
    pub struct PullMessageRequestHeader {
        pub consumer_group: String = "consumerGroup",
        pub topic: String = "topic",
        pub queue_id: i32 = "queueId",
        pub queue_offset: i64 = "queueOffset",
        pub max_msg_nums: i32 = "maxMsgNums",
        pub sys_flag: i32 = "sysFlag",
        pub commit_offset: i64 = "commitOffset",
        pub suspend_timeout_millis: i64 = "suspendTimeoutMillis",
        pub subscription: Option<String> = "subscription",
        pub sub_version: i64 = "subVersion",
        pub expression_type: Option<String> = "expressionType",
        pub max_msg_bytes: Option<i32> = "maxMsgBytes",
        pub broker_name: Option<String> = "bname",
    }
}

command_header! {
    /// Every pull answer (found, not found, retry, moved) carries the four
    /// mandatory offsets; Java clients unbox them unguarded.
    pub struct PullMessageResponseHeader {
        pub suggest_which_broker_id: i64 = "suggestWhichBrokerId",
        pub next_begin_offset: i64 = "nextBeginOffset",
        pub min_offset: i64 = "minOffset",
        pub max_offset: i64 = "maxOffset",
        pub offset_delta: Option<i64> = "offsetDelta",
        pub topic_sys_flag: Option<i32> = "topicSysFlag",
        pub group_sys_flag: Option<i32> = "groupSysFlag",
        pub forbidden_type: Option<i32> = "forbiddenType",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RemotingCommand;

    #[test]
    fn v2_letters_read_as_v1_names() {
        let v2 = SendMessageRequestHeaderV2 {
            a: "pg".into(),
            b: "T".into(),
            c: "TBW102".into(),
            d: 4,
            e: 1,
            f: 0,
            g: 1700000000000,
            h: 0,
            i: Some("KEYS\u{1}k1\u{2}".into()),
            m: Some(false),
            ..Default::default()
        };
        let cmd = RemotingCommand::request(crate::request_code::SEND_MESSAGE_V2).with_header(&v2);
        assert_eq!(cmd.ext("d"), Some("4"));
        assert_eq!(cmd.ext("j"), None, "null fields are left out");
        let v1 = SendMessageRequestHeader::from_command(&cmd).unwrap();
        assert_eq!(v1.topic, "T");
        assert_eq!(v1.queue_id, 1);
        assert_eq!(v1.properties.as_deref(), Some("KEYS\u{1}k1\u{2}"));
        assert_eq!(SendMessageRequestHeaderV2::from(v1), v2);
    }

    /// Each field removed (`None`) or set to a bad value: reading the send
    /// header fails, with the error the declared header reading gives.
    fn assert_errors_as_declared(
        full: &RemotingCommand,
        cases: &[(&str, Option<&str>)],
        declared: impl Fn(&RemotingCommand) -> Result<SendMessageRequestHeader, HeaderError>,
    ) {
        for &(field, bad) in cases {
            let mut c = full.clone();
            match bad {
                None => {
                    c.ext_fields.as_mut().unwrap().shift_remove(field);
                }
                Some(v) => c.set_ext(field, v),
            }
            let got = SendMessageRequestHeader::from_command(&c);
            assert!(got.is_err(), "{field}");
            assert_eq!(got, declared(&c), "{field}");
        }
    }

    #[test]
    fn v2_one_pass_read_matches_the_declared_header() {
        let full = RemotingCommand::request(crate::request_code::SEND_MESSAGE_V2)
            .with_ext("x", "ignored")
            .with_ext("a", "pg")
            .with_ext("b", "T")
            .with_ext("c", "TBW102")
            .with_ext("d", " 4 ")
            .with_ext("e", "-1")
            .with_ext("f", "0")
            .with_ext("g", "1700000000000")
            .with_ext("h", "7")
            .with_ext("i", "KEYS\u{1}k\u{2}")
            .with_ext("j", "oops")
            .with_ext("k", "TRUE")
            .with_ext("l", "16")
            .with_ext("m", "false")
            .with_ext("n", "b");
        let declared = |c: &RemotingCommand| {
            c.header::<SendMessageRequestHeaderV2>()
                .map(SendMessageRequestHeader::from)
        };
        assert_eq!(
            SendMessageRequestHeader::from_command(&full),
            declared(&full)
        );
        assert_eq!(
            SendMessageRequestHeader::from_command(&full)
                .unwrap()
                .reconsume_times,
            None
        );
        assert_errors_as_declared(
            &full,
            &[("b", None), ("g", None), ("d", Some("four"))],
            declared,
        );
    }

    #[test]
    fn v1_names_read_matches_the_declared_header() {
        let full = RemotingCommand::request(crate::request_code::SEND_MESSAGE)
            .with_ext("producerGroup", "pg")
            .with_ext("topic", "T")
            .with_ext("defaultTopic", "TBW102")
            .with_ext("defaultTopicQueueNums", "4")
            .with_ext("queueId", " 2 ")
            .with_ext("sysFlag", "0")
            .with_ext("bornTimestamp", "1700000000000")
            .with_ext("flag", "0")
            .with_ext("properties", "TAGS\u{1}t\u{2}")
            .with_ext("reconsumeTimes", "x")
            .with_ext("unitMode", "true")
            .with_ext("batch", "False")
            .with_ext("maxReconsumeTimes", "3")
            .with_ext("bname", "broker-a");
        let declared = |c: &RemotingCommand| c.header::<SendMessageRequestHeader>();
        let read = SendMessageRequestHeader::from_command(&full);
        assert_eq!(read, declared(&full));
        let read = read.unwrap();
        assert_eq!(
            (read.queue_id, read.reconsume_times, read.batch),
            (2, None, Some(false))
        );
        assert_eq!(read.max_reconsume_times, Some(3));
        assert_eq!(
            SendHeaderRef::from_command(&full).unwrap().broker_name,
            Some("broker-a")
        );
        assert_errors_as_declared(
            &full,
            &[("topic", None), ("flag", None), ("queueId", Some("1.5"))],
            declared,
        );
        let bare = RemotingCommand::request(crate::request_code::SEND_MESSAGE_V2);
        assert_eq!(
            SendHeaderRef::from_command(&bare),
            Err(HeaderError::Missing("a"))
        );
    }

    crate::command_header! {
        struct NoFields {}
    }

    #[test]
    fn a_header_without_fields_writes_none() {
        let cmd = RemotingCommand::request(1).with_header(&NoFields {});
        assert_eq!(cmd.ext_fields.map(|f| f.len()), Some(0));
        let read: NoFields = RemotingCommand::request(1)
            .header()
            .expect("nothing required");
        assert_eq!(read, NoFields {});
    }

    #[test]
    fn missing_required_field_is_an_error_missing_optional_is_none() {
        let cmd = RemotingCommand::request(11).with_ext("topic", "T");
        assert_eq!(
            cmd.header::<PullMessageRequestHeader>().unwrap_err(),
            HeaderError::Missing("consumerGroup")
        );
        let h: GetRouteInfoRequestHeader = cmd.header().unwrap();
        assert_eq!(h.accept_standard_json_only, None);
    }

    #[test]
    fn java_number_and_boolean_leniency() {
        let cmd = RemotingCommand::request(105)
            .with_ext("topic", "T")
            .with_ext("acceptStandardJsonOnly", "TRUE");
        let h: GetRouteInfoRequestHeader = cmd.header().unwrap();
        assert_eq!(h.accept_standard_json_only, Some(true));
        assert_eq!(
            i32::read(Some("x1"), "q"),
            Err(HeaderError::Invalid {
                field: "q",
                value: "x1".into()
            })
        );
        assert_eq!(<Option<i32>>::read(Some("x1"), "q"), Ok(None));
        assert!(!bool::read(Some("yes"), "b").unwrap());
    }
}
