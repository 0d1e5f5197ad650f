//! Auth 2.0 on the broker: users and policies, checked before each request.
