//! Errors of the cluster backend: what went wrong between the proxy and the
//! name servers or brokers, kept apart by cause so the gRPC layer can pick
//! the `apache.rocketmq.v2.Code` a client expects.

use remoting::RemotingError;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("bad receipt handle {0:?}")]
    BadReceiptHandle(String),
    #[error("no name server address: set namesrvAddr, -n or NAMESRV_ADDR")]
    NoNameServer,
    #[error("topic {0} does not exist")]
    TopicNotFound(String),
    #[error("no broker named {0} in any route")]
    BrokerNotFound(String),
    #[error("topic {0} has no {1} queue")]
    NoQueue(String, &'static str),
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr}: {source}")]
    Remoting { addr: String, source: RemotingError },
    /// The broker or name server answered with an error code.
    #[error("{addr} answered code {code}: {remark}")]
    Refused {
        addr: String,
        code: i32,
        remark: String,
    },
    #[error("{addr} sent an unreadable answer: {detail}")]
    BadAnswer { addr: String, detail: String },
    #[error("{0}")]
    Config(String),
}

impl ClusterError {
    /// The remoting response code of a refusal, if this is one.
    pub fn code(&self) -> Option<i32> {
        match self {
            ClusterError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}
