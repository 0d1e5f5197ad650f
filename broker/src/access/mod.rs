//! Access control on the broker: each generation is a
//! `remoting::Interceptor` that [`crate::processor::table::router`] installs
//! when its switches are on (`aclEnable` for ACL 1.0,
//! `authenticationEnabled`/`authorizationEnabled` for Auth 2.0).

pub(crate) mod v1;
pub(crate) mod store;
pub(crate) mod v2;
