//! The broker and its peers: the DLedger commit log (roles and the
//! replicated log behind the store), master/slave replication of a local
//! commit log (classic HA), a slave's copy of the master's metadata, and
//! registration with the name servers.

pub(crate) mod controller;
pub(crate) mod dledger;
pub(crate) mod ha;
pub(crate) mod namesrv;
pub(crate) mod slave_sync;
