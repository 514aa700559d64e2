//! What every publisher and consumer of one protocol did, by message id: the phase
//! it was sent in, whether the broker confirmed it and how often it was delivered.
//! A phase is the stretch between two kills, so the report can say which failover a
//! lost or duplicated message went through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The four protocols the drill drives, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Amqp,
    Mqtt,
    Stomp,
    Sqs,
}

impl Proto {
    pub const ALL: [Proto; 4] = [Proto::Amqp, Proto::Mqtt, Proto::Stomp, Proto::Sqs];

    pub fn name(self) -> &'static str {
        match self {
            Proto::Amqp => "AMQP",
            Proto::Mqtt => "MQTT",
            Proto::Stomp => "STOMP",
            Proto::Sqs => "SQS",
        }
    }

    /// How a message counts as confirmed and received, for the table's heading.
    pub fn contract(self) -> &'static str {
        match self {
            Proto::Amqp => "publisher confirms, persistent, consumer acks after recording",
            Proto::Mqtt => "QoS 1 PUBACK, persistent session (clean_session=false)",
            Proto::Stomp => "SEND with RECEIPT, persistent, client-individual ACK",
            Proto::Sqs => "SendMessage 200 with MessageId, ReceiveMessage + DeleteMessageBatch",
        }
    }

    /// First byte of every body, so a body from another protocol's queue is noticed.
    fn letter(self) -> u8 {
        match self {
            Proto::Amqp => b'a',
            Proto::Mqtt => b'm',
            Proto::Stomp => b's',
            Proto::Sqs => b'q',
        }
    }
}

/// Bodies are exactly this long: the MQTT client hands over only the first 16 bytes.
pub const BODY_LEN: usize = 16;

/// The kills so far; the phase of a moment is how many kills preceded it.
#[derive(Default)]
pub struct Phases {
    kills: Mutex<Vec<Instant>>,
}

impl Phases {
    fn lock(&self) -> MutexGuard<'_, Vec<Instant>> {
        self.kills.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn current(&self) -> usize {
        self.lock().len()
    }

    /// Marks a kill now; messages sent from here on belong to the next phase.
    pub fn kill(&self) -> Instant {
        let now = Instant::now();
        self.lock().push(now);
        now
    }

    /// When kill `k` (1-based) happened.
    pub fn kill_at(&self, k: usize) -> Option<Instant> {
        self.lock().get(k.checked_sub(1)?).copied()
    }
}

/// One message handed to a publisher.
#[derive(Clone, Debug)]
pub struct Msg {
    pub id: u64,
    phase: usize,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    /// Indexed by id (ids count up from 0): the phase the message was sent in.
    phase_of: Vec<u8>,
    confirmed: Vec<bool>,
    deliveries: Vec<u32>,
    /// Per phase: when the first message sent in it was confirmed.
    first_confirm: Vec<Option<Instant>>,
    /// Bodies that were not ours (wrong protocol letter, unknown id, bad digits).
    foreign: u64,
}

/// One row's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub confirmed: u64,
    /// Distinct ids delivered at least once.
    pub received: u64,
    /// Confirmed but never delivered.
    pub lost: u64,
    /// Deliveries beyond the first of each id.
    pub duplicated: u64,
}

pub struct Ledger {
    pub proto: Proto,
    phases: Arc<Phases>,
    inner: Mutex<Inner>,
    pub publisher_reconnects: AtomicU64,
    pub consumer_reconnects: AtomicU64,
}

impl Ledger {
    pub fn new(proto: Proto, phases: Arc<Phases>) -> Ledger {
        Ledger {
            proto,
            phases,
            inner: Mutex::default(),
            publisher_reconnects: AtomicU64::new(0),
            consumer_reconnects: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new message with a fresh id; a publisher that gives up on one (no
    /// confirmation) sends the next with a new id rather than resending it.
    pub fn next_message(&self) -> Msg {
        let phase = self.phases.current();
        let mut g = self.lock();
        let id = g.phase_of.len() as u64;
        g.phase_of.push(u8::try_from(phase).unwrap_or(u8::MAX));
        g.confirmed.push(false);
        g.deliveries.push(0);
        let mut body = Vec::with_capacity(BODY_LEN);
        body.push(self.proto.letter());
        body.extend_from_slice(format!("{id:015}").as_bytes());
        Msg { id, phase, body }
    }

    pub fn confirmed(&self, m: &Msg) {
        let mut g = self.lock();
        let Some(c) = g.confirmed.get_mut(m.id as usize) else {
            return;
        };
        *c = true;
        if g.first_confirm.len() <= m.phase {
            g.first_confirm.resize(m.phase + 1, None);
        }
        g.first_confirm[m.phase].get_or_insert_with(Instant::now);
    }

    /// Records a delivered body (counted even when it repeats: duplicates are counted).
    pub fn received(&self, body: &[u8]) {
        let id = parse(self.proto.letter(), body);
        let mut g = self.lock();
        match id.and_then(|id| g.deliveries.get_mut(id as usize)) {
            Some(n) => *n = n.saturating_add(1),
            None => g.foreign += 1,
        }
    }

    pub fn foreign(&self) -> u64 {
        self.lock().foreign
    }

    /// Total deliveries so far (progress while draining).
    pub fn delivered(&self) -> u64 {
        self.lock().deliveries.iter().map(|&n| u64::from(n)).sum()
    }

    /// Confirmed messages not delivered yet.
    pub fn missing(&self) -> u64 {
        let g = self.lock();
        g.confirmed
            .iter()
            .zip(&g.deliveries)
            .filter(|(c, n)| **c && **n == 0)
            .count() as u64
    }

    /// From kill `k` (1-based) to the first confirmation of a message sent after it.
    pub fn failover(&self, k: usize) -> Option<Duration> {
        let at = self.phases.kill_at(k)?;
        let first = (*self.lock().first_confirm.get(k)?)?;
        Some(first.saturating_duration_since(at))
    }

    /// The figures of the messages sent in `phase` (None: all phases).
    pub fn counts(&self, phase: Option<usize>) -> Counts {
        let g = self.lock();
        let mut c = Counts::default();
        for (i, &p) in g.phase_of.iter().enumerate() {
            if phase.is_some_and(|want| usize::from(p) != want) {
                continue;
            }
            let (confirmed, n) = (g.confirmed[i], u64::from(g.deliveries[i]));
            c.sent += 1;
            c.confirmed += u64::from(confirmed);
            c.received += u64::from(n > 0);
            c.lost += u64::from(confirmed && n == 0);
            c.duplicated += n.saturating_sub(1);
        }
        c
    }

    pub fn reconnected(&self, publisher: bool) {
        let c = if publisher {
            &self.publisher_reconnects
        } else {
            &self.consumer_reconnects
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The id in a body `<letter><15 digits>`, if it is one of this protocol's.
fn parse(letter: u8, body: &[u8]) -> Option<u64> {
    let (&first, digits) = body.split_first()?;
    if first != letter || digits.len() != BODY_LEN - 1 {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_phase() {
        let phases = Arc::new(Phases::default());
        let l = Ledger::new(Proto::Stomp, phases.clone());
        let a = l.next_message();
        assert_eq!(a.body.len(), BODY_LEN);
        assert_eq!(&a.body, b"s000000000000000");
        let b = l.next_message();
        l.confirmed(&a);
        l.confirmed(&b);
        phases.kill();
        let c = l.next_message();
        l.confirmed(&c);
        l.received(&a.body);
        l.received(&a.body);
        l.received(&c.body);
        l.received(b"m000000000000001");
        l.received(b"s00000000000009x");
        assert_eq!(l.foreign(), 2);
        assert_eq!(
            l.counts(Some(0)),
            Counts {
                sent: 2,
                confirmed: 2,
                received: 1,
                lost: 1,
                duplicated: 1
            }
        );
        assert_eq!(l.counts(None).sent, 3);
        assert_eq!(l.missing(), 1);
        assert!(l.failover(1).is_some());
        assert!(l.failover(2).is_none());
    }
}
