//! Topic-exchange matching: a trie over the dot-separated words of binding keys.
//!
//! A lookup walks the routing key's words once per live branch (`*` and `#` fork), so
//! its cost depends on the key and the shape of the bindings, not on their number.

use std::collections::HashMap;

#[derive(Debug)]
pub struct TopicTrie<T> {
    root: Node<T>,
}

#[derive(Debug)]
struct Node<T> {
    words: HashMap<Box<str>, Node<T>>,
    star: Option<Box<Node<T>>>,
    hash: Option<Box<Node<T>>>,
    values: Vec<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            words: HashMap::new(),
            star: None,
            hash: None,
            values: Vec::new(),
        }
    }
}

impl<T> Default for TopicTrie<T> {
    fn default() -> Self {
        TopicTrie {
            root: Node::default(),
        }
    }
}

impl<T: PartialEq> TopicTrie<T> {
    /// Adds `value` under `pattern`; returns false if it was already there.
    pub fn insert(&mut self, pattern: &str, value: T) -> bool {
        let mut node = &mut self.root;
        for word in words(pattern) {
            node = match word {
                "*" => node.star.get_or_insert_with(Default::default),
                "#" => node.hash.get_or_insert_with(Default::default),
                w => node.words.entry(w.into()).or_default(),
            };
        }
        if node.values.contains(&value) {
            return false;
        }
        node.values.push(value);
        true
    }

    /// Removes `value` from `pattern`; returns whether it was there. Empty branches are pruned.
    pub fn remove(&mut self, pattern: &str, value: &T) -> bool {
        let words: Vec<&str> = words(pattern).collect();
        remove_rec(&mut self.root, &words, value)
    }

    /// Calls `f` for every value whose pattern matches `key`. A value bound under two
    /// matching patterns is reported twice; callers dedupe.
    pub fn matches<'a>(&'a self, key: &str, f: &mut impl FnMut(&'a T)) {
        let words: Vec<&str> = words(key).collect();
        match_rec(&self.root, &words, f);
    }

    pub fn is_empty(&self) -> bool {
        self.root.is_empty()
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.values.is_empty()
            && self.words.is_empty()
            && self.star.is_none()
            && self.hash.is_none()
    }
}

fn remove_rec<T: PartialEq>(node: &mut Node<T>, words: &[&str], value: &T) -> bool {
    let Some((first, rest)) = words.split_first() else {
        let before = node.values.len();
        node.values.retain(|v| v != value);
        return node.values.len() != before;
    };
    let removed;
    match *first {
        "*" | "#" => {
            let slot = if *first == "*" {
                &mut node.star
            } else {
                &mut node.hash
            };
            let Some(child) = slot.as_deref_mut() else {
                return false;
            };
            removed = remove_rec(child, rest, value);
            if child.is_empty() {
                *slot = None;
            }
        }
        w => {
            let Some(child) = node.words.get_mut(w) else {
                return false;
            };
            removed = remove_rec(child, rest, value);
            if child.is_empty() {
                node.words.remove(w);
            }
        }
    }
    removed
}

fn match_rec<'a, T>(node: &'a Node<T>, words: &[&str], f: &mut impl FnMut(&'a T)) {
    if let Some(hash) = node.hash.as_deref() {
        // `#` swallows zero or more words: try every split point.
        for i in 0..=words.len() {
            match_rec(hash, &words[i..], f);
        }
    }
    let Some((first, rest)) = words.split_first() else {
        node.values.iter().for_each(&mut *f);
        return;
    };
    if let Some(child) = node.words.get(*first) {
        match_rec(child, rest, f);
    }
    if let Some(star) = node.star.as_deref() {
        match_rec(star, rest, f);
    }
}

/// The words of a key or pattern: the empty string has none (so `#` matches it and
/// `*` does not, as in RabbitMQ); otherwise the dot-separated parts, empty ones included.
fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split('.').filter(move |_| !s.is_empty())
}

/// Straightforward matcher used to check the trie (and by headers-free callers).
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    let p: Vec<&str> = words(pattern).collect();
    let k: Vec<&str> = words(key).collect();
    fn rec(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|i| rec(rest, &k[i..])),
            Some((&"*", rest)) => !k.is_empty() && rec(rest, &k[1..]),
            Some((w, rest)) => k.first() == Some(w) && rec(rest, &k[1..]),
        }
    }
    rec(&p, &k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(t: &TopicTrie<u32>, key: &str) -> Vec<u32> {
        let mut v = Vec::new();
        t.matches(key, &mut |x| v.push(*x));
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn words_star_and_hash() {
        let mut t = TopicTrie::default();
        t.insert("a.b.c", 1);
        t.insert("a.*.c", 2);
        t.insert("a.#", 3);
        t.insert("#", 4);
        t.insert("*.b.*", 5);
        t.insert("a.#.c", 6);
        assert_eq!(matched(&t, "a.b.c"), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(matched(&t, "a"), vec![3, 4]);
        assert_eq!(matched(&t, "a.c"), vec![3, 4, 6]);
        assert_eq!(matched(&t, "x.b.y"), vec![4, 5]);
        assert_eq!(matched(&t, ""), vec![4]);
        assert_eq!(matched(&t, "a.x.y.c"), vec![3, 4, 6]);
    }

    #[test]
    fn remove_prunes() {
        let mut t = TopicTrie::default();
        assert!(t.insert("a.*.#", 1));
        assert!(!t.insert("a.*.#", 1));
        assert!(t.remove("a.*.#", &1));
        assert!(!t.remove("a.*.#", &1));
        assert!(t.is_empty());
    }

    #[test]
    fn trie_agrees_with_reference_matcher() {
        let patterns = [
            "#", "*", "a", "a.#", "#.a", "a.*", "*.a.#", "#.#", "a.#.b", "*.*", "",
        ];
        let keys = [
            "", "a", "b", "a.b", "a.a", "b.a.c", "a.x.b", "a.b.c.d", "x.y",
        ];
        for p in patterns {
            let mut t = TopicTrie::default();
            t.insert(p, 0u32);
            for k in keys {
                assert_eq!(
                    !matched(&t, k).is_empty(),
                    topic_matches(p, k),
                    "pattern {p:?} key {k:?}"
                );
            }
        }
    }
}
