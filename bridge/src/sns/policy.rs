//! HTTP delivery policies: when a failed delivery is tried again. AWS's retry
//! policy has four phases, in this order: `numNoDelayRetries` at once,
//! `numMinDelayRetries` after `minDelayTarget` s, a backoff phase going from
//! `minDelayTarget` to `maxDelayTarget` (the retries left of `numRetries`), and
//! `numMaxDelayRetries` after `maxDelayTarget` s. A subscription's DeliveryPolicy
//! (`healthyRetryPolicy`) wins over its topic's (`http.defaultHealthyRetryPolicy`)
//! unless the topic sets `disableSubscriptionOverrides`; with neither, AWS's default
//! applies: 3 retries 20 s apart.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// AWS's limits for an HTTP retry policy.
const MAX_RETRIES: u32 = 100;
const MAX_DELAY_S: u32 = 3600;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("DeliveryPolicy: {0}")]
pub struct PolicyError(String);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    #[default]
    Linear,
    Arithmetic,
    Geometric,
    Exponential,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RetryPolicy {
    pub min_delay_target: u32,
    pub max_delay_target: u32,
    pub num_retries: u32,
    pub num_no_delay_retries: u32,
    pub num_min_delay_retries: u32,
    pub num_max_delay_retries: u32,
    pub backoff_function: Backoff,
}

impl Default for RetryPolicy {
    /// AWS's `defaultHealthyRetryPolicy` for HTTP/S.
    fn default() -> Self {
        RetryPolicy {
            min_delay_target: 20,
            max_delay_target: 20,
            num_retries: 3,
            num_no_delay_retries: 0,
            num_min_delay_retries: 0,
            num_max_delay_retries: 0,
            backoff_function: Backoff::Linear,
        }
    }
}

impl RetryPolicy {
    fn check(&self) -> Result<(), PolicyError> {
        let bad = |m: &str| Err(PolicyError(m.to_string()));
        if self.min_delay_target == 0 || self.min_delay_target > self.max_delay_target {
            return bad("minDelayTarget must be at least 1 and at most maxDelayTarget");
        }
        if self.max_delay_target > MAX_DELAY_S {
            return bad("maxDelayTarget must be at most 3600");
        }
        if self.num_retries > MAX_RETRIES {
            return bad("numRetries must be at most 100");
        }
        let phases = self
            .num_no_delay_retries
            .saturating_add(self.num_min_delay_retries)
            .saturating_add(self.num_max_delay_retries);
        if phases > self.num_retries {
            return bad(
                "numNoDelayRetries + numMinDelayRetries + numMaxDelayRetries must not exceed numRetries",
            );
        }
        Ok(())
    }

    /// How long to wait before retry `n` (1-based), `None` once the retries are
    /// spent (then the message is dead-lettered or dropped).
    pub fn delay(&self, n: u32) -> Option<Duration> {
        if n == 0 || n > self.num_retries {
            return None;
        }
        let (min, max) = (
            f64::from(self.min_delay_target),
            f64::from(self.max_delay_target),
        );
        let no_delay = self.num_no_delay_retries;
        // Saturating: a policy that `check` would refuse (phases longer than
        // numRetries) still gets a schedule rather than an overflow.
        let min_phase = no_delay.saturating_add(self.num_min_delay_retries);
        let backoff = self
            .num_retries
            .saturating_sub(min_phase)
            .saturating_sub(self.num_max_delay_retries);
        let secs = if n <= no_delay {
            0.0
        } else if n <= min_phase {
            min
        } else if n <= min_phase.saturating_add(backoff) {
            // Step i of k goes from min (first) to max (last).
            let (i, k) = (n - min_phase - 1, backoff);
            let t = if k <= 1 {
                0.0
            } else {
                f64::from(i) / f64::from(k - 1)
            };
            min + (max - min) * self.backoff_function.shape(t, min, max)
        } else {
            max
        };
        Some(Duration::from_millis((secs * 1000.0).round() as u64))
    }
}

impl Backoff {
    /// The fraction of the way from min to max at `t` ∈ [0, 1]: AWS documents the
    /// four curves only as pictures, so these are their shapes, with the same
    /// endpoints (linear steady, arithmetic growing steps, geometric a constant
    /// ratio between delays, exponential the steepest rise at the end).
    fn shape(self, t: f64, min: f64, max: f64) -> f64 {
        match self {
            Backoff::Linear => t,
            Backoff::Arithmetic => t * t,
            Backoff::Geometric if max > min => ((max / min).powf(t) * min - min) / (max - min),
            Backoff::Geometric => t,
            Backoff::Exponential => (2f64.powf(10.0 * t) - 1.0) / (2f64.powi(10) - 1.0),
        }
    }
}

/// A subscription's DeliveryPolicy attribute.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionPolicy {
    healthy_retry_policy: Option<RetryPolicy>,
    request_policy: Option<RequestPolicy>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestPolicy {
    header_content_type: Option<String>,
}

/// A topic's DeliveryPolicy attribute: the `http` part is the one that counts here.
#[derive(Clone, Debug, Default, Deserialize)]
struct TopicPolicy {
    http: Option<TopicHttp>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TopicHttp {
    default_healthy_retry_policy: Option<RetryPolicy>,
    #[serde(default)]
    disable_subscription_overrides: bool,
    default_request_policy: Option<RequestPolicy>,
}

fn parse<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, PolicyError> {
    serde_json::from_str(text).map_err(|e| PolicyError(format!("failed to parse JSON: {e}")))
}

fn check_request(r: Option<&RequestPolicy>) -> Result<(), PolicyError> {
    match r.and_then(|r| r.header_content_type.as_deref()) {
        Some(ct) if ct.is_empty() || !ct.bytes().all(|b| (b' '..=b'~').contains(&b)) => Err(
            PolicyError("headerContentType must be a printable ASCII value".into()),
        ),
        _ => Ok(()),
    }
}

/// Checks a subscription's DeliveryPolicy as Subscribe and SetSubscriptionAttributes
/// take it.
pub fn check_subscription(text: &str) -> Result<(), PolicyError> {
    let p: SubscriptionPolicy = parse(text)?;
    check_request(p.request_policy.as_ref())?;
    p.healthy_retry_policy
        .as_ref()
        .map_or(Ok(()), RetryPolicy::check)
}

/// Checks a topic's DeliveryPolicy.
pub fn check_topic(text: &str) -> Result<(), PolicyError> {
    let p: TopicPolicy = parse(text)?;
    let Some(http) = p.http else { return Ok(()) };
    check_request(http.default_request_policy.as_ref())?;
    http.default_healthy_retry_policy
        .as_ref()
        .map_or(Ok(()), RetryPolicy::check)
}

/// What one HTTP delivery follows: the retry policy and the Content-Type.
#[derive(Clone, Debug, PartialEq)]
pub struct Effective {
    pub retry: RetryPolicy,
    pub content_type: String,
}

/// The policy in force for a subscription, from its topic's and its own
/// DeliveryPolicy attributes (either may be absent or, stored before a check
/// existed, unreadable or out of bounds: then it does not count).
pub fn effective(topic: Option<&str>, sub: Option<&str>) -> Effective {
    let topic: TopicHttp = topic
        .filter(|t| check_topic(t).is_ok())
        .and_then(|t| parse::<TopicPolicy>(t).ok())
        .and_then(|t| t.http)
        .unwrap_or_default();
    let sub: SubscriptionPolicy = sub
        .filter(|s| !topic.disable_subscription_overrides && check_subscription(s).is_ok())
        .and_then(|s| parse(s).ok())
        .unwrap_or_default();
    let retry = sub
        .healthy_retry_policy
        .or(topic.default_healthy_retry_policy)
        .unwrap_or_default();
    let content_type = sub
        .request_policy
        .and_then(|r| r.header_content_type)
        .or_else(|| {
            topic
                .default_request_policy
                .and_then(|r| r.header_content_type)
        })
        .unwrap_or_else(|| "text/plain; charset=UTF-8".into());
    Effective {
        retry,
        content_type,
    }
}

impl Effective {
    /// The subscription's EffectiveDeliveryPolicy attribute, in AWS's shape.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "healthyRetryPolicy": self.retry,
            "requestPolicy": {"headerContentType": self.content_type},
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(p: &RetryPolicy) -> Vec<f64> {
        (1..=p.num_retries)
            .map(|n| p.delay(n).map_or(-1.0, |d| d.as_secs_f64()))
            .collect()
    }

    #[test]
    fn aws_default_is_three_retries_twenty_seconds_apart() {
        let p = RetryPolicy::default();
        assert_eq!(secs(&p), vec![20.0, 20.0, 20.0]);
        assert_eq!(p.delay(4), None);
        assert_eq!(p.delay(0), None);
        assert_eq!(effective(None, None).retry, p);
        assert_eq!(
            effective(None, None).content_type,
            "text/plain; charset=UTF-8"
        );
    }

    #[test]
    fn phases_come_in_aws_order() {
        let p = RetryPolicy {
            min_delay_target: 2,
            max_delay_target: 10,
            num_retries: 8,
            num_no_delay_retries: 1,
            num_min_delay_retries: 1,
            num_max_delay_retries: 1,
            backoff_function: Backoff::Linear,
        };
        assert_eq!(secs(&p), vec![0.0, 2.0, 2.0, 4.0, 6.0, 8.0, 10.0, 10.0]);
    }

    #[test]
    fn backoff_curves_share_their_ends_and_rise() {
        for f in [
            Backoff::Linear,
            Backoff::Arithmetic,
            Backoff::Geometric,
            Backoff::Exponential,
        ] {
            let p = RetryPolicy {
                min_delay_target: 1,
                max_delay_target: 64,
                num_retries: 7,
                backoff_function: f,
                ..RetryPolicy::default()
            };
            let s = secs(&p);
            assert_eq!((s[0], s[6]), (1.0, 64.0), "{f:?}");
            assert!(s.windows(2).all(|w| w[0] <= w[1]), "{f:?} {s:?}");
        }
        let geo = RetryPolicy {
            min_delay_target: 1,
            max_delay_target: 64,
            num_retries: 7,
            backoff_function: Backoff::Geometric,
            ..RetryPolicy::default()
        };
        assert_eq!(secs(&geo), vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]);
    }

    #[test]
    fn subscription_overrides_topic_unless_disabled() {
        let topic = r#"{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":5,"maxDelayTarget":5,"numRetries":1},"defaultRequestPolicy":{"headerContentType":"application/json"}}}"#;
        let sub =
            r#"{"healthyRetryPolicy":{"minDelayTarget":1,"maxDelayTarget":1,"numRetries":2}}"#;
        let e = effective(Some(topic), Some(sub));
        assert_eq!((e.retry.num_retries, e.retry.min_delay_target), (2, 1));
        assert_eq!(e.content_type, "application/json");
        let locked = topic.replace(
            "\"defaultRequestPolicy\"",
            "\"disableSubscriptionOverrides\":true,\"defaultRequestPolicy\"",
        );
        let e = effective(Some(&locked), Some(sub));
        assert_eq!((e.retry.num_retries, e.retry.min_delay_target), (1, 5));
    }

    /// Found by the `sns_request` fuzz target: a stored policy that parses but that
    /// the checks refuse (more phase retries than numRetries) made `delay` subtract
    /// past zero. It does not count, like an unreadable one.
    #[test]
    fn stored_out_of_bounds_policies_do_not_count() {
        let sub = r#"{"healthyRetryPolicy":{"minDelayTarget":5,"maxDelayTarget":1,"numRetries":1,"numNoDelayRetries":2}}"#;
        let topic = format!(
            r#"{{"http":{{"defaultHealthyRetryPolicy":{}}}}}"#,
            &sub[22..sub.len() - 1]
        );
        let e = effective(Some(&topic), Some(sub));
        assert_eq!(e.retry, RetryPolicy::default());
        let odd = RetryPolicy {
            num_retries: 1,
            num_no_delay_retries: 2,
            num_max_delay_retries: u32::MAX,
            ..RetryPolicy::default()
        };
        assert_eq!(odd.delay(1), Some(Duration::ZERO));
    }

    #[test]
    fn bad_policies_are_refused() {
        for bad in [
            "nope",
            r#"{"healthyRetryPolicy":{"minDelayTarget":0,"maxDelayTarget":1,"numRetries":1}}"#,
            r#"{"healthyRetryPolicy":{"minDelayTarget":5,"maxDelayTarget":1,"numRetries":1}}"#,
            r#"{"healthyRetryPolicy":{"minDelayTarget":1,"maxDelayTarget":3601,"numRetries":1}}"#,
            r#"{"healthyRetryPolicy":{"minDelayTarget":1,"maxDelayTarget":1,"numRetries":101}}"#,
            r#"{"healthyRetryPolicy":{"minDelayTarget":1,"maxDelayTarget":1,"numRetries":1,"numNoDelayRetries":2}}"#,
            r#"{"healthyRetryPolicy":{"minDelayTarget":1,"maxDelayTarget":1,"numRetries":1,"backoffFunction":"cubic"}}"#,
        ] {
            assert!(check_subscription(bad).is_err(), "{bad}");
        }
        assert!(
            check_subscription(
                r#"{"healthyRetryPolicy":{"minDelayTarget":1,"maxDelayTarget":1,"numRetries":2}}"#
            )
            .is_ok()
        );
        assert!(check_topic(r#"{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":20,"maxDelayTarget":20,"numRetries":3}}}"#).is_ok());
        assert!(
            check_topic(r#"{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":0}}}"#).is_err()
        );
    }
}
