//! Queue arguments (`x-…`), parsed and validated once at declare time.

use switchboard_api::{BrokerError, Entity, Mismatch, Table, Value};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    #[default]
    DropHead,
    RejectPublish,
    RejectPublishDlx,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueArgs {
    pub message_ttl: Option<u64>,
    pub expires: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    pub delivery_limit: Option<u32>,
    pub max_priority: Option<u8>,
    pub single_active_consumer: bool,
    /// `x-ordering: grouped`: one message group in flight at a time.
    pub grouped: bool,
    /// `x-dedup-window` (ms): drop a message whose dedup id was seen within the window.
    pub dedup_window: Option<u64>,
    /// `x-delivery-delay` (ms): default delay before a message becomes ready.
    pub delivery_delay: Option<u64>,
}

/// Arguments that must match on redeclare (RabbitMQ's "inequivalent arg" check).
pub const EQUIVALENCE_ARGS: &[&str] = &[
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-overflow",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-delivery-limit",
    "x-max-priority",
    "x-single-active-consumer",
    "x-queue-type",
    "x-ordering",
];

fn invalid(name: &str, queue: &str, vhost: &str, why: impl std::fmt::Display) -> BrokerError {
    BrokerError::InvalidArgument {
        queue: queue.to_string(),
        vhost: vhost.to_string(),
        argument: name.to_string(),
        reason: why.to_string(),
    }
}

impl QueueArgs {
    pub fn parse(args: &Table, queue: &str, vhost: &str) -> Result<QueueArgs, BrokerError> {
        let mut a = QueueArgs::default();
        let int = |name: &str, v: &Value, min: i64| -> Result<u64, BrokerError> {
            match v.as_i64() {
                Some(n) if n >= min => Ok(n as u64),
                Some(n) => Err(invalid(
                    name,
                    queue,
                    vhost,
                    format!("{{value_too_small,{n}}}"),
                )),
                None => Err(invalid(
                    name,
                    queue,
                    vhost,
                    format!("{{unacceptable_type,{v:?}}}"),
                )),
            }
        };
        let string = |name: &str, v: &Value| -> Result<String, BrokerError> {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(name, queue, vhost, format!("{{unacceptable_type,{v:?}}}")))
        };
        for (k, v) in args {
            match k.as_str() {
                "x-message-ttl" => a.message_ttl = Some(int(k, v, 0)?),
                "x-expires" => a.expires = Some(int(k, v, 1)?),
                "x-max-length" => a.max_length = Some(int(k, v, 0)?),
                "x-max-length-bytes" => a.max_length_bytes = Some(int(k, v, 0)?),
                "x-delivery-limit" => {
                    a.delivery_limit = Some(int(k, v, 0)?.min(u32::MAX as u64) as u32)
                }
                "x-max-priority" => {
                    let p = int(k, v, 0)?;
                    // RabbitMQ caps priorities at 255; 0 means "not a priority queue".
                    a.max_priority = (p > 0).then_some(p.min(255) as u8);
                }
                "x-overflow" => {
                    a.overflow = match string(k, v)?.as_str() {
                        "drop-head" => Overflow::DropHead,
                        "reject-publish" => Overflow::RejectPublish,
                        "reject-publish-dlx" => Overflow::RejectPublishDlx,
                        other => {
                            return Err(invalid(
                                k,
                                queue,
                                vhost,
                                format!("{{unknown_overflow,{other}}}"),
                            ));
                        }
                    }
                }
                "x-dead-letter-exchange" => a.dead_letter_exchange = Some(string(k, v)?),
                "x-dead-letter-routing-key" => a.dead_letter_routing_key = Some(string(k, v)?),
                "x-single-active-consumer" => {
                    a.single_active_consumer = v
                        .as_bool()
                        .ok_or_else(|| invalid(k, queue, vhost, "{unacceptable_type}"))?
                }
                "x-queue-type" => match string(k, v)?.as_str() {
                    // One engine serves both: durability comes from the journal, not the type.
                    "classic" | "quorum" => {}
                    other => {
                        return Err(invalid(
                            k,
                            queue,
                            vhost,
                            format!("unsupported queue type '{other}'"),
                        ));
                    }
                },
                "x-ordering" => match string(k, v)?.as_str() {
                    "grouped" => a.grouped = true,
                    "plain" => a.grouped = false,
                    other => {
                        return Err(invalid(
                            k,
                            queue,
                            vhost,
                            format!("unknown ordering '{other}'"),
                        ));
                    }
                },
                "x-dedup-window" => a.dedup_window = Some(int(k, v, 0)?),
                "x-delivery-delay" => a.delivery_delay = Some(int(k, v, 0)?),
                // Accepted and ignored, as RabbitMQ ignores unknown arguments.
                _ => {}
            }
        }
        if a.dead_letter_routing_key.is_some() && a.dead_letter_exchange.is_none() {
            return Err(invalid(
                "x-dead-letter-routing-key",
                queue,
                vhost,
                "{routing_key_but_no_dlx_defined}",
            ));
        }
        Ok(a)
    }
}

/// RabbitMQ's "inequivalent arg" check for a redeclare.
pub fn check_equivalent(
    old: &Table,
    new: &Table,
    queue: &str,
    vhost: &str,
) -> Result<(), BrokerError> {
    for name in EQUIVALENCE_ARGS {
        let (a, b) = (old.get(*name), new.get(*name));
        let same = match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => a.matches(b),
            _ => false,
        };
        if !same {
            return Err(BrokerError::Inequivalent(Box::new(Mismatch {
                entity: Entity::Queue,
                name: queue.to_string(),
                vhost: vhost.to_string(),
                argument: name.to_string(),
                received: Some(describe(b)),
                current: Some(describe(a)),
            })));
        }
    }
    Ok(())
}

fn describe(v: Option<&Value>) -> String {
    match v {
        None => "none".into(),
        Some(v) => match (v.as_str(), v.as_i64()) {
            (Some(s), _) => format!("the value '{s}'"),
            (_, Some(n)) => format!("the value '{n}'"),
            _ => format!("the value {v:?}"),
        },
    }
}
