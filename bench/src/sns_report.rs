//! The SNS scenarios' text line and comparison table (`--report` on a file of SNS
//! results), with the issue's targets: Publish ≥ 50× moto's rate (`sns-publish`),
//! Publish → ReceiveMessage p99 < 10 ms at 1,000 msg/s (`sns-latency`), and
//! ≥ 5,000 HTTP deliveries/s (`sns-http`).

use crate::report::{ScenarioResult, fmt_ms, fmt_rate};
use crate::sns_model::SnsExtra;
use anyhow::{Context, Result};
use serde::Deserialize;
use std::fmt::Write as _;

const TARGET_RATIO: f64 = 50.0;
const TARGET_P99_US: u64 = 10_000;
const TARGET_HTTP_RATE: f64 = 5_000.0;

/// The one human-readable line for an SNS scenario.
pub fn human_line(r: &ScenarioResult, x: &SnsExtra) -> String {
    let mut s = String::new();
    if let Some(l) = &r.label {
        let _ = write!(s, "[{l}] ");
    }
    let _ = write!(s, "{:<16} {}B", r.scenario, r.size);
    if let Some(rate) = x.target_rate {
        let _ = write!(s, " rate={}/s", fmt_rate(rate));
    }
    let _ = write!(
        s,
        "  publish {} msg/s p50 {} p99 {} ms",
        fmt_rate(r.publish_rate),
        fmt_ms(x.publish.p50_us),
        fmt_ms(x.publish.p99_us)
    );
    if x.kind != "publish" {
        let _ = write!(s, "  deliveries {}/s", fmt_rate(x.delivery_rate));
    }
    let _ = write!(
        s,
        "  end-to-end p50 {} p99 {} max {} ms  (published {}",
        fmt_ms(x.e2e.p50_us),
        fmt_ms(x.e2e.p99_us),
        fmt_ms(x.e2e.max_us),
        r.published
    );
    for sub in &x.subscribers {
        let _ = write!(
            s,
            ", {}{} {}/{}",
            sub.name,
            if sub.raw { " (raw)" } else { "" },
            sub.delivered,
            sub.expected
        );
        if sub.backlog > 0 {
            let _ = write!(s, " (still queued {})", sub.backlog);
        }
        if sub.lost > 0 {
            let _ = write!(s, " LOST {}", sub.lost);
        }
        if sub.unexpected > 0 {
            let _ = write!(s, " UNEXPECTED {}", sub.unexpected);
        }
    }
    let _ = write!(s, ", drain {:.1} s", x.drain_secs);
    if let Some(kb) = r.broker_rss_max_kb {
        let _ = write!(s, ", broker rss max {} MiB", kb / 1024);
    }
    if let Some(c) = r.broker_cpu_secs {
        let _ = write!(s, ", broker cpu {c:.1} s");
    }
    if let Some(c) = r.client_cpu_secs {
        let _ = write!(s, ", client cpu {c:.1} s");
    }
    let _ = write!(s, " in {:.1} s)", x.wall_secs);
    for n in &x.notes {
        let _ = write!(s, " [{n}]");
    }
    s
}

#[derive(Deserialize)]
struct Line {
    #[serde(flatten)]
    r: ScenarioResult,
    #[serde(default)]
    sns: Option<SnsExtra>,
}

/// True if the results file holds SNS results.
pub fn is_sns_results(path: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| {
        t.lines()
            .any(|l| l.starts_with('{') && l.contains(r#""protocol":"sns""#))
    })
}

/// Per case a row for `baseline` and `subject`, their ratio, then the targets.
pub fn compare_table(path: &str, baseline: &str, subject: &str) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let lines: Vec<Line> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l).with_context(|| format!("parsing {l}")))
        .collect::<Result<_>>()?;
    let case_of = |l: &Line| l.r.case.clone().unwrap_or_else(|| l.r.scenario.clone());
    let mut cases: Vec<String> = Vec::new();
    for l in &lines {
        let c = case_of(l);
        if !cases.contains(&c) {
            cases.push(c);
        }
    }
    let find = |case: &str, label: &str| {
        lines
            .iter()
            .rev()
            .find(|l| case_of(l) == case && l.r.label.as_deref() == Some(label))
    };
    let w = cases.iter().map(|c| c.len()).max().unwrap_or(4).max(4);
    let ratio_label = format!("{subject}/{baseline}");
    let lw = ratio_label.len().max(baseline.len()).max(subject.len());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<w$}  {:<lw$}  {:>9}  {:>8}  {:>8}  {:>9}  {:>8}  {:>8}  {:>8}  {:>6}  {:>7}  {:>7}  {:>7}  lost",
        "case",
        "system",
        "publish/s",
        "pub p50",
        "pub p99",
        "deliver/s",
        "e2e p50",
        "e2e p99",
        "e2e max",
        "cpu %",
        "us/msg",
        "rss MiB",
        "client%",
    );
    let pct = |c: Option<f64>, x: &SnsExtra| {
        c.filter(|_| x.wall_secs > 0.0)
            .map(|c| 100.0 * c / x.wall_secs)
    };
    let us_per_msg = |r: &ScenarioResult| {
        r.broker_cpu_secs
            .filter(|_| r.published > 0)
            .map(|c| c * 1e6 / r.published as f64)
    };
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".into(), |v| format!("{v:.prec$}"));
    for case in &cases {
        let mut got = Vec::new();
        for label in [baseline, subject] {
            let c = if got.is_empty() { case.as_str() } else { "" };
            match find(case, label) {
                None => {
                    let _ = writeln!(out, "{c:<w$}  {label:<lw$}  n/a (no result)");
                    got.push(None);
                }
                Some(l) if l.r.error.is_some() => {
                    let _ = writeln!(
                        out,
                        "{c:<w$}  {label:<lw$}  ERROR: {}",
                        l.r.error.as_deref().unwrap_or("")
                    );
                    got.push(None);
                }
                Some(Line { sns: None, .. }) => {
                    let _ = writeln!(out, "{c:<w$}  {label:<lw$}  (not an SNS result)");
                    got.push(None);
                }
                Some(Line { r, sns: Some(x) }) => {
                    let deliver = if x.kind == "publish" {
                        "-".to_string()
                    } else {
                        fmt_rate(x.delivery_rate)
                    };
                    let lost = if r.unexpected > 0 {
                        format!("{} +{}", r.missing, r.unexpected)
                    } else {
                        r.missing.to_string()
                    };
                    let _ = writeln!(
                        out,
                        "{c:<w$}  {label:<lw$}  {:>9}  {:>8}  {:>8}  {:>9}  {:>8}  {:>8}  {:>8}  {:>6}  {:>7}  {:>7}  {:>7}  {lost}",
                        fmt_rate(r.publish_rate),
                        fmt_ms(x.publish.p50_us),
                        fmt_ms(x.publish.p99_us),
                        deliver,
                        fmt_ms(x.e2e.p50_us),
                        fmt_ms(x.e2e.p99_us),
                        fmt_ms(x.e2e.max_us),
                        opt(pct(r.broker_cpu_secs, x), 0),
                        opt(us_per_msg(r), 1),
                        opt(r.broker_rss_max_kb.map(|k| k as f64 / 1024.0), 0),
                        opt(pct(r.client_cpu_secs, x), 0),
                    );
                    got.push(Some((r, x)));
                }
            }
        }
        if let [Some((a, ax)), Some((b, bx))] = got[..] {
            let ratio = |a: f64, b: f64| match b / a {
                _ if a <= 0.0 || b <= 0.0 => "-".to_string(),
                r if !r.is_finite() => "-".to_string(),
                r if r < 0.095 => format!("1/{:.0}", 1.0 / r),
                r => format!("{r:.2}"),
            };
            let deliver = if bx.kind == "publish" {
                "-".to_string()
            } else {
                ratio(ax.delivery_rate, bx.delivery_rate)
            };
            let _ = writeln!(
                out,
                "{:<w$}  {ratio_label:<lw$}  {:>9}  {:>8}  {:>8}  {:>9}  {:>8}  {:>8}  {:>8}",
                "",
                ratio(a.publish_rate, b.publish_rate),
                ratio(ax.publish.p50_us as f64, bx.publish.p50_us as f64),
                ratio(ax.publish.p99_us as f64, bx.publish.p99_us as f64),
                deliver,
                ratio(ax.e2e.p50_us as f64, bx.e2e.p50_us as f64),
                ratio(ax.e2e.p99_us as f64, bx.e2e.p99_us as f64),
                ratio(ax.e2e.max_us as f64, bx.e2e.max_us as f64),
            );
        }
        for label in [baseline, subject] {
            if let Some(Line { sns: Some(x), .. }) = find(case, label) {
                for n in &x.notes {
                    let _ = writeln!(out, "{:<w$}  {label:<lw$}  note: {n}", "");
                }
            }
        }
    }
    let _ = writeln!(out, "targets:");
    for case in &cases {
        let Some(Line {
            r: b,
            sns: Some(bx),
        }) = find(case, subject)
        else {
            continue;
        };
        if b.error.is_some() {
            continue;
        }
        let a = find(case, baseline).filter(|l| l.r.error.is_none());
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        match bx.kind.as_str() {
            "publish" => {
                if let Some(a) = a.filter(|a| a.r.publish_rate > 0.0) {
                    let k = b.publish_rate / a.r.publish_rate;
                    let _ = writeln!(
                        out,
                        "  {case}: {subject} Publish {} msg/s = {k:.0}x {baseline}'s {} (target >= {TARGET_RATIO:.0}x: {})",
                        fmt_rate(b.publish_rate),
                        fmt_rate(a.r.publish_rate),
                        verdict(k >= TARGET_RATIO)
                    );
                }
            }
            "latency" => {
                let asked = bx.target_rate.unwrap_or(0.0);
                let kept = b.publish_rate >= 0.95 * asked;
                let _ = writeln!(
                    out,
                    "  {case}: {subject} Publish -> ReceiveMessage p99 {} ms at {} msg/s{} (target < {} ms at 1,000 msg/s: {})",
                    fmt_ms(bx.e2e.p99_us),
                    fmt_rate(b.publish_rate),
                    if kept { "" } else { ", BELOW the rate asked" },
                    fmt_ms(TARGET_P99_US),
                    verdict(bx.e2e.p99_us < TARGET_P99_US && kept)
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "  {case}: {subject} {} HTTP deliveries/s (target >= {}: {})",
                    fmt_rate(bx.delivery_rate),
                    fmt_rate(TARGET_HTTP_RATE),
                    verdict(bx.delivery_rate >= TARGET_HTTP_RATE)
                );
            }
        }
        if b.missing > 0 || b.unexpected > 0 {
            let _ = writeln!(
                out,
                "  {case}: {subject} LOST {} / unexpected {} deliveries",
                b.missing, b.unexpected
            );
        }
    }
    let _ = writeln!(
        out,
        "(publish/s: Publish requests answered per second, all publishers; pub p50/p99: their\n \
         latency, client side. deliver/s: distinct deliveries per second, first publish to last\n \
         delivery (sns-latency: both queues; sns-http: POSTs to the endpoint). e2e: send stamp to\n \
         ReceiveMessage reply or POST arrival. cpu %: broker CPU over the case's wall time (100 =\n \
         one core); us/msg: broker CPU per message published; client%: this tool's CPU. lost:\n \
         published but not delivered where it should be (+N: twice, or to the filtered queue\n \
         without matching). Latencies in ms; ratio = {subject} / {baseline}.)"
    );
    Ok(out)
}
