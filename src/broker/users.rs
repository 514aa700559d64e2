//! The user table shared by every protocol: the configured users, and those made
//! at run time (admin API, imported definitions), which are kept durable in the
//! key space `users` of vhost `/` and win over a configured user of the same name.
//!
//! Passwords are checked against a plain text (configured users) or RabbitMQ's
//! `rabbit_password_hashing_sha256` hash: base64 of a 4-byte salt followed by
//! SHA-256(salt ‖ password), so definitions move both ways.

use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::RwLock;
use switchboard_api::admin::UserInfo;
use switchboard_api::{BrokerError, User};

#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct UserConfig {
    pub name: String,
    /// Plain text, or empty with `password_hash` set.
    #[serde(default)]
    pub password: String,
    /// RabbitMQ's salted SHA-256 (base64), as in its definitions files.
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only accepted from loopback addresses (RabbitMQ's rule for `guest`).
    #[serde(default)]
    pub loopback_only: bool,
    /// AWS secret access key for SigV4-signed SQS/SNS requests (access key id = the
    /// user name). The password works as a secret too.
    #[serde(default)]
    pub secret_key: Option<String>,
    /// Permissions per vhost; without the field, full access to every vhost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<super::access::PermissionConfig>>,
}

/// What is wrong with configured users, if anything: a malformed password hash,
/// a permission pattern that is not a regular expression, a user listed twice.
pub fn check_users(users: &[UserConfig]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for u in users {
        if !seen.insert(u.name.as_str()) {
            return Err(format!("user '{}' is configured twice", u.name));
        }
        if let Some(h) = u.password_hash.as_deref().filter(|h| !h.is_empty())
            && !valid_hash(h)
        {
            return Err(format!(
                "user '{}': password_hash is neither a rabbit_password_hashing_sha256 hash nor an Argon2 PHC string",
                u.name
            ));
        }
        for p in u.permissions.iter().flatten() {
            super::access::Grant::new(&p.configure, &p.write, &p.read)
                .map_err(|e| format!("user '{}', vhost '{}': {e}", u.name, p.vhost))?;
        }
    }
    Ok(())
}

/// RabbitMQ's hash of `password` with `salt`.
pub fn rabbit_hash(salt: [u8; 4], password: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    let mut out = salt.to_vec();
    out.extend_from_slice(&h.finalize());
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// Whether `password` matches a stored hash: RabbitMQ's salted SHA-256, or an
/// Argon2 PHC string (`$argon2id$…`); false for a malformed one.
fn hash_matches(hash: &str, password: &str) -> bool {
    if hash.starts_with("$argon2") {
        return argon2_matches(hash, password);
    }
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(hash) else {
        return false;
    };
    let Ok(salt) = <[u8; 4]>::try_from(raw.get(..4).unwrap_or_default()) else {
        return false;
    };
    let mine = base64::engine::general_purpose::STANDARD
        .decode(rabbit_hash(salt, password))
        .unwrap_or_default();
    same(&mine, &raw)
}

/// Argon2 costs tens of milliseconds by design: on the server's runtime the worker
/// says it blocks, so the connections it also serves move to another worker
/// meanwhile.
fn argon2_matches(hash: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let verify = || {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(verify)
        }
        _ => verify(),
    }
}

/// An Argon2id hash of `password` with a random salt (`switchboard hash-password
/// --argon2`), in the PHC format the config file and the admin API accept.
pub fn argon2_hash(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Compares without stopping at the first differing byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a hash is well-formed: base64 of a 4-byte salt and a SHA-256, or an
/// Argon2 PHC string.
pub fn valid_hash(hash: &str) -> bool {
    if hash.starts_with("$argon2") {
        // A PHC string may leave out the salt and hash; a stored one may not.
        return argon2::password_hash::PasswordHash::new(hash)
            .is_ok_and(|p| p.salt.is_some() && p.hash.is_some());
    }
    base64::engine::general_purpose::STANDARD
        .decode(hash)
        .is_ok_and(|raw| raw.len() == 4 + 32)
}

impl UserConfig {
    fn password_ok(&self, password: &str) -> bool {
        match &self.password_hash {
            Some(h) if !h.is_empty() => hash_matches(h, password),
            _ => same(self.password.as_bytes(), password.as_bytes()),
        }
    }

    /// The hash to export: the stored one, or one of the plain password with a
    /// salt derived from it (so an export is the same each time, and still
    /// differs between users with one password).
    pub fn export_hash(&self) -> String {
        if let Some(h) = self.password_hash.as_ref().filter(|h| !h.is_empty()) {
            return h.clone();
        }
        let d = Sha256::digest(format!("{}\0{}", self.name, self.password).as_bytes());
        rabbit_hash([d[0], d[1], d[2], d[3]], &self.password)
    }
}

pub struct Users {
    users: RwLock<HashMap<String, UserConfig>>,
}

impl Default for Users {
    /// `guest`/`guest`, loopback only, as RabbitMQ ships.
    fn default() -> Self {
        Users::new(vec![UserConfig {
            name: "guest".into(),
            password: "guest".into(),
            password_hash: None,
            tags: vec!["administrator".into()],
            loopback_only: true,
            secret_key: None,
            permissions: None,
        }])
    }
}

impl Users {
    pub fn new(list: Vec<UserConfig>) -> Users {
        Users {
            users: RwLock::new(list.into_iter().map(|u| (u.name.clone(), u)).collect()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, UserConfig>> {
        self.users.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds or replaces a user (the caller makes it durable).
    pub fn put(&self, u: UserConfig) {
        self.users
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(u.name.clone(), u);
    }

    /// Adds or replaces a user known by its hash and tags. A user already there keeps
    /// its loopback rule and secret key, and its plain password if the hash is of
    /// that password (an export of this broker imported again): SigV4 signing needs
    /// the plain text.
    pub fn put_hashed(&self, name: &str, hash: &str, tags: Vec<String>) {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        let old = users.remove(name);
        let keep_plain = old.as_ref().is_some_and(|u| {
            u.password_hash.as_ref().is_none_or(|h| h.is_empty()) && hash_matches(hash, &u.password)
        });
        let u = UserConfig {
            name: name.to_string(),
            password: if keep_plain {
                old.as_ref().map(|u| u.password.clone()).unwrap_or_default()
            } else {
                String::new()
            },
            password_hash: (!keep_plain).then(|| hash.to_string()),
            tags,
            loopback_only: old.as_ref().is_some_and(|u| u.loopback_only),
            secret_key: old.and_then(|u| u.secret_key),
            permissions: None,
        };
        users.insert(name.to_string(), u);
    }

    /// Every user as configured now (before run-time changes are applied).
    pub fn all(&self) -> Vec<UserConfig> {
        self.read().values().cloned().collect()
    }

    pub fn remove(&self, name: &str) -> bool {
        self.users
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .is_some()
    }

    pub fn get(&self, name: &str) -> Option<UserConfig> {
        self.read().get(name).cloned()
    }

    /// Names, tags and hashes, sorted by name (never a plain password).
    pub fn list(&self) -> Vec<UserInfo> {
        let mut out: Vec<_> = self
            .read()
            .values()
            .map(|u| UserInfo {
                name: u.name.clone(),
                tags: u.tags.clone(),
                password_hash: u.export_hash(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn authenticate(
        &self,
        name: &str,
        password: &str,
        peer: SocketAddr,
    ) -> Result<User, BrokerError> {
        let users = self.read();
        let u = users.get(name).ok_or(BrokerError::LoginRefused)?;
        if !u.password_ok(password) {
            return Err(BrokerError::LoginRefused);
        }
        if u.loopback_only && !peer.ip().is_loopback() {
            return Err(BrokerError::LoopbackOnly {
                user: name.to_string(),
            });
        }
        Ok(User {
            name: u.name.clone(),
            tags: u.tags.clone(),
        })
    }

    /// The secrets a SigV4 signature by access key `name` may be made with: the
    /// user's secret key, then its password (a user known only by its hash signs
    /// with a secret key alone).
    pub fn signing_secrets(
        &self,
        name: &str,
        peer: SocketAddr,
    ) -> Result<(User, Vec<String>), BrokerError> {
        let users = self.read();
        let u = users
            .get(name)
            .ok_or_else(|| BrokerError::UnknownAccessKey {
                key: name.to_string(),
            })?;
        if u.loopback_only && !peer.ip().is_loopback() {
            return Err(BrokerError::LoopbackOnly {
                user: name.to_string(),
            });
        }
        let mut secrets: Vec<String> = u.secret_key.iter().cloned().collect();
        if u.password_hash.as_ref().is_none_or(|h| h.is_empty()) {
            secrets.push(u.password.clone());
        }
        let user = User {
            name: u.name.clone(),
            tags: u.tags.clone(),
        };
        Ok((user, secrets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_api::ErrorKind;

    #[test]
    fn guest_only_from_loopback() {
        let u = Users::default();
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let local6: SocketAddr = "[::1]:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        assert!(u.authenticate("guest", "guest", local).is_ok());
        assert!(u.authenticate("guest", "guest", local6).is_ok());
        let e = u.authenticate("guest", "guest", remote).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AccessRefused);
        assert!(e.to_string().contains("can only connect via localhost"));
    }

    #[test]
    fn wrong_password_and_unknown_user_refused_alike() {
        let u = Users::default();
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let a = u.authenticate("guest", "guesT", local).unwrap_err();
        let b = u.authenticate("nobody", "guest", local).unwrap_err();
        assert_eq!(a, b);
    }

    /// A hash made by RabbitMQ 3.x (`rabbitmqctl hash_password test12`).
    #[test]
    fn argon2_hashes_verify() {
        let h = argon2_hash("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(valid_hash(&h));
        assert!(!valid_hash("$argon2id$nonsense"));
        let u = Users::new(vec![UserConfig {
            name: "a".into(),
            password: String::new(),
            password_hash: Some(h),
            tags: vec![],
            loopback_only: false,
            secret_key: None,
            permissions: None,
        }]);
        let peer: SocketAddr = "10.0.0.1:5".parse().unwrap();
        assert!(u.authenticate("a", "s3cret", peer).is_ok());
        assert!(u.authenticate("a", "s3creT", peer).is_err());
    }

    #[test]
    fn rabbitmq_hashes_verify() {
        let hash = rabbit_hash([0x90, 0x8d, 0xc6, 0x0a], "test12");
        assert!(valid_hash(&hash));
        let u = Users::new(vec![UserConfig {
            name: "h".into(),
            password: String::new(),
            password_hash: Some(hash.clone()),
            tags: vec![],
            loopback_only: false,
            secret_key: None,
            permissions: None,
        }]);
        let peer: SocketAddr = "192.0.2.1:1".parse().unwrap();
        assert!(u.authenticate("h", "test12", peer).is_ok());
        assert!(u.authenticate("h", "test13", peer).is_err());
        assert!(u.authenticate("h", "", peer).is_err());
        assert_eq!(u.list()[0].password_hash, hash);
        // A plain user exports a hash that verifies, the same each time.
        let g = Users::default();
        let exported = g.list()[0].password_hash.clone();
        assert!(hash_matches(&exported, "guest"));
        assert_eq!(g.list()[0].password_hash, exported);
        // Importing that export keeps guest's plain password (SigV4 needs it).
        g.put_hashed("guest", &exported, vec!["monitoring".into()]);
        let local: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (user, secrets) = g.signing_secrets("guest", local).unwrap();
        assert_eq!(secrets, vec!["guest".to_string()]);
        assert_eq!(user.tags, vec!["monitoring".to_string()]);
        assert!(
            g.authenticate("guest", "guest", peer).is_err(),
            "still loopback only"
        );
        // Another password's hash replaces it.
        g.put_hashed("guest", &rabbit_hash([1, 2, 3, 4], "new"), vec![]);
        assert!(g.authenticate("guest", "new", local).is_ok());
        assert!(g.signing_secrets("guest", local).unwrap().1.is_empty());
    }
}
