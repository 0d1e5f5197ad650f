//! The logical command carried by one frame.

use bytes::Bytes;
use indexmap::IndexMap;

use crate::code::LanguageCode;
use crate::error::HeaderError;
use crate::header::{CommandHeader, HeaderValue};
use crate::CURRENT_VERSION;

/// `extFields`: custom header fields, all values strings. Insertion order is
/// kept so a decoded frame re-encodes to the same bytes.
pub type ExtFields = IndexMap<String, String>;

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

    pub fn set_ext(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.ext_fields
            .get_or_insert_with(ExtFields::new)
            .insert(key.into(), value.into());
    }

    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.as_ref()?.get(key).map(String::as_str)
    }

    /// A required header field parsed as Java would parse it.
    pub fn ext_required<T: HeaderValue>(&self, key: &'static str) -> Result<T, HeaderError> {
        T::read(self.ext(key), key)
    }

    /// Decodes the custom header.
    pub fn header<H: CommandHeader>(&self) -> Result<H, HeaderError> {
        static EMPTY: std::sync::OnceLock<ExtFields> = std::sync::OnceLock::new();
        H::read_fields(
            self.ext_fields
                .as_ref()
                .unwrap_or_else(|| EMPTY.get_or_init(ExtFields::new)),
        )
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
