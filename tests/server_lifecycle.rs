//! The binary as an operator sees it: SIGTERM closes client connections politely
//! (AMQP 320 CONNECTION_FORCED) and the process exits cleanly.

mod common;

use common::Server;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_connections_and_exits_zero() {
    let mut server = Server::start();
    if server.is_external() {
        return; // Only meaningful for a broker this test started.
    }
    let conn = server.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(
        "lifecycle".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare");
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("join")
        .expect("the broker exited within 15 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    // The client was told the connection is gone, rather than left hanging.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while conn.status().connected() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !conn.status().connected(),
        "client still believes it is connected"
    );
}
