#![no_main]
//! Arbitrary bytes as a configuration file (what an operator, or a config
//! management tool with a bug, controls): parsed over the defaults and checked,
//! then its users built and logged in, and their permission patterns compiled.
//! Nothing may panic; a configuration that passes the check must give users the
//! core accepts.

use libfuzzer_sys::fuzz_target;
use switchboard::broker::Users;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = switchboard::config::from_toml(text) {
        let users = Users::new(cfg.users.clone());
        let peer = "127.0.0.1:1".parse().expect("address");
        for u in &cfg.users {
            let _ = users.authenticate(&u.name, &u.password, peer);
            let _ = users.authenticate(&u.name, "", peer);
        }
        let _ = users.list();
    }
});
