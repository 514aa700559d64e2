//! Bytes ⇄ packets. Wraps rmqtt-codec and presents every protocol version as MQTT 5
//! packets, so the session is written once: a 3.1/3.1.1 packet is decoded into its
//! 5.0 equivalent (no properties, default reason codes) and a 5.0 packet is encoded
//! back to 3.1.1 for older clients (reason codes folded into what 3.1.1 has).
//!
//! The first packet is checked here before rmqtt sees it: it must be CONNECT, its
//! size is bounded (a small pre-authentication limit), and an unknown protocol level
//! is reported as such so the caller can answer CONNACK 0x01 as 3.1.1 requires.

use bytes::BytesMut;
use rmqtt_codec::types::QoS;
use rmqtt_codec::{v3, v5};
use std::num::NonZeroU16;
use tokio_util::codec::{Decoder, Encoder};

pub use rmqtt_codec::error::{DecodeError, EncodeError};
pub use v5::Packet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V31,
    V311,
    V5,
}

impl Version {
    pub fn is_v5(self) -> bool {
        self == Version::V5
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("malformed packet: {0}")]
    Decode(#[from] DecodeError),
    #[error("first packet is not CONNECT")]
    NotConnect,
    #[error("unsupported protocol '{name}' level {level}")]
    UnsupportedProtocol { name: String, level: u8 },
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    TooLarge { size: u32, max: u32 },
}

enum Inner {
    Handshake,
    V3(v3::Codec),
    V5(v5::Codec),
}

pub struct Codec {
    inner: Inner,
    version: Option<Version>,
    max_in: u32,
}

/// Length of the fixed header and the remaining length, if enough bytes are there.
fn fixed_header(src: &[u8]) -> Result<Option<(usize, u32)>, DecodeError> {
    let mut len: u32 = 0;
    for i in 0..4 {
        let Some(&b) = src.get(1 + i) else {
            return Ok(None);
        };
        len |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((2 + i, len)));
        }
    }
    Err(DecodeError::InvalidLength)
}

impl Codec {
    /// `max_connect`: the largest CONNECT accepted before the client is authenticated.
    pub fn new(max_connect: u32) -> Codec {
        Codec {
            inner: Inner::Handshake,
            version: None,
            max_in: max_connect,
        }
    }

    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// Largest packet accepted from the client from now on.
    pub fn set_max_inbound(&mut self, max: u32) {
        self.max_in = max;
        match &mut self.inner {
            Inner::V3(c) => c.set_max_size(max),
            Inner::V5(c) => c.set_max_inbound_size(max),
            Inner::Handshake => {}
        }
    }

    /// Largest packet the client accepts (MQTT 5 Maximum Packet Size).
    pub fn set_max_outbound(&mut self, max: u32) {
        if let Inner::V5(c) = &mut self.inner {
            c.set_max_outbound_size(max);
        }
    }

    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        if let Inner::Handshake = self.inner {
            let Some((hdr, len)) = fixed_header(src)? else {
                return Ok(None);
            };
            if src[0] != 0x10 {
                return Err(CodecError::NotConnect);
            }
            if len > self.max_in {
                return Err(CodecError::TooLarge {
                    size: len,
                    max: self.max_in,
                });
            }
            if src.len() < hdr + len as usize {
                return Ok(None);
            }
            let body = &src[hdr..hdr + len as usize];
            let name_len = match body {
                [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
                _ => return Err(DecodeError::MalformedPacket.into()),
            };
            let (Some(name), Some(&level)) = (body.get(2..2 + name_len), body.get(2 + name_len))
            else {
                return Err(DecodeError::MalformedPacket.into());
            };
            let version = match (name, level) {
                (b"MQIsdp", 3) => Version::V31,
                (b"MQTT", 4) => Version::V311,
                (b"MQTT", 5) => Version::V5,
                _ => {
                    return Err(CodecError::UnsupportedProtocol {
                        name: String::from_utf8_lossy(name).into_owned(),
                        level,
                    });
                }
            };
            self.version = Some(version);
            self.inner = if version.is_v5() {
                Inner::V5(v5::Codec::new(self.max_in, 0))
            } else {
                Inner::V3(v3::Codec::new(self.max_in))
            };
        }
        match &mut self.inner {
            Inner::V5(c) => Ok(c.decode(src)?.map(|(p, _)| p)),
            Inner::V3(c) => match c.decode(src)? {
                Some((p, _)) => Ok(Some(v3_to_v5(p)?)),
                None => Ok(None),
            },
            Inner::Handshake => Ok(None),
        }
    }

    /// Encodes for the negotiated version. Packets 3.1.1 has no equivalent for
    /// (DISCONNECT from the server, AUTH) are skipped there.
    pub fn encode(&mut self, p: Packet, dst: &mut BytesMut) -> Result<(), EncodeError> {
        match &mut self.inner {
            Inner::V5(c) => c.encode(p, dst),
            Inner::V3(c) => match v5_to_v3(p) {
                Some(p) => c.encode(p, dst),
                None => Ok(()),
            },
            Inner::Handshake => Err(EncodeError::UnsupportedVersion),
        }
    }
}

/// The CONNACK refusing an unknown protocol level, in 3.1.1's format (the only one
/// a client of unknown version is sure to read).
pub const CONNACK_UNACCEPTABLE_PROTOCOL: [u8; 4] = [0x20, 0x02, 0x00, 0x01];

fn v3_to_v5(p: v3::Packet) -> Result<Packet, DecodeError> {
    use v3::Packet as P;
    Ok(match p {
        P::Connect(c) => {
            let c = *c;
            Packet::Connect(Box::new(v5::Connect {
                clean_start: c.clean_session,
                keep_alive: c.keep_alive,
                // 3.1.1: a clean session ends with the connection; any other lasts.
                session_expiry_interval_secs: if c.clean_session { 0 } else { u32::MAX },
                last_will: c.last_will.map(|w| v5::LastWill {
                    qos: w.qos,
                    retain: w.retain,
                    topic: w.topic,
                    message: w.message,
                    will_delay_interval_sec: None,
                    correlation_data: None,
                    message_expiry_interval: None,
                    content_type: None,
                    user_properties: Vec::new(),
                    is_utf8_payload: None,
                    response_topic: None,
                }),
                client_id: c.client_id,
                username: c.username,
                password: c.password,
                ..Default::default()
            }))
        }
        P::Publish(p) => Packet::Publish(p),
        P::PublishAck { packet_id } => Packet::PublishAck(v5::PublishAck {
            packet_id,
            ..Default::default()
        }),
        P::PublishReceived { packet_id } => Packet::PublishReceived(v5::PublishAck {
            packet_id,
            ..Default::default()
        }),
        P::PublishRelease { packet_id } => Packet::PublishRelease(v5::PublishAck2 {
            packet_id,
            ..Default::default()
        }),
        P::PublishComplete { packet_id } => Packet::PublishComplete(v5::PublishAck2 {
            packet_id,
            ..Default::default()
        }),
        P::Subscribe {
            packet_id,
            topic_filters,
        } => Packet::Subscribe(v5::Subscribe {
            packet_id,
            id: None,
            user_properties: Vec::new(),
            topic_filters: topic_filters
                .into_iter()
                .map(|(f, qos)| {
                    (
                        f,
                        v5::SubscriptionOptions {
                            qos,
                            no_local: false,
                            retain_as_published: false,
                            retain_handling: v5::RetainHandling::AtSubscribe,
                        },
                    )
                })
                .collect(),
        }),
        P::Unsubscribe {
            packet_id,
            topic_filters,
        } => Packet::Unsubscribe(v5::Unsubscribe {
            packet_id,
            user_properties: Vec::new(),
            topic_filters,
        }),
        P::PingRequest => Packet::PingRequest,
        P::Disconnect => Packet::Disconnect(v5::Disconnect::default()),
        // Server-to-client packets coming from a client: a protocol violation.
        P::ConnectAck(_) | P::SubscribeAck { .. } | P::UnsubscribeAck { .. } | P::PingResponse => {
            return Err(DecodeError::UnsupportedPacketType);
        }
    })
}

fn v5_to_v3(p: Packet) -> Option<v3::Packet> {
    use v3::Packet as P;
    Some(match p {
        Packet::ConnectAck(a) => P::ConnectAck(v3::ConnectAck {
            session_present: a.session_present,
            return_code: connack_v3(a.reason_code),
        }),
        Packet::Publish(mut p) => {
            p.properties = None;
            P::Publish(p)
        }
        Packet::PublishAck(a) => P::PublishAck {
            packet_id: a.packet_id,
        },
        Packet::PublishReceived(a) => P::PublishReceived {
            packet_id: a.packet_id,
        },
        Packet::PublishRelease(a) => P::PublishRelease {
            packet_id: a.packet_id,
        },
        Packet::PublishComplete(a) => P::PublishComplete {
            packet_id: a.packet_id,
        },
        Packet::SubscribeAck(a) => P::SubscribeAck {
            packet_id: a.packet_id,
            status: a
                .status
                .into_iter()
                .map(|s| match s {
                    v5::SubscribeAckReason::GrantedQos0 => {
                        v3::SubscribeReturnCode::Success(QoS::AtMostOnce)
                    }
                    v5::SubscribeAckReason::GrantedQos1 => {
                        v3::SubscribeReturnCode::Success(QoS::AtLeastOnce)
                    }
                    v5::SubscribeAckReason::GrantedQos2 => {
                        v3::SubscribeReturnCode::Success(QoS::ExactlyOnce)
                    }
                    _ => v3::SubscribeReturnCode::Failure,
                })
                .collect(),
        },
        Packet::UnsubscribeAck(a) => P::UnsubscribeAck {
            packet_id: a.packet_id,
        },
        Packet::PingResponse => P::PingResponse,
        _ => return None,
    })
}

fn connack_v3(r: v5::ConnectAckReason) -> v3::ConnectAckReason {
    use v3::ConnectAckReason as O;
    use v5::ConnectAckReason as N;
    match r {
        N::Success => O::ConnectionAccepted,
        N::UnsupportedProtocolVersion => O::UnacceptableProtocolVersion,
        N::ClientIdentifierNotValid => O::IdentifierRejected,
        N::BadUserNameOrPassword => O::BadUserNameOrPassword,
        N::NotAuthorized | N::Banned => O::NotAuthorized,
        _ => O::ServiceUnavailable,
    }
}

/// Packet ids run 1..=65535.
pub fn packet_id(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Vec<Packet>, CodecError> {
        let mut c = Codec::new(65536);
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(p) = c.decode(&mut buf)? {
            out.push(p);
        }
        Ok(out)
    }

    #[test]
    fn v311_connect_becomes_v5_with_session_expiry() {
        let p = decode_all(b"\x10\x10\x00\x04MQTT\x04\x00\x00\x3c\x00\x04abcd").unwrap();
        let Packet::Connect(c) = &p[0] else {
            panic!("{p:?}")
        };
        assert_eq!(&c.client_id[..], "abcd");
        assert!(!c.clean_start);
        assert_eq!(c.session_expiry_interval_secs, u32::MAX);
        assert_eq!(c.keep_alive, 60);
    }

    #[test]
    fn v31_is_recognised() {
        let mut c = Codec::new(65536);
        let mut buf = BytesMut::from(&b"\x10\x12\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x04abcd"[..]);
        assert!(matches!(c.decode(&mut buf), Ok(Some(Packet::Connect(_)))));
        assert_eq!(c.version(), Some(Version::V31));
    }

    #[test]
    fn first_packet_rules() {
        assert!(matches!(
            decode_all(b"\xc0\x00"),
            Err(CodecError::NotConnect)
        ));
        assert!(matches!(
            decode_all(b"\x10\x0c\x00\x04MQTT\x06\x02\x00\x3c\x00\x00"),
            Err(CodecError::UnsupportedProtocol { level: 6, .. })
        ));
        assert!(matches!(
            decode_all(b"\x10\xff\xff\x7f"),
            Err(CodecError::TooLarge { .. })
        ));
        assert!(matches!(
            decode_all(b"\x10\xff\xff\xff\xff\x01"),
            Err(CodecError::Decode(_))
        ));
        // Partial input is not an error.
        assert!(decode_all(b"\x10\x10\x00\x04MQ").unwrap().is_empty());
    }

    #[test]
    fn qos3_publish_is_malformed() {
        let mut c = Codec::new(65536);
        let mut buf = BytesMut::from(&b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"[..]);
        c.decode(&mut buf).unwrap();
        let mut buf = BytesMut::from(&b"\x36\x05\x00\x01a\x00\x01"[..]);
        assert!(c.decode(&mut buf).is_err());
    }
}
