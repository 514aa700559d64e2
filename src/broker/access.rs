//! Permissions, RabbitMQ's model: per user and vhost three regular expressions
//! over resource names (`configure`, `write`, `read`), and topic permissions per
//! user, vhost and exchange over routing keys (`write`, `read`).
//!
//! Invariants:
//! - A user with no entry for a vhost may not use it; an entry of three empty
//!   patterns still opens the vhost but allows nothing (RabbitMQ's `""` is `^$`).
//! - A configured user without a `permissions` list has full access to every vhost
//!   (`default`), unless a per-vhost entry says otherwise; users made at run time
//!   (admin API, definitions) start with none, as in RabbitMQ.
//! - Patterns are compiled once, when set; a check is one unanchored match, none
//!   for `.*`. A connection's [`super::guard::Guarded`] also remembers its grant
//!   and its last decisions until [`Permissions::generation`] moves, so the
//!   steady state of a publisher runs neither the lookup nor the regex.
//! - Topic permissions apply only where one is set for the exchange: without one,
//!   every routing key is allowed.
//! - Run-time changes are journaled in key space `permissions` of vhost `/` and
//!   applied again at start-up, so they survive restarts and reach the standby.

use regex::Regex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use switchboard_api::admin::{PermissionInfo, TopicPermissionInfo};
use switchboard_api::{Access, BrokerError};

/// One permission pattern, compiled.
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    /// `None`: matches every name (`.*`), no regex run.
    re: Option<Regex>,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, BrokerError> {
        if source == ".*" {
            return Ok(Pattern {
                source: source.into(),
                re: None,
            });
        }
        // RabbitMQ reads an empty pattern as "nothing".
        let effective = if source.is_empty() { "^$" } else { source };
        let re = Regex::new(effective).map_err(|e| BrokerError::BadPattern {
            pattern: source.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Pattern {
            source: source.into(),
            re: Some(re),
        })
    }

    /// `.*`: every name passes without a regex run (nothing worth remembering).
    pub fn matches_all(&self) -> bool {
        self.re.is_none()
    }

    pub fn allows(&self, name: &str) -> bool {
        self.re.as_ref().is_none_or(|re| re.is_match(name))
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

/// A permission configured with a user (`[[users]] permissions = [...]`).
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct PermissionConfig {
    #[serde(default = "root")]
    pub vhost: String,
    #[serde(default)]
    pub configure: String,
    #[serde(default)]
    pub write: String,
    #[serde(default)]
    pub read: String,
}

fn root() -> String {
    "/".into()
}

/// A user's permissions in one vhost.
#[derive(Clone, Debug)]
pub struct Grant {
    pub configure: Pattern,
    pub write: Pattern,
    pub read: Pattern,
}

impl Grant {
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Grant, BrokerError> {
        Ok(Grant {
            configure: Pattern::new(configure)?,
            write: Pattern::new(write)?,
            read: Pattern::new(read)?,
        })
    }

    pub fn full() -> Grant {
        let all = || Pattern {
            source: ".*".into(),
            re: None,
        };
        Grant {
            configure: all(),
            write: all(),
            read: all(),
        }
    }

    pub fn pattern(&self, access: Access) -> &Pattern {
        match access {
            Access::Configure => &self.configure,
            Access::Write => &self.write,
            Access::Read => &self.read,
        }
    }
}

/// A user's topic permissions on one exchange of a vhost.
#[derive(Clone, Debug)]
pub struct TopicGrant {
    pub write: Pattern,
    pub read: Pattern,
}

/// (user, vhost) → grant; `None` is an explicit "no access" that overrides a
/// configured user's default.
type VhostTable = HashMap<String, HashMap<String, Option<Arc<Grant>>>>;
/// (user, vhost, exchange) → topic grant.
type TopicTable = HashMap<(String, String), HashMap<String, Arc<TopicGrant>>>;

#[derive(Default)]
pub struct Permissions {
    vhosts: RwLock<VhostTable>,
    defaults: RwLock<HashMap<String, Arc<Grant>>>,
    topics: RwLock<TopicTable>,
    /// Bumped after every change, so what a connection remembers of these tables
    /// is known to be stale on its next operation.
    generation: AtomicU64,
}

impl Permissions {
    /// Changes so far. Read it before reading the tables: a change made after the
    /// read moves it again, so a grant remembered under it is at worst refreshed
    /// once too often, never kept too long.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// After the tables changed (their locks released, so a reader that sees the
    /// new generation sees the change).
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Whether any topic permission is set for the user in the vhost: without
    /// one, a connection skips the topic check.
    pub fn has_topic_grants(&self, user: &str, vhost: &str) -> bool {
        let t = self.topics.read().unwrap_or_else(|e| e.into_inner());
        !t.is_empty()
            && t.get(&(user.to_string(), vhost.to_string()))
                .is_some_and(|m| !m.is_empty())
    }

    /// Full access to every vhost for `user` unless a per-vhost entry says otherwise.
    pub fn set_default(&self, user: &str) {
        self.defaults
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user.to_string(), Arc::new(Grant::full()));
        self.changed();
    }

    /// The user's grant in `vhost`, if it may use it.
    pub fn grant(&self, user: &str, vhost: &str) -> Option<Arc<Grant>> {
        let explicit = self
            .vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .and_then(|m| m.get(vhost).cloned());
        match explicit {
            Some(g) => g,
            None => self
                .defaults
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(user)
                .cloned(),
        }
    }

    pub fn set(&self, user: &str, vhost: &str, grant: Option<Grant>) {
        self.vhosts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(user.to_string())
            .or_default()
            .insert(vhost.to_string(), grant.map(Arc::new));
        self.changed();
    }

    /// Removes the user's entry for the vhost; a user with a default keeps an
    /// explicit "none" so that the removal holds.
    pub fn clear(&self, user: &str, vhost: &str) -> bool {
        let had = self.grant(user, vhost).is_some();
        let has_default = self
            .defaults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(user);
        let mut v = self.vhosts.write().unwrap_or_else(|e| e.into_inner());
        if has_default {
            v.entry(user.to_string())
                .or_default()
                .insert(vhost.to_string(), None);
        } else if let Some(m) = v.get_mut(user) {
            m.remove(vhost);
        }
        drop(v);
        self.changed();
        had
    }

    /// Forgets everything about a deleted user.
    pub fn remove_user(&self, user: &str) {
        self.vhosts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(user);
        self.defaults
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(user);
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(u, _), _| u != user);
        self.changed();
    }

    pub fn set_topic(&self, user: &str, vhost: &str, exchange: &str, g: Option<TopicGrant>) {
        let mut t = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let m = t.entry((user.to_string(), vhost.to_string())).or_default();
        match g {
            Some(g) => {
                m.insert(exchange.to_string(), Arc::new(g));
            }
            None => {
                m.remove(exchange);
            }
        }
        drop(t);
        self.changed();
    }

    /// Whether `key` may be written to / read from a topic exchange.
    pub fn topic_allows(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
        access: Access,
        key: &str,
    ) -> bool {
        let t = self.topics.read().unwrap_or_else(|e| e.into_inner());
        if t.is_empty() {
            return true;
        }
        let Some(g) = t
            .get(&(user.to_string(), vhost.to_string()))
            .and_then(|m| m.get(exchange))
        else {
            return true;
        };
        match access {
            Access::Read => g.read.allows(key),
            _ => g.write.allows(key),
        }
    }

    /// Every entry, sorted (users with a default show one entry per vhost).
    pub fn list(&self, vhosts: &[String]) -> Vec<PermissionInfo> {
        let mut users: Vec<String> = self
            .vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        users.extend(
            self.defaults
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned(),
        );
        users.sort();
        users.dedup();
        let mut out = Vec::new();
        for u in users {
            for v in vhosts {
                if let Some(g) = self.grant(&u, v) {
                    out.push(PermissionInfo {
                        user: u.clone(),
                        vhost: v.clone(),
                        configure: g.configure.source().into(),
                        write: g.write.source().into(),
                        read: g.read.source().into(),
                    });
                }
            }
        }
        out
    }

    pub fn list_topics(&self) -> Vec<TopicPermissionInfo> {
        let t = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<TopicPermissionInfo> = t
            .iter()
            .flat_map(|((u, v), m)| {
                m.iter().map(move |(x, g)| TopicPermissionInfo {
                    user: u.clone(),
                    vhost: v.clone(),
                    exchange: x.clone(),
                    write: g.write.source().into(),
                    read: g.read.source().into(),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.user, &a.vhost, &a.exchange).cmp(&(&b.user, &b.vhost, &b.exchange)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_rabbitmq_reads_them() {
        let g = Grant::new("^app\\.", "", ".*").unwrap();
        assert!(g.configure.allows("app.orders"));
        assert!(!g.configure.allows("other"));
        // Unanchored unless the pattern anchors itself.
        assert!(Pattern::new("orders").unwrap().allows("app.orders.eu"));
        // Empty allows nothing, not even the empty name.
        assert!(!g.write.allows("app.orders"));
        assert!(g.read.allows("anything"));
        assert!(Pattern::new("(").is_err());
    }

    #[test]
    fn defaults_entries_and_removal() {
        let p = Permissions::default();
        assert!(p.grant("alice", "/").is_none());
        p.set_default("admin");
        assert!(p.grant("admin", "any").is_some());
        p.set("alice", "/", Some(Grant::new("", "", "^q$").unwrap()));
        assert!(p.grant("alice", "/").unwrap().read.allows("q"));
        assert!(p.clear("alice", "/"));
        assert!(p.grant("alice", "/").is_none());
        // Clearing a defaulted user's vhost holds against the default.
        assert!(p.clear("admin", "/"));
        assert!(p.grant("admin", "/").is_none());
        assert!(p.grant("admin", "other").is_some());
    }

    #[test]
    fn topic_permissions_apply_only_where_set() {
        let p = Permissions::default();
        assert!(p.topic_allows("u", "/", "amq.topic", Access::Write, "a.b"));
        let g = TopicGrant {
            write: Pattern::new("^sensors\\.").unwrap(),
            read: Pattern::new(".*").unwrap(),
        };
        p.set_topic("u", "/", "amq.topic", Some(g));
        assert!(p.topic_allows("u", "/", "amq.topic", Access::Write, "sensors.t1"));
        assert!(!p.topic_allows("u", "/", "amq.topic", Access::Write, "admin.t1"));
        assert!(p.topic_allows("u", "/", "other", Access::Write, "admin.t1"));
        assert!(p.topic_allows("v", "/", "amq.topic", Access::Write, "admin.t1"));
    }
}
