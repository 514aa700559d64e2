//! Regions: a queue belongs to the region of the request that created it, and only
//! requests of that region see it. The region is the SigV4 credential scope's, or
//! `Config::region` for an unsigned request.
//!
//! Queues of every region are core queues of the one SQS vhost, so the core name
//! carries the region: the configured region's queues keep their bare name (what
//! they were before regions existed, so their journal records, definitions and
//! AMQP/STOMP/MQTT names stay as they were), another region's are
//! `<region>/<name>` (a `/` no SQS name can contain, so the two never collide).
//!
//! Queue URLs of the configured region stay `<base>/<account>/<name>`; another
//! region's are `<base>/queue/<region>/<account>/<name>` (LocalStack's path style).
//! A URL naming a region other than the request's names no queue the request can
//! see, as on AWS, where a queue URL belongs to its region's endpoint.

use super::input::Members;
use super::queues::valid_queue_name;
use super::{Ctx, Sqs, SqsError, no_queue};

/// What a region name may look like (`us-east-1`, `eu-central-2`, `us-gov-west-1`):
/// it becomes part of core queue names, so nothing else is let through.
pub fn valid_region(r: &str) -> bool {
    (1..=32).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Sqs {
    /// The region a request acts in.
    pub(crate) fn region<'a>(&'a self, ctx: &'a Ctx) -> &'a str {
        ctx.region.as_deref().unwrap_or(&self.cfg.region)
    }

    /// The core queue of SQS queue `name` in `region`.
    pub(crate) fn core_name(&self, region: &str, name: &str) -> String {
        if region == self.cfg.region {
            name.to_string()
        } else {
            format!("{region}/{name}")
        }
    }

    /// (region, SQS name) of a core queue.
    pub(crate) fn split_core<'a>(&'a self, core: &'a str) -> (&'a str, &'a str) {
        match core.split_once('/') {
            Some((region, name)) => (region, name),
            None => (&self.cfg.region, core),
        }
    }

    /// Whether a core queue is an SQS queue of some region (other protocols' queues
    /// share the vhost, with names SQS does not allow).
    pub(crate) fn is_sqs_queue(&self, core: &str) -> bool {
        let (region, name) = self.split_core(core);
        valid_region(region) && valid_queue_name(name)
    }

    /// The SQS names of `region`'s queues, in core order (sorted).
    pub(crate) fn queues_in(&self, region: &str) -> Vec<String> {
        let default = region == self.cfg.region;
        self.broker
            .list_queues(&self.cfg.vhost)
            .into_iter()
            .filter_map(|core| {
                let name = match core.split_once('/') {
                    Some((r, n)) if !default && r == region => n.to_string(),
                    None if default => core,
                    _ => return None,
                };
                valid_queue_name(&name).then_some(name)
            })
            .collect()
    }

    pub(crate) fn queue_url(&self, ctx: &Ctx, core: &str) -> String {
        let (region, name) = self.split_core(core);
        let account = &self.cfg.account_id;
        if region == self.cfg.region {
            format!("{}/{account}/{name}", ctx.base_url)
        } else {
            format!("{}/queue/{region}/{account}/{name}", ctx.base_url)
        }
    }

    pub(crate) fn queue_arn(&self, core: &str) -> String {
        let (region, name) = self.split_core(core);
        format!("arn:aws:sqs:{region}:{}:{name}", self.cfg.account_id)
    }

    /// The core queue an ARN of this account names (in the ARN's region).
    pub(crate) fn name_from_arn(&self, arn: &str) -> Option<String> {
        let rest = arn.strip_prefix("arn:aws:sqs:")?;
        let mut parts = rest.splitn(3, ':');
        let (region, account, name) = (parts.next()?, parts.next()?, parts.next()?);
        (account == self.cfg.account_id && valid_region(region) && valid_queue_name(name))
            .then(|| self.core_name(region, name))
    }

    /// The queue an action names, by `QueueUrl` or the request path; it must exist.
    pub(crate) fn queue_name(
        &self,
        input: &(impl Members + ?Sized),
        ctx: &Ctx,
    ) -> Result<String, SqsError> {
        let core = self.queue_target(input, ctx)?;
        if !self.broker.queue_exists(&self.cfg.vhost, &core) {
            return Err(no_queue());
        }
        Ok(core)
    }

    /// The core name of the queue an action names, whether or not it exists.
    pub(crate) fn queue_target(
        &self,
        input: &(impl Members + ?Sized),
        ctx: &Ctx,
    ) -> Result<String, SqsError> {
        let url = match input.member_str("QueueUrl")? {
            Some(u) => u,
            None if ctx.path.trim_matches('/').contains('/') => ctx.path.as_str(),
            None => {
                return Err(SqsError::missing_parameter(
                    "The request must contain the parameter QueueUrl.",
                ));
            }
        };
        let (url_region, name) = parse_url(url);
        let region = match (url_region, &ctx.region) {
            (Some(u), Some(signed)) if u != signed => return Err(no_queue()),
            (Some(u), _) => u,
            (None, _) => self.region(ctx),
        };
        if !valid_queue_name(name) {
            return Err(no_queue());
        }
        Ok(self.core_name(region, name))
    }
}

/// (region it names, queue name) of a queue URL or path: `.../queue/<region>/<account>/
/// <name>`, AWS's `https://sqs.<region>.amazonaws.com/<account>/<name>`, or any
/// other `.../<account>/<name>` (no region: the request's). Any account is accepted.
fn parse_url(url: &str) -> (Option<&str>, &str) {
    let url = url.split(['?', '#']).next().unwrap_or("");
    let (host, path) = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/').unwrap_or((rest, "")),
        None => ("", url),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let name = segments.last().copied().unwrap_or("");
    let from_path = match segments.as_slice() {
        [.., "queue", region, _account, _name] => Some(*region),
        _ => None,
    };
    let from_host = host
        .strip_prefix("sqs.")
        .and_then(|h| h.split(':').next())
        .and_then(|h| h.strip_suffix(".amazonaws.com"));
    (from_path.or(from_host).filter(|r| valid_region(r)), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_name_their_region_when_they_can() {
        assert_eq!(
            parse_url("http://127.0.0.1:9324/000000000000/q1"),
            (None, "q1")
        );
        assert_eq!(
            parse_url("http://h:1/queue/eu-west-1/000000000000/q1"),
            (Some("eu-west-1"), "q1")
        );
        assert_eq!(
            parse_url("https://sqs.ap-south-1.amazonaws.com/123456789012/q.fifo"),
            (Some("ap-south-1"), "q.fifo")
        );
        assert_eq!(parse_url("/000000000000/q1/"), (None, "q1"));
        assert_eq!(
            parse_url("/queue/eu-west-1/1/q1"),
            (Some("eu-west-1"), "q1")
        );
        // A region that could not be one is no region (the name then fails alone).
        assert_eq!(parse_url("/queue/EU_WEST/1/q1"), (None, "q1"));
        assert_eq!(parse_url("http://h/q?x=1"), (None, "q"));
        assert_eq!(parse_url(""), (None, ""));
    }

    #[test]
    fn region_names_are_plain() {
        assert!(valid_region("us-east-1"));
        assert!(valid_region("us-gov-west-1"));
        assert!(!valid_region(""));
        assert!(!valid_region("eu/west"));
        assert!(!valid_region("EU-WEST-1"));
        assert!(!valid_region(&"a".repeat(33)));
    }
}
