//! Request signing (spec acl.md §1), shared by ACL 1.0 and Auth 2.0.
//!
//! The signed data is the **values** of the request's `extFields`, sorted by
//! key in Java's `String` order, concatenated as UTF-8 with no separators,
//! followed by the raw body; the signature is `Base64(HmacSHA1(secret, data))`.
//! A client signs every field it sends except `Signature`; a server re-signs
//! every field that arrived except `Signature` (and `_UNIQUE_KEY_QUERY` for
//! requests from clients at version 4.9.3 or older).

use std::cmp::Ordering;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use remoting::RemotingCommand;
use sha1::Sha1;

/// Ext field holding the caller's access key (user name in Auth 2.0).
pub const ACCESS_KEY: &str = "AccessKey";
/// Ext field holding the signature; never part of the signed content.
pub const SIGNATURE: &str = "Signature";
/// Ext field holding the optional security token (signed, never checked).
pub const SECURITY_TOKEN: &str = "SecurityToken";
/// Ext field clients add to QUERY_MESSAGE (`MixAll.UNIQUE_MSG_QUERY_FLAG`).
pub const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";
/// `MQVersion.Version.V4_9_3.ordinal()`: servers skip [`UNIQUE_KEY_QUERY`]
/// when re-signing requests whose `version` is at most this.
pub const V4_9_3: i32 = 399;

/// Java `String.compareTo`: lexicographic over UTF-16 code units. Equal to
/// byte order for ASCII, differs for characters above U+FFFF against
/// U+E000..U+FFFF.
pub fn java_string_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// The data to sign: the values of `fields` (minus [`SIGNATURE`] and any key
/// `skip` rejects) sorted by key in Java order, as UTF-8, then `body`.
/// A key given twice counts once, with its last value (a map on the Java side).
fn content<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    skip: impl Fn(&str) -> bool,
    body: &[u8],
) -> Vec<u8> {
    let mut sorted: Vec<(&str, &str)> = Vec::new();
    for (k, v) in fields {
        if k == SIGNATURE || skip(k) {
            continue;
        }
        match sorted.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => sorted.push((k, v)),
        }
    }
    sorted.sort_by(|a, b| java_string_cmp(a.0, b.0));
    let len = sorted.iter().map(|(_, v)| v.len()).sum::<usize>() + body.len();
    let mut data = Vec::with_capacity(len);
    for (_, v) in sorted {
        data.extend_from_slice(v.as_bytes());
    }
    data.extend_from_slice(body);
    data
}

/// What a client signs: every field present except [`SIGNATURE`], then the body
/// (`AclUtils.combineRequestContent` on the client side).
pub fn client_content<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: &[u8],
) -> Vec<u8> {
    content(fields, |_| false, body)
}

/// What a server re-signs to check a request (5.x rule, spec §1.2): every
/// received field except [`SIGNATURE`], and except [`UNIQUE_KEY_QUERY`] when
/// the request's `version` ≤ [`V4_9_3`]; then the body.
pub fn server_content(request: &RemotingCommand) -> Vec<u8> {
    let old_client = request.version <= V4_9_3;
    content(
        request.fields(),
        |k| old_client && k == UNIQUE_KEY_QUERY,
        &request.body,
    )
}

/// `Base64(HmacSHA1(key = secret as UTF-8, data))`, standard alphabet with
/// padding: always 28 characters.
pub fn signature(secret: &str, data: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Constant-time equality of two signatures' UTF-8 bytes (5.x
/// `MessageDigest.isEqual`): the time taken depends on the lengths only.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The credentials a request carries or is signed with
/// (`org.apache.rocketmq.acl.common.SessionCredentials`).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCredentials {
    pub access_key: String,
    pub secret_key: String,
    pub security_token: Option<String>,
}

impl std::fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<hidden>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

impl SessionCredentials {
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        SessionCredentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            security_token: None,
        }
    }

    pub fn with_security_token(mut self, token: impl Into<String>) -> Self {
        self.security_token = Some(token.into());
        self
    }
}

/// Signs an outgoing request as `AclClientRPCHook.doBeforeRequest` does: sets
/// [`ACCESS_KEY`] (and [`SECURITY_TOKEN`] when given), then [`SIGNATURE`] over
/// every field now present plus the body. Call it after the custom header is
/// in `extFields` and after any other field is added: a field added later is
/// still re-signed by the server and breaks the signature.
pub fn sign_request(request: &mut RemotingCommand, credentials: &SessionCredentials) {
    request.set_ext(ACCESS_KEY, credentials.access_key.clone());
    if let Some(token) = &credentials.security_token {
        request.set_ext(SECURITY_TOKEN, token.clone());
    }
    let data = client_content(request.fields(), &request.body);
    request.set_ext(SIGNATURE, signature(&credentials.secret_key, &data));
}

/// The signature-related fields a request arrived with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented<'a> {
    pub access_key: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub security_token: Option<&'a str>,
}

/// Reads [`ACCESS_KEY`], [`SIGNATURE`] and [`SECURITY_TOKEN`] from a request.
pub fn presented(request: &RemotingCommand) -> Presented<'_> {
    Presented {
        access_key: request.ext(ACCESS_KEY),
        signature: request.ext(SIGNATURE),
        security_token: request.ext(SECURITY_TOKEN),
    }
}

/// Whether `request` carries a signature that `secret` produces over the
/// server-side content (§1.2). A missing signature never verifies.
pub fn verify(request: &RemotingCommand, secret: &str) -> bool {
    match request.ext(SIGNATURE) {
        Some(sig) => signatures_equal(sig, &signature(secret, &server_content(request))),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(fields: &[(&str, &str)], body: &[u8]) -> RemotingCommand {
        let mut r = RemotingCommand::request(10).with_body(body.to_vec());
        for (k, v) in fields {
            r.set_ext(*k, *v);
        }
        r
    }

    /// The three vectors of spec §1.1.
    #[test]
    fn spec_vectors() {
        let cases: [(&[(&str, &str)], &[u8], &str); 3] = [
            (
                &[("topic", "TopicTest"), ("AccessKey", "RocketMQ")],
                b"",
                "0jiwhsaYp5ObE5GObbZH1I8/FT4=",
            ),
            (
                &[("topic", "TopicTest"), ("AccessKey", "RocketMQ")],
                b"hello",
                "IlhJmDi56c1+sdRGdQLyYHpYz4g=",
            ),
            (
                &[
                    ("topic", "T1"),
                    ("queueId", "0"),
                    ("consumerGroup", "G1"),
                    ("commitOffset", "100"),
                    ("SecurityToken", "tok"),
                    ("AccessKey", "RocketMQ"),
                ],
                b"",
                "9cOhfJpP5c1QXbcKbJ06T4SMx7A=",
            ),
        ];
        for (fields, body, want) in cases {
            let r = req(fields, body);
            assert_eq!(
                signature("12345678", &client_content(r.fields(), body)),
                want
            );
            assert_eq!(signature("12345678", &server_content(&r)), want);
            let mut signed = r.clone().with_ext(SIGNATURE, want);
            assert!(verify(&signed, "12345678"));
            assert!(!verify(&signed, "12345679"));
            signed.set_ext("topic", "other");
            assert!(!verify(&signed, "12345678"));
        }
        assert_eq!(
            client_content(req(cases[2].0, b"").fields(), b""),
            b"RocketMQtok100G10T1"
        );
    }

    #[test]
    fn sign_request_round_trips_and_matches_the_vector() {
        let mut r = req(
            &[
                ("topic", "T1"),
                ("queueId", "0"),
                ("consumerGroup", "G1"),
                ("commitOffset", "100"),
            ],
            b"",
        );
        let creds = SessionCredentials::new("RocketMQ", "12345678").with_security_token("tok");
        sign_request(&mut r, &creds);
        assert_eq!(r.ext(SIGNATURE), Some("9cOhfJpP5c1QXbcKbJ06T4SMx7A="));
        assert_eq!(r.ext(ACCESS_KEY), Some("RocketMQ"));
        assert_eq!(r.ext(SECURITY_TOKEN), Some("tok"));
        assert!(verify(&r, "12345678"));
        // Signing twice (e.g. a retried request) replaces the old signature.
        sign_request(&mut r, &creds);
        assert!(verify(&r, "12345678"));
        let p = presented(&r);
        assert_eq!(p.access_key, Some("RocketMQ"));
        assert_eq!(p.security_token, Some("tok"));
    }

    #[test]
    fn unsigned_request_never_verifies() {
        let r = req(&[("AccessKey", "RocketMQ"), ("topic", "TopicTest")], b"");
        assert!(!verify(&r, "12345678"));
        assert!(!verify(&RemotingCommand::request(34), ""));
    }

    /// `_UNIQUE_KEY_QUERY` is skipped by the server only for version ≤ 399.
    #[test]
    fn unique_key_query_version_rule() {
        let fields = [
            ("AccessKey", "RocketMQ"),
            ("topic", "TopicTest"),
            ("_UNIQUE_KEY_QUERY", "true"),
        ];
        let with_flag = signature("12345678", &client_content(fields, b""));
        let without_flag = signature("12345678", &client_content(fields[..2].to_vec(), b""));
        assert_ne!(with_flag, without_flag);

        let mut new_client = req(&fields, b"");
        new_client.version = 400;
        new_client.set_ext(SIGNATURE, with_flag.clone());
        assert!(verify(&new_client, "12345678"));

        // A 4.9.3 client signed without the flag (its hook ran before the
        // flag was added): a server skipping the flag accepts it.
        let mut old_client = req(&fields, b"");
        old_client.version = V4_9_3;
        old_client.set_ext(SIGNATURE, without_flag.clone());
        assert!(verify(&old_client, "12345678"));
        old_client.set_ext(SIGNATURE, with_flag);
        assert!(!verify(&old_client, "12345678"));
    }

    #[test]
    fn keys_sort_in_java_string_order() {
        // Upper case before lower case (UTF-16 = byte order for ASCII).
        assert_eq!(java_string_cmp("AccessKey", "a"), Ordering::Less);
        // U+FF21 (one UTF-16 unit 0xFF21) sorts after U+1F600 (surrogates
        // 0xD83D..) in Java, before it in UTF-8 byte order.
        assert_eq!(java_string_cmp("\u{FF21}", "\u{1F600}"), Ordering::Greater);
        assert_eq!("\u{FF21}".cmp("\u{1F600}"), Ordering::Less);
        let data = client_content([("\u{1F600}", "x"), ("\u{FF21}", "y")], b"");
        assert_eq!(data, b"xy");
    }

    #[test]
    fn signature_shape_and_unicode_values() {
        let s = signature("secret", "值".as_bytes());
        assert_eq!(s.len(), 28);
        assert!(s.ends_with('='));
        assert!(signatures_equal(&s, &s.clone()));
        assert!(!signatures_equal(&s, &s[..27]));
        let data = client_content([("k", "值")], b"\x00\xff");
        assert_eq!(data, [&"值".as_bytes()[..], b"\x00\xff"].concat());
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let c = SessionCredentials::new("ak", "sk-very-secret").with_security_token("tkn");
        let shown = format!("{c:?}");
        assert!(shown.contains("ak"));
        assert!(!shown.contains("sk-very-secret"));
        assert!(!shown.contains("tkn"));
    }
}
