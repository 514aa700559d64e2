//! The active's side of replication: answer a standby's Hello with where to start,
//! ship journal frames as they are written, and turn its acknowledgements into the
//! journal's gate, so that in sync mode nothing is confirmed to a client before the
//! standby holds it. Also decides when the standby counts as in sync (recorded in
//! the lock, which makes it eligible to take over) and when it counts as down.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::link::{ReadEnd, WriteEnd};
use super::lock::Holder;
use super::lock::Lock;
use super::probe;
use super::state::NodeState;
use super::wire::{self, Msg, Start, WireError};
use crate::config::{ReplicationConfig, ReplicationMode, StandbyDown};
use crate::store::{Frames, Journal, Lsn, Store};

/// A batch of frames sent in one message, about.
const BATCH_BYTES: usize = 1 << 20;
/// A standby this close behind (in records) starts gating confirmations; it
/// catches the rest up while publishers wait for it.
const CATCH_UP_SLACK: Lsn = 1000;
const PING_EVERY: Duration = Duration::from_millis(200);

pub(super) struct Leader {
    pub store: Arc<Store>,
    pub st: Arc<NodeState>,
    pub lock: Arc<Lock>,
    pub cfg: ReplicationConfig,
    pub epoch: u64,
    pub ports: Vec<(String, u16)>,
    /// Held while a session changes what the journal retains for its reader.
    pub pins: std::sync::Mutex<()>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Confirmations do not wait for the standby yet.
    CatchingUp,
    /// They wait for it; it is in sync once it has what was confirmed before.
    Joining {
        target: Lsn,
    },
    InSync,
}

impl Leader {
    fn journal(&self) -> &Journal {
        self.store.journal()
    }

    /// Sets what the journal keeps for this session's reader, unless the standby
    /// reconnected and a newer session replaced this one: only the newest reader
    /// counts. A replaced session may still be finishing a write to the connection
    /// it lost; its end, or a late ack, must not release the new reader's segments.
    /// Under `pins`, with the new session's first pin: that pin comes after this
    /// session's cancellation, so either this change comes before it and is
    /// overwritten, or it sees the cancellation.
    fn retain(&self, cancel: &CancellationToken, lsn: Option<Lsn>) {
        let _g = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        if !cancel.is_cancelled() {
            self.journal().set_retain_from(lsn);
        }
    }

    /// Serves one standby from its Hello until it goes away or `cancel`.
    pub async fn session(
        self: Arc<Self>,
        rd: ReadEnd,
        mut wr: WriteEnd,
        hello: (u64, u64, Lsn),
        cancel: CancellationToken,
    ) {
        let (their_epoch, last_epoch, last_lsn) = hello;
        // A peer that has seen, or written, a newer epoch: another node took over.
        if their_epoch.max(last_epoch) > self.epoch {
            self.st.fence(&format!(
                "the peer has seen epoch {}, this node is at {}",
                their_epoch.max(last_epoch),
                self.epoch
            ));
            return;
        }
        let journal = self.journal().clone();
        let truncate_to = last_lsn.min(journal.end_of_epoch(last_epoch));
        let first = {
            let _g = self.pins.lock().unwrap_or_else(|e| e.into_inner());
            pin_oldest(&journal)
        };
        let (start, from) = if truncate_to + 1 >= first {
            (Start::Continue { truncate_to }, truncate_to + 1)
        } else {
            let (definitions, _) = self.store.definitions_snapshot();
            (
                Start::Snapshot {
                    first_lsn: first,
                    definitions,
                },
                first,
            )
        };
        self.retain(&cancel, Some(from));
        let welcome = Msg::Welcome {
            epoch: self.epoch,
            start,
            ports: self.ports.clone(),
        };
        let mut phase = Phase::CatchingUp;
        let res = match wire::write(&mut wr, &welcome).await {
            Ok(()) => {
                self.stream(&journal, from, rd, wr, &mut phase, &cancel)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            tracing::warn!("replication: standby connection: {e}");
        }
        self.retain(&cancel, None);
        if !cancel.is_cancelled() {
            self.standby_down(phase).await;
        }
    }

    async fn stream(
        &self,
        journal: &Journal,
        from: Lsn,
        rd: ReadEnd,
        mut wr: WriteEnd,
        phase: &mut Phase,
        cancel: &CancellationToken,
    ) -> Result<(), WireError> {
        let mut acks = wire::spawn_reader(rd);
        let mut reader = journal.reader(from);
        let mut written = journal.subscribe_written();
        let mut acked = from - 1;
        self.st.lock().acked_lsn = acked;
        // Since when records have been waiting for the standby's ack, restarted by
        // each ack that advances. Not "since the last advance": an idle pair's
        // heartbeat acks do not advance, and the first write after a quiet spell
        // would find that clock already past the timeout and drop a standby that
        // is only a few milliseconds behind.
        let mut waiting: Option<Instant> = None;
        let mut retired = journal.first_lsn();
        let mut tick = tokio::time::interval(PING_EVERY);
        let timeout = Duration::from_millis(self.cfg.ack_timeout_ms.max(100));
        loop {
            let upto = *written.borrow_and_update();
            if upto > acked && waiting.is_none() {
                waiting = Some(Instant::now());
            }
            while reader.position() <= upto {
                let mut frames = Frames::default();
                if let Err(e) = reader.read(upto, BATCH_BYTES, &mut frames) {
                    tracing::error!("replication: cannot read the journal back: {e}");
                    return Ok(());
                }
                if frames.bytes.is_empty() {
                    break;
                }
                wire::write(&mut wr, &Msg::Records(frames.bytes)).await?;
            }
            let first = journal.first_lsn();
            if first > retired {
                wire::write(&mut wr, &Msg::Retire(first)).await?;
                retired = first;
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = written.changed() => if r.is_err() { return Ok(()) },
                m = acks.recv() => match m {
                    Some(Msg::Ack(a)) => {
                        if a > acked {
                            acked = a;
                            waiting = (a < *written.borrow()).then(Instant::now);
                            self.retain(cancel, Some(a + 1));
                        }
                        self.on_ack(journal, a, phase).await;
                    }
                    Some(Msg::Ping) => {}
                    _ => return Ok(()),
                },
                _ = tick.tick() => {
                    if acked < journal.local_durable_lsn()
                        && waiting.is_some_and(|t| t.elapsed() > timeout)
                    {
                        tracing::warn!(acked, "replication: the standby stopped acknowledging");
                        return Ok(());
                    }
                    wire::write(&mut wr, &Msg::Ping).await?;
                }
            }
        }
    }

    async fn on_ack(&self, journal: &Journal, a: Lsn, phase: &mut Phase) {
        let sync = self.cfg.mode == ReplicationMode::Sync;
        {
            let mut g = self.st.lock();
            g.last_lsn = journal.local_durable_lsn();
            g.acked_lsn = a;
        }
        match *phase {
            Phase::CatchingUp => {
                let local = journal.local_durable_lsn();
                if local.saturating_sub(a) <= CATCH_UP_SLACK {
                    if sync {
                        journal.set_gate(Some(a));
                    }
                    *phase = Phase::Joining { target: local };
                }
            }
            Phase::Joining { target } => {
                if sync {
                    journal.set_gate(Some(a));
                }
                if a >= target && self.record(true).await {
                    tracing::info!(lsn = a, "replication: the standby is in sync");
                    self.st.lock().in_sync = true;
                    *phase = Phase::InSync;
                }
            }
            Phase::InSync => {
                if sync {
                    journal.set_gate(Some(a));
                }
            }
        }
    }

    /// The standby went away or stopped acknowledging.
    async fn standby_down(&self, phase: Phase) {
        if phase == Phase::CatchingUp {
            return;
        }
        if self.cfg.standby_down == StandbyDown::Block && self.cfg.mode == ReplicationMode::Sync {
            tracing::warn!(
                "replication: standby down; confirmations wait until a standby catches up (standby_down = block)"
            );
            return;
        }
        // A static pair has no lock to say who is active: ask the peer, which may
        // have been promoted while this node was cut off.
        if let Some(s) = probe(&self.st.link, &self.st.peer).await
            && s.active
            && s.epoch > self.epoch
        {
            self.st
                .fence(&format!("the peer is active at epoch {}", s.epoch));
            return;
        }
        // Out of sync is recorded before anything is confirmed without the standby:
        // from then on it may not take over.
        while !self.record(false).await {
            if self.st.fenced.is_cancelled() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.st.lock().in_sync = false;
        self.journal().set_gate(None);
        tracing::warn!("replication: standby down; going on alone (standby_down = continue)");
    }

    /// Writes the lock's record; false if that failed (logged).
    async fn record(&self, in_sync: bool) -> bool {
        let h = Holder {
            epoch: self.epoch,
            node: self.st.node.clone(),
            in_sync,
        };
        match self.lock.write(&h).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("replication: cannot record the standby's state in the lock: {e}");
                false
            }
        }
    }
}

/// The oldest LSN on disk, held against retirement (re-checked: compaction may
/// retire it between reading and holding).
fn pin_oldest(journal: &Journal) -> Lsn {
    loop {
        let first = journal.first_lsn();
        journal.set_retain_from(Some(first));
        if journal.first_lsn() == first {
            return first;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::link::{self, Link};
    use crate::tls::Stream;
    use tokio::net::TcpListener;

    /// A standby's connection over `link` as the leader's side sees it once the
    /// Hello is read (what serve_peers hands a session), and the standby's end.
    async fn connection(link: &Link) -> (Stream, ReadEnd, WriteEnd) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("localhost:{}", l.local_addr().unwrap().port());
        let hello = Msg::Hello {
            node: "b".into(),
            epoch: 0,
            last_epoch: 0,
            last_lsn: 0,
        };
        let standby = async {
            let mut s = link.connect(&addr).await.unwrap();
            wire::write(&mut s, &hello).await.unwrap();
            s
        };
        let (standby, accepted) = tokio::join!(standby, async {
            let (tcp, _) = l.accept().await.unwrap();
            link.accept(tcp).await
        });
        let Ok(leader_side) = accepted else {
            panic!("accept: {:?}", accepted.err())
        };
        let (mut rd, wr) = link::split(leader_side);
        assert_eq!(wire::read(&mut rd).await.unwrap(), Some(hello));
        (standby, rd, wr)
    }

    async fn welcomed(standby: &mut Stream) {
        match wire::read(standby).await.unwrap() {
            Some(Msg::Welcome { .. }) => {}
            other => panic!("expected a Welcome, got {other:?}"),
        }
    }

    fn leader(store: &Arc<Store>) -> Arc<Leader> {
        Arc::new(Leader {
            store: store.clone(),
            st: NodeState::new("a".into(), "127.0.0.1:9".into(), Arc::default()),
            lock: Arc::new(Lock::Static(true)),
            cfg: ReplicationConfig::default(),
            epoch: 1,
            ports: Vec::new(),
            pins: Default::default(),
        })
    }

    /// The leader's session is the same over mutual TLS: the standby is welcomed
    /// and reads back the journal's frames, and its acks reach the leader.
    #[tokio::test]
    async fn a_standby_over_mutual_tls_gets_the_journal_and_acks_it() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), crate::store::Fsync::Never).unwrap();
        let store = Arc::new(store);
        for i in 0..3u8 {
            store.journal().append(&[i; 100]);
        }
        let leader = leader(&store);
        let link = link::tests::tls_link();
        let (standby, rd, wr) = connection(&link).await;
        let cancel = CancellationToken::new();
        let t = tokio::spawn(leader.clone().session(rd, wr, (0, 0, 0), cancel.clone()));
        let (mut srd, mut swr) = link::split(standby);
        match wire::read(&mut srd).await.unwrap() {
            Some(Msg::Welcome { epoch: 1, .. }) => {}
            other => panic!("expected a Welcome, got {other:?}"),
        }
        let Some(Msg::Records(frames)) = wire::read(&mut srd).await.unwrap() else {
            panic!("expected records");
        };
        assert!(frames.len() >= 300, "{} bytes of frames", frames.len());
        wire::write(&mut swr, &Msg::Ack(3)).await.unwrap();
        let acked = async {
            while leader.st.lock().acked_lsn != 3 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), acked)
            .await
            .expect("the ack reached the leader");
        cancel.cancel();
        t.await.unwrap();
    }

    /// A standby that reconnects while its old session is still stuck writing to
    /// the connection it abandoned: when that session ends at last, it must not
    /// release the segments the new session reads from.
    #[tokio::test]
    async fn a_replaced_session_leaves_the_new_sessions_segments_held() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), crate::store::Fsync::Never).unwrap();
        let store = Arc::new(store);
        // Far more than loopback's socket buffers hold, so a session whose standby
        // reads nothing blocks in a write, where it does not see its cancellation.
        let record = vec![7u8; 1 << 20];
        for _ in 0..32 {
            store.journal().append(&record);
        }
        let leader = leader(&store);
        let plain = Link::default();
        let (mut s1, rd, wr) = connection(&plain).await;
        let old = CancellationToken::new();
        let t1 = tokio::spawn(leader.clone().session(rd, wr, (0, 0, 0), old.clone()));
        welcomed(&mut s1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // What serve_peers does when the standby says Hello again.
        old.cancel();
        let (mut s2, rd, wr) = connection(&plain).await;
        let new = CancellationToken::new();
        let t2 = tokio::spawn(leader.clone().session(rd, wr, (0, 0, 0), new.clone()));
        welcomed(&mut s2).await;
        assert_eq!(store.journal().retained_from(), Some(1));
        // The abandoned connection breaks at last; the old session ends.
        drop(s1);
        t1.await.unwrap();
        assert_eq!(
            store.journal().retained_from(),
            Some(1),
            "the old session released what the new one reads"
        );
        new.cancel();
        drop(s2);
        t2.await.unwrap();
    }
}
