//! The standby's side of replication: connect to the peer, say where the local
//! journal ends, take the start the active decides (continue, truncate a divergent
//! suffix, or a snapshot), then append what it ships and acknowledge what is
//! durable here. Reconnects until told to stop; returns the replica for promotion.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::link::{self, LinkError, Quiet};
use super::state::NodeState;
use super::wire::{self, Msg, Start};
use crate::store::{Replica, ReplicaError};

/// How often the standby acknowledges when nothing new arrives (its heartbeat).
const ACK_EVERY: Duration = Duration::from_millis(200);
/// The active pings at least this often; silence for longer means it is gone.
const SILENCE: Duration = Duration::from_secs(3);

/// Follows the active until `stop`; fails only if the local store does.
pub(super) async fn follow(
    mut replica: Replica,
    st: Arc<NodeState>,
    stop: CancellationToken,
) -> Result<Replica, ReplicaError> {
    let quiet = Quiet::default();
    loop {
        if stop.is_cancelled() {
            return Ok(replica);
        }
        replica = session(replica, &st, &stop, &quiet).await?;
        st.lock().in_sync = false;
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

async fn session(
    mut replica: Replica,
    st: &NodeState,
    stop: &CancellationToken,
    quiet: &Quiet,
) -> Result<Replica, ReplicaError> {
    let stream = tokio::select! {
        _ = stop.cancelled() => return Ok(replica),
        r = st.link.connect(&st.peer) => match r {
            Ok(s) => s,
            // Down or not yet up: the usual state of a pair starting, said by
            // neither side. A handshake that fails is a misconfiguration.
            Err(LinkError::Connect { .. } | LinkError::ConnectTimeout(_)) => return Ok(replica),
            Err(e) => {
                quiet.warn(None, &e);
                return Ok(replica);
            }
        },
    };
    let (mut rd, mut wr) = link::split(stream);
    let (last_epoch, last_lsn) = replica.journal().last_record();
    let epoch = st.lock().seen_epoch;
    let hello = Msg::Hello {
        node: st.node.clone(),
        epoch,
        last_epoch,
        last_lsn,
    };
    if let Err(e) = wire::write(&mut wr, &hello).await {
        quiet.warn(None, &format_args!("{}: cannot say Hello: {e}", st.peer));
        return Ok(replica);
    }
    // Read here, not through the reader task, to learn why it did not come: with
    // TLS 1.3 a peer refusing this node's certificate says so only now.
    let welcome = tokio::select! {
        _ = stop.cancelled() => return Ok(replica),
        m = tokio::time::timeout(Duration::from_secs(5), wire::read(&mut rd)) => m,
    };
    let (their_epoch, start, ports) = match welcome {
        Ok(Ok(Some(Msg::Welcome {
            epoch,
            start,
            ports,
        }))) => (epoch, start, ports),
        Ok(Ok(Some(Msg::Refused { epoch, .. }))) => {
            st.saw_epoch(epoch);
            return Ok(replica);
        }
        Ok(Ok(Some(_))) => return Ok(replica),
        Ok(Ok(None)) => {
            quiet.warn(
                None,
                &format_args!("{}: closed before its Welcome{}", st.peer, hint(st)),
            );
            return Ok(replica);
        }
        Ok(Err(e)) => {
            quiet.warn(
                None,
                &format_args!("{}: no Welcome: {e}{}", st.peer, hint(st)),
            );
            return Ok(replica);
        }
        Err(_) => {
            quiet.warn(
                None,
                &format_args!("{}: no Welcome within 5 s{}", st.peer, hint(st)),
            );
            return Ok(replica);
        }
    };
    quiet.clear();
    let mut inbox = wire::spawn_reader(rd);
    if their_epoch < st.lock().seen_epoch {
        tracing::warn!(
            epoch = their_epoch,
            "replication: peer claims to be active at an old epoch; not following it"
        );
        return Ok(replica);
    }
    st.saw_epoch(their_epoch);
    st.lock().target = ports;
    replica = match start {
        Start::Continue { truncate_to } if truncate_to < last_lsn => {
            tracing::warn!(
                from = truncate_to + 1,
                to = last_lsn,
                "replication: dropping records the active never had"
            );
            replica.truncate(truncate_to)?
        }
        Start::Continue { .. } => replica,
        Start::Snapshot {
            first_lsn,
            definitions,
        } => {
            tracing::info!(
                first_lsn,
                "replication: starting over from the active's snapshot"
            );
            replica.reset(first_lsn, &definitions)?
        }
    };
    tracing::info!(
        peer = %st.peer,
        epoch = their_epoch,
        tls = st.link.is_tls(),
        "replication: following the active"
    );
    let mut durable = replica.journal().subscribe();
    let mut acked = 0;
    let mut sent = Instant::now();
    let mut heard = Instant::now();
    let mut tick = tokio::time::interval(ACK_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(replica),
            m = inbox.recv() => {
                heard = Instant::now();
                st.lock().heard = Some(heard);
                match m {
                    Some(Msg::Records(b)) => match replica.append_frames(&b) {
                        Ok(last) => st.lock().last_lsn = last,
                        Err(ReplicaError::Store(e)) => {
                            tracing::warn!("replication: {e}; reconnecting");
                            return Ok(replica);
                        }
                        Err(e) => return Err(e),
                    },
                    Some(Msg::Retire(lsn)) => replica.journal().retire_before(lsn),
                    Some(Msg::Ping) => {}
                    _ => return Ok(replica),
                }
            }
            r = durable.changed() => {
                if r.is_err() {
                    return Ok(replica);
                }
            }
            _ = tick.tick() => {
                if heard.elapsed() > SILENCE {
                    tracing::warn!("replication: the active went silent");
                    return Ok(replica);
                }
            }
        }
        let d = *durable.borrow_and_update();
        if d > acked || sent.elapsed() >= ACK_EVERY {
            if wire::write(&mut wr, &Msg::Ack(d)).await.is_err() {
                return Ok(replica);
            }
            acked = d;
            sent = Instant::now();
            st.lock().in_sync = true;
        }
    }
}

/// What to check when the active closes on this node before welcoming it: a
/// plain standby's Hello is not a TLS handshake, and a TLS active says nothing
/// a plain reader understands.
fn hint(st: &NodeState) -> &'static str {
    if st.link.is_tls() {
        " (does the peer trust this node's certificate?)"
    } else {
        " (if the peer's replication port uses TLS, turn on replication.tls here too)"
    }
}
