//! TLS on the client listeners (AMQPS, MQTTS, STOMP over TLS, WSS, HTTPS) and on
//! the replication link (`client.rs` is its connecting side): the
//! certificate, key and optional client CA from PEM files, TLS 1.2 and 1.3 only,
//! rustls with the `ring` provider (no OpenSSL, no cmake). The server config sits
//! behind a lock so SIGHUP swaps it: handshakes after a reload use the new
//! certificate, connections already open keep theirs, listeners stay open.

mod client;
pub mod fuzz;
mod identity;
mod stream;

pub use client::{Connector, client_config};
pub use identity::cert_user;
pub use stream::Stream;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use switchboard_api::Transport;
use tokio::net::TcpStream;

/// Where the PEM files are and whether a client certificate is required.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates signed by these roots are verified and name the user;
    /// `None`: no client certificates are asked for.
    pub ca: Option<PathBuf>,
    /// With `ca`: refuse clients without a certificate (RabbitMQ's
    /// `fail_if_no_peer_cert`); otherwise one is asked for but optional.
    pub fail_if_no_peer_cert: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS {what} file {path}: {reason}")]
    File {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("TLS: --tls-cert and --tls-key go together (only {0} is set)")]
    Half(&'static str),
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS: {0}")]
    Incomplete(&'static str),
    #[error("TLS client CA {path}: {reason}")]
    Verifier { path: String, reason: String },
}

fn file_error(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        what,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| file_error(what, path, e))
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no CERTIFICATE block in it"));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => file_error(
            "key",
            path,
            "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block in it",
        ),
        e => file_error("key", path, e),
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // Deprecated in rustls 0.23.48 only because ring has no post-quantum key
    // exchange; aws-lc-rs, which has, needs cmake and a much larger C build.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The roots in a CA file (the verifier of the other side's certificate).
fn roots(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certificates("CA", ca)? {
        roots.add(c).map_err(|e| file_error("CA", ca, e))?;
    }
    Ok(roots)
}

/// Reads the PEM files and builds the server side: TLS 1.2 and 1.3, and client
/// certificate verification when a CA is given.
pub fn server_config(s: &Settings) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let certs = certificates("certificate", &s.cert)?;
    let key = private_key(&s.key)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &s.ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider);
            let v = if s.fail_if_no_peer_cert {
                v
            } else {
                v.allow_unauthenticated()
            };
            let v = v.build().map_err(|e| TlsError::Verifier {
                path: ca.display().to_string(),
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(v)
        }
    };
    let cfg = builder.with_single_cert(certs, key)?;
    Ok(Arc::new(cfg))
}

/// The listeners' acceptor: the current server config, swapped on reload.
pub struct Acceptor {
    settings: RwLock<Settings>,
    config: RwLock<Arc<ServerConfig>>,
}

impl Acceptor {
    pub fn new(s: &Settings) -> Result<Acceptor, TlsError> {
        Ok(Acceptor {
            config: RwLock::new(server_config(s)?),
            settings: RwLock::new(s.clone()),
        })
    }

    /// Reads the files again (SIGHUP): new handshakes use what they hold now. On an
    /// error the old certificate stays in use.
    pub fn reload(&self, s: &Settings) -> Result<(), TlsError> {
        let cfg = server_config(s)?;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = cfg;
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = s.clone();
        Ok(())
    }

    /// The files and verification in use.
    pub fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn current(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The server side of a handshake within `within`. `None`: it failed, timed out
    /// or the bytes were not TLS; the connection is dropped (logged at debug, as
    /// port scanners and health checks make these all day).
    pub async fn accept(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        within: Duration,
    ) -> Option<(Stream, Transport)> {
        match self.handshake(tcp, within).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!(%peer, "{e}");
                None
            }
        }
    }

    /// As `accept`, with the reason a handshake failed, for callers that log it
    /// louder (the replication port, where a failure is a misconfigured peer).
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        within: Duration,
    ) -> Result<(Stream, Transport), HandshakeError> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.current());
        let tls = match tokio::time::timeout(within, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return Err(HandshakeError::Failed(e)),
            Err(_) => return Err(HandshakeError::TimedOut(within)),
        };
        let cert_user = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| cert_user(c));
        let transport = Transport {
            tls: true,
            cert_user,
            websocket: false,
        };
        Ok((Stream::Tls(Box::new(tls.into())), transport))
    }
}

/// Why a handshake did not complete, either side.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("TLS handshake failed: {0}")]
    Failed(std::io::Error),
    #[error("TLS handshake not done within {0:?}")]
    TimedOut(Duration),
    #[error("TLS: {0:?} is not a name a certificate can be checked against")]
    ServerName(String),
}

impl HandshakeError {
    /// The peer closed before saying anything: a bare TCP connect (port scanners,
    /// health checks, a peer only testing that the port is open).
    pub fn is_silent_close(&self) -> bool {
        matches!(self, HandshakeError::Failed(e) if e.kind() == std::io::ErrorKind::UnexpectedEof)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, cert: &str, key: &str) -> Settings {
        Settings {
            cert: dir.join(cert),
            key: dir.join(key),
            ca: None,
            fail_if_no_peer_cert: false,
        }
    }

    fn testdata() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tls/testdata")
    }

    #[test]
    fn loads_a_certificate_and_key() {
        let s = settings(&testdata(), "server.pem", "server.key");
        assert!(server_config(&s).is_ok());
        let with_ca = Settings {
            ca: Some(testdata().join("ca.pem")),
            fail_if_no_peer_cert: true,
            ..s
        };
        assert!(server_config(&with_ca).is_ok());
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let d = testdata();
        let e = server_config(&settings(&d, "missing.pem", "server.key")).unwrap_err();
        assert!(
            e.to_string().contains("certificate file") && e.to_string().contains("missing.pem")
        );
        // A key where the certificate should be, and the other way round.
        let e = server_config(&settings(&d, "server.key", "server.key")).unwrap_err();
        assert!(e.to_string().contains("no CERTIFICATE block"), "{e}");
        let e = server_config(&settings(&d, "server.pem", "server.pem")).unwrap_err();
        assert!(e.to_string().contains("no PRIVATE KEY"), "{e}");
        // A key that is not the certificate's.
        let e = server_config(&settings(&d, "server.pem", "client.key")).unwrap_err();
        assert!(matches!(e, TlsError::Rustls(_)), "{e}");
    }
}
