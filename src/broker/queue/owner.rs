//! What a queue needs from whoever holds it (its vhost).
//!
//! A queue names its owner through this trait rather than the vhost type, so the
//! queue module depends on nothing above it: the vhost knows its queues, never the
//! other way round.

use switchboard_api::Message;

/// Work a queue hands up after its lock is released, because it touches other
/// queues (dead-lettering) or the owner's own tables (auto-delete, `x-expires`).
pub trait QueueOwner: Send + Sync {
    /// The owner's name, for error texts (`... in vhost '{name}'`).
    fn owner_name(&self) -> &str;
    /// Routes a dead-lettered copy through exchange `dlx`.
    fn dead_letter(&self, dlx: &str, msg: Message);
    /// Removes queue `name` for good, bindings included.
    fn remove_queue(&self, name: &str);
}
