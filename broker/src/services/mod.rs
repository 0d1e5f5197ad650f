//! Message services that run on a master beside the request processors:
//! delay levels, 5.x delivery times and transactional half messages. Each
//! parks messages in a system topic and puts them back when due.

pub(crate) mod revive;
pub(crate) mod schedule;
pub(crate) mod timer;
pub(crate) mod transaction;
