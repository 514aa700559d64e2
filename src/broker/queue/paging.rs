//! Where a ready message's bytes live: the queue counts ready and in-memory bytes,
//! writes messages beyond its memory budget to its spill file, and reads them back
//! when they are handed out.

use super::entry::{Entry, Payload};
use super::state::{Queue, State};
use std::sync::Arc;
use switchboard_api::Message;

impl Queue {
    /// Adds a ready entry, paging its message out when the queue is over budget.
    pub(super) fn push_ready(&self, st: &mut State, mut e: Entry) {
        st.ready_bytes += e.size;
        // The group picks the entry's lane and stays its key there (fair turns on a
        // plain queue, FIFO order on a grouped one); paging out would lose it.
        let grouped = match &e.msg {
            Payload::Mem(m) if m.group_id.is_some() => Some(m.clone()),
            _ => None,
        };
        if let (Some(spill), Payload::Mem(m)) = (&self.spill, &e.msg)
            && st.mem_bytes + e.size > self.memory_budget
        {
            match spill.write(m, self.memory_budget) {
                Ok((off, len)) => e.msg = Payload::Paged { off, len },
                Err(err) => {
                    tracing::warn!(queue = %self.name, "cannot page out a message ({err}); keeping it in memory")
                }
            }
        }
        if e.msg.is_mem() {
            st.mem_bytes += e.size;
        }
        st.ready()
            .push(e, grouped.as_ref().and_then(|m| m.group_id.as_deref()));
        self.notify_ready();
    }

    pub(super) fn notify_ready(&self) {
        if let Some(n) = self.ready_notify.get() {
            n.notify_waiters();
        }
    }

    /// Bookkeeping for an entry that just left `ready`.
    pub(super) fn popped(&self, st: &mut State, e: &Entry) {
        st.ready_bytes -= e.size;
        if e.msg.is_mem() {
            st.mem_bytes -= e.size;
        }
    }

    /// The entry's message, reading it back from the spill file if it was paged out.
    /// `None` only if the spill file failed us (logged); the entry is then unusable.
    pub(super) fn load(&self, e: &mut Entry) -> Option<Arc<Message>> {
        match &e.msg {
            Payload::Mem(m) => Some(m.clone()),
            Payload::Paged { off, len } => {
                let spill = self.spill.as_ref()?;
                match spill.read(*off, *len) {
                    Ok(m) => {
                        let m = Arc::new(m);
                        e.msg = Payload::Mem(m.clone());
                        Some(m)
                    }
                    Err(err) => {
                        tracing::error!(queue = %self.name, seq = e.seq, "cannot read a paged-out message back: {err}");
                        None
                    }
                }
            }
        }
    }

    /// An entry taken out of `group` whose message `load` could not read back is
    /// dropped. A journaled one comes back at the next start-up, so a grouped queue
    /// keeps its group blocked until then rather than hand out what follows it out
    /// of order; a transient one is lost, and its group goes on.
    pub(super) fn unreadable(&self, st: &mut State, e: &Entry, group: Option<&str>) {
        if e.lsn == 0 {
            st.ready().group_settled(group);
        }
    }

    /// A paged entry that is dropped without being read frees its spill slot.
    pub(super) fn drop_payload(&self, e: &Entry) {
        if let (Payload::Paged { .. }, Some(spill)) = (&e.msg, &self.spill) {
            spill.forget();
        }
    }
}
