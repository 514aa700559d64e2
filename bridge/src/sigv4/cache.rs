//! Signing keys kept between requests. A key depends only on (secret, date, region,
//! service), so deriving it (four HMACs) once per day per credential is enough; the
//! profile showed the derivation on every request.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use subtle::ConstantTimeEq;

use super::{Authorization, Request, SigV4Error, signing_key, verify_with_key};

/// Entries kept: a few credentials and regions at once. Small, because a lookup is
/// a linear scan under the lock, and a client choosing scopes at will can only
/// evict entries (each miss then costs what every request used to).
const ENTRIES: usize = 8;

struct Entry {
    secret: String,
    date: String,
    region: String,
    service: String,
    key: [u8; 32],
}

impl Entry {
    fn is(&self, secret: &str, date: &str, region: &str, service: &str) -> bool {
        // The secrets compared are the broker's own, but a lookup should not time
        // one against another either.
        bool::from(self.secret.as_bytes().ct_eq(secret.as_bytes()))
            && self.date == date
            && self.region == region
            && self.service == service
    }
}

/// A small bounded cache of derived signing keys. The std mutex is held for a scan
/// of a few entries only (never across an `.await`, never while deriving).
#[derive(Default)]
pub struct KeyCache {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    /// The slot the next new key replaces once the cache is full (round robin: a
    /// key in use is re-inserted on its next miss anyway).
    next: usize,
}

impl KeyCache {
    pub fn new() -> KeyCache {
        KeyCache::default()
    }

    /// [`signing_key`], derived once and then remembered.
    pub fn key(&self, secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
        {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = st
                .entries
                .iter()
                .find(|e| e.is(secret, date, region, service))
            {
                return e.key;
            }
        }
        let key = signing_key(secret, date, region, service);
        let entry = Entry {
            secret: secret.to_owned(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
            key,
        };
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.entries.len() < ENTRIES {
            st.entries.push(entry);
        } else {
            let slot = st.next;
            st.entries[slot] = entry;
            st.next = (slot + 1) % ENTRIES;
        }
        key
    }

    /// [`super::verify`] with the signing key from this cache.
    pub fn verify(
        &self,
        req: &Request,
        auth: &Authorization,
        secret: &str,
        now: SystemTime,
        max_skew: Duration,
    ) -> Result<(), SigV4Error> {
        verify_with_key(req, auth, now, max_skew, || {
            self.key(secret, &auth.date, &auth.region, &auth.service)
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().map_or(0, |s| s.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_key_is_the_derived_one() {
        let cache = KeyCache::new();
        let fresh = signing_key("secret", "20261125", "us-east-1", "sqs");
        assert_eq!(cache.key("secret", "20261125", "us-east-1", "sqs"), fresh);
        // The second time from the cache, still the same.
        assert_eq!(cache.key("secret", "20261125", "us-east-1", "sqs"), fresh);
        assert_eq!(cache.len(), 1);
        for (secret, date, region, service) in [
            ("secret", "20261126", "us-east-1", "sqs"),
            ("secret", "20261125", "eu-west-1", "sqs"),
            ("secret", "20261125", "us-east-1", "sns"),
            ("secreT", "20261125", "us-east-1", "sqs"),
        ] {
            let k = cache.key(secret, date, region, service);
            assert_eq!(k, signing_key(secret, date, region, service));
            assert_ne!(k, fresh, "{secret} {date} {region} {service}");
        }
        assert_eq!(cache.len(), 5);
    }

    #[test]
    fn cache_stays_bounded_and_right() {
        let cache = KeyCache::new();
        for round in 0..3 {
            for day in 10..30 {
                let date = format!("202611{day}");
                assert_eq!(
                    cache.key("s", &date, "us-east-1", "sqs"),
                    signing_key("s", &date, "us-east-1", "sqs"),
                    "round {round}, {date}"
                );
            }
        }
        assert_eq!(cache.len(), ENTRIES);
    }
}
