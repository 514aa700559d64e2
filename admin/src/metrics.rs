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
    journal(&mut out, &st);
    connections(&mut out, &st);
    for m in &st.node.metrics {
        m.write_metrics(&mut out);
    }
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

/// The journal: appends, group commits, syncs and their latency, size on disk.
fn journal(out: &mut String, st: &AppState) {
    let Some(j) = st.admin.journal() else { return };
    let counter = |out: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    };
    counter(
        out,
        "switchboard_journal_records_appended_total",
        "Records appended to the journal",
        j.records_appended,
    );
    counter(
        out,
        "switchboard_journal_batches_written_total",
        "Group commits: batches of records written with one write",
        j.batches_written,
    );
    counter(
        out,
        "switchboard_journal_fsyncs_total",
        "fdatasync calls on journal segments",
        j.fsyncs,
    );
    let _ = writeln!(
        out,
        "# HELP switchboard_journal_bytes_on_disk Journal segment bytes on disk\n\
         # TYPE switchboard_journal_bytes_on_disk gauge\n\
         switchboard_journal_bytes_on_disk {}\n\
         # HELP switchboard_journal_segments Journal segment files\n\
         # TYPE switchboard_journal_segments gauge\n\
         switchboard_journal_segments {}\n\
         # HELP switchboard_journal_sync_seconds How long making a batch durable took\n\
         # TYPE switchboard_journal_sync_seconds histogram",
        j.bytes_on_disk, j.segments
    );
    let mut cumulative = 0;
    for (bound, n) in &j.sync_buckets {
        cumulative += n;
        let le = if bound.is_infinite() {
            "+Inf".to_string()
        } else {
            bound.to_string()
        };
        let _ = writeln!(
            out,
            "switchboard_journal_sync_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "switchboard_journal_sync_seconds_sum {}\nswitchboard_journal_sync_seconds_count {cumulative}",
        j.sync_seconds
    );
}

/// Connections and channels by protocol (RabbitMQ's `rabbitmq_connections` is the
/// total).
fn connections(out: &mut String, st: &AppState) {
    let mut by: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for c in st.admin.connections() {
        let e = by.entry(c.meta.protocol.clone()).or_default();
        e.0 += 1;
        e.1 += u64::from(c.meta.channels.load(std::sync::atomic::Ordering::Relaxed));
    }
    let total: u64 = by.values().map(|v| v.0).sum();
    let channels: u64 = by.values().map(|v| v.1).sum();
    let _ = writeln!(
        out,
        "# HELP rabbitmq_connections Client connections of every protocol\n\
         # TYPE rabbitmq_connections gauge\nrabbitmq_connections {total}\n\
         # HELP rabbitmq_channels Channels (AMQP's; one per MQTT or STOMP connection)\n\
         # TYPE rabbitmq_channels gauge\nrabbitmq_channels {channels}\n\
         # HELP switchboard_connections Client connections by protocol and version\n\
         # TYPE switchboard_connections gauge"
    );
    for (p, (n, _)) in &by {
        let _ = writeln!(
            out,
            "switchboard_connections{{protocol=\"{}\"}} {n}",
            label(p)
        );
    }
}
