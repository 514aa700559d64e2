//! What every frontend's connection loop is made of, so the three loops share one
//! shape (the mini-redis split: the connection owns its buffers):
//!
//! - [`Io`]: the byte stream with its read buffer (sized by [`ReadRoom`]) and its
//!   write buffer, and the output limit above which a connection stops taking
//!   deliveries ([`Io::accepting`]);
//! - [`Inbox`]: where queues push a connection's deliveries, drained in batches
//!   ([`Inbox::batch`]) so that one write carries many of them;
//! - [`next_value`]: the `select!` arm for an optional watch (the broker's durable
//!   position or its resource alarm).

mod inbox;
mod io;
mod read_room;

pub use inbox::{BATCH, Inbox};
pub use io::{Io, Moved, OUTPUT_LIMIT};
pub use read_room::ReadRoom;

use tokio::sync::watch;

/// Waits for a change of an optional watch (the broker's durable position or
/// alarm); never completes when there is none, so it can sit in a `select!`.
pub async fn changed<T>(w: &mut Option<watch::Receiver<T>>) -> Result<(), watch::error::RecvError> {
    match w.as_mut() {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

/// The next value of an optional watch. `None` once its sender is gone: the watch
/// is dropped then, so the arm goes quiet instead of firing again at once.
pub async fn next_value<T: Clone>(w: &mut Option<watch::Receiver<T>>) -> Option<T> {
    if changed(w).await.is_err() {
        *w = None;
        return None;
    }
    w.as_mut().map(|w| w.borrow_and_update().clone())
}

/// What a connection follows of the broker: the journal's durable position (the
/// replies it holds wait for it) and the resource alarm (publishers are held while
/// it is on). Both watches are optional: a broker without a journal or alarms.
pub struct Watches {
    pub durable: Option<watch::Receiver<u64>>,
    /// Everything up to here is durable (`u64::MAX` without a journal).
    pub durable_lsn: u64,
    pub alarm: Option<watch::Receiver<Option<String>>>,
    /// A resource alarm is on: hold publishers.
    pub blocked: bool,
}

impl Watches {
    pub fn new(broker: &dyn crate::Broker) -> Watches {
        let durable = broker.durable_watch();
        let durable_lsn = durable.as_ref().map_or(u64::MAX, |w| *w.borrow());
        let alarm = broker.alarm_watch();
        let blocked = alarm.as_ref().is_some_and(|a| a.borrow().is_some());
        Watches {
            durable,
            durable_lsn,
            alarm,
            blocked,
        }
    }

    /// Takes, in order, the replies at the front of `pending` whose journal
    /// position is durable (a reply made later never overtakes an earlier one).
    pub fn release<'a, T>(
        &self,
        pending: &'a mut std::collections::VecDeque<(u64, T)>,
    ) -> impl Iterator<Item = T> + use<'a, T> {
        let n = pending
            .iter()
            .take_while(|(lsn, _)| *lsn <= self.durable_lsn)
            .count();
        pending.drain(..n).map(|(_, t)| t)
    }
}
