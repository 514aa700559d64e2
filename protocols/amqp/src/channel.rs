//! Per-channel state of an AMQP session. It lives apart from `session.rs` so that
//! both the session and the method handlers under `methods/` can name it without
//! the session importing back from its handlers. The `channel.*` methods
//! themselves are in `methods/channel.rs`.

use amq_protocol::protocol::BasicProperties;
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use switchboard_api::{ConsumerHandle, Credit, Message, QueueHandle, Settle};

/// A publish being assembled from its method, header and body frames.
pub(crate) struct Pending {
    pub exchange: String,
    pub routing_key: String,
    pub mandatory: bool,
    pub properties: Option<Box<BasicProperties>>,
    pub body_size: u64,
    pub body: BytesMut,
    pub single: Option<Bytes>,
}

pub(crate) struct ChanConsumer {
    pub id: u64,
    pub handle: Box<dyn ConsumerHandle>,
    pub no_ack: bool,
}

pub(crate) struct Unacked {
    pub queue: Arc<dyn QueueHandle>,
    pub seq: u64,
}

#[derive(Default)]
pub(crate) struct Tx {
    pub publishes: Vec<(Message, bool, Box<BasicProperties>)>,
    pub settles: Vec<(u64, bool, Settle)>,
}

pub(crate) struct Channel {
    /// We sent channel.close and wait for close-ok; everything else is dropped.
    pub closing: bool,
    pub publish: Option<Pending>,
    pub confirm: bool,
    pub publish_seq: u64,
    /// Highest publish seq to confirm with one `basic.ack multiple` at the next flush.
    pub ack_upto: Option<u64>,
    /// Confirms (and returns, commit-oks) waiting for the journal, in order.
    pub awaiting: VecDeque<Awaiting>,
    pub tx: Option<Tx>,
    pub next_tag: u64,
    pub unacked: BTreeMap<u64, Unacked>,
    pub consumers: HashMap<String, ChanConsumer>,
    /// Prefetch for consumers created from now on (`basic.qos` global=false).
    pub prefetch: u32,
    /// Channel-wide prefetch (`basic.qos` global=true).
    pub shared: Arc<Credit>,
}

impl Channel {
    pub(crate) fn new() -> Self {
        Channel {
            closing: false,
            publish: None,
            confirm: false,
            publish_seq: 0,
            ack_upto: None,
            awaiting: Default::default(),
            tx: None,
            next_tag: 1,
            unacked: BTreeMap::new(),
            consumers: HashMap::new(),
            prefetch: 0,
            shared: Arc::new(Credit::new(0)),
        }
    }
}

/// What a channel owes its publisher for one publish (or commit).
pub(crate) enum Confirm {
    Ack(u64),
    Nack(u64),
    /// basic.return frames, then (in confirm mode) a single ack: lapin attaches a
    /// return to the very next confirm it reads, so nothing may come between.
    Return {
        frames: Vec<u8>,
        ack: Option<u64>,
    },
    CommitOk,
}

pub(crate) struct Awaiting {
    pub lsn: u64,
    pub what: Confirm,
}

/// Settles deliveries, one call per run of the same queue (the common case is one
/// queue per channel, so this is one lock per batch).
pub(crate) fn settle_grouped(list: impl IntoIterator<Item = Unacked>, how: Settle) {
    let mut run: Option<(Arc<dyn QueueHandle>, Vec<u64>)> = None;
    for u in list {
        match &mut run {
            Some((q, seqs)) if Arc::ptr_eq(q, &u.queue) => seqs.push(u.seq),
            _ => {
                if let Some((q, seqs)) = run.take() {
                    q.settle(&seqs, how);
                }
                run = Some((u.queue, vec![u.seq]));
            }
        }
    }
    if let Some((q, seqs)) = run {
        q.settle(&seqs, how);
    }
}
