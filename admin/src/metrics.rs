//! `/metrics` in Prometheus' text format. Per-queue series use RabbitMQ's names
//! (`rabbitmq_queue_messages_ready` … with `vhost` and `queue` labels, as its
//! per-object endpoint), so its Grafana dashboards mostly apply; the SQS gauges
//! AWS users autoscale on are there too, under their CloudWatch names.
//! Unauthenticated, as Prometheus scrapes (RabbitMQ's port 15692 is too).

use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::fmt::Write;

/// Escapes a label value as the text format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let mut out = String::with_capacity(4096);
    let mut series: Vec<(&str, &str, Vec<String>)> = vec![
        (
            "rabbitmq_queue_messages_ready",
            "Messages ready to be delivered",
            vec![],
        ),
        (
            "rabbitmq_queue_messages_unacked",
            "Messages delivered and not yet acknowledged",
            vec![],
        ),
        (
            "rabbitmq_queue_messages",
            "Ready and unacknowledged messages",
            vec![],
        ),
        ("rabbitmq_queue_consumers", "Consumers on the queue", vec![]),
        (
            "sqs_approximate_number_of_messages_visible",
            "SQS ApproximateNumberOfMessagesVisible",
            vec![],
        ),
        (
            "sqs_approximate_number_of_messages_not_visible",
            "SQS ApproximateNumberOfMessagesNotVisible",
            vec![],
        ),
        (
            "sqs_approximate_number_of_messages_delayed",
            "SQS ApproximateNumberOfMessagesDelayed",
            vec![],
        ),
    ];
    let (mut queues, mut ready_total) = (0usize, 0u64);
    for v in st.admin.vhost_names() {
        for q in st.admin.queues(&v).unwrap_or_default() {
            queues += 1;
            let s = q.stats;
            ready_total += u64::from(s.ready);
            let labels = format!("vhost=\"{}\",queue=\"{}\"", label(&v), label(&q.name));
            let values = [
                u64::from(s.ready),
                u64::from(s.in_flight),
                u64::from(s.ready) + u64::from(s.in_flight),
                u64::from(s.consumers),
                u64::from(s.ready),
                u64::from(s.in_flight),
                u64::from(s.delayed),
            ];
            for ((_, _, lines), value) in series.iter_mut().zip(values) {
                lines.push(format!("{{{labels}}} {value}"));
            }
        }
    }
    for (name, help, lines) in &series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for l in lines {
            let _ = writeln!(out, "{name}{l}");
        }
    }
    let alarm = st
        .broker
        .alarm_watch()
        .is_some_and(|w| w.borrow().is_some());
    let _ = writeln!(
        out,
        "# HELP rabbitmq_queues Queues\n# TYPE rabbitmq_queues gauge\nrabbitmq_queues {queues}\n\
         # HELP rabbitmq_queue_messages_ready_total Ready messages in all queues\n\
         # TYPE rabbitmq_queue_messages_ready_total gauge\n\
         rabbitmq_queue_messages_ready_total {ready_total}\n\
         # HELP rabbitmq_alarms_resource_in_effect Whether a memory or disk alarm holds publishers back\n\
         # TYPE rabbitmq_alarms_resource_in_effect gauge\n\
         rabbitmq_alarms_resource_in_effect {}\n\
         # HELP switchboard_uptime_seconds Seconds since the node started\n\
         # TYPE switchboard_uptime_seconds counter\n\
         switchboard_uptime_seconds {}",
        u8::from(alarm),
        st.started.elapsed().as_secs()
    );
    if let Some(probe) = &st.node.replication {
        let r = probe();
        let _ = writeln!(
            out,
            "# HELP switchboard_replication_active Whether this node of the pair is the active one\n\
             # TYPE switchboard_replication_active gauge\n\
             switchboard_replication_active {}\n\
             # HELP switchboard_replication_epoch The fencing epoch this node serves under\n\
             # TYPE switchboard_replication_epoch gauge\n\
             switchboard_replication_epoch {}\n\
             # HELP switchboard_replication_standby_in_sync 1 while the standby holds everything confirmed; 0 when it is down or catching up (alert on it)\n\
             # TYPE switchboard_replication_standby_in_sync gauge\n\
             switchboard_replication_standby_in_sync {}\n\
             # HELP switchboard_replication_lag_lsn Journal positions the standby has not acknowledged yet\n\
             # TYPE switchboard_replication_lag_lsn gauge\n\
             switchboard_replication_lag_lsn {}",
            u8::from(r.active),
            r.epoch,
            u8::from(r.in_sync),
            r.last_lsn.saturating_sub(r.acked_lsn)
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}
