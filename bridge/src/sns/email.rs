//! `email` and `email-json` subscriptions: the HTTP subscription's life
//! (`confirm.rs`) and delivery (`delivery.rs`) with SMTP as the transport. Subscribe
//! mails a confirmation whose link is the same SubscribeURL an HTTP endpoint is
//! sent; once confirmed, every message waits in the subscription's own durable
//! queue and a worker mails it through `sns.smtp_relay`, retried on AWS's schedule
//! for mail. `email` mails the message text with an unsubscribe link below it;
//! `email-json` mails the signed JSON document an HTTP endpoint would get.

use super::meta::{SubMeta, TopicMeta};
use super::notification::{self, MESSAGE_ID_HEADER, SUBJECT_HEADER};
use super::outbound;
use super::policy::{Backoff, RetryPolicy};
use super::signing::SignatureVersion;
use super::smtp::{self, Mail, SmtpClient, SmtpError};
use super::{Sns, SnsError, mail};
use bytes::Bytes;
use switchboard_api::{Message, Value};

pub const CONFIRMATION_SUBJECT: &str = "AWS Notification - Subscription Confirmation";
/// A notification's subject when the publisher gave none and the topic has no
/// DisplayName.
const DEFAULT_SUBJECT: &str = "AWS Notification Message";
/// The sender's name when the topic has no DisplayName.
const DEFAULT_FROM_NAME: &str = "AWS Notifications";

/// AWS's retry policy for customer-managed endpoints (SMTP among them), which no
/// DeliveryPolicy changes: 2 retries 10 s apart, 10 backing off from 10 s to
/// 10 min, then every 10 min — 50 attempts over about 6 hours.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        min_delay_target: 10,
        max_delay_target: 600,
        num_retries: 49,
        num_no_delay_retries: 0,
        num_min_delay_retries: 2,
        num_max_delay_retries: 37,
        backoff_function: Backoff::Exponential,
    }
}

/// Attributes AWS takes for other protocols only.
pub fn check_attribute(protocol: &str, name: &str) -> Result<(), SnsError> {
    match name {
        "RawMessageDelivery" => Err(SnsError::bad(format!(
            "Attributes Reason: RawMessageDelivery is not supported for the {protocol} protocol"
        ))),
        "DeliveryPolicy" => Err(SnsError::bad(format!(
            "Attributes Reason: DeliveryPolicy is for http and https subscriptions, not {protocol}"
        ))),
        _ => Ok(()),
    }
}

impl Sns {
    /// The relay, or why there is none; checked at Subscribe so that nobody waits
    /// for a confirmation mail that cannot be sent.
    pub(super) fn smtp(&self) -> Result<&SmtpClient, SmtpError> {
        self.smtp.as_ref().ok_or(SmtpError::NoRelay)
    }

    pub(super) fn check_email_endpoint(&self, endpoint: &str) -> Result<(), SnsError> {
        if self.smtp.is_none() {
            return Err(SnsError::bad(
                "Protocol: email and email-json subscriptions need an SMTP relay, and this \
                 broker has none: set sns.smtp_relay (host:port) in its configuration",
            ));
        }
        if !smtp::valid_address(endpoint) {
            return Err(SnsError::bad("Email address"));
        }
        Ok(())
    }

    /// One mail to the subscriber, from the configured sender under the topic's
    /// DisplayName.
    fn mail_to(
        &self,
        sub: &SubMeta,
        topic: &TopicMeta,
        subject: &str,
        id: &str,
        body: &str,
    ) -> Mail {
        let from = self.cfg.sns.smtp_from.as_str();
        let data = mail::render(&mail::Letter {
            from_name: display_name(topic).unwrap_or(DEFAULT_FROM_NAME),
            from,
            to: &sub.endpoint,
            subject,
            id,
            date_ms: switchboard_api::wall_ms() as i64,
            body,
        });
        Mail {
            from: from.to_string(),
            to: sub.endpoint.clone(),
            data,
        }
    }

    /// The SubscriptionConfirmation as mail: for `email` a short text with the
    /// SubscribeURL, for `email-json` the signed document itself.
    pub(super) async fn confirmation_mail(&self, sub: &SubMeta) -> Result<Mail, SnsError> {
        let topic = self.topic(&sub.topic).unwrap_or_default();
        let (doc, message_id) = self
            .confirmation_doc(sub, "SubscriptionConfirmation")
            .await?;
        let body = if sub.protocol == "email-json" {
            serde_json::Value::Object(doc).to_string()
        } else {
            let url = doc
                .get("SubscribeURL")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            format!(
                "You have chosen to subscribe to the topic:\n{}\n\n\
                 To confirm this subscription, click or visit the link below \
                 (If this was in error no action is necessary):\n{url}\n\n\
                 Please do not reply directly to this email.\n",
                self.topic_arn(&sub.topic)
            )
        };
        Ok(self.mail_to(sub, &topic, CONFIRMATION_SUBJECT, &message_id, &body))
    }

    /// The mail for one published message, and the text to dead-letter if it
    /// cannot be sent.
    pub(super) async fn notification_mail(
        &self,
        sub: &SubMeta,
        topic: &TopicMeta,
        m: &Message,
        version: SignatureVersion,
    ) -> Result<(Mail, Bytes), SnsError> {
        let h = m.properties.headers.as_ref();
        let text = |k: &str| h.and_then(|h| h.get(k)).and_then(Value::as_str);
        let message_id = text(MESSAGE_ID_HEADER).unwrap_or("").to_string();
        let subject = text(SUBJECT_HEADER)
            .or_else(|| display_name(topic))
            .unwrap_or(DEFAULT_SUBJECT)
            .to_string();
        // MessageStructure=json: its `email` or `email-json` text, else `default`.
        let message = notification::text_for(m, &sub.protocol);
        let sub_arn = self.sub_arn(&sub.topic, &sub.id);
        let base = self.delivery_base_url(sub);
        let body = if sub.protocol == "email-json" {
            let signer = self.signer().await?;
            let mut doc = notification::notification_doc(&sub_arn, m, &message, &base);
            signer.sign_doc(&mut doc, version, &base);
            serde_json::Value::Object(doc).to_string()
        } else {
            // AWS's footer, with this broker's UnsubscribeURL (an unsigned GET).
            format!(
                "{message}\n\n--\nIf you wish to stop receiving notifications from this topic, \
                 please click or visit the link below to unsubscribe:\n{}\n\n\
                 Please do not reply directly to this email.\n",
                unsubscribe_url(&base, &sub_arn)
            )
        };
        let mail = self.mail_to(sub, topic, &subject, &message_id, &body);
        Ok((mail, Bytes::from(body)))
    }
}

fn display_name(topic: &TopicMeta) -> Option<&str> {
    topic
        .attributes
        .get("DisplayName")
        .map(String::as_str)
        .filter(|d| !d.trim().is_empty())
}

/// The same URL the JSON documents carry as UnsubscribeURL.
fn unsubscribe_url(base: &str, sub_arn: &str) -> String {
    format!("{base}/?Action=Unsubscribe&SubscriptionArn={sub_arn}")
}

/// `outbound` checks URLs for http(s); this is its counterpart for the Subscribe
/// of any protocol delivered by a worker.
pub fn valid_endpoint(protocol: &str, endpoint: &str) -> bool {
    match protocol {
        "http" | "https" => outbound::valid_url(endpoint, protocol),
        "email" | "email-json" => smtp::valid_address(endpoint),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_retries_follow_aws_schedule() {
        let p = retry_policy();
        let delays: Vec<u64> = (1..=50)
            .map_while(|n| p.delay(n))
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(delays.len(), 49, "50 attempts in all");
        assert_eq!(&delays[..3], &[10, 10, 10]);
        assert_eq!(delays[11], 600);
        assert!(delays[2..12].windows(2).all(|w| w[0] <= w[1]));
        let total: u64 = delays.iter().sum();
        assert!((5 * 3600..7 * 3600).contains(&total), "{total}");
    }

    #[test]
    fn raw_and_delivery_policies_are_not_for_mail() {
        assert!(check_attribute("email", "RawMessageDelivery").is_err());
        assert!(check_attribute("email-json", "DeliveryPolicy").is_err());
        assert!(check_attribute("email", "FilterPolicy").is_ok());
        assert!(valid_endpoint("email", "a@example.com"));
        assert!(!valid_endpoint("email", "http://x"));
        assert!(valid_endpoint("https", "https://h/x"));
        assert!(!valid_endpoint("https", "http://h/x"));
    }
}
