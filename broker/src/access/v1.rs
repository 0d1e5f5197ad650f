//! ACL 1.0 on the broker: `plain_acl.yml`, checked before each request.
