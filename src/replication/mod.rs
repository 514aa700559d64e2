//! Active/standby replication (DESIGN.md §5, docs/REPLICATION.md): the active ships
//! its journal to the standby, which forwards clients to the active until it takes
//! over; a lock decides who is active and fences the other.

mod follower;
mod leader;
pub mod link;
pub mod lock;
mod node;
mod proxy;
mod state;
pub mod wire;

pub use link::Link;
pub use node::{NodeError, probe, promote, run, status};
