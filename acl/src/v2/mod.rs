//! Auth 2.0 (spec acl.md §3).
