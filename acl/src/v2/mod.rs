//! Auth 2.0 (spec acl.md §3): users (Super or Normal, enabled or disabled)
//! and ACLs of policies, checked on every request when
//! `authenticationEnabled` / `authorizationEnabled` are on.
//!
//! - [`model`]: users, resources, actions, policies and their names;
//! - [`contexts`]: the resources and actions each request asks for;
//! - [`decide`]: authentication and authorization of a request;
//! - [`admin`]: codes 3001–3010 as changes to [`Metadata`].
//!
//! Everything here is pure; the broker keeps the metadata durable and turns
//! an [`AuthError`] into a response.

pub mod admin;
pub mod contexts;
pub mod decide;
pub mod model;

pub use admin::{AclInfo, Change, UserInfo};
pub use decide::{AuthConfig, AuthError, Metadata};
