//! Requests to the AWS APIs by service and action: how many, how many failed, how
//! long they took (a Prometheus histogram), for the admin API's `/metrics`.
//! Bounded: actions beyond the first [`MAX_SERIES`] pairs seen (a client can name
//! any) are counted under `other`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency buckets; the last one is unbounded.
const BUCKETS: [f64; 9] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5];
const MAX_SERIES: usize = 200;

/// A counter of the series: its name, help text and value.
type Counter = (&'static str, &'static str, fn(&Series) -> u64);

#[derive(Default)]
struct Series {
    count: u64,
    errors: u64,
    seconds: f64,
    buckets: [u64; BUCKETS.len() + 1],
}

/// What a request turned out to be: set as the request is dispatched.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Label {
    pub service: &'static str,
    pub action: String,
}

impl Default for Label {
    /// A request refused before its action was known (bad signature, bad body).
    fn default() -> Self {
        Label {
            service: "unknown",
            action: "unknown".into(),
        }
    }
}

#[derive(Default)]
pub struct RequestStats {
    series: Mutex<HashMap<Label, Series>>,
}

impl RequestStats {
    pub fn record(&self, label: Label, failed: bool, took: Duration) {
        let mut all = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let label = if all.len() >= MAX_SERIES && !all.contains_key(&label) {
            Label {
                service: label.service,
                action: "other".into(),
            }
        } else {
            label
        };
        let s = all.entry(label).or_default();
        let secs = took.as_secs_f64();
        s.count += 1;
        s.errors += u64::from(failed);
        s.seconds += secs;
        let b = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        s.buckets[b] += 1;
    }

    /// The series in Prometheus' text format.
    pub fn write(&self, out: &mut String) {
        let all = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut labels: Vec<&Label> = all.keys().collect();
        labels.sort_by(|a, b| (a.service, &a.action).cmp(&(b.service, &b.action)));
        let name = "switchboard_http_request_duration_seconds";
        let counters: [Counter; 2] = [
            (
                "switchboard_http_requests_total",
                "SQS/SNS/STS requests by service and action",
                |s| s.count,
            ),
            (
                "switchboard_http_request_errors_total",
                "Requests answered with an error",
                |s| s.errors,
            ),
        ];
        for (counter, help, value) in counters {
            let _ = writeln!(out, "# HELP {counter} {help}\n# TYPE {counter} counter");
            for l in &labels {
                let _ = writeln!(
                    out,
                    "{counter}{{service=\"{}\",action=\"{}\"}} {}",
                    l.service,
                    l.action,
                    value(&all[*l])
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP {name} Time to answer, by service and action\n# TYPE {name} histogram"
        );
        for l in &labels {
            let s = &all[*l];
            let tags = format!("service=\"{}\",action=\"{}\"", l.service, l.action);
            let mut cumulative = 0;
            for (i, n) in s.buckets.iter().enumerate() {
                cumulative += n;
                let le = BUCKETS.get(i).map_or("+Inf".to_string(), f64::to_string);
                let _ = writeln!(out, "{name}_bucket{{{tags},le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_sum{{{tags}}} {}", s.seconds);
            let _ = writeln!(out, "{name}_count{{{tags}}} {}", s.count);
        }
    }
}

impl switchboard_api::admin::MetricsSource for RequestStats {
    fn write_metrics(&self, out: &mut String) {
        self.write(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_errors_and_bounds_the_series() {
        let s = RequestStats::default();
        let l = |a: &str| Label {
            service: "sqs",
            action: a.into(),
        };
        s.record(l("SendMessage"), false, Duration::from_micros(300));
        s.record(l("SendMessage"), true, Duration::from_secs(5));
        for i in 0..MAX_SERIES + 10 {
            s.record(l(&format!("Bogus{i}")), true, Duration::ZERO);
        }
        let mut out = String::new();
        s.write(&mut out);
        assert!(
            out.contains(
                "switchboard_http_requests_total{service=\"sqs\",action=\"SendMessage\"} 2"
            )
        );
        assert!(out.contains(
            "switchboard_http_request_errors_total{service=\"sqs\",action=\"SendMessage\"} 1"
        ));
        assert!(out.contains(
            "switchboard_http_request_duration_seconds_bucket{service=\"sqs\",action=\"SendMessage\",le=\"0.0005\"} 1"
        ));
        assert!(out.contains(
            "switchboard_http_request_duration_seconds_bucket{service=\"sqs\",action=\"SendMessage\",le=\"+Inf\"} 2"
        ));
        // SendMessage and the first 199 fill the 200 series; the other 11 share one.
        assert!(
            out.contains("switchboard_http_requests_total{service=\"sqs\",action=\"other\"} 11")
        );
    }
}
