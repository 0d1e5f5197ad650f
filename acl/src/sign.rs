//! Request signing (spec acl.md §1).
