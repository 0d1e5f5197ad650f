//! The logical command carried by one frame.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::code::LanguageCode;
use crate::error::HeaderError;
use crate::header::{CommandHeader, HeaderValue};
use crate::CURRENT_VERSION;

/// `extFields`: custom header fields, all values strings. Insertion order is
/// kept so a decoded frame re-encodes to the same bytes.
///
/// A small ordered map for the few (< 30) fields a header carries: look-ups
/// scan the entries, no hashing. A decoded JSON header keeps the text of its
/// `extFields` object once (shared) and its keys and unescaped values point
/// into it, so decoding allocates no string per field; the header macro's
/// field names are stored as `&'static str`. Equality ignores order, as for
/// a map.
#[derive(Clone, Default)]
pub struct ExtFields {
    /// The text [`Field::Span`] entries index into.
    text: Option<Arc<str>>,
    entries: Vec<(Field, Field)>,
    /// Key → position, once there are more than [`LINEAR_MAX`] entries (a
    /// peer's header may carry thousands: look-ups must not turn quadratic).
    index: Option<HashMap<String, usize>>,
}

/// Up to this many entries, look-ups scan; past it they go through a hash
/// index. Official clients send fewer than 30 fields.
pub(crate) const LINEAR_MAX: usize = 32;

/// One key or value of [`ExtFields`].
#[derive(Clone, Debug)]
pub(crate) enum Field {
    Static(&'static str),
    /// Byte range in [`ExtFields::text`] (at character boundaries).
    Span(u32, u32),
    Owned(String),
}

impl Field {
    fn into_string(self, text: Option<&str>) -> String {
        match self {
            Field::Owned(s) => s,
            Field::Static(s) => s.to_owned(),
            f @ Field::Span(..) => resolve(text, &f).to_owned(),
        }
    }
}

fn resolve<'a>(text: Option<&'a str>, f: &'a Field) -> &'a str {
    match f {
        Field::Static(s) => s,
        Field::Owned(s) => s,
        Field::Span(a, b) => text
            .and_then(|t| t.get(*a as usize..*b as usize))
            .unwrap_or(""),
    }
}

impl ExtFields {
    pub const fn new() -> Self {
        ExtFields {
            text: None,
            entries: Vec::new(),
            index: None,
        }
    }

    pub fn with_capacity(n: usize) -> Self {
        ExtFields {
            text: None,
            entries: Vec::with_capacity(n.min(LINEAR_MAX * 4)),
            index: None,
        }
    }

    /// Decoded entries: `Span`s index into `text`; keys are distinct.
    pub(crate) fn from_decoded(text: Option<Arc<str>>, entries: Vec<(Field, Field)>) -> Self {
        let mut fields = ExtFields {
            text,
            entries,
            index: None,
        };
        fields.reindex();
        fields
    }

    /// Builds (or drops) the hash index to match the entries.
    fn reindex(&mut self) {
        self.index = (self.entries.len() > LINEAR_MAX).then(|| {
            let text = self.text.as_deref();
            (self.entries.iter().enumerate())
                .map(|(i, (k, _))| (resolve(text, k).to_owned(), i))
                .collect()
        });
    }

    fn str_of<'a>(&'a self, f: &'a Field) -> &'a str {
        resolve(self.text.as_deref(), f)
    }

    fn index_of(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.entries.iter().position(|(k, _)| self.str_of(k) == key),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        let i = self.index_of(key)?;
        Some(self.str_of(&self.entries[i].1))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.index_of(key).is_some()
    }

    /// Sets `key`; an existing key keeps its position. Returns the old value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        let key = key.into();
        self.put(Field::Owned(key), Field::Owned(value.into()))
    }

    /// [`ExtFields::insert`] with a static key (stored without allocating),
    /// and a value stored without allocating too when it is a `&'static str`.
    pub fn insert_static(
        &mut self,
        key: &'static str,
        value: impl Into<std::borrow::Cow<'static, str>>,
    ) -> Option<String> {
        let value = match value.into() {
            std::borrow::Cow::Borrowed(v) => Field::Static(v),
            std::borrow::Cow::Owned(v) => Field::Owned(v),
        };
        self.put(Field::Static(key), value)
    }

    fn put(&mut self, key: Field, value: Field) -> Option<String> {
        match self.index_of(self.str_of(&key)) {
            Some(i) => {
                let old = std::mem::replace(&mut self.entries[i].1, value);
                Some(old.into_string(self.text.as_deref()))
            }
            None => {
                let key_text = self.index.is_some().then(|| self.str_of(&key).to_owned());
                self.entries.push((key, value));
                match (key_text, &mut self.index) {
                    (Some(k), Some(index)) => {
                        index.insert(k, self.entries.len() - 1);
                    }
                    _ if self.entries.len() > LINEAR_MAX => self.reindex(),
                    _ => {}
                }
                None
            }
        }
    }

    /// Removes `key`, keeping the order of the others.
    pub fn shift_remove(&mut self, key: &str) -> Option<String> {
        let i = self.index_of(key)?;
        let (_, v) = self.entries.remove(i);
        if let Some(index) = &mut self.index {
            if self.entries.len() > LINEAR_MAX {
                index.remove(key);
                index.values_mut().filter(|p| **p > i).for_each(|p| *p -= 1);
            } else {
                self.index = None;
            }
        }
        Some(v.into_string(self.text.as_deref()))
    }

    /// The fields in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            text: self.text.as_deref(),
            inner: self.entries.iter(),
        }
    }
}

/// Iterator over `(key, value)` of [`ExtFields`], in order.
pub struct Iter<'a> {
    text: Option<&'a str>,
    inner: std::slice::Iter<'a, (Field, Field)>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let (k, v) = self.inner.next()?;
        Some((resolve(self.text, k), resolve(self.text, v)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a ExtFields {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut fields = ExtFields::with_capacity(iter.size_hint().0);
        for (k, v) in iter {
            fields.insert(k, v);
        }
        fields
    }
}

impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Flag bit 0: the command is a response.
pub const FLAG_RESPONSE: i32 = 0x1;
/// Flag bit 1: the request expects no response.
pub const FLAG_ONEWAY: i32 = 0x2;

/// How the header of a frame is serialized (the high byte of the header length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SerializeType {
    #[default]
    Json,
    RocketMq,
}

impl SerializeType {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(SerializeType::Json),
            1 => Some(SerializeType::RocketMq),
            _ => None,
        }
    }

    pub fn as_byte(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }
}

/// One request or response.
#[derive(Debug, Clone, PartialEq)]
pub struct RemotingCommand {
    pub code: i32,
    pub language: LanguageCode,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    /// `None` when the frame carried no `extFields` at all (Java omits the key
    /// for commands without a custom header).
    pub ext_fields: Option<ExtFields>,
    pub body: Bytes,
    /// The serialization the frame arrived in, or the one to send it in.
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    /// A request with the given code, no header fields, no body.
    pub fn request(code: i32) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::Java,
            version: CURRENT_VERSION,
            opaque: 0,
            flag: 0,
            remark: None,
            ext_fields: None,
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        }
    }

    /// A response with the given code. The transport fills in `opaque`.
    pub fn response(code: i32) -> Self {
        RemotingCommand {
            flag: FLAG_RESPONSE,
            ..Self::request(code)
        }
    }

    pub fn success() -> Self {
        Self::response(crate::code::response_code::SUCCESS)
    }

    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the custom header: its fields replace `extFields` entries of the
    /// same name and create the map (even an all-null header gives `{}`, as in Java).
    pub fn with_header<H: CommandHeader>(mut self, header: &H) -> Self {
        let fields = self.ext_fields.get_or_insert_with(ExtFields::new);
        header.write_fields(fields);
        self
    }

    pub fn with_ext(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_ext(key, value);
        self
    }

    /// [`RemotingCommand::with_ext`] for a static key (and, when static, value):
    /// [`ExtFields::insert_static`].
    pub fn with_static_ext(
        mut self,
        key: &'static str,
        value: impl Into<std::borrow::Cow<'static, str>>,
    ) -> Self {
        self.ext_fields
            .get_or_insert_with(ExtFields::new)
            .insert_static(key, value);
        self
    }

    pub fn set_ext(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.ext_fields
            .get_or_insert_with(ExtFields::new)
            .insert(key.into(), value.into());
    }

    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.as_ref()?.get(key)
    }

    /// A required header field parsed as Java would parse it.
    pub fn ext_required<T: HeaderValue>(&self, key: &'static str) -> Result<T, HeaderError> {
        T::read(self.ext(key), key)
    }

    /// Decodes the custom header.
    pub fn header<H: CommandHeader>(&self) -> Result<H, HeaderError> {
        H::read_fields(self.fields())
    }

    /// The `extFields`, empty when the header has none.
    pub fn fields(&self) -> &ExtFields {
        static EMPTY: ExtFields = ExtFields::new();
        self.ext_fields.as_ref().unwrap_or(&EMPTY)
    }

    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    pub fn mark_oneway(&mut self) {
        self.flag |= FLAG_ONEWAY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_fields_behave_as_an_ordered_map() {
        let mut f: ExtFields = [("b", "1"), ("a", "2"), ("b", "3")].into_iter().collect();
        assert_eq!(f.len(), 2);
        assert_eq!(f.iter().collect::<Vec<_>>(), [("b", "3"), ("a", "2")]);
        assert_eq!(f.insert_static("a", "4"), Some("2".to_owned()));
        assert_eq!(f.insert("c", "5"), None);
        assert_eq!(
            f.iter().collect::<Vec<_>>(),
            [("b", "3"), ("a", "4"), ("c", "5")]
        );
        assert_eq!(f.shift_remove("b"), Some("3".to_owned()));
        assert_eq!(f.shift_remove("b"), None);
        assert!(f.contains_key("c") && !f.contains_key("b"));
        assert_eq!(format!("{f:?}"), r#"{"a": "4", "c": "5"}"#);
        let reordered: ExtFields = [("c", "5"), ("a", "4")].into_iter().collect();
        assert_eq!(f, reordered, "equality ignores order, as for a map");
        assert_ne!(f, [("c", "5")].into_iter().collect());
        assert_ne!(f, [("c", "5"), ("a", "x")].into_iter().collect());
        assert!(ExtFields::new().is_empty());
    }

    #[test]
    fn many_fields_stay_an_ordered_map() {
        let n = 2_000;
        let mut f: ExtFields = (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
        assert_eq!(f.len(), n);
        assert_eq!(f.get("k0"), Some("v0"));
        assert_eq!(f.get("k1999"), Some("v1999"));
        assert_eq!(f.insert("k5", "five"), Some("v5".to_owned()));
        assert_eq!(f.shift_remove("k3"), Some("v3".to_owned()));
        assert_eq!(f.get("k3"), None);
        assert_eq!(f.get("k4"), Some("v4"));
        let order: Vec<&str> = f.iter().take(5).map(|(k, _)| k).collect();
        assert_eq!(order, ["k0", "k1", "k2", "k4", "k5"]);
        assert_eq!(f.get("k5"), Some("five"));
        for i in 0..n - LINEAR_MAX {
            f.shift_remove(&format!("k{}", i + LINEAR_MAX));
        }
        assert_eq!(f.len(), LINEAR_MAX - 1);
        assert_eq!(f.get("k31"), Some("v31"));
        assert!(f.index.is_none(), "back to scanning");
    }

    #[test]
    fn spans_read_from_the_shared_text() {
        let text: Arc<str> = Arc::from(r#"{"key":"value"}"#);
        let mut f = ExtFields::from_decoded(
            Some(text),
            vec![
                (Field::Span(2, 5), Field::Span(8, 13)),
                (Field::Static("n"), Field::Owned("x\u{1}".into())),
            ],
        );
        assert_eq!(f.get("key"), Some("value"));
        assert_eq!(f.get("n"), Some("x\u{1}"));
        let copy = f.clone();
        assert_eq!(f.insert("key", "v2"), Some("value".to_owned()));
        assert_eq!(copy.get("key"), Some("value"));
        assert_eq!(
            f.iter().collect::<Vec<_>>(),
            [("key", "v2"), ("n", "x\u{1}")]
        );
    }
}
