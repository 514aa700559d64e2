//! Permissions as an open connection sees them (guard.rs's memo).

use super::tests::{core, msg};
use super::*;
use switchboard_api::ErrorKind;

/// A connection remembers its grant and decisions (guard.rs's memo); a change to
/// the user's permissions must still apply to its next operation.
#[tokio::test]
async fn permission_changes_reach_an_open_connection_that_remembers_decisions() {
    use access::{Grant, Pattern, TopicGrant};
    let c = core();
    let p = &c.inner.permissions;
    p.set(
        "app",
        "/",
        Some(Grant::new("^app\\.", "^app\\.", "^app\\.").unwrap()),
    );
    let user = User {
        name: "app".into(),
        tags: vec![],
    };
    let g = c.open_vhost(&user, "/").unwrap();
    let decl = |name: &str| QueueDecl {
        name: name.into(),
        ..Default::default()
    };
    g.declare_queue("/", &decl("app.q"), 1).unwrap();
    let send = |key: &str| g.publish("/", msg(key, "x"), PublishOptions::default());
    // The same decision many times, then more names than the memo holds.
    for _ in 0..3 {
        send("app.q").unwrap();
        assert_eq!(send("other").unwrap_err().kind(), ErrorKind::AccessRefused);
    }
    for i in 0..40 {
        assert!(send(&format!("app.{i}")).is_ok());
        assert!(send(&format!("x{i}")).is_err());
    }
    send("app.q").unwrap();

    p.set(
        "app",
        "/",
        Some(Grant::new("^app\\.", "^other$", "^app\\.").unwrap()),
    );
    assert_eq!(send("app.q").unwrap_err().kind(), ErrorKind::AccessRefused);
    send("other").unwrap();

    // A topic permission set later applies too (none set: not checked at all).
    p.set("app", "/", Some(Grant::full()));
    let topic = |key: &str| {
        g.publish(
            "/",
            Message::new("amq.topic", key, bytes::Bytes::from_static(b"x")),
            PublishOptions::default(),
        )
    };
    topic("admin.t1").unwrap();
    p.set_topic(
        "app",
        "/",
        "amq.topic",
        Some(TopicGrant {
            write: Pattern::new("^sensors\\.").unwrap(),
            read: Pattern::new(".*").unwrap(),
        }),
    );
    assert_eq!(
        topic("admin.t1").unwrap_err().kind(),
        ErrorKind::AccessRefused
    );
    topic("sensors.t1").unwrap();

    p.clear("app", "/");
    assert!(send("other").is_err());
}
