#![no_main]
//! A client's side of a TLS handshake against the listeners' server config, and a
//! client certificate's DER as the mTLS login reads it: `switchboard::tls::fuzz`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| switchboard::tls::fuzz::one_input(data));
