//! The core seen by the admin API: read-only snapshots (`switchboard_api::Admin`).

use super::Core;
use super::users::{self, UserConfig};
use std::net::SocketAddr;
use switchboard_api::BrokerError;
use switchboard_api::admin::{
    Admin, BindingInfo, ConnectionInfo, ConsumerInfo, ExchangeInfo, JournalView, Password,
    PermissionInfo, QueueSummary, TopicPermissionInfo, UserInfo,
};

impl Admin for Core {
    fn vhost_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    fn exchanges(&self, vhost: &str) -> Result<Vec<ExchangeInfo>, BrokerError> {
        Ok(self.vhost(vhost)?.exchange_infos())
    }

    fn queues(&self, vhost: &str) -> Result<Vec<QueueSummary>, BrokerError> {
        Ok(self.vhost(vhost)?.queue_summaries())
    }

    fn bindings(&self, vhost: &str) -> Result<Vec<BindingInfo>, BrokerError> {
        Ok(self.vhost(vhost)?.binding_infos())
    }

    fn consumers(&self, vhost: &str) -> Result<Vec<ConsumerInfo>, BrokerError> {
        Ok(self.vhost(vhost)?.consumer_infos())
    }

    fn users(&self) -> Vec<UserInfo> {
        self.inner.users.list()
    }

    fn published(&self) -> u64 {
        self.inner
            .published
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn journal(&self) -> Option<JournalView> {
        let s = self.inner.store.as_ref()?.journal().stats();
        let bounds = crate::store::FSYNC_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY]);
        Some(JournalView {
            records_appended: s.records_appended,
            batches_written: s.batches_written,
            fsyncs: s.fsyncs,
            bytes_on_disk: s.bytes_on_disk,
            segments: s.segments,
            sync_buckets: bounds.zip(s.sync_buckets).collect(),
            sync_seconds: s.sync_ns as f64 / 1e9,
        })
    }

    fn connections(&self) -> Vec<ConnectionInfo> {
        self.inner.conns.list()
    }

    fn close_connection(&self, peer: SocketAddr) -> bool {
        self.inner.conns.close(peer)
    }

    fn put_user(
        &self,
        name: &str,
        password: Password,
        tags: Vec<String>,
    ) -> Result<u64, BrokerError> {
        let hash = match password {
            Password::Hashed(h) if users::valid_hash(&h) => h,
            Password::Hashed(_) => return Err(BrokerError::BadPasswordHash),
            Password::Plain(p) => UserConfig {
                name: name.to_string(),
                password: p,
                password_hash: None,
                tags: Vec::new(),
                loopback_only: false,
                secret_key: None,
                permissions: None,
            }
            .export_hash(),
        };
        let lsn = self.put_user_record(&UserRecord {
            name: name.to_string(),
            password_hash: hash.clone(),
            tags: tags.clone(),
            deleted: false,
        })?;
        self.inner.users.put_hashed(name, &hash, tags);
        Ok(lsn)
    }

    fn delete_user(&self, name: &str) -> Result<u64, BrokerError> {
        if self.inner.users.get(name).is_none() {
            return Err(BrokerError::NoUser {
                name: name.to_string(),
            });
        }
        let lsn = self.put_user_record(&UserRecord {
            name: name.to_string(),
            password_hash: String::new(),
            tags: Vec::new(),
            deleted: true,
        })?;
        self.inner.users.remove(name);
        self.inner.permissions.remove_user(name);
        Ok(lsn)
    }

    fn add_vhost(&self, name: &str) -> Result<(), BrokerError> {
        Core::add_vhost(self, name);
        Ok(())
    }

    fn refused(&self) -> Vec<(&'static str, u64)> {
        let mut out = vec![("login", self.inner.refusals.count())];
        out.extend(self.inner.limiter.refused());
        out
    }

    fn permissions(&self) -> Vec<PermissionInfo> {
        self.inner.permissions.list(&self.vhost_names())
    }

    fn topic_permissions(&self) -> Vec<TopicPermissionInfo> {
        self.inner.permissions.list_topics()
    }

    fn set_permission(&self, p: &PermissionInfo, clear: bool) -> Result<u64, BrokerError> {
        self.set_permission_record(p, clear)
    }

    fn set_topic_permission(
        &self,
        p: &TopicPermissionInfo,
        clear: bool,
    ) -> Result<u64, BrokerError> {
        self.set_topic_permission_record(p, clear)
    }
}

/// Run-time users, in vhost `/` (which always exists): one durable record per
/// name, JSON; a removed configured user leaves a tombstone so it stays removed.
const USERS: switchboard_api::KeySpace = switchboard_api::KeySpace::new("users");

#[derive(serde::Serialize, serde::Deserialize)]
struct UserRecord {
    name: String,
    #[serde(default)]
    password_hash: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    deleted: bool,
}

impl Core {
    fn put_user_record(&self, r: &UserRecord) -> Result<u64, BrokerError> {
        use switchboard_api::Broker;
        let body = serde_json::to_vec(r).map_err(|e| BrokerError::Store {
            reason: e.to_string(),
        })?;
        let mut m = switchboard_api::Message::new("", "", bytes::Bytes::from(body));
        m.properties.delivery_mode = Some(2);
        self.keyed_put("/", USERS, &r.name, Some(m))
    }

    /// Applies the run-time users kept in the journal over the configured ones.
    pub(super) fn load_users(&self) {
        use switchboard_api::Broker;
        for (name, m) in self.keyed_scan("/", USERS, &mut |_| true) {
            match serde_json::from_slice::<UserRecord>(&m.body) {
                Ok(r) if r.deleted => {
                    self.inner.users.remove(&r.name);
                }
                Ok(r) => self
                    .inner
                    .users
                    .put_hashed(&r.name, &r.password_hash, r.tags),
                Err(e) => tracing::error!("user record '{name}' unreadable: {e}"),
            }
        }
    }
}
