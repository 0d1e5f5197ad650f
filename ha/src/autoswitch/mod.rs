//! Controller mode's replication, AutoSwitch HA (Java
//! `AutoSwitchHAService`, `AutoSwitchHAConnection`, `AutoSwitchHAClient`).

pub mod frame;
