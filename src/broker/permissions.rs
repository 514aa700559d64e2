//! Run-time permissions kept durable: one record per (user, vhost) and per (user,
//! vhost, exchange) for topic permissions, JSON in key space `permissions` of vhost
//! `/` (journaled, so they survive restarts and reach the standby), and the
//! configured users' permissions seeded at start-up.

use super::Core;
use super::access::{Grant, Pattern, TopicGrant};
use super::users::UserConfig;
use switchboard_api::admin::{PermissionInfo, TopicPermissionInfo};
use switchboard_api::{Broker, BrokerError, KeySpace};

const PERMISSIONS: KeySpace = KeySpace::new("permissions");

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    user: String,
    vhost: String,
    /// Set for a topic permission.
    #[serde(default)]
    exchange: Option<String>,
    #[serde(default)]
    configure: String,
    #[serde(default)]
    write: String,
    #[serde(default)]
    read: String,
    #[serde(default)]
    cleared: bool,
}

fn key(r: &Record) -> String {
    match &r.exchange {
        Some(x) => format!("topic\n{}\n{}\n{x}", r.user, r.vhost),
        None => format!("{}\n{}", r.user, r.vhost),
    }
}

impl Core {
    /// Configured users: their listed permissions, or full access to every vhost.
    pub(super) fn seed_permissions(&self, users: &[UserConfig]) {
        let p = &self.inner.permissions;
        for u in users {
            match &u.permissions {
                None => p.set_default(&u.name),
                Some(list) => {
                    for e in list {
                        match Grant::new(&e.configure, &e.write, &e.read) {
                            Ok(g) => p.set(&u.name, &e.vhost, Some(g)),
                            Err(err) => {
                                tracing::error!(user = %u.name, "{err}; permission not set")
                            }
                        }
                    }
                }
            }
        }
    }

    fn apply(&self, r: &Record) -> Result<(), BrokerError> {
        let p = &self.inner.permissions;
        match (&r.exchange, r.cleared) {
            (None, true) => {
                p.clear(&r.user, &r.vhost);
            }
            (None, false) => {
                p.set(
                    &r.user,
                    &r.vhost,
                    Some(Grant::new(&r.configure, &r.write, &r.read)?),
                );
            }
            (Some(x), true) => p.set_topic(&r.user, &r.vhost, x, None),
            (Some(x), false) => {
                let g = TopicGrant {
                    write: Pattern::new(&r.write)?,
                    read: Pattern::new(&r.read)?,
                };
                p.set_topic(&r.user, &r.vhost, x, Some(g));
            }
        }
        Ok(())
    }

    fn store_record(&self, r: &Record) -> Result<u64, BrokerError> {
        if self.inner.users.get(&r.user).is_none() {
            return Err(BrokerError::NoUser {
                name: r.user.clone(),
            });
        }
        self.vhost(&r.vhost)?;
        // Refuse a bad pattern before anything is written.
        self.apply_checked(r)?;
        let body = serde_json::to_vec(r).map_err(|e| BrokerError::Store {
            reason: e.to_string(),
        })?;
        let mut m = switchboard_api::Message::new("", "", bytes::Bytes::from(body));
        m.properties.delivery_mode = Some(2);
        let lsn = self.keyed_put("/", PERMISSIONS, &key(r), Some(m))?;
        self.apply(r)?;
        Ok(lsn)
    }

    fn apply_checked(&self, r: &Record) -> Result<(), BrokerError> {
        if !r.cleared {
            Grant::new(&r.configure, &r.write, &r.read)?;
        }
        Ok(())
    }

    pub(super) fn set_permission_record(
        &self,
        p: &PermissionInfo,
        clear: bool,
    ) -> Result<u64, BrokerError> {
        self.store_record(&Record {
            user: p.user.clone(),
            vhost: p.vhost.clone(),
            exchange: None,
            configure: p.configure.clone(),
            write: p.write.clone(),
            read: p.read.clone(),
            cleared: clear,
        })
    }

    pub(super) fn set_topic_permission_record(
        &self,
        p: &TopicPermissionInfo,
        clear: bool,
    ) -> Result<u64, BrokerError> {
        self.store_record(&Record {
            user: p.user.clone(),
            vhost: p.vhost.clone(),
            exchange: Some(p.exchange.clone()),
            configure: String::new(),
            write: p.write.clone(),
            read: p.read.clone(),
            cleared: clear,
        })
    }

    /// Applies the run-time permissions kept in the journal over the seeded ones.
    pub(super) fn load_permissions(&self) {
        for (k, m) in self.keyed_scan("/", PERMISSIONS, &mut |_| true) {
            match serde_json::from_slice::<Record>(&m.body) {
                Ok(r) => {
                    if let Err(e) = self.apply(&r) {
                        tracing::error!("permission record '{k}': {e}");
                    }
                }
                Err(e) => tracing::error!("permission record '{k}' unreadable: {e}"),
            }
        }
    }
}
