//! Results: one per scenario, printed as a human line or a JSON line, and the
//! side-by-side table `--report` builds from JSON lines of several systems.

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub samples: u64,
    pub min_us: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            samples: h.len(),
            min_us: h.min(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: (h.mean() * 10.0).round() / 10.0,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Free-form tag of the system under test (`--label`), e.g. `rabbitmq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Free-form tag of the case (`--case`), e.g. `q1-1 --confirm`; used by `--report`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    pub protocol: String,
    pub scenario: String,
    pub url: String,
    pub size: usize,
    pub confirm: bool,
    pub persistent: bool,
    pub prefetch: u16,
    pub auto_ack: bool,
    pub rate_limit: Option<f64>,
    pub publishers: usize,
    pub queues: usize,
    pub consumers: usize,
    /// Publishes the client library accepted (written to the socket).
    pub published: u64,
    /// Publisher confirms: acks and nacks received (0 without --confirm).
    pub confirmed: u64,
    pub nacked: u64,
    /// Deliveries the consumers should see: published (less nacked) × copies.
    pub expected: u64,
    /// Deliveries seen (all consumers together).
    pub consumed: u64,
    /// Not consumed before the drain timeout but still queued at the end.
    #[serde(default)]
    pub backlog: u64,
    /// expected − consumed − backlog: lost.
    pub missing: u64,
    /// consumed − expected when positive: duplicate or foreign deliveries.
    #[serde(default)]
    pub unexpected: u64,
    /// From start to the last publish written (or, with confirms, confirmed).
    pub publish_secs: f64,
    /// From start to the last delivery seen.
    pub consume_secs: f64,
    /// published / publish_secs (all publishers together).
    pub publish_rate: f64,
    /// consumed / consume_secs (all consumers together: with fanout-K this
    /// counts every copy, so it is up to K × publish_rate).
    pub consume_rate: f64,
    pub latency: Latency,
    /// Peak resident memory of --watch-pid during the scenario, in KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_rss_max_kb: Option<u64>,
    /// CPU seconds (user + system) --watch-pid used during the scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_cpu_secs: Option<f64>,
    /// CPU seconds this benchmark process used during the scenario (it shares
    /// the machine with the broker: a busy client means a capped broker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cpu_secs: Option<f64>,
    /// CPU seconds all other processes of the machine used during the scenario
    /// (with --watch-pid): more than a few tenths means the figures are noisy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_cpu_secs: Option<f64>,
    /// MQTT: QoS of publishes and subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
    /// MQTT: "3.1.1" or "5.0".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_version: Option<String>,
    /// MQTT: publishes each publisher may have handed over and not yet had
    /// written (QoS 0) or acknowledged (QoS 1); the smallest over publishers.
    /// STOMP: SENDs not yet covered by a RECEIPT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u64>,
    /// STOMP: a RECEIPT was asked for on every Nth SEND.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_every: Option<u64>,
    /// STOMP: the subscriptions' ack mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_mode: Option<String>,
    /// Idle scenario: connections opened and held, and those that still
    /// answered a ping at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_alive: Option<u64>,
    /// Idle scenario: seconds to open them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_secs: Option<f64>,
    /// Idle scenario: the broker's RSS before opening and while holding them (KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_rss_before_kb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_rss_held_kb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn fmt_rate(r: f64) -> String {
    let n = r.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn fmt_ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.3}")
    } else if ms < 1000.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

impl ScenarioResult {
    /// Broker RSS the idle connections added, per connection (KiB).
    pub fn rss_per_connection_kb(&self) -> Option<f64> {
        let (b, h, n) = (
            self.broker_rss_before_kb?,
            self.broker_rss_held_kb?,
            self.connections?,
        );
        (n > 0).then(|| (h as f64 - b as f64) / n as f64)
    }

    fn flags(&self) -> String {
        if let Some(v) = &self.mqtt_version {
            if self.connections.is_some() {
                return format!("mqtt{v} keepalive=60");
            }
            let mut f = vec![
                format!("mqtt{v}"),
                format!("qos{}", self.qos.unwrap_or(0)),
                format!("{}B", self.size),
            ];
            if let Some(w) = self.window {
                f.push(format!("window={w}"));
            }
            if let Some(r) = self.rate_limit {
                f.push(format!("rate={}/s", fmt_rate(r)));
            }
            return f.join(" ");
        }
        if let Some(ack) = &self.ack_mode {
            let mut f = vec![format!("{}B", self.size)];
            if self.confirm {
                f.push("confirm".into());
            }
            if self.persistent {
                f.push("persistent".into());
            }
            f.push(format!(
                "window={}/{}",
                self.window.unwrap_or(0),
                self.receipt_every.unwrap_or(0)
            ));
            f.push(format!("ack={ack}"));
            if ack != "auto" {
                f.push(format!("prefetch={}", self.prefetch));
            }
            if let Some(r) = self.rate_limit {
                f.push(format!("rate={}/s", fmt_rate(r)));
            }
            return f.join(" ");
        }
        let mut f = vec![format!("{}B", self.size)];
        if self.confirm {
            f.push("confirm".into());
        }
        if self.persistent {
            f.push("persistent".into());
        }
        if self.auto_ack {
            f.push("auto-ack".into());
        } else {
            f.push(format!("prefetch={}", self.prefetch));
        }
        if let Some(r) = self.rate_limit {
            f.push(format!("rate={}/s", fmt_rate(r)));
        }
        f.join(" ")
    }

    /// The one human-readable line for this scenario.
    pub fn human_line(&self) -> String {
        let mut s = String::new();
        if let Some(l) = &self.label {
            let _ = write!(s, "[{l}] ");
        }
        let _ = write!(s, "{:<10} {:<32}", self.scenario, self.flags());
        if let Some(e) = &self.error {
            let _ = write!(s, " ERROR: {e}");
            return s;
        }
        if let Some(n) = self.connections {
            let mib =
                |k: Option<u64>| k.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0));
            let _ = write!(
                s,
                " {n} connections opened in {:.1} s, {} alive at the end; broker rss {} -> {} MiB",
                self.connect_secs.unwrap_or(0.0),
                self.connections_alive.unwrap_or(0),
                mib(self.broker_rss_before_kb),
                mib(self.broker_rss_held_kb),
            );
            if let Some(per) = self.rss_per_connection_kb() {
                let _ = write!(s, " ({per:.1} KiB per connection)");
            }
            if self.broker_rss_held_kb.is_none() {
                let _ = write!(s, " (no --watch-pid: no broker memory)");
            }
            return s;
        }
        let _ = write!(
            s,
            " pub {:>9} msg/s  cons {:>9} msg/s  latency p50 {:>7} ms  p99 {:>7} ms  (published {}, consumed {}/{}",
            fmt_rate(self.publish_rate),
            fmt_rate(self.consume_rate),
            fmt_ms(self.latency.p50_us),
            fmt_ms(self.latency.p99_us),
            self.published,
            self.consumed,
            self.expected,
        );
        if self.nacked > 0 {
            let _ = write!(s, ", NACKED {}", self.nacked);
        }
        if self.backlog > 0 {
            let _ = write!(s, ", still queued {}", self.backlog);
        }
        if self.missing > 0 {
            let _ = write!(s, ", MISSING {}", self.missing);
        }
        if self.unexpected > 0 {
            let _ = write!(s, ", UNEXPECTED {}", self.unexpected);
        }
        if let Some(kb) = self.broker_rss_max_kb {
            let _ = write!(s, ", broker rss max {} MiB", kb / 1024);
        }
        if let Some(c) = self.broker_cpu_secs {
            let _ = write!(s, ", broker cpu {c:.1} s");
        }
        if let Some(c) = self.client_cpu_secs {
            let _ = write!(s, ", client cpu {c:.1} s");
        }
        if let Some(c) = self.other_cpu_secs.filter(|c| *c >= 0.1) {
            let _ = write!(s, ", other processes cpu {c:.1} s");
        }
        s.push(')');
        s
    }
}

/// Broker CPU microseconds per delivered message.
fn cpu_per_msg(r: &ScenarioResult) -> Option<f64> {
    r.broker_cpu_secs
        .filter(|_| r.consumed > 0)
        .map(|c| c * 1e6 / r.consumed as f64)
}

/// Other processes' CPU during a run above which the table flags it.
const NOISY_OTHER_CPU_SECS: f64 = 0.5;

/// Read JSON lines (other lines are skipped) and print, per case, one row per
/// label and a ratio row `subject/baseline`.
pub fn compare_table(path: &str, baseline: &str, subject: &str) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let results: Vec<ScenarioResult> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l).with_context(|| format!("parsing {l}")))
        .collect::<Result<_>>()?;
    let mut cases: Vec<String> = Vec::new();
    for r in &results {
        let c = r.case.clone().unwrap_or_else(|| r.scenario.clone());
        if !cases.contains(&c) {
            cases.push(c);
        }
    }
    let find = |case: &str, label: &str| {
        results.iter().rev().find(|r| {
            r.case.as_deref().unwrap_or(&r.scenario) == case && r.label.as_deref() == Some(label)
        })
    };
    let mut out = String::new();
    let w = cases.iter().map(|c| c.len()).max().unwrap_or(4).max(4);
    // Labels besides baseline and subject (e.g. a third broker): a row each, and a
    // ratio row subject/label after subject/baseline.
    let mut others: Vec<String> = Vec::new();
    for r in &results {
        if let Some(l) = r.label.as_deref()
            && l != baseline
            && l != subject
            && !others.iter().any(|o| o == l)
        {
            others.push(l.to_string());
        }
    }
    let lw = std::iter::once(baseline)
        .chain(others.iter().map(String::as_str))
        .map(|l| l.len().max(subject.len() + 1 + l.len()))
        .max()
        .unwrap();
    let _ = writeln!(
        out,
        "{:<w$}  {:<lw$}  {:>11}  {:>11}  {:>9}  {:>9}  {:>8}  {:>10}  {:>8}  {:>6}",
        "case",
        "system",
        "pub msg/s",
        "cons msg/s",
        "p50 ms",
        "p99 ms",
        "rss MiB",
        "cpu us/msg",
        "queued",
        "lost"
    );
    let row = |out: &mut String, case: &str, label: &str, r: Option<&ScenarioResult>| match r {
        None => {
            let _ = writeln!(out, "{case:<w$}  {label:<lw$}  n/a (no result)");
        }
        Some(r) if r.error.as_deref().is_some_and(|e| e.starts_with("n/a")) => {
            let _ = writeln!(
                out,
                "{case:<w$}  {label:<lw$}  {}",
                r.error.as_deref().unwrap_or("")
            );
        }
        Some(r) if r.error.is_none() && r.connections.is_some() => {
            let _ = writeln!(
                out,
                "{case:<w$}  {label:<lw$}  idle: {} connections ({} alive), opened in {:.1} s; \
                 broker rss {} MiB held, {} KiB per connection",
                fmt_rate(r.connections.unwrap_or(0) as f64),
                fmt_rate(r.connections_alive.unwrap_or(0) as f64),
                r.connect_secs.unwrap_or(0.0),
                r.broker_rss_held_kb
                    .map(|k| format!("{:.0}", k as f64 / 1024.0))
                    .unwrap_or("-".into()),
                r.rss_per_connection_kb()
                    .map(|k| format!("{k:.1}"))
                    .unwrap_or("-".into()),
            );
        }
        Some(r) if r.error.is_some() => {
            let _ = writeln!(
                out,
                "{case:<w$}  {label:<lw$}  ERROR: {}",
                r.error.as_deref().unwrap_or("")
            );
        }
        Some(r) => {
            let _ = writeln!(
                out,
                "{case:<w$}  {label:<lw$}  {:>11}  {:>11}  {:>9}  {:>9}  {:>8}  {:>10}  {:>8}  {:>6}",
                fmt_rate(r.publish_rate),
                fmt_rate(r.consume_rate),
                fmt_ms(r.latency.p50_us),
                fmt_ms(r.latency.p99_us),
                r.broker_rss_max_kb
                    .map(|k| format!("{:.0}", k as f64 / 1024.0))
                    .unwrap_or("-".into()),
                cpu_per_msg(r)
                    .map(|c| format!("{c:.1}"))
                    .unwrap_or("-".into()),
                r.backlog,
                if r.unexpected > 0 {
                    format!("{} +{}", r.missing, r.unexpected)
                } else {
                    r.missing.to_string()
                },
            );
        }
    };
    let ratio = |a: f64, b: f64| {
        if a > 0.0 && b > 0.0 {
            format!("{:.2}", b / a)
        } else {
            "-".into()
        }
    };
    for case in &cases {
        let b = find(case, subject);
        row(&mut out, case, baseline, find(case, baseline));
        for o in &others {
            row(&mut out, "", o, find(case, o));
        }
        row(&mut out, "", subject, b);
        for base in std::iter::once(baseline).chain(others.iter().map(String::as_str)) {
            let a = find(case, base);
            let ratio_label = format!("{subject}/{base}");
            if let (Some(a), Some(b)) = (a, b)
                && a.error.is_none()
                && b.error.is_none()
                && a.connections.is_some()
            {
                let opt = |x: Option<f64>, y: Option<f64>| match (x, y) {
                    (Some(x), Some(y)) => ratio(x, y),
                    _ => "-".into(),
                };
                let _ = writeln!(
                    out,
                    "{:<w$}  {ratio_label:<lw$}  idle: rss held {}, per connection {}",
                    "",
                    opt(
                        a.broker_rss_held_kb.map(|k| k as f64),
                        b.broker_rss_held_kb.map(|k| k as f64)
                    ),
                    opt(a.rss_per_connection_kb(), b.rss_per_connection_kb()),
                );
            } else if let (Some(a), Some(b)) = (a, b)
                && a.error.is_none()
                && b.error.is_none()
            {
                let opt = |x: Option<f64>, y: Option<f64>| match (x, y) {
                    (Some(x), Some(y)) => ratio(x, y),
                    _ => "-".into(),
                };
                let _ = writeln!(
                    out,
                    "{:<w$}  {ratio_label:<lw$}  {:>11}  {:>11}  {:>9}  {:>9}  {:>8}  {:>10}",
                    "",
                    ratio(a.publish_rate, b.publish_rate),
                    ratio(a.consume_rate, b.consume_rate),
                    ratio(a.latency.p50_us as f64, b.latency.p50_us as f64),
                    ratio(a.latency.p99_us as f64, b.latency.p99_us as f64),
                    opt(
                        a.broker_rss_max_kb.map(|k| k as f64),
                        b.broker_rss_max_kb.map(|k| k as f64)
                    ),
                    opt(cpu_per_msg(a), cpu_per_msg(b)),
                );
            }
        }
    }
    for r in &results {
        if let Some(c) = r.other_cpu_secs.filter(|c| *c >= NOISY_OTHER_CPU_SECS) {
            let _ = writeln!(
                out,
                "note: other processes used {c:.1} s of CPU during {} ({}): noisy figures",
                r.case.as_deref().unwrap_or(&r.scenario),
                r.label.as_deref().unwrap_or("?"),
            );
        }
    }
    let _ = writeln!(
        out,
        "(rates: higher is better; latency, rss, cpu: lower is better. ratio = {subject} / {baseline}.\n \
          cons msg/s counts every copy (fanout-K: K per message). cpu us/msg: broker CPU time per delivery.\n \
          queued: not consumed within the drain timeout but still in the queue; lost: neither\n \
          (+N: N deliveries more than published, i.e. duplicates). MQTT: pub msg/s counts publishes\n \
          written (QoS 0) or acknowledged (QoS 1); lost counts messages acknowledged (QoS 0: written)\n \
          but never delivered, which QoS 0 allows. STOMP: pub msg/s counts SENDs covered by a RECEIPT;\n \
          lost counts those never delivered within the drain.)"
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_table() {
        assert_eq!(fmt_rate(1234567.4), "1,234,567");
        assert_eq!(fmt_rate(12.0), "12");
        assert_eq!(fmt_ms(412), "0.412");
        let mk = |label: &str, rate: f64| ScenarioResult {
            label: Some(label.into()),
            case: Some("q1-1".into()),
            scenario: "q1-1".into(),
            publish_rate: rate,
            consume_rate: rate,
            latency: Latency {
                p50_us: 100,
                p99_us: 200,
                ..Default::default()
            },
            ..Default::default()
        };
        let dir = std::env::temp_dir().join(format!("sb-bench-test-{}", std::process::id()));
        let lines = [mk("rabbitmq", 1000.0), mk("switchboard", 2000.0)]
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&dir, format!("noise\n{lines}\n")).unwrap();
        let t = compare_table(dir.to_str().unwrap(), "rabbitmq", "switchboard").unwrap();
        assert!(t.contains("switchboard/rabbitmq"), "{t}");
        assert!(t.contains("2.00"), "{t}");
        // A third label gets its own rows and ratio.
        let lines = [
            mk("rabbitmq", 1000.0),
            mk("activemq", 500.0),
            mk("switchboard", 2000.0),
        ]
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
        std::fs::write(&dir, lines).unwrap();
        let t = compare_table(dir.to_str().unwrap(), "rabbitmq", "switchboard").unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert!(
            t.contains("switchboard/activemq") && t.contains("4.00"),
            "{t}"
        );
    }
}
