//! A backlog larger than a queue's memory budget: published with confirms, consumed
//! in order and intact, while the broker's peak RSS stays well below the backlog.

mod common;

use common::*;
use lapin::{
    BasicProperties, Confirmation,
    options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions},
    types::FieldTable,
};

const COUNT: usize = 30_000;
const SIZE: usize = 2048;

fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("kB");
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_beyond_the_memory_budget_is_paged_and_comes_back_in_order() {
    let server = Server::start_with_env(&[("SWITCHBOARD_QUEUE_MEMORY_BYTES", "1048576")]);
    let Some(pid) = server.pid() else { return };
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("backlog".into(), opts, FieldTable::default())
        .await
        .unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut window = std::collections::VecDeque::new();
    for i in 0..COUNT {
        let mut body = format!("{i:>10}").into_bytes();
        body.resize(SIZE, b'.');
        let props = BasicProperties::default().with_delivery_mode(2);
        let c = ch
            .basic_publish(
                "".into(),
                "backlog".into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await
            .unwrap();
        window.push_back(c);
        if window.len() > 512 {
            let c = window
                .pop_front()
                .expect("non-empty")
                .await
                .expect("confirm");
            assert_eq!(c, Confirmation::Ack(None));
        }
    }
    for c in window {
        assert_eq!(c.await.expect("confirm"), Confirmation::Ack(None));
    }
    let backlog = (COUNT * SIZE) as u64;
    let peak = peak_rss_bytes(pid);
    assert!(
        peak < backlog * 3 / 4,
        "peak RSS {} MiB for a {} MiB backlog: it is not being paged out",
        peak >> 20,
        backlog >> 20
    );
    for i in 0..COUNT {
        let m = ch
            .basic_get("backlog".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("message {i} missing"));
        let b = &m.delivery.data;
        assert_eq!(b.len(), SIZE);
        let n: usize = String::from_utf8_lossy(&b[..10])
            .trim()
            .parse()
            .expect("numbered body");
        assert_eq!(n, i, "out of order");
    }
    println!("backlog {} MiB, peak RSS {} MiB", backlog >> 20, peak >> 20);
}
