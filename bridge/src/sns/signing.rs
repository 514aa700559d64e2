//! SNS message signatures, as AWS makes them: SignatureVersion 1 is SHA1withRSA,
//! 2 is SHA256withRSA (PKCS#1 v1.5), over the documented string to sign — the
//! message's fields in AWS's order, each as `Name\nValue\n`. Receivers verify with
//! the certificate at `SigningCertURL`, which this broker serves itself: a
//! self-signed X.509 certificate for its own RSA key.
//!
//! The key and certificate are made on first start and kept in SNS's keyed space
//! (so in the data directory, journaled like subscriptions: they survive kill -9
//! and reach a standby, whose signatures then verify with the same certificate).

use base64::Engine;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer as _};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use std::str::FromStr;
use std::time::Duration;

/// AWS's key size for SNS signing certificates.
const KEY_BITS: usize = 2048;
/// The certificate outlives any deployment; receivers check the signature, and
/// rarely the dates, of a certificate they fetched from the broker itself.
const CERT_VALIDITY: Duration = Duration::from_secs(20 * 365 * 86_400);

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("RSA key: {0}")]
    Key(String),
    #[error("signing certificate: {0}")]
    Cert(String),
}

/// Which hash a topic's messages are signed with (topic attribute SignatureVersion).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureVersion {
    V1,
    V2,
}

impl SignatureVersion {
    /// The attribute's value; AWS signs with version 1 unless a topic asks for 2.
    pub fn of(attribute: Option<&str>) -> SignatureVersion {
        match attribute {
            Some("2") => SignatureVersion::V2,
            _ => SignatureVersion::V1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SignatureVersion::V1 => "1",
            SignatureVersion::V2 => "2",
        }
    }
}

/// The fields AWS signs, in its order. `Subject` only when the message has one.
const NOTIFICATION_FIELDS: &[&str] = &[
    "Message",
    "MessageId",
    "Subject",
    "Timestamp",
    "TopicArn",
    "Type",
];
const CONFIRMATION_FIELDS: &[&str] = &[
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
];

/// The string to sign for a message document (a Notification, a
/// SubscriptionConfirmation or an UnsubscribeConfirmation): `Name\nValue\n` for
/// each of its type's fields that the document has.
pub fn string_to_sign(doc: &Map<String, Json>) -> String {
    let fields = match doc.get("Type").and_then(Json::as_str) {
        Some("Notification") => NOTIFICATION_FIELDS,
        _ => CONFIRMATION_FIELDS,
    };
    let mut s = String::new();
    for name in fields {
        if let Some(v) = doc.get(*name).and_then(Json::as_str) {
            s.push_str(name);
            s.push('\n');
            s.push_str(v);
            s.push('\n');
        }
    }
    s
}

/// Signatures kept, so that a message is signed once however many subscribers and
/// receives render it (its string to sign names neither). About 16k × ~400 B.
const CACHE_ENTRIES: usize = 16_384;

/// The broker's signing key and the certificate that carries its public half.
pub struct Signer {
    v1: SigningKey<sha1::Sha1>,
    v2: SigningKey<Sha256>,
    /// By SHA-256 of (version, string to sign): a signature costs ~1.4 ms of CPU
    /// (2048-bit RSA in pure Rust); a lookup, a hash of the text.
    cache: std::sync::Mutex<std::collections::HashMap<[u8; 32], String>>,
    key_pem: String,
    cert_pem: String,
    /// Names the certificate in its URL, so a new key gets a new URL and receivers
    /// that cache certificates by URL never check against a stale one.
    cert_id: String,
}

impl Signer {
    pub fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Signer, SigningError> {
        let key =
            RsaPrivateKey::from_pkcs8_pem(key_pem).map_err(|e| SigningError::Key(e.to_string()))?;
        Ok(Signer {
            v1: SigningKey::new(key.clone()),
            v2: SigningKey::new(key),
            cache: std::sync::Mutex::default(),
            key_pem: key_pem.to_string(),
            cert_pem: cert_pem.to_string(),
            cert_id: hex::encode(&Sha256::digest(cert_pem.as_bytes())[..8]),
        })
    }

    /// A new key and its self-signed certificate. Slow (RSA key generation): run it
    /// off the async threads.
    pub fn generate() -> Result<Signer, SigningError> {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, KEY_BITS)
            .map_err(|e| SigningError::Key(e.to_string()))?;
        let key_pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| SigningError::Key(e.to_string()))?;
        let cert_pem = self_signed(&key)?;
        Signer::from_pem(&key_pem, &cert_pem)
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The path the certificate is served at on the broker's HTTP port.
    pub fn cert_path(&self) -> String {
        format!("/SimpleNotificationService-{}.pem", self.cert_id)
    }

    /// The base64 PKCS#1 v1.5 signature of `text` (PKCS#1 v1.5 is deterministic,
    /// so a kept one is the same as a new one).
    pub fn sign(&self, version: SignatureVersion, text: &str) -> String {
        let mut h = Sha256::new();
        h.update(version.as_str());
        h.update(text.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        let cache = || self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cache().get(&key) {
            return s.clone();
        }
        let bytes = match version {
            SignatureVersion::V1 => self.v1.sign(text.as_bytes()).to_vec(),
            SignatureVersion::V2 => self.v2.sign(text.as_bytes()).to_vec(),
        };
        let sig = base64::engine::general_purpose::STANDARD.encode(bytes);
        let mut c = cache();
        if c.len() >= CACHE_ENTRIES {
            // Bounded: the oldest are as likely gone from the queues as any.
            c.clear();
        }
        c.insert(key, sig.clone());
        sig
    }

    /// Adds SignatureVersion, Signature and SigningCertURL to a message document.
    pub fn sign_doc(&self, doc: &mut Map<String, Json>, version: SignatureVersion, base_url: &str) {
        let signature = self.sign(version, &string_to_sign(doc));
        doc.insert("SignatureVersion".into(), version.as_str().into());
        doc.insert("Signature".into(), signature.into());
        doc.insert(
            "SigningCertURL".into(),
            format!("{base_url}{}", self.cert_path()).into(),
        );
    }
}

/// A self-signed certificate for `key` (SHA256withRSA), named after SNS.
fn self_signed(key: &RsaPrivateKey) -> Result<String, SigningError> {
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::der::EncodePem;
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::Validity;

    let err = |e: &dyn std::fmt::Display| SigningError::Cert(e.to_string());
    let subject = Name::from_str("CN=sns.switchboard.local,O=Switchboard").map_err(|e| err(&e))?;
    let spki = SubjectPublicKeyInfoOwned::from_key(RsaPublicKey::from(key)).map_err(|e| err(&e))?;
    // A random serial: two brokers' certificates never look alike to a cache.
    let serial_bytes = *uuid::Uuid::new_v4().as_bytes();
    let serial = SerialNumber::new(&serial_bytes[..15]).map_err(|e| err(&e))?;
    let validity = Validity::from_now(CERT_VALIDITY).map_err(|e| err(&e))?;
    let signer = SigningKey::<Sha256>::new(key.clone());
    let cert = CertificateBuilder::new(Profile::Root, serial, validity, subject, spki, &signer)
        .map_err(|e| err(&e))?
        .build::<rsa::pkcs1v15::Signature>()
        .map_err(|e| err(&e))?;
    cert.to_pem(LineEnding::LF).map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::VerifyingKey;
    use rsa::signature::Verifier;

    const KEY: &str = include_str!("testdata/kat-key.pem");

    fn doc() -> Map<String, Json> {
        let v = serde_json::json!({
            "Type": "Notification",
            "MessageId": "da41e39f-ea4d-435a-b922-c6aae3915ebe",
            "TopicArn": "arn:aws:sns:us-east-1:000000000000:t",
            "Subject": "subj",
            "Message": "hello",
            "Timestamp": "2012-04-25T21:49:25.719Z",
            "UnsubscribeURL": "http://h/?Action=Unsubscribe",
        });
        match v {
            Json::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn notification_string_to_sign_is_in_aws_order() {
        assert_eq!(
            string_to_sign(&doc()),
            "Message\nhello\nMessageId\nda41e39f-ea4d-435a-b922-c6aae3915ebe\nSubject\nsubj\n\
             Timestamp\n2012-04-25T21:49:25.719Z\nTopicArn\narn:aws:sns:us-east-1:000000000000:t\n\
             Type\nNotification\n"
        );
        let mut d = doc();
        d.remove("Subject");
        assert!(!string_to_sign(&d).contains("Subject"));
    }

    #[test]
    fn confirmation_string_to_sign_has_token_and_url() {
        let mut d = doc();
        d.insert("Type".into(), "SubscriptionConfirmation".into());
        d.insert("Token".into(), "tok".into());
        d.insert(
            "SubscribeURL".into(),
            "http://h/?Action=ConfirmSubscription".into(),
        );
        let s = string_to_sign(&d);
        assert!(s.starts_with("Message\nhello\nMessageId\n"));
        assert!(s.contains(
            "SubscribeURL\nhttp://h/?Action=ConfirmSubscription\nTimestamp\n2012-04-25T21:49:25.719Z\nToken\ntok\nTopicArn\n"
        ));
        assert!(!s.contains("Subject"), "confirmations sign no Subject");
        assert!(s.ends_with("Type\nSubscriptionConfirmation\n"));
    }

    /// Known answers made with `openssl dgst -sha1|-sha256 -sign kat-key.pem` over
    /// the string above: PKCS#1 v1.5 is deterministic, so they must match exactly.
    #[test]
    fn signatures_match_openssl() {
        let s = Signer::from_pem(KEY, "").unwrap();
        let text = string_to_sign(&doc());
        let v1 = include_str!("testdata/kat-sha1.b64").trim();
        let v2 = include_str!("testdata/kat-sha256.b64").trim();
        assert_eq!(s.sign(SignatureVersion::V1, &text), v1);
        assert_eq!(s.sign(SignatureVersion::V2, &text), v2);
        // Kept signatures are the same answers, each for its own version.
        assert_eq!(s.sign(SignatureVersion::V1, &text), v1);
        assert_eq!(s.sign(SignatureVersion::V2, &text), v2);
        assert_ne!(s.sign(SignatureVersion::V1, &(text.clone() + "x")), v1);
    }

    #[test]
    fn signed_doc_verifies_with_the_certificate_key() {
        use x509_cert::der::{Decode, DecodePem, Encode};
        let key = RsaPrivateKey::from_pkcs8_pem(KEY).unwrap();
        let cert_pem = self_signed(&key).unwrap();
        let s = Signer::from_pem(KEY, &cert_pem).unwrap();
        let mut d = doc();
        s.sign_doc(&mut d, SignatureVersion::V2, "http://b:1");
        assert_eq!(d["SignatureVersion"], "2");
        assert_eq!(
            d["SigningCertURL"],
            format!("http://b:1{}", s.cert_path()).as_str()
        );
        let cert = x509_cert::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap();
        let public = {
            use rsa::pkcs8::DecodePublicKey;
            RsaPublicKey::from_public_key_der(&spki).unwrap()
        };
        let sig_bytes = base64::engine::general_purpose::STANDARD
            .decode(d["Signature"].as_str().unwrap())
            .unwrap();
        let sig = rsa::pkcs1v15::Signature::try_from(sig_bytes.as_slice()).unwrap();
        VerifyingKey::<Sha256>::new(public)
            .verify(string_to_sign(&d).as_bytes(), &sig)
            .unwrap();
        let _ = x509_cert::Certificate::from_der(&cert.to_der().unwrap()).unwrap();
    }

    #[test]
    fn versions_follow_the_topic_attribute() {
        assert_eq!(SignatureVersion::of(None), SignatureVersion::V1);
        assert_eq!(SignatureVersion::of(Some("1")), SignatureVersion::V1);
        assert_eq!(SignatureVersion::of(Some("2")), SignatureVersion::V2);
    }
}
