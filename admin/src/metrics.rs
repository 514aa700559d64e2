//! `/metrics` in Prometheus' text format. Per-queue series use RabbitMQ's names
//! (`rabbitmq_queue_messages_ready` … with `vhost` and `queue` labels, as its
//! per-object endpoint), so its Grafana dashboards mostly apply; the SQS gauges
//! AWS users autoscale on are there too, under their CloudWatch names.
//! Unauthenticated, as Prometheus scrapes (RabbitMQ's port 15692 is too).

use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use std::fmt::Write;
use switchboard_api::QueueStats;

/// Escapes a label value as the text format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A per-queue series: (family, name without prefix, type, help, value).
type Series = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    fn(&QueueStats) -> u64,
);

/// Per-queue series by RabbitMQ's `/metrics/detailed` families (`sqs_queue_metrics`
/// is ours: the CloudWatch figures AWS users autoscale on).
const QUEUE_SERIES: &[Series] = &[
    (
        "queue_coarse_metrics",
        "rabbitmq_queue_messages_ready",
        "gauge",
        "Messages ready to be delivered",
        |s| u64::from(s.ready),
    ),
    (
        "queue_coarse_metrics",
        "rabbitmq_queue_messages_unacked",
        "gauge",
        "Messages delivered and not yet acknowledged",
        |s| u64::from(s.in_flight),
    ),
    (
        "queue_coarse_metrics",
        "rabbitmq_queue_messages",
        "gauge",
        "Ready and unacknowledged messages",
        |s| u64::from(s.ready) + u64::from(s.in_flight),
    ),
    (
        "queue_consumer_count",
        "rabbitmq_queue_consumers",
        "gauge",
        "Consumers on the queue",
        |s| u64::from(s.consumers),
    ),
    (
        "queue_metrics",
        "rabbitmq_queue_messages_ready_bytes",
        "gauge",
        "Bytes of ready messages",
        |s| s.ready_bytes,
    ),
    (
        "queue_metrics",
        "rabbitmq_queue_messages_paged_out_bytes",
        "gauge",
        "Bytes of ready messages paged out to disk",
        |s| s.paged_bytes,
    ),
    (
        "queue_delivery_metrics",
        "rabbitmq_queue_messages_published_total",
        "counter",
        "Messages the queue took",
        |s| s.counts.publish,
    ),
    (
        "queue_delivery_metrics",
        "rabbitmq_queue_messages_delivered_ack_total",
        "counter",
        "Messages handed to consumers",
        |s| s.counts.deliver,
    ),
    (
        "queue_delivery_metrics",
        "rabbitmq_queue_get_ack_total",
        "counter",
        "Messages handed out by basic.get or SQS ReceiveMessage",
        |s| s.counts.get,
    ),
    (
        "queue_delivery_metrics",
        "rabbitmq_queue_messages_redelivered_total",
        "counter",
        "Messages handed out again",
        |s| s.counts.redeliver,
    ),
    (
        "queue_delivery_metrics",
        "rabbitmq_queue_messages_acked_total",
        "counter",
        "Messages acknowledged (SQS: deleted)",
        |s| s.counts.ack,
    ),
    (
        "sqs_queue_metrics",
        "sqs_approximate_number_of_messages_visible",
        "gauge",
        "SQS ApproximateNumberOfMessagesVisible",
        |s| u64::from(s.ready),
    ),
    (
        "sqs_queue_metrics",
        "sqs_approximate_number_of_messages_not_visible",
        "gauge",
        "SQS ApproximateNumberOfMessagesNotVisible",
        |s| u64::from(s.in_flight),
    ),
    (
        "sqs_queue_metrics",
        "sqs_approximate_number_of_messages_delayed",
        "gauge",
        "SQS ApproximateNumberOfMessagesDelayed",
        |s| u64::from(s.delayed),
    ),
];

/// Writes the per-queue series of `families` (all when empty) for the queues of
/// `vhosts`; `detailed` names them as RabbitMQ's `/metrics/detailed` does.
/// Returns the node-wide totals of the queues visited.
fn queue_series(
    out: &mut String,
    st: &AppState,
    vhosts: &[String],
    families: &[String],
    detailed: bool,
) -> (usize, QueueStats) {
    let chosen: Vec<&Series> = QUEUE_SERIES
        .iter()
        .filter(|s| families.is_empty() || families.iter().any(|f| f == s.0))
        .collect();
    let mut lines: Vec<String> = vec![String::new(); chosen.len()];
    let (mut queues, mut total) = (0usize, QueueStats::default());
    for v in vhosts {
        for q in st.admin.queues(v).unwrap_or_default() {
            queues += 1;
            let s = q.stats;
            total.ready += s.ready;
            total.counts.deliver += s.counts.deliver;
            total.counts.get += s.counts.get;
            total.counts.redeliver += s.counts.redeliver;
            total.counts.ack += s.counts.ack;
            let labels = format!("vhost=\"{}\",queue=\"{}\"", label(v), label(&q.name));
            for (buf, series) in lines.iter_mut().zip(&chosen) {
                let name = series_name(series.1, detailed);
                let _ = writeln!(buf, "{name}{{{labels}}} {}", (series.4)(&s));
            }
        }
    }
    for (series, body) in chosen.iter().zip(lines) {
        let name = series_name(series.1, detailed);
        let _ = write!(
            out,
            "# HELP {name} {}\n# TYPE {name} {}\n{body}",
            series.3, series.2
        );
    }
    (queues, total)
}

fn series_name(name: &str, detailed: bool) -> std::borrow::Cow<'_, str> {
    match (detailed, name.strip_prefix("rabbitmq_")) {
        (true, Some(rest)) => format!("rabbitmq_detailed_{rest}").into(),
        _ => name.into(),
    }
}

fn text(out: String) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

/// `/metrics/detailed?vhost=…&family=…`: only the queues of the vhosts named and
/// the families asked for (every one when none is), so a scraper of one vhost
/// among 10,000 queues pays for its own.
pub async fn detailed(
    State(st): State<AppState>,
    // Pairs, as both keys repeat (`family=a&family=b`).
    Query(q): Query<Vec<(String, String)>>,
) -> impl IntoResponse {
    let mut out = String::with_capacity(4096);
    let of = |key: &str| -> Vec<String> {
        q.iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let (asked, families) = (of("vhost"), of("family"));
    let known = st.admin.vhost_names();
    let vhosts = match asked.is_empty() {
        true => known,
        false => asked.into_iter().filter(|v| known.contains(v)).collect(),
    };
    queue_series(&mut out, &st, &vhosts, &families, true);
    text(out)
}

/// `/metrics` (and `/metrics/per-object`): every queue's series, the node's.
pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let mut out = String::with_capacity(4096);
    let (queues, total) = queue_series(&mut out, &st, &st.admin.vhost_names(), &[], false);
    let ready_total = total.ready;
    let c = total.counts;
    let _ = writeln!(
        out,
        "# HELP rabbitmq_global_messages_received_total Messages published to the node\n\
         # TYPE rabbitmq_global_messages_received_total counter\n\
         rabbitmq_global_messages_received_total {}\n\
         # HELP rabbitmq_global_messages_delivered_total Messages handed to consumers or pulled\n\
         # TYPE rabbitmq_global_messages_delivered_total counter\n\
         rabbitmq_global_messages_delivered_total {}\n\
         # HELP rabbitmq_global_messages_redelivered_total Messages handed out again\n\
         # TYPE rabbitmq_global_messages_redelivered_total counter\n\
         rabbitmq_global_messages_redelivered_total {}\n\
         # HELP rabbitmq_global_messages_acknowledged_total Messages acknowledged\n\
         # TYPE rabbitmq_global_messages_acknowledged_total counter\n\
         rabbitmq_global_messages_acknowledged_total {}",
        st.admin.published(),
        c.deliver + c.get,
        c.redeliver,
        c.ack
    );
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
    let _ = writeln!(
        out,
        "# HELP switchboard_refused_total Logins and connections refused, by reason\n\
         # TYPE switchboard_refused_total counter"
    );
    for (reason, n) in st.admin.refused() {
        let _ = writeln!(out, "switchboard_refused_total{{reason=\"{reason}\"}} {n}");
    }
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
    text(out)
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
