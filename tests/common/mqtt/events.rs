//! What a client's event loop reported, for the test to wait on.

use super::super::WAIT;
use std::collections::VecDeque;
use std::fmt::Debug;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The events of one connection, as the test has not consumed them yet.
pub struct Events<E, X> {
    pub(super) rx: mpsc::UnboundedReceiver<Result<E, X>>,
    pub(super) buf: VecDeque<E>,
    pub(super) task: Option<JoinHandle<()>>,
    /// The error that ended the event loop.
    pub ended: Option<X>,
}

impl<E, X> Drop for Events<E, X> {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl<E: Debug, X: Debug> Events<E, X> {
    /// The first event (buffered or new) `f` picks. `Ok(None)`: nothing within
    /// `within`; `Err(())`: the connection ended first (see `ended`).
    async fn find<T>(
        &mut self,
        within: Duration,
        f: &mut impl FnMut(&E) -> Option<T>,
    ) -> Result<Option<T>, ()> {
        if let Some(i) = self.buf.iter().position(|e| f(e).is_some()) {
            let e = self.buf.remove(i).expect("buffered event");
            return Ok(f(&e));
        }
        if self.ended.is_some() {
            return Err(());
        }
        let deadline = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Err(()),
                Ok(Some(Err(x))) => {
                    self.ended = Some(x);
                    return Err(());
                }
                Ok(Some(Ok(e))) => match f(&e) {
                    Some(t) => return Ok(Some(t)),
                    None => self.buf.push_back(e),
                },
            }
        }
    }

    /// The first event `f` picks; panics after [`WAIT`] or when the connection ends.
    pub async fn expect<T>(&mut self, what: &str, mut f: impl FnMut(&E) -> Option<T>) -> T {
        match self.find(WAIT, &mut f).await {
            Ok(Some(t)) => t,
            Ok(None) => panic!("no {what} within {WAIT:?}; other events: {:?}", self.buf),
            Err(()) => panic!(
                "connection ended while waiting for {what}: {:?}; events: {:?}",
                self.ended, self.buf
            ),
        }
    }

    /// Panics if `f` picks an event within `quiet` (the connection may end meanwhile).
    pub async fn absent<T: Debug>(
        &mut self,
        what: &str,
        quiet: Duration,
        mut f: impl FnMut(&E) -> Option<T>,
    ) {
        if let Ok(Some(t)) = self.find(quiet, &mut f).await {
            panic!("unexpected {what}: {t:?}");
        }
    }

    /// The first event `f` picks, or the error that ended the connection first.
    pub(super) async fn first<T>(&mut self, mut f: impl FnMut(&E) -> Option<T>) -> Result<T, X> {
        match self.find(WAIT, &mut f).await {
            Ok(Some(t)) => Ok(t),
            Ok(None) => panic!("nothing within {WAIT:?}; events: {:?}", self.buf),
            Err(()) => Err(self.ended.take().expect("ended by an error")),
        }
    }

    /// Waits (up to [`WAIT`]) for the connection to end and returns why.
    pub async fn closed(&mut self) -> &X {
        let mut never = |_: &E| None::<()>;
        if self.find(WAIT, &mut never).await.is_ok() {
            panic!("connection still open after {WAIT:?}");
        }
        self.ended.as_ref().expect("ended by an error")
    }

    /// Ends the event loop: the TCP connection closes without DISCONNECT.
    pub async fn drop_tcp(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    /// True once the connection has ended (as far as the events read so far tell).
    pub fn is_closed(&self) -> bool {
        self.ended.is_some()
    }
}
