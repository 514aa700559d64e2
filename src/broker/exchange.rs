//! Exchanges and their bindings. Each exchange keeps the binding list (the truth, for
//! listing and unbinding) plus an index for its type, updated incrementally so that a
//! publish never rebuilds anything. A binding may carry an SNS filter policy, checked
//! after the type's own match; the index keeps it beside the destination so that
//! direct and topic routing need not go back to the binding list.

use super::filter::{FilterPolicy, LazyBody};
use super::queue::Queue;
use super::topic::TopicTrie;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use switchboard_api::{Message, Table, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "direct" => Kind::Direct,
            "fanout" => Kind::Fanout,
            "topic" => Kind::Topic,
            "headers" => Kind::Headers,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Fanout => "fanout",
            Kind::Topic => "topic",
            Kind::Headers => "headers",
        }
    }
}

/// Where a binding leads.
#[derive(Clone)]
pub enum Dest {
    Queue(Arc<Queue>),
    Exchange(Arc<Exchange>),
}

impl PartialEq for Dest {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Dest::Queue(a), Dest::Queue(b)) => Arc::ptr_eq(a, b),
            (Dest::Exchange(a), Dest::Exchange(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

pub struct Binding {
    pub dest: Dest,
    pub key: String,
    pub args: Table,
    pub filter: Option<Arc<FilterPolicy>>,
}

impl Binding {
    fn target(&self) -> Target {
        Target {
            dest: self.dest.clone(),
            filter: self.filter.clone(),
        }
    }
}

/// An index entry: where to, and the filter a message must pass on the way. Entries
/// are equal when they lead to the same place through the same compiled filter (or
/// both through none), so unfiltered bindings that differ only in arguments share one.
#[derive(Clone)]
struct Target {
    dest: Dest,
    filter: Option<Arc<FilterPolicy>>,
}

impl PartialEq for Target {
    fn eq(&self, other: &Self) -> bool {
        self.dest == other.dest
            && match (&self.filter, &other.filter) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl Target {
    fn pass(&self, body: &LazyBody<'_>) -> bool {
        self.filter.as_ref().is_none_or(|p| p.matches_with(body))
    }
}

/// Whether a binding's filter lets the message through.
fn pass(filter: &Option<Arc<FilterPolicy>>, body: &LazyBody<'_>) -> bool {
    filter.as_ref().is_none_or(|p| p.matches_with(body))
}

#[derive(Default)]
struct Bindings {
    all: Vec<Binding>,
    direct: HashMap<String, Vec<Target>>,
    topic: TopicTrie<Target>,
}

pub struct Exchange {
    pub name: String,
    pub kind: Kind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    /// Declared arguments, kept for listing and definitions export.
    pub args: Table,
    pub alternate: Option<String>,
    bindings: RwLock<Bindings>,
}

impl Exchange {
    pub fn new(
        name: &str,
        kind: Kind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        args: Table,
    ) -> Exchange {
        let alternate = args
            .get("alternate-exchange")
            .and_then(Value::as_str)
            .map(str::to_string);
        Exchange {
            name: name.to_string(),
            kind,
            durable,
            auto_delete,
            internal,
            args,
            alternate,
            bindings: RwLock::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Bindings> {
        self.bindings.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Bindings> {
        self.bindings.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a binding; binding the same (destination, key, arguments) twice is a no-op.
    /// `filter` is the policy compiled from `args` (the caller validates it first).
    pub fn bind(&self, dest: Dest, key: &str, args: &Table, filter: Option<FilterPolicy>) {
        let mut b = self.write();
        if b.all
            .iter()
            .any(|x| x.dest == dest && x.key == key && &x.args == args)
        {
            return;
        }
        let binding = Binding {
            dest,
            key: key.to_string(),
            args: args.clone(),
            filter: filter.map(Arc::new),
        };
        let target = binding.target();
        // Unfiltered bindings to one place with one key share an index entry.
        let indexed = binding.filter.is_none()
            && b.all
                .iter()
                .any(|x| x.dest == binding.dest && x.key == key && x.filter.is_none());
        if !indexed {
            match self.kind {
                Kind::Direct => b.direct.entry(key.to_string()).or_default().push(target),
                Kind::Topic => {
                    b.topic.insert(key, target);
                }
                Kind::Fanout | Kind::Headers => {}
            }
        }
        b.all.push(binding);
    }

    /// Removes a binding; returns whether it existed.
    pub fn unbind(&self, dest: &Dest, key: &str, args: &Table) -> bool {
        let mut b = self.write();
        let Some(i) = b
            .all
            .iter()
            .position(|x| &x.dest == dest && x.key == key && &x.args == args)
        else {
            return false;
        };
        let gone = b.all.remove(i);
        Self::unindex(&mut b, self.kind, &gone.target(), key);
        true
    }

    fn unindex(b: &mut Bindings, kind: Kind, target: &Target, key: &str) {
        // Unfiltered bindings share an entry per (dest, key); keep it while another
        // such binding with other arguments remains.
        if b.all.iter().any(|x| x.key == key && x.target() == *target) {
            return;
        }
        match kind {
            Kind::Direct => {
                if let Some(v) = b.direct.get_mut(key) {
                    v.retain(|d| d != target);
                    if v.is_empty() {
                        b.direct.remove(key);
                    }
                }
            }
            Kind::Topic => {
                b.topic.remove(key, target);
            }
            Kind::Fanout | Kind::Headers => {}
        }
    }

    /// Removes every binding to `dest`; returns how many there were.
    pub fn unbind_all_to(&self, dest: &Dest) -> usize {
        let mut b = self.write();
        let gone: Vec<(String, Target)> = b
            .all
            .iter()
            .filter(|x| &x.dest == dest)
            .map(|x| (x.key.clone(), x.target()))
            .collect();
        b.all.retain(|x| &x.dest != dest);
        for (k, t) in &gone {
            Self::unindex(&mut b, self.kind, t, k);
        }
        gone.len()
    }

    /// (destination, key, arguments) of every binding, for listing.
    pub fn binding_list(&self) -> Vec<(Dest, String, Table)> {
        let b = self.read();
        b.all
            .iter()
            .map(|x| (x.dest.clone(), x.key.clone(), x.args.clone()))
            .collect()
    }

    pub fn has_bindings(&self) -> bool {
        !self.read().all.is_empty()
    }

    /// Calls `f` for each destination the message routes to (possibly with repeats).
    pub fn route(&self, msg: &Message, f: &mut impl FnMut(&Dest)) {
        let b = self.read();
        // Costs nothing until a body-scope filter asks for the body.
        let body = LazyBody::new(msg);
        match self.kind {
            Kind::Direct => {
                if let Some(v) = b.direct.get(&msg.routing_key) {
                    v.iter().filter(|t| t.pass(&body)).for_each(|t| f(&t.dest));
                }
            }
            Kind::Fanout => b
                .all
                .iter()
                .filter(|x| pass(&x.filter, &body))
                .for_each(|x| f(&x.dest)),
            Kind::Topic => b.topic.matches(&msg.routing_key, &mut |t: &Target| {
                if t.pass(&body) {
                    f(&t.dest)
                }
            }),
            Kind::Headers => {
                let empty = Table::new();
                let headers = msg.properties.headers.as_ref().unwrap_or(&empty);
                for x in &b.all {
                    if headers_match(&x.args, headers) && pass(&x.filter, &body) {
                        f(&x.dest)
                    }
                }
            }
        }
    }
}

/// The headers exchange rule: `x-match` is `all` (default) or `any`; the `-with-x`
/// variants also compare `x-` keys, which are otherwise ignored. A binding argument
/// of type void matches on presence alone.
pub fn headers_match(binding: &Table, headers: &Table) -> bool {
    let mode = binding
        .get("x-match")
        .and_then(Value::as_str)
        .unwrap_or("all");
    let (any, with_x) = match mode {
        "any" => (true, false),
        "any-with-x" => (true, true),
        "all-with-x" => (false, true),
        _ => (false, false),
    };
    let mut considered = binding
        .iter()
        .filter(|(k, _)| k.as_str() != "x-match" && (with_x || !k.starts_with("x-")))
        .peekable();
    if considered.peek().is_none() {
        return !any;
    }
    let mut check = |(k, v): (&String, &Value)| match headers.get(k) {
        Some(h) => matches!(v, Value::Void) || v.matches(h),
        None => false,
    };
    if any {
        considered.any(&mut check)
    } else {
        considered.all(&mut check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(pairs: &[(&str, Value)]) -> Table {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn headers_all_and_any() {
        let b_all = t(&[
            ("x-match", Value::string("all")),
            ("a", Value::I32(1)),
            ("b", Value::string("x")),
        ]);
        let b_any = t(&[
            ("x-match", Value::string("any")),
            ("a", Value::I32(1)),
            ("b", Value::string("x")),
        ]);
        let both = t(&[("a", Value::I64(1)), ("b", Value::ShortStr("x".into()))]);
        let one = t(&[("a", Value::I8(1))]);
        assert!(headers_match(&b_all, &both));
        assert!(!headers_match(&b_all, &one));
        assert!(headers_match(&b_any, &one));
        assert!(!headers_match(&b_any, &t(&[("c", Value::I32(1))])));
    }

    #[test]
    fn headers_empty_binding() {
        let all = t(&[("x-match", Value::string("all"))]);
        let any = t(&[("x-match", Value::string("any"))]);
        assert!(headers_match(&all, &Table::new()));
        assert!(!headers_match(&any, &Table::new()));
        assert!(headers_match(&Table::new(), &Table::new()));
    }
}
