//! Replays the fuzz corpus of the configuration loader (`fuzz/corpus/config_toml`,
//! target `config_toml`) the way the fuzz target runs it. Nothing may panic; the
//! good seeds load, the bad ones are refused with a sentence naming the problem.

use std::path::PathBuf;
use switchboard::broker::Users;

#[test]
fn corpus_replays() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/config_toml");
    let (mut seen, mut loaded) = (0, 0);
    for entry in std::fs::read_dir(dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read corpus file");
        seen += 1;
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        if let Ok(cfg) = switchboard::config::from_toml(text) {
            loaded += 1;
            let users = Users::new(cfg.users.clone());
            let peer = "127.0.0.1:1".parse().expect("address");
            for u in &cfg.users {
                let _ = users.authenticate(&u.name, &u.password, peer);
            }
        }
    }
    assert!(seen >= 10, "only {seen} corpus files");
    assert!(loaded >= 2, "only {loaded} seeds load");
}

#[test]
fn bad_users_are_refused_with_the_reason() {
    let e = switchboard::config::from_toml(
        "[[users]]\nname = \"app\"\npassword = \"x\"\n\
         permissions = [{ vhost = \"/\", configure = \"(\", write = \"\", read = \"\" }]\n",
    )
    .expect_err("a bad pattern");
    assert!(
        e.contains("user 'app', vhost '/': invalid permission pattern '('"),
        "{e}"
    );
    let e = switchboard::config::from_toml(
        "[[users]]\nname = \"h\"\npassword_hash = \"bm90IGEgaGFzaA==\"\n",
    )
    .expect_err("a bad hash");
    assert!(
        e.contains("user 'h': password_hash is neither a rabbit_password_hashing_sha256"),
        "{e}"
    );
    let e = switchboard::config::from_toml("[[users]]\nname = \"a\"\n[[users]]\nname = \"a\"\n")
        .expect_err("twice");
    assert!(e.contains("user 'a' is configured twice"), "{e}");
    let ok = switchboard::config::from_toml(
        "[[users]]\nname = \"app\"\npassword = \"x\"\n\
         permissions = [{ vhost = \"/\", configure = '^app\\.', write = \".*\", read = \"\" }]\n",
    )
    .expect("a good one");
    assert_eq!(ok.users.len(), 1);
}
