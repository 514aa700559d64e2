//! Active/standby replication (DESIGN.md §5, docs/REPLICATION.md).

pub mod lock;
