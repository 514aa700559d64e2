//! The user table shared by every protocol.

use std::collections::HashMap;
use std::net::SocketAddr;
use switchboard_api::{BrokerError, User};

#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct UserConfig {
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only accepted from loopback addresses (RabbitMQ's rule for `guest`).
    #[serde(default)]
    pub loopback_only: bool,
    /// AWS secret access key for SigV4-signed SQS/SNS requests (access key id = the
    /// user name). The password works as a secret too.
    #[serde(default)]
    pub secret_key: Option<String>,
}

pub struct Users {
    users: HashMap<String, UserConfig>,
}

impl Default for Users {
    /// `guest`/`guest`, loopback only, as RabbitMQ ships.
    fn default() -> Self {
        Users::new(vec![UserConfig {
            name: "guest".into(),
            password: "guest".into(),
            tags: vec!["administrator".into()],
            loopback_only: true,
            secret_key: None,
        }])
    }
}

impl Users {
    pub fn new(list: Vec<UserConfig>) -> Users {
        Users {
            users: list.into_iter().map(|u| (u.name.clone(), u)).collect(),
        }
    }

    /// Names and tags, sorted by name (never the passwords).
    pub fn list(&self) -> Vec<switchboard_api::admin::UserInfo> {
        let mut out: Vec<_> = self
            .users
            .values()
            .map(|u| switchboard_api::admin::UserInfo {
                name: u.name.clone(),
                tags: u.tags.clone(),
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
        let refused = || BrokerError::LoginRefused;
        let u = self.users.get(name).ok_or_else(refused)?;
        // Constant-time enough for passwords of equal length; the compare must not
        // stop at the first differing byte.
        let same = u.password.len() == password.len()
            && u.password
                .bytes()
                .zip(password.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return Err(refused());
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
    /// user's secret key, then its password.
    pub fn signing_secrets(
        &self,
        name: &str,
        peer: SocketAddr,
    ) -> Result<(User, Vec<String>), BrokerError> {
        let u = self
            .users
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
        secrets.push(u.password.clone());
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
}
