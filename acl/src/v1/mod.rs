//! ACL 1.0 (spec acl.md §2).
