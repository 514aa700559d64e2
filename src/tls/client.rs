//! The connecting side of TLS, for a node of a pair reaching its peer's replication
//! port (and `switchboard ctl` reaching a node's): the peer's certificate is checked
//! against the configured CA only (not the system's roots: the pair trusts its own
//! PKI), and this node's certificate is presented, so the peer can tell it is the
//! other node. Same versions and provider as the listeners.

use super::{
    HandshakeError, Settings, Stream, TlsError, certificates, private_key, provider, roots,
};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpStream;

/// Trusts `s.ca` (required) and presents `s.cert` with `s.key`.
pub fn client_config(s: &Settings) -> Result<Arc<ClientConfig>, TlsError> {
    let ca = s.ca.as_ref().ok_or(TlsError::Incomplete(
        "connecting needs a CA to verify the server's certificate with",
    ))?;
    let certs = certificates("certificate", &s.cert)?;
    let key = private_key(&s.key)?;
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(certs, key)?;
    Ok(Arc::new(cfg))
}

/// The client config in use, swapped on reload as the `Acceptor`'s is.
pub struct Connector {
    config: RwLock<Arc<ClientConfig>>,
}

impl Connector {
    pub fn new(s: &Settings) -> Result<Connector, TlsError> {
        Ok(Connector {
            config: RwLock::new(client_config(s)?),
        })
    }

    pub fn reload(&self, s: &Settings) -> Result<(), TlsError> {
        let cfg = client_config(s)?;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = cfg;
        Ok(())
    }

    /// The client side of a handshake over `tcp` with the server `addr`
    /// (`HOST:PORT`): its certificate must name HOST (a DNS name or an IP address).
    pub async fn connect(
        &self,
        tcp: TcpStream,
        addr: &str,
        within: Duration,
    ) -> Result<Stream, HandshakeError> {
        let name = server_name(addr)?;
        let cfg = self
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let connector = tokio_rustls::TlsConnector::from(cfg);
        match tokio::time::timeout(within, connector.connect(name, tcp)).await {
            Ok(Ok(tls)) => Ok(Stream::Tls(Box::new(tls.into()))),
            Ok(Err(e)) => Err(HandshakeError::Failed(e)),
            Err(_) => Err(HandshakeError::TimedOut(within)),
        }
    }
}

/// HOST of `HOST:PORT` (`[v6]:PORT` too) as the name to verify.
fn server_name(addr: &str) -> Result<ServerName<'static>, HandshakeError> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|_| HandshakeError::ServerName(host.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_the_peer_address_is_the_name_checked() {
        let ip = |a: &str| matches!(server_name(a), Ok(ServerName::IpAddress(_)));
        assert!(ip("127.0.0.1:5680"));
        assert!(ip("[::1]:5680"));
        assert!(
            matches!(server_name("broker-b:5680"), Ok(ServerName::DnsName(d)) if d.as_ref() == "broker-b")
        );
        assert!(server_name("bad name:1").is_err());
    }
}
