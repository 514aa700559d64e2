//! Start-up: the core rebuilt from what the store recovered — vhosts, exchanges,
//! queues (and key spaces) with their live messages and dedup windows, bindings.

use super::{Core, exchange, keyed, queue};
use crate::store::Recovery;
use std::collections::HashMap;
use std::sync::Arc;

impl Core {
    pub(super) fn recover(&self, r: Recovery) {
        let defs = &r.definitions;
        for v in &defs.vhosts {
            self.add_vhost(v);
        }
        let mut messages = 0usize;
        for ((vhost, name), x) in &defs.exchanges {
            self.add_vhost(vhost);
            let Ok(v) = self.vhost(vhost) else { continue };
            match exchange::Kind::parse(&x.kind) {
                Some(kind) => {
                    v.restore_exchange(name, kind, true, x.auto_delete, x.internal, x.args.clone())
                }
                None => tracing::warn!("exchange '{name}' has unknown type '{}'; skipped", x.kind),
            }
        }
        enum Target {
            Queue(Arc<queue::Queue>),
            Keyed(Arc<keyed::Keyed>),
        }
        let mut by_id = HashMap::new();
        let mut dedup_queues = std::collections::HashSet::new();
        for ((vhost, name), q) in &defs.queues {
            if q.args.contains_key("x-dedup-window") {
                dedup_queues.insert(q.id);
            }
            self.add_vhost(vhost);
            let Ok(v) = self.vhost(vhost) else { continue };
            let target = match keyed::space_of(name) {
                Some(space) => {
                    let k = v.keyed(space);
                    k.set_id(q.id);
                    Target::Keyed(k)
                }
                None => Target::Queue(v.restore_queue(name, q)),
            };
            by_id.insert(q.id, target);
        }
        if let Some(store) = &self.inner.store {
            let mut stale = Vec::new();
            let r =
                store.replay_messages(&r.live, &dedup_queues, |id, m, live| match by_id.get(&id) {
                    Some(Target::Queue(q)) if live => {
                        messages += 1;
                        q.restore_dedup(&m);
                        q.restore(std::iter::once(m), r.clean);
                    }
                    Some(Target::Queue(q)) => q.restore_dedup(&m),
                    Some(Target::Keyed(k)) if live => k.restore(m, &mut stale),
                    _ => {}
                });
            if let Err(e) = r {
                tracing::error!("reading messages back from the journal failed: {e}");
            }
            for (id, seq) in stale {
                store.settle(id, seq);
            }
        }
        for (vhost, bindings) in &defs.bindings {
            let Ok(v) = self.vhost(vhost) else { continue };
            for b in bindings {
                v.restore_binding(b);
            }
        }
        tracing::info!(
            queues = defs.queues.len(),
            exchanges = defs.exchanges.len(),
            messages,
            journal_records = r.records,
            clean = r.clean,
            "recovered"
        );
    }
}
