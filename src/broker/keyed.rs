//! Durable key → message maps beside the queues, one per [`KeySpace`]: MQTT
//! retained messages, MQTT session state, and the SQS bridge's queue metadata and
//! message move tasks.
//!
//! Each (vhost, space) is journaled as a hidden queue: the definitions file gives it
//! an id under the reserved name `amq.keyed.<space>` (clients cannot declare `amq.`
//! names), a put appends an `Enqueue` of the new value and a `Settle` of the old one,
//! and recovery hands the live values back. The key travels as the value's routing
//! key, so nothing but the message itself is stored.
//!
//! Values live long (a retained message or an SQS queue's metadata may never
//! change), so unlike queue messages they would pin the oldest journal segment
//! forever; [`Keyed::relocate_below`] re-appends the few that do, letting
//! compaction retire the segment.

use crate::store::{Placement, Recovered, Store};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use switchboard_api::{BrokerError, ErrorKind, KeySpace, Message, wall_ms};

pub const RESERVED_PREFIX: &str = "amq.keyed.";

pub fn reserved_name(space: KeySpace) -> String {
    format!("{RESERVED_PREFIX}{}", space.as_str())
}

pub fn space_of(name: &str) -> Option<KeySpace> {
    let s = name.strip_prefix(RESERVED_PREFIX)?;
    KeySpace::ALL.into_iter().find(|k| k.as_str() == s)
}

pub struct Keyed {
    space: KeySpace,
    vhost: String,
    store: Option<Arc<Store>>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Journal id; 0 until the first journaled put (or recovery) allocates it.
    id: u64,
    next_seq: u64,
    map: HashMap<String, Entry>,
    /// LSNs of the journaled values, for compaction.
    live: BTreeSet<u64>,
}

struct Entry {
    seq: u64,
    /// 0: not journaled (a transient value).
    lsn: u64,
    /// Wall-clock ms; 0 = never.
    expires_at_ms: u64,
    msg: Arc<Message>,
}

impl Keyed {
    pub fn new(space: KeySpace, vhost: &str, store: Option<Arc<Store>>) -> Keyed {
        Keyed {
            space,
            vhost: vhost.to_string(),
            store,
            inner: Mutex::new(Inner {
                next_seq: 1,
                ..Default::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores or removes a value; returns the LSN that must be durable (0: none).
    pub fn put(&self, key: &str, value: Option<Message>) -> Result<u64, BrokerError> {
        let mut st = self.lock();
        let mut lsn = 0;
        let new = match value {
            None => None,
            Some(mut msg) => {
                if msg.routing_key != key {
                    msg.routing_key = key.to_string();
                }
                let expires_at_ms = msg
                    .properties
                    .ttl_ms()
                    .map_or(0, |ttl| wall_ms().saturating_add(ttl));
                let seq = st.next_seq;
                st.next_seq += 1;
                let mut entry = Entry {
                    seq,
                    lsn: 0,
                    expires_at_ms,
                    msg: Arc::new(msg),
                };
                if let (Some(store), true) = (&self.store, entry.msg.properties.persistent()) {
                    let id = self.journal_id(&mut st, store)?;
                    entry.lsn = store.enqueue(&placement(id, &entry), &entry.msg);
                    lsn = entry.lsn;
                    st.live.insert(entry.lsn);
                }
                Some(entry)
            }
        };
        let old = match new {
            Some(e) => st.map.insert(key.to_string(), e),
            None => st.map.remove(key),
        };
        if let Some(old) = old {
            lsn = lsn.max(self.forget(&mut st, &old));
        }
        Ok(lsn)
    }

    fn journal_id(&self, st: &mut Inner, store: &Store) -> Result<u64, BrokerError> {
        if st.id == 0 {
            st.id = store
                .put_queue(
                    &self.vhost,
                    &reserved_name(self.space),
                    false,
                    &Default::default(),
                )
                .map_err(|e| BrokerError::new(ErrorKind::Internal, e.to_string()))?;
        }
        Ok(st.id)
    }

    /// Journals the removal of an entry already taken out of the map.
    fn forget(&self, st: &mut Inner, old: &Entry) -> u64 {
        match &self.store {
            Some(store) if old.lsn != 0 => {
                st.live.remove(&old.lsn);
                store.settle(st.id, old.seq)
            }
            _ => 0,
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<Message>> {
        let mut st = self.lock();
        let now = wall_ms();
        match st.map.get(key) {
            Some(e) if e.expires_at_ms != 0 && e.expires_at_ms <= now => {
                if let Some(old) = st.map.remove(key) {
                    self.forget(&mut st, &old);
                }
                None
            }
            Some(e) => Some(e.msg.clone()),
            None => None,
        }
    }

    /// Entries whose key `filter` accepts; expired ones are dropped on the way.
    pub fn scan(&self, filter: &mut dyn FnMut(&str) -> bool) -> Vec<(String, Arc<Message>)> {
        let mut st = self.lock();
        let now = wall_ms();
        let mut out = Vec::new();
        let mut expired = Vec::new();
        for (k, e) in &st.map {
            if e.expires_at_ms != 0 && e.expires_at_ms <= now {
                expired.push(k.clone());
            } else if filter(k) {
                out.push((k.clone(), e.msg.clone()));
            }
        }
        for k in expired {
            if let Some(old) = st.map.remove(&k) {
                self.forget(&mut st, &old);
            }
        }
        out
    }

    /// Start-up: the journal id the definitions file gave this space.
    pub fn set_id(&self, id: u64) {
        self.lock().id = id;
    }

    /// Start-up: values read back from the journal, in sequence order. A key seen
    /// twice (a crash between a put's Enqueue and the old value's Settle) keeps the
    /// newer value; the older one is settled once the replay is over.
    pub fn restore(&self, r: Recovered, stale: &mut Vec<(u64, u64)>) {
        let mut st = self.lock();
        st.next_seq = st.next_seq.max(r.at.seq + 1);
        st.live.insert(r.lsn);
        let e = Entry {
            seq: r.at.seq,
            lsn: r.lsn,
            expires_at_ms: r.at.expires_at_ms,
            msg: Arc::new(r.message),
        };
        let key = e.msg.routing_key.clone();
        if let Some(old) = st.map.insert(key, e) {
            st.live.remove(&old.lsn);
            stale.push((st.id, old.seq));
        }
    }

    pub fn min_live_lsn(&self) -> Option<u64> {
        self.lock().live.first().copied()
    }

    /// Re-appends every journaled value older than `lsn`, so that the segments below
    /// it hold nothing live. Returns how many moved.
    pub fn relocate_below(&self, lsn: u64) -> usize {
        let Some(store) = &self.store else { return 0 };
        let mut st = self.lock();
        let id = st.id;
        let old: Vec<String> = st
            .map
            .iter()
            .filter(|(_, e)| e.lsn != 0 && e.lsn < lsn)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &old {
            let seq = st.next_seq;
            st.next_seq += 1;
            let Some(e) = st.map.get_mut(k) else { continue };
            let (old_seq, old_lsn) = (e.seq, e.lsn);
            e.seq = seq;
            e.lsn = store.enqueue(&placement(id, e), &e.msg);
            let new_lsn = e.lsn;
            store.settle(id, old_seq);
            st.live.remove(&old_lsn);
            st.live.insert(new_lsn);
        }
        old.len()
    }
}

fn placement(id: u64, e: &Entry) -> Placement {
    Placement {
        queue: id,
        seq: e.seq,
        priority: 0,
        expires_at_ms: e.expires_at_ms,
        ready_at_ms: 0,
        delivery_count: 0,
        lease_until_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(body: &'static str) -> Message {
        let mut m = Message::new("amq.topic", "ignored", Bytes::from_static(body.as_bytes()));
        m.properties.delivery_mode = Some(2);
        m
    }

    #[test]
    fn put_replaces_and_none_removes() {
        let k = Keyed::new(KeySpace::Retained, "/", None);
        k.put("a.b", Some(msg("1"))).unwrap();
        k.put("a.b", Some(msg("2"))).unwrap();
        k.put("a.c", Some(msg("3"))).unwrap();
        assert_eq!(k.get("a.b").unwrap().body, "2");
        assert_eq!(k.get("a.b").unwrap().routing_key, "a.b");
        k.put("a.b", None).unwrap();
        assert!(k.get("a.b").is_none());
        let all = k.scan(&mut |_| true);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0, "a.c");
    }

    #[test]
    fn journaled_values_survive_reopen_and_relocate() {
        let dir = tempfile::tempdir().unwrap();
        let lsn_before;
        {
            let (store, _) = Store::open(dir.path(), crate::store::Fsync::Batch).unwrap();
            let store = Arc::new(store);
            let k = Keyed::new(KeySpace::Retained, "/", Some(store.clone()));
            k.put("a", Some(msg("1"))).unwrap();
            k.put("b", Some(msg("2"))).unwrap();
            k.put("a", Some(msg("3"))).unwrap();
            k.put("b", None).unwrap();
            lsn_before = k.min_live_lsn().unwrap();
            // Moving "a" forward re-appends it: its old record is no longer live.
            assert_eq!(k.relocate_below(u64::MAX), 1);
            assert!(k.min_live_lsn().unwrap() > lsn_before);
            store.close();
        }
        let (store, rec) = Store::open(dir.path(), crate::store::Fsync::Batch).unwrap();
        let store = Arc::new(store);
        let k = Keyed::new(KeySpace::Retained, "/", Some(store.clone()));
        let id = rec.definitions.queues[&("/".to_string(), reserved_name(KeySpace::Retained))].id;
        k.set_id(id);
        let mut stale = Vec::new();
        store
            .replay_messages(&rec.live, &Default::default(), |qid, m, live| {
                assert!(live);
                assert_eq!(qid, id);
                k.restore(m, &mut stale);
            })
            .unwrap();
        assert!(stale.is_empty());
        assert_eq!(k.get("a").unwrap().body, "3");
        assert!(k.get("b").is_none());
        store.close();
    }

    #[test]
    fn expired_values_disappear() {
        let k = Keyed::new(KeySpace::Retained, "/", None);
        let mut m = msg("x");
        m.properties.expiration = Some("0".into());
        k.put("t", Some(m)).unwrap();
        assert!(k.scan(&mut |_| true).is_empty());
        assert!(k.get("t").is_none());
    }
}
