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

/// A destination RabbitMQ's STOMP plugin would refuse, with its words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationError {
    /// A known kind with the wrong number of parts (`/queue/a/b`, `/exchange/x/k/l`).
    Invalid { kind: &'static str, rest: String },
    /// Not a kind of destination at all.
    Unknown(String),
}

impl DestinationError {
    /// The ERROR frame's `message` header.
    pub fn message(&self) -> &'static str {
        match self {
            DestinationError::Invalid { .. } => "Invalid destination",
            DestinationError::Unknown(_) => "Unknown destination",
        }
    }

    /// The ERROR frame's body.
    pub fn detail(&self) -> String {
        match self {
            DestinationError::Invalid { kind, rest } => {
                format!("'{rest}' is not a valid {kind} destination")
            }
            DestinationError::Unknown(d) => format!(
                "'{d}' is not a valid destination.\nValid destination types are: \
                 /temp-queue, /exchange, /topic, /queue, /amq/queue, /reply-queue/."
            ),
        }
    }
}

/// RabbitMQ's `%2F` in a name stands for a `/` (which would otherwise split it).
fn unescape(part: &str) -> String {
    part.replace("%2F", "/").replace("%2f", "/")
}

/// The one name a kind takes (`/queue/<name>`), or RabbitMQ's refusal.
fn one_name(kind: &'static str, rest: &[&str]) -> Result<String, DestinationError> {
    match rest {
        [name] if !name.is_empty() && name.len() <= 255 => Ok(unescape(name)),
        _ => Err(DestinationError::Invalid {
            kind,
            rest: rest.iter().map(|p| format!("/{p}")).collect(),
        }),
    }
}

impl Destination {
    /// Parses a destination as RabbitMQ's STOMP plugin does: a bare name is a queue;
    /// a kind takes exactly its parts (`/exchange/x` or `/exchange/x/key`, one name
    /// for the others), `%2F` standing for a `/` inside one.
    pub fn parse(d: &str) -> Result<Destination, DestinationError> {
        let parts: Vec<&str> = d.split('/').collect();
        match parts.as_slice() {
            [name] if !name.is_empty() && name.len() <= 255 => {
                Ok(Destination::Queue(unescape(name)))
            }
            ["", "queue", rest @ ..] => one_name("queue", rest).map(Destination::Queue),
            ["", "topic", rest @ ..] => one_name("topic", rest).map(Destination::Topic),
            ["", "amq", "queue", rest @ ..] => {
                one_name("amq/queue", rest).map(Destination::AmqQueue)
            }
            ["", "temp-queue", rest @ ..] => {
                one_name("temp-queue", rest).map(Destination::TempQueue)
            }
            // RabbitMQ's own reply queues are named `amq.gen-…/…`: the rest is the name.
            ["", "reply-queue", rest @ ..] if rest.iter().any(|p| !p.is_empty()) => {
                Ok(Destination::ReplyQueue(rest.join("/")))
            }
            ["", "exchange", rest @ ..] => match rest {
                [name] | [name, ""] if !name.is_empty() => Ok(Destination::Exchange {
                    name: unescape(name),
                    key: String::new(),
                }),
                [name, key] if !name.is_empty() => Ok(Destination::Exchange {
                    name: unescape(name),
                    key: unescape(key),
                }),
                _ => Err(DestinationError::Invalid {
                    kind: "exchange",
                    rest: rest.iter().map(|p| format!("/{p}")).collect(),
                }),
            },
            _ => Err(DestinationError::Unknown(d.to_string())),
        }
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
        Destination::message_parts(exchange, key).concat()
    }

    /// [`Destination::of_message`] in parts, to be written without a `String`.
    pub fn message_parts<'a>(exchange: &'a str, key: &'a str) -> [&'a str; 4] {
        match exchange {
            "" => ["/queue/", key, "", ""],
            "amq.topic" => ["/topic/", key, "", ""],
            x if key.is_empty() => ["/exchange/", x, "", ""],
            x => ["/exchange/", x, "/", key],
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
            Destination::parse("/exchange/amq.direct/k%2Fl"),
            Ok(Destination::Exchange {
                name: "amq.direct".into(),
                key: "k/l".into()
            })
        );
        assert_eq!(
            Destination::parse("plain"),
            Ok(Destination::Queue("plain".into()))
        );
        let e = Destination::parse("/queue/a/b").unwrap_err();
        assert_eq!(
            (e.message(), e.detail().as_str()),
            (
                "Invalid destination",
                "'/a/b' is not a valid queue destination"
            )
        );
        assert!(Destination::parse("/topic/a/b").is_err());
        assert!(Destination::parse("/exchange/x/k/extra").is_err());
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
        assert_eq!(
            Destination::of_message("amq.fanout", ""),
            "/exchange/amq.fanout"
        );
    }
}
