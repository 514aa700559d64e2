//! A session's subscriptions by filter: a sorted `Vec`, not a `BTreeMap`. Most
//! sessions hold one to a few filters, and a B-tree allocates a node for eleven
//! from the first insert (about 700 bytes here) — on an idle subscriber, the
//! largest thing it owned after its task.

use rmqtt_codec::v5::SubscriptionOptions;
use std::num::NonZeroU32;

#[derive(Clone, Debug)]
pub struct Sub {
    pub opts: SubscriptionOptions,
    pub id: Option<NonZeroU32>,
    /// For `$share/group/f`: the filter `f` and the consumer tag on the group's queue.
    pub shared: Option<(String, u64)>,
}

#[derive(Default)]
pub struct Subs(Vec<(String, Sub)>);

impl Subs {
    fn find(&self, filter: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(f, _)| f.as_str().cmp(filter))
    }

    pub fn contains_key(&self, filter: &str) -> bool {
        self.find(filter).is_ok()
    }

    pub fn get(&self, filter: &str) -> Option<&Sub> {
        self.find(filter).ok().map(|i| &self.0[i].1)
    }

    /// Adds or replaces the subscription to `filter`.
    pub fn insert(&mut self, filter: String, sub: Sub) {
        match self.find(&filter) {
            Ok(i) => self.0[i].1 = sub,
            Err(i) => {
                // Exactly what is needed: a session rarely adds many at once,
                // and every spare slot costs an idle subscriber.
                self.0.reserve_exact(1);
                self.0.insert(i, (filter, sub));
            }
        }
    }

    pub fn remove(&mut self, filter: &str) -> Option<Sub> {
        let i = self.find(filter).ok()?;
        Some(self.0.remove(i).1)
    }

    /// In filter order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Sub)> {
        self.0.iter().map(|(f, s)| (f, s))
    }
}

impl<'a> IntoIterator for &'a Subs {
    type Item = (&'a String, &'a Sub);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Sub)>,
        fn(&'a (String, Sub)) -> (&'a String, &'a Sub),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(f, s)| (f, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: u32) -> Sub {
        Sub {
            opts: SubscriptionOptions::default(),
            id: std::num::NonZeroU32::new(id),
            shared: None,
        }
    }

    #[test]
    fn keeps_one_entry_per_filter_in_order() {
        let mut s = Subs::default();
        s.insert("b/#".into(), sub(1));
        s.insert("a/+".into(), sub(2));
        s.insert("b/#".into(), sub(3));
        let got: Vec<_> = s
            .iter()
            .map(|(f, x)| (f.clone(), x.id.map(|n| n.get())))
            .collect();
        assert_eq!(got, vec![("a/+".into(), Some(2)), ("b/#".into(), Some(3))]);
        assert!(s.contains_key("a/+"));
        assert!(!s.contains_key("a"));
        assert_eq!(s.remove("a/+").and_then(|x| x.id).map(|n| n.get()), Some(2));
        assert!(s.remove("a/+").is_none());
        assert_eq!(s.get("b/#").and_then(|x| x.id).map(|n| n.get()), Some(3));
    }
}
