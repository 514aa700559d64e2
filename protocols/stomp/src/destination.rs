//! STOMP destinations, both dialects (RabbitMQ's and ActiveMQ's), onto the core:
//!
//! | destination | SEND | SUBSCRIBE |
//! |---|---|---|
//! | `/queue/q` | declare `q` (durable), publish via the default exchange | declare `q`, consume |
//! | `/topic/k` | publish to `amq.topic` with key `k` | own queue bound to `amq.topic` with `k` (durable and named for a durable subscription) |
//! | `/exchange/e/k` | publish to `e` with key `k` | own queue bound to `e` with `k` |
//! | `/amq/queue/q` | publish via the default exchange (no declare) | consume the existing `q` |
//! | `/reply-queue/q` | publish via the default exchange | — |
//! | `/temp-queue/x` | only as `reply-to`: the connection's private queue | — |
//!
//! ActiveMQ topic wildcards in subscriptions (`>` for the rest) are accepted as
//! AMQP's (`#`); `*` is the same in both.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Queue(String),
    Topic(String),
    Exchange { name: String, key: String },
    AmqQueue(String),
    ReplyQueue(String),
    TempQueue(String),
}

fn non_empty(s: &str, what: &str) -> Result<String, String> {
    if s.is_empty() {
        Err(format!("{what} name missing"))
    } else if s.len() > 255 {
        Err(format!("{what} name longer than 255 bytes"))
    } else {
        Ok(s.to_string())
    }
}

impl Destination {
    pub fn parse(d: &str) -> Result<Destination, String> {
        let bad = || {
            format!(
                "'{d}' is not a valid destination (use /queue/, /topic/, /exchange/, /amq/queue/, \
                 /temp-queue/ or /reply-queue/)"
            )
        };
        if let Some(q) = d.strip_prefix("/queue/") {
            return Ok(Destination::Queue(non_empty(q, "queue")?));
        }
        if let Some(t) = d.strip_prefix("/topic/") {
            return Ok(Destination::Topic(non_empty(t, "topic")?));
        }
        if let Some(rest) = d.strip_prefix("/exchange/") {
            let (name, key) = rest.split_once('/').unwrap_or((rest, ""));
            return Ok(Destination::Exchange {
                name: non_empty(name, "exchange")?,
                key: key.to_string(),
            });
        }
        if let Some(q) = d.strip_prefix("/amq/queue/") {
            return Ok(Destination::AmqQueue(non_empty(q, "queue")?));
        }
        if let Some(q) = d.strip_prefix("/reply-queue/") {
            return Ok(Destination::ReplyQueue(non_empty(q, "queue")?));
        }
        if let Some(q) = d.strip_prefix("/temp-queue/") {
            return Ok(Destination::TempQueue(non_empty(q, "temporary queue")?));
        }
        Err(bad())
    }

    /// Exchange and routing key a SEND to this destination publishes with.
    pub fn publish_target(&self) -> Option<(&str, &str)> {
        match self {
            Destination::Queue(q) | Destination::AmqQueue(q) | Destination::ReplyQueue(q) => {
                Some(("", q))
            }
            Destination::Topic(k) => Some(("amq.topic", k)),
            Destination::Exchange { name, key } => Some((name, key)),
            Destination::TempQueue(_) => None,
        }
    }

    /// The `destination` header of a MESSAGE for a message published to
    /// (`exchange`, `key`): where a STOMP client would have sent it.
    pub fn of_message(exchange: &str, key: &str) -> String {
        match exchange {
            "" => format!("/queue/{key}"),
            "amq.topic" => format!("/topic/{key}"),
            x => format!("/exchange/{x}/{key}"),
        }
    }
}

/// A subscription pattern in AMQP form (ActiveMQ's `>` is AMQP's `#`).
pub fn binding_key(pattern: &str) -> String {
    pattern
        .split('.')
        .map(|w| if w == ">" { "#" } else { w })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_both_dialects() {
        assert_eq!(
            Destination::parse("/queue/a.b"),
            Ok(Destination::Queue("a.b".into()))
        );
        assert_eq!(
            Destination::parse("/topic/x.*"),
            Ok(Destination::Topic("x.*".into()))
        );
        assert_eq!(
            Destination::parse("/exchange/amq.direct/k/l"),
            Ok(Destination::Exchange {
                name: "amq.direct".into(),
                key: "k/l".into()
            })
        );
        assert_eq!(
            Destination::parse("/exchange/logs"),
            Ok(Destination::Exchange {
                name: "logs".into(),
                key: "".into()
            })
        );
        assert!(Destination::parse("/queue/").is_err());
        assert!(Destination::parse("queue/a").is_err());
        assert!(Destination::parse("/bogus/a").is_err());
        assert_eq!(binding_key("a.>"), "a.#");
        assert_eq!(Destination::of_message("", "q"), "/queue/q");
        assert_eq!(Destination::of_message("amq.topic", "a.b"), "/topic/a.b");
        assert_eq!(Destination::of_message("logs", "k"), "/exchange/logs/k");
    }
}
