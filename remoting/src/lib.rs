//! The RocketMQ remoting protocol.
//!
//! * [`codec`]: frames <-> [`RemotingCommand`], both header serializations, no I/O.
//! * [`header`]: typed custom headers <-> `extFields`; [`headers`]: the POP,
//!   transaction and send-back headers broker and proxy share.
//! * [`transport`]: a symmetric tokio connection (requests both ways, matched by
//!   `opaque`), a request-code router and a server loop.
//! * [`properties`]: Java `.properties` text, used for configuration files and
//!   for the config bodies mqadmin exchanges.

pub mod body;
pub mod code;
pub mod codec;
pub mod command;
pub mod error;
pub mod header;
pub mod headers;
pub mod limits;
pub mod properties;
pub mod transport;

pub use code::{request_code, response_code, LanguageCode};
pub use codec::{RemotingCodec, MAX_FRAME_LEN};
pub use command::{ExtFields, RemotingCommand, SerializeType};
pub use error::{CommandError, HeaderError, RemotingError};
pub use transport::{serve, Connection, Interceptor, Router, ServerConfig};

/// `MQVersion.Version.V5_3_3.ordinal()`: the version this implementation
/// announces in every command it sends. Clients read the broker's version from
/// responses (heartbeat) and gate features on it.
pub const CURRENT_VERSION: i32 = 479;
