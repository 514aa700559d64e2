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
    fn flags(&self) -> String {
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
    let ratio_label = format!("{subject}/{baseline}");
    let lw = [baseline.len(), subject.len(), ratio_label.len()]
        .into_iter()
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
            let _ = writeln!(out, "{case:<w$}  {label:<lw$}  (no result)");
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
        let a = find(case, baseline);
        let b = find(case, subject);
        row(&mut out, case, baseline, a);
        row(&mut out, "", subject, b);
        if let (Some(a), Some(b)) = (a, b)
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
    let _ = writeln!(
        out,
        "(rates: higher is better; latency, rss, cpu: lower is better. ratio = {subject} / {baseline}.\n \
          cons msg/s counts every copy (fanout-K: K per message). cpu us/msg: broker CPU time per delivery.\n \
          queued: not consumed within the drain timeout but still in the queue; lost: neither\n \
          (+N: N deliveries more than published, i.e. duplicates).)"
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
        std::fs::remove_file(&dir).unwrap();
        assert!(t.contains("switchboard/rabbitmq"), "{t}");
        assert!(t.contains("2.00"), "{t}");
    }
}
