//! What the `tls_handshake` fuzz target and its corpus replay (`tests/tls_corpus.rs`)
//! run: the bytes a client controls before it is anyone — its side of a TLS
//! handshake against the listeners' server config (client certificates asked for,
//! as with `--tls-ca`), and a client certificate's DER as [`cert_user`] reads it.
//! Nothing may panic; a refused handshake ends with an alert to send, then close.

use super::{Settings, cert_user, server_config};
use rustls::ServerConnection;
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// One input: first byte even → the rest is a certificate's DER; odd → the rest is
/// what a client sends, fed in pieces of at most `first byte` bytes (a handshake
/// arrives over several reads).
pub fn one_input(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    if kind % 2 == 0 {
        let _ = cert_user(&CertificateDer::from(rest.to_vec()));
        return;
    }
    let Some(cfg) = config() else {
        return;
    };
    let Ok(mut conn) = ServerConnection::new(cfg) else {
        return;
    };
    let piece = usize::from(kind.max(1));
    let mut out = Vec::new();
    for chunk in rest.chunks(piece) {
        let mut input = chunk;
        while !input.is_empty() {
            match conn.read_tls(&mut input) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let failed = conn.process_new_packets().is_err();
            while conn.wants_write() {
                if conn.write_tls(&mut out).is_err() {
                    return;
                }
            }
            if failed {
                return;
            }
        }
    }
    if let Some(certs) = conn.peer_certificates() {
        for c in certs {
            let _ = cert_user(c);
        }
    }
}

fn config() -> Option<Arc<rustls::ServerConfig>> {
    static CONFIG: OnceLock<Option<Arc<rustls::ServerConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tls/testdata");
            server_config(&Settings {
                cert: dir.join("server.pem"),
                key: dir.join("server.key"),
                ca: Some(dir.join("ca.pem")),
                fail_if_no_peer_cert: false,
            })
            .ok()
        })
        .clone()
}

/// Whether the test certificates load (the corpus replay checks it, so a broken
/// testdata directory cannot make every input a no-op).
pub fn ready() -> bool {
    config().is_some()
}
