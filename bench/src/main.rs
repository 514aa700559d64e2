//! switchboard-bench: throughput and end-to-end latency of a message broker.
//!
//! Protocol-independent parts: scenario names and topology (`scenario`), body
//! timestamps and the latency histogram (`clock`), results and the comparison
//! table (`report`), broker process watch (`procstat`). One module per
//! protocol drives the broker: `amqp` (lapin), `mqtt` (rumqttc, through
//! `mqtt_client`; raw sockets in `mqtt_idle`), `stomp` (`stomp_client`, on the
//! project's STOMP codec), `sqs` (`sqs_client`: hyper HTTP/1.1, SigV4) and `sns`
//! (the same client's Query calls; `sns_http` for HTTP subscriptions), each taking
//! a `RunSpec` and returning a `ScenarioResult` (SQS and SNS: plus their own
//! figures), selected by the URL's scheme (and for http://, the scenario's name) in
//! `run_one`.

mod amqp;
mod clock;
mod mqtt;
mod mqtt_idle;
mod procstat;
mod report;
mod scenario;
mod sns;
mod sns_http;
mod sns_load;
mod sns_model;
mod sns_report;
mod sqs;
mod stomp;

// The protocol clients live in the library target, shared with the failover drill.
use switchboard_bench::{mqtt_client, sqs_client, stomp_client};

use anyhow::{Result, bail};
use clap::Parser;
use report::ScenarioResult;
use scenario::{RunSpec, StopRule, Topology};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// True once Ctrl-C was pressed: publishers stop, the run cleans up and exits.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

const SCENARIOS: &str = "\
Scenarios:
  q1-1        1 publisher -> 1 queue -> 1 consumer
  qN-N        N publishers -> N queues -> N consumers, lane i = publisher i -> queue i -> consumer i (N = --n)
  q<n>-<n>    the same with N given in the name, e.g. q8-8
  fanout-K    1 publisher -> fanout exchange -> K queues, one consumer each (K = --k)
  fanout-<k>  the same with K given in the name, e.g. fanout-16
  fanin-N     N publishers -> 1 queue -> 1 consumer (N = --n); fanin-<n>: N in the name
  shared-N    (STOMP only) N publishers -> 1 queue -> N competing consumers; shared-<n>
  idle        (MQTT only) 10,000 idle connections, each subscribed to its own topic,
              held for --duration; reports the broker's RSS (--watch-pid); idle-<n>: n of them
  sqs-batch   (SQS only) N senders loop SendMessageBatch (--batch-size entries), N receivers
              ReceiveMessage + DeleteMessageBatch, one queue (N = --workers; sqs-batch-<n>)
  sqs-single  (SQS only) the same one message at a time: SendMessage, ReceiveMessage, DeleteMessage
  sqs-send-latency  (SQS only) 1 sender (sqs-send-latency-<n>: n), SendMessage closed loop
              or at --rate, nothing received: request latency
  sqs-fifo    (SQS only) sqs-batch on a FIFO queue, messages spread over --groups MessageGroupIds
  sns-publish (SNS) N publishers Publish to a topic with two SQS queues subscribed (one
              raw with a FilterPolicy half the messages match); the queues are drained and
              checked afterwards (N = --workers; sns-publish-<n>)
  sns-latency (SNS) the same at --rate (default 1,000 msg/s, all publishers together), two
              receivers per queue: Publish -> ReceiveMessage latency
  sns-http    (SNS) an HTTP endpoint in this process subscribed (confirmed via its
              SubscribeURL); N publishers: deliveries/s and delivery latency

MQTT (--url mqtt://HOST:PORT): a queue is a topic with one subscriber; fanout-K is
one topic with K subscribers. --qos 0|1 and --mqtt-version 3.1.1|5 choose the
protocol; the QoS 1 in-flight window per publisher is --confirm-window (lowered
to the broker's Receive Maximum in 5.0), the QoS 0 window --pipeline. Messages
need --size >= 16 (timestamp and id: lost and duplicated deliveries are counted).

STOMP (--url stomp://[login:passcode@]HOST:PORT[/vhost], STOMP 1.2): queue i is
/queue/<prefix>-q<i>, fanout-K is /topic/<prefix>.fanout with K subscribers. A
publisher asks for a RECEIPT every --receipt-every SENDs (default window/4; with
--confirm every SEND) and keeps at most --confirm-window SENDs unreceipted;
--persistent adds persistent:true (queues are durable either way). Consumers ack per
--ack-mode (queues: client-individual, topics: auto) with prefetch-count --prefetch.

SQS (--url http://[access_key:secret@]HOST:PORT[/?region=R], default guest:guest,
us-east-1): AWS JSON 1.0 over keep-alive HTTP/1.1, every request SigV4-signed (also
for servers that do not check), one connection per worker. Senders hold while
--max-lag x senders messages (default 50 x senders) are sent but not deleted;
ReceiveMessage long-polls --wait-secs (1). The queue (a unique name, .fifo for
sqs-fifo) is created at the start and deleted at the end. Bodies are text: --size >= 32.

Each message body starts with an 8-byte send timestamp; the consumer measures
end-to-end latency from it. Publish rate = messages written (or, with --confirm,
confirmed) / time to the last one; consume rate = deliveries (all consumers, so
fanout-K counts every copy) / time to the last delivery. Without --rate the
publishers go as fast as the broker lets them, so latency includes queueing:
use --rate for latency at a fixed load.

The tool declares its queues (durable with --persistent) and, for fanout, one
exchange, named sb-bench-<pid>-<time>-<scenario>-*, and deletes them at the end.

Examples:
  switchboard-bench q1-1 qN-N fanout-4 -d 10
  switchboard-bench q1-1 --confirm --persistent --url amqp://guest:guest@127.0.0.1:5672/%2f
  switchboard-bench q1-1 --rate 1000 -d 5 --json
  switchboard-bench fanin-4 fanout-4 --url mqtt://127.0.0.1:1883 --qos 1 --mqtt-version 5
  switchboard-bench idle --url mqtt://127.0.0.1:1883 --watch-pid 1234 -d 5
  switchboard-bench q1-1 shared-4 fanout-4 --url stomp://guest:guest@127.0.0.1:61613 -d 5
  switchboard-bench q1-1 --confirm --persistent --url stomp://127.0.0.1:61613
  switchboard-bench sqs-batch sqs-single sqs-fifo --workers 4 --groups 100 -s 100 --url http://127.0.0.1:9324
  switchboard-bench sqs-send-latency -d 10 --url http://guest:guest@127.0.0.1:9324
  switchboard-bench sns-publish sns-latency sns-http -d 5 --url http://127.0.0.1:9324
  switchboard-bench --report results.jsonl --baseline rabbitmq --subject switchboard";

#[derive(Parser, Debug)]
#[command(name = "switchboard-bench", version, about = "Message broker load and latency benchmark", after_help = SCENARIOS)]
struct Cli {
    /// Scenarios to run, in order (see below).
    #[arg(default_value = "q1-1")]
    scenarios: Vec<String>,

    /// Broker URL; the scheme picks the protocol (amqp://, mqtt://, stomp:// or http:// for SQS).
    #[arg(
        long,
        env = "SB_BENCH_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    url: String,

    /// Seconds each publisher publishes [default: 10, unless --count is given].
    #[arg(short = 'd', long, value_name = "SECS")]
    duration: Option<f64>,

    /// Messages each publisher publishes (with --duration too: whichever comes first).
    #[arg(short = 'c', long, value_name = "N")]
    count: Option<u64>,

    /// Body size in bytes (at least 8: the timestamp).
    #[arg(short = 's', long, default_value_t = 128, value_name = "BYTES")]
    size: usize,

    /// Publisher confirms, with at most --confirm-window unconfirmed messages per publisher
    /// (STOMP: a RECEIPT for every SEND).
    #[arg(long)]
    confirm: bool,

    #[arg(long, default_value_t = 256, value_name = "N")]
    confirm_window: usize,

    /// delivery_mode 2 and durable queues (and exchange); STOMP: persistent:true.
    #[arg(long)]
    persistent: bool,

    /// AMQP: declare the queues with x-queue-type (e.g. quorum, for RabbitMQ's
    /// replicated queues); implies durable queues.
    #[arg(long, value_name = "TYPE")]
    queue_type: Option<String>,

    /// Consumer prefetch (basic.qos); 0 = unlimited.
    #[arg(long, default_value_t = 1000)]
    prefetch: u16,

    /// Acknowledge with multiple=true every N deliveries [default: min(100, prefetch/2)].
    #[arg(long, value_name = "N")]
    ack_every: Option<u64>,

    /// Consume with no_ack (no acknowledgements; prefetch does not apply).
    #[arg(long)]
    auto_ack: bool,

    /// N for qN-N (and fanin-N, shared-N); SQS: senders and receivers each.
    #[arg(
        short = 'n',
        long = "n",
        visible_alias = "workers",
        default_value_t = 4
    )]
    n: usize,

    /// K for fanout-K.
    #[arg(short = 'k', long = "k", default_value_t = 4)]
    k: usize,

    /// Limit each publisher to this many msgs/s (default: as fast as possible).
    #[arg(long, value_name = "MSGS_PER_SEC")]
    rate: Option<f64>,

    /// Hold each publisher while N of its messages are not yet consumed (end-to-end
    /// back-pressure: throughput without an ever-growing queue; use N >= 1000).
    #[arg(long, value_name = "N")]
    max_lag: Option<u64>,

    /// Publishes handed to the client library before waiting for the oldest to be written.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pipeline: usize,

    /// Seconds consumers get, after the publishers stop, to receive the rest
    /// [default: the larger of 10 and --duration].
    #[arg(long, value_name = "SECS")]
    drain_timeout: Option<f64>,

    /// STOMP: ask for a RECEIPT on every Nth SEND [default: --confirm-window / 4;
    /// with --confirm: 1].
    #[arg(long, value_name = "N")]
    receipt_every: Option<u64>,

    /// STOMP: subscription ack mode [default: client-individual for queues, auto for topics].
    #[arg(long, value_name = "auto|client|client-individual")]
    ack_mode: Option<String>,

    /// SQS: entries per SendMessageBatch and MaxNumberOfMessages (sqs-batch, sqs-fifo).
    #[arg(long, default_value_t = 10, value_name = "1..10")]
    batch_size: usize,

    /// SQS: ReceiveMessage WaitTimeSeconds (long polling).
    #[arg(long, default_value_t = 1, value_name = "0..20")]
    wait_secs: u64,

    /// SQS FIFO: MessageGroupIds the messages are spread over (round robin).
    #[arg(long, default_value_t = 100, value_name = "N")]
    groups: usize,

    /// SNS: every subscription with RawMessageDelivery (sns-http's endpoint; the
    /// unfiltered queue of sns-publish and sns-latency, whose filtered one always is).
    #[arg(long)]
    raw_delivery: bool,

    /// MQTT: QoS of publishes and subscriptions (0 or 1).
    #[arg(long, default_value_t = 0, value_name = "0|1")]
    qos: u8,

    /// MQTT: protocol version, 3.1.1 (or 4) or 5 (or 5.0).
    #[arg(long, default_value = "3.1.1", value_name = "VERSION")]
    mqtt_version: String,

    /// Print one JSON object per scenario (JSON Lines) instead of a text line.
    #[arg(long)]
    json: bool,

    /// Tag results with the system under test (e.g. rabbitmq, switchboard).
    #[arg(long)]
    label: Option<String>,

    /// Tag results with a case name for --report [default: the scenario name].
    #[arg(long)]
    case: Option<String>,

    /// Sample this broker process's peak RSS and CPU time during each scenario (Linux).
    #[arg(long, value_name = "PID")]
    watch_pid: Option<u32>,

    /// Seconds to pause between scenarios.
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    pause: f64,

    /// Do not run anything: read JSON lines from FILE and print a comparison table.
    #[arg(long, value_name = "FILE")]
    report: Option<String>,

    /// With --report: the label the ratios divide by.
    #[arg(long, default_value = "rabbitmq")]
    baseline: String,

    /// With --report: the label whose figures are divided.
    #[arg(long, default_value = "switchboard")]
    subject: String,
}

fn spec_for(cli: &Cli, topology: Topology, prefix: String) -> Result<RunSpec> {
    if cli.size < clock::STAMP_LEN {
        bail!(
            "--size must be at least {} (the timestamp)",
            clock::STAMP_LEN
        );
    }
    let secs = |name: &str, v: f64| -> Result<Duration> {
        if !v.is_finite() || v < 0.0 {
            bail!("--{name} must be a non-negative number of seconds");
        }
        Ok(Duration::from_secs_f64(v))
    };
    let duration = match (cli.duration, cli.count) {
        (None, None) => Some(Duration::from_secs(10)),
        (d, _) => d.map(|d| secs("duration", d)).transpose()?,
    };
    if let Some(r) = cli.rate
        && !(r.is_finite() && r > 0.0)
    {
        bail!("--rate must be positive");
    }
    let default_ack = if cli.prefetch > 0 {
        (cli.prefetch as u64 / 2).clamp(1, 100)
    } else {
        100
    };
    let mut ack_every = cli.ack_every.unwrap_or(default_ack).max(1);
    if cli.prefetch > 0 && ack_every > cli.prefetch as u64 {
        eprintln!(
            "note: --ack-every {ack_every} > --prefetch {}: using {}",
            cli.prefetch, cli.prefetch
        );
        ack_every = cli.prefetch as u64;
    }
    if cli.qos > 1 {
        bail!("--qos must be 0 or 1");
    }
    if let Some(m) = cli.ack_mode.as_deref()
        && !matches!(m, "auto" | "client" | "client-individual")
    {
        bail!("--ack-mode must be auto, client or client-individual, not {m:?}");
    }
    if !(1..=10).contains(&cli.batch_size) {
        bail!("--batch-size must be 1..=10 (SQS's batch limit)");
    }
    if cli.wait_secs > 20 {
        bail!("--wait-secs must be 0..=20 (SQS's limit)");
    }
    if cli.groups == 0 {
        bail!("--groups must be at least 1");
    }
    let mqtt_v5 = match cli.mqtt_version.as_str() {
        "3.1.1" | "311" | "4" => false,
        "5" | "5.0" => true,
        v => bail!("--mqtt-version must be 3.1.1 or 5, not {v:?}"),
    };
    Ok(RunSpec {
        topology,
        stop: StopRule {
            duration,
            count: cli.count,
        },
        size: cli.size,
        confirm: cli.confirm,
        confirm_window: cli.confirm_window.max(1),
        persistent: cli.persistent,
        queue_type: cli.queue_type.clone(),
        prefetch: cli.prefetch,
        ack_every,
        auto_ack: cli.auto_ack,
        rate: cli.rate,
        max_lag: cli.max_lag.filter(|&n| n > 0),
        pipeline: cli.pipeline.max(1),
        drain_timeout: match cli.drain_timeout {
            Some(d) => secs("drain-timeout", d)?,
            None => duration.unwrap_or_default().max(Duration::from_secs(10)),
        },
        prefix,
        qos: cli.qos,
        mqtt_v5,
        receipt_every: cli.receipt_every,
        stomp_ack: cli.ack_mode.clone(),
        broker_pid: cli.watch_pid,
        sqs_batch: cli.batch_size,
        wait_secs: cli.wait_secs,
        groups: cli.groups,
        sns_raw: cli.raw_delivery,
    })
}

/// `a: b: c` for an error and its sources, skipping a source whose text the
/// previous message already ends with (lapin's errors print their source).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if out.ends_with(&msg) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&msg);
    }
    out
}

/// The figures an SQS or SNS scenario has besides [`ScenarioResult`].
enum Extra {
    Sqs(sqs::SqsExtra),
    Sns(sns_model::SnsExtra),
}

impl Extra {
    /// The result as one JSON object, the extra figures under `sqs` or `sns`.
    fn json(&self, r: &ScenarioResult) -> serde_json::Value {
        let mut v = serde_json::to_value(r).expect("results serialize");
        match self {
            Extra::Sqs(x) => v["sqs"] = serde_json::to_value(x).expect("results serialize"),
            Extra::Sns(x) => v["sns"] = serde_json::to_value(x).expect("results serialize"),
        }
        v
    }

    fn human_line(&self, r: &ScenarioResult) -> String {
        match self {
            Extra::Sqs(x) => sqs::human_line(r, x),
            Extra::Sns(x) => sns_report::human_line(r, x),
        }
    }
}

/// Runs one scenario; an SQS or SNS scenario also leaves its own figures in `extra`.
async fn run_one(url: &str, spec: &RunSpec, extra: &mut Option<Extra>) -> Result<ScenarioResult> {
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    let name = &spec.topology.name;
    if (name.starts_with("sqs-") || name.starts_with("sns-")) && scheme != "http" {
        bail!("{name} is an SQS/SNS scenario (use an http:// URL)");
    }
    match scheme.as_str() {
        "amqp" | "amqps" => amqp::run(url, spec).await,
        "mqtt" => mqtt::run(url, spec).await,
        "stomp" => stomp::run(url, spec).await,
        "http" if name.starts_with("sns-") => {
            let (r, x) = sns::run(url, spec).await?;
            *extra = Some(Extra::Sns(x));
            Ok(r)
        }
        "http" => {
            let (r, x) = sqs::run(url, spec).await?;
            *extra = Some(Extra::Sqs(x));
            Ok(r)
        }
        "mqtts" | "stomp+ssl" | "https" => {
            bail!("{scheme}:// scenarios are not implemented yet (add a module beside amqp.rs)")
        }
        _ => bail!("unsupported URL {url:?}: expected amqp://, mqtt://, stomp:// or http://"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(path) = &cli.report {
        let table = if sns_report::is_sns_results(path) {
            sns_report::compare_table(path, &cli.baseline, &cli.subject)
        } else if sqs::is_sqs_results(path) {
            sqs::compare_table(path, &cli.baseline, &cli.subject)
        } else {
            report::compare_table(path, &cli.baseline, &cli.subject)
        };
        return match table {
            Ok(t) => {
                print!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    clock::origin();
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "interrupted: stopping and deleting this run's queues (Ctrl-C again to quit now)"
            );
            INTERRUPTED.store(true, Ordering::Relaxed);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });

    let run_id = format!(
        "sb-bench-{}-{}",
        std::process::id(),
        switchboard_api::wall_ms()
    );
    let mut failed = false;
    for (i, name) in cli.scenarios.iter().enumerate() {
        if interrupted() {
            break;
        }
        if i > 0 && cli.pause > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(cli.pause)).await;
        }
        let topology = match Topology::parse(name, cli.n, cli.k) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e:#}");
                failed = true;
                continue;
            }
        };
        let spec = match spec_for(
            &cli,
            topology.clone(),
            format!("{run_id}-{}", topology.name),
        ) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::from(2);
            }
        };
        let what = match (spec.stop.duration, spec.stop.count) {
            (Some(d), None) => format!("{:.1} s", d.as_secs_f64()),
            (None, Some(c)) => format!("{c} msgs/publisher"),
            (Some(d), Some(c)) => format!("{c} msgs/publisher or {:.1} s", d.as_secs_f64()),
            (None, None) => unreachable!(),
        };
        eprintln!(
            "running {} against {} ({what})",
            topology.name,
            amqp::redact(&cli.url)
        );
        let watch = cli.watch_pid.map(procstat::Watch::start);
        let self_before = procstat::sample(std::process::id());
        let machine_before = procstat::machine_busy_ticks();
        let mut extra = None;
        let outcome = run_one(&cli.url, &spec, &mut extra).await;
        let self_after = procstat::sample(std::process::id());
        let machine_after = procstat::machine_busy_ticks();
        let watched = match (watch, cli.watch_pid) {
            (Some(w), Some(pid)) => w.finish(pid).await,
            _ => None,
        };
        let mut r = match outcome {
            Ok(r) => r,
            Err(e) => {
                failed = true;
                ScenarioResult {
                    scenario: topology.name.clone(),
                    size: spec.size,
                    confirm: spec.confirm,
                    persistent: spec.persistent,
                    prefetch: spec.prefetch,
                    auto_ack: spec.auto_ack,
                    rate_limit: spec.rate,
                    publishers: topology.publishers,
                    queues: topology.queues,
                    consumers: topology.consumers(),
                    error: Some(error_chain(&e)),
                    ..Default::default()
                }
            }
        };
        if cli.url.starts_with("mqtt") && r.mqtt_version.is_none() {
            r.mqtt_version = Some(mqtt::version_name(spec.mqtt_v5).into());
            if topology.routing != scenario::Routing::Idle {
                r.qos = Some(spec.qos);
            } else {
                r.connections = Some(topology.queues as u64);
            }
        }
        // QoS 0 may drop messages: reported, but not a failure.
        if (r.missing > 0 && r.qos != Some(0)) || r.unexpected > 0 {
            failed = true;
        }
        r.label = cli.label.clone();
        r.case = cli.case.clone();
        r.url = amqp::redact(&cli.url);
        if r.protocol.is_empty() && topology.name.starts_with("sns-") {
            // A failed run still lands in the SNS table of --report.
            r.protocol = "sns".into();
        }
        if r.protocol.is_empty() {
            r.protocol = cli
                .url
                .split_once("://")
                .map(|(s, _)| s.to_string())
                .unwrap_or_default();
        }
        if let Some(w) = watched {
            r.broker_rss_max_kb = Some(w.rss_max_kb);
            r.broker_cpu_secs = Some((w.cpu_secs * 100.0).round() / 100.0);
        }
        if let (Some(a), Some(b)) = (self_before, self_after) {
            r.client_cpu_secs =
                Some(b.cpu_ticks.saturating_sub(a.cpu_ticks) as f64 / procstat::TICKS_PER_SEC);
        }
        // CPU neither the broker nor this process used: other programs competing.
        if let (Some(a), Some(b), Some(broker), Some(client)) = (
            machine_before,
            machine_after,
            r.broker_cpu_secs,
            r.client_cpu_secs,
        ) {
            let all = b.saturating_sub(a) as f64 / procstat::TICKS_PER_SEC;
            r.other_cpu_secs = Some(((all - broker - client).max(0.0) * 100.0).round() / 100.0);
        }
        if cli.json {
            if let Some(x) = &extra {
                println!("{}", x.json(&r));
            } else {
                println!("{}", serde_json::to_string(&r).expect("results serialize"));
            }
        } else if let Some(x) = &extra {
            println!("{}", x.human_line(&r));
        } else {
            println!("{}", r.human_line());
        }
    }
    if failed || interrupted() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_parses() {
        let cli = Cli::try_parse_from([
            "x",
            "q1-1",
            "fanout-K",
            "--confirm",
            "-s",
            "1024",
            "-c",
            "5",
        ])
        .unwrap();
        let spec = spec_for(&cli, Topology::parse("q1-1", 4, 4).unwrap(), "p".into()).unwrap();
        assert_eq!(spec.stop.count, Some(5));
        assert!(spec.stop.duration.is_none());
        assert_eq!(spec.ack_every, 100);
        let cli = Cli::try_parse_from(["x", "--prefetch", "10"]).unwrap();
        let spec = spec_for(&cli, Topology::parse("q1-1", 4, 4).unwrap(), "p".into()).unwrap();
        assert_eq!(spec.stop.duration, Some(Duration::from_secs(10)));
        assert_eq!(spec.ack_every, 5);
        let cli = Cli::try_parse_from(["x", "-s", "4"]).unwrap();
        assert!(spec_for(&cli, Topology::parse("q1-1", 4, 4).unwrap(), "p".into()).is_err());
    }
}
