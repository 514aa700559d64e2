//! MQTT topic names and filters: validation, matching, and the mapping onto the
//! core's AMQP topic routing keys.
//!
//! The mapping swaps `/` and `.` (RabbitMQ's choice): MQTT `a/b.c` is AMQP `a.b/c`.
//! It is a bijection, so every MQTT topic survives the round trip and `a/b` and
//! `a.b` stay distinct. Bindings may over-match (a literal `*` in an MQTT filter
//! level becomes an AMQP wildcard); the session re-checks every delivery against
//! its own filters with [`matches`], which is also where the `$`-topic rule lives.

/// A topic name a client may publish to: non-empty, no wildcards, no NUL.
pub fn valid_name(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0'])
}

/// A topic filter: `+` only as a whole level, `#` only as the whole last level.
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    let last = levels.len() - 1;
    levels.iter().enumerate().all(|(i, l)| match *l {
        "+" => true,
        "#" => i == last,
        l => !l.contains(['+', '#']),
    })
}

/// A shared subscription `$share/{group}/{filter}`, split; `None` if not shared.
/// `Some(Err(()))` when it is malformed (empty or wildcard group, no filter).
#[allow(clippy::result_unit_err)]
pub fn split_shared(filter: &str) -> Option<Result<(&str, &str), ()>> {
    let rest = filter.strip_prefix("$share/")?;
    Some(match rest.split_once('/') {
        Some((group, f)) if !group.is_empty() && !group.contains(['+', '#']) && valid_filter(f) => {
            Ok((group, f))
        }
        _ => Err(()),
    })
}

/// MQTT 3.1.1 §4.7: does `filter` match `topic`? Wildcards at the first level do not
/// match topics starting with `$`.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn swap(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '/' => '.',
            '.' => '/',
            c => c,
        })
        .collect()
}

/// MQTT topic name → AMQP routing key on `amq.topic`.
pub fn to_routing_key(topic: &str) -> String {
    swap(topic)
}

/// AMQP routing key → MQTT topic name.
pub fn from_routing_key(key: &str) -> String {
    swap(key)
}

/// MQTT filter → AMQP binding key (`+` → `*`; `#` stays).
pub fn to_binding_key(filter: &str) -> String {
    filter
        .split('/')
        .map(|l| if l == "+" { "*".to_string() } else { swap(l) })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        for ok in [
            "a", "a/b", "+", "#", "a/+/c", "a/#", "+/+", "/", "a//b", "$SYS/#",
        ] {
            assert!(valid_filter(ok), "{ok}");
        }
        for bad in ["", "a/#/b", "a+", "a/b#", "#/a", "a/+b"] {
            assert!(!valid_filter(bad), "{bad}");
        }
        assert!(valid_name("a/b.c"));
        assert!(!valid_name("a/+"));
        assert!(!valid_name("a/#"));
        assert!(!valid_name(""));
    }

    #[test]
    fn matching() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("#", "a/b"));
        assert!(matches("+/+", "/a"));
        assert!(matches("+", ""));
        assert!(!matches("a/+", "a/b/c"));
        assert!(!matches("a/b", "a.b"));
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/x", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
    }

    #[test]
    fn mapping_round_trips_dots() {
        assert_eq!(to_routing_key("v1.0/temp"), "v1/0.temp");
        assert_eq!(from_routing_key("v1/0.temp"), "v1.0/temp");
        assert_eq!(to_binding_key("a/+/#"), "a.*.#");
        assert_eq!(to_binding_key("v1.0/+"), "v1/0.*");
    }

    #[test]
    fn shared() {
        assert_eq!(split_shared("$share/g/a/+"), Some(Ok(("g", "a/+"))));
        assert_eq!(split_shared("$share//a"), Some(Err(())));
        assert_eq!(split_shared("$share/g"), Some(Err(())));
        assert_eq!(split_shared("a/b"), None);
    }
}
