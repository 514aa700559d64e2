//! AMQP 0-9-1 frames ⇄ bytes. Pure functions, no I/O.
//!
//! Decoding checks the 7-byte frame header (type, size against the negotiated
//! `frame_max`) before anything is parsed: `amq-protocol` trusts the size field, so a
//! hostile length must be refused here, before we wait for or parse that many bytes.
//! Method and content-header payloads are then parsed by `amq-protocol`; body
//! payloads are sliced out of the read buffer without copying.

use amq_protocol::frame::AMQPFrame;
use amq_protocol::frame::{WriteContext, gen_frame};
use amq_protocol::protocol::{AMQPClass, BasicProperties, basic::parse_properties, parse_class};
use bytes::{Buf, BufMut, Bytes, BytesMut};

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;
/// Bytes of framing around a payload: type, channel, size, end octet.
pub const FRAME_OVERHEAD: usize = 8;
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
/// The smallest frame_max a peer may negotiate (spec: frame-min-size).
pub const FRAME_MIN_SIZE: u32 = 4096;

#[derive(Debug)]
pub enum Frame {
    Method(u16, Box<AMQPClass>),
    Header {
        channel: u16,
        class_id: u16,
        body_size: u64,
        properties: Box<BasicProperties>,
    },
    Body(u16, Bytes),
    Heartbeat(u16),
}

impl Frame {
    pub fn channel(&self) -> u16 {
        match self {
            Frame::Method(c, _) | Frame::Body(c, _) | Frame::Heartbeat(c) => *c,
            Frame::Header { channel, .. } => *channel,
        }
    }
}

/// Why a byte stream is not valid AMQP. Each maps to a connection-level reply code.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("FRAME_ERROR - type {0} is not a valid frame type")]
    UnknownType(u8),
    #[error("FRAME_ERROR - frame size {size} exceeds frame_max {max}")]
    TooLarge { size: u32, max: u32 },
    #[error("FRAME_ERROR - frame end octet was {0:#04x}, expected 0xce")]
    BadEnd(u8),
    #[error("FRAME_ERROR - cannot decode method frame on channel {0}")]
    BadMethod(u16),
    #[error("FRAME_ERROR - malformed content header frame on channel {0}")]
    BadHeader(u16),
    #[error("FRAME_ERROR - heartbeat frame with a {0}-byte payload")]
    HeartbeatPayload(u32),
    #[error("NOT_IMPLEMENTED - unknown method {0}.{1}")]
    UnknownMethod(u16, u16),
    #[error("NOT_IMPLEMENTED - prefetch_size!=0 ({0})")]
    PrefetchSize(u32),
}

impl FrameError {
    /// AMQP reply code for this error.
    pub fn reply_code(&self) -> u16 {
        match self {
            FrameError::UnknownMethod(..) | FrameError::PrefetchSize(_) => 540,
            _ => 501,
        }
    }

    /// The (class, method) the error is about, for connection.close.
    pub fn ids(&self) -> (u16, u16) {
        match self {
            FrameError::UnknownMethod(c, m) => (*c, *m),
            FrameError::PrefetchSize(_) => (60, 10),
            _ => (0, 0),
        }
    }
}

/// Decodes one frame from the front of `buf`, consuming it. `Ok(None)` means more
/// bytes are needed. `frame_max` bounds the whole frame (header, payload and end).
pub fn decode(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let kind = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]);
    if !matches!(
        kind,
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
    ) {
        return Err(FrameError::UnknownType(kind));
    }
    if kind == FRAME_HEARTBEAT && size != 0 {
        return Err(FrameError::HeartbeatPayload(size));
    }
    if size as u64 + FRAME_OVERHEAD as u64 > frame_max as u64 {
        return Err(FrameError::TooLarge {
            size,
            max: frame_max,
        });
    }
    let total = size as usize + FRAME_OVERHEAD;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let end = buf[total - 1];
    if end != FRAME_END {
        return Err(FrameError::BadEnd(end));
    }
    buf.advance(7);
    let payload = buf.split_to(size as usize).freeze();
    buf.advance(1);
    Ok(Some(match kind {
        FRAME_METHOD => decode_method(channel, &payload)?,
        FRAME_HEADER => decode_header(channel, &payload)?,
        FRAME_BODY => Frame::Body(channel, payload),
        _ => Frame::Heartbeat(channel),
    }))
}

/// True if `buf` starts with a basic.publish method frame (peeked, not consumed):
/// during a resource alarm the connection stops right before it.
pub fn starts_with_publish(buf: &[u8]) -> bool {
    buf.len() >= 11 && buf[0] == FRAME_METHOD && buf[7..11] == [0, 60, 0, 40]
}

/// What a byte string holds: how many whole frames, and whether it ends in an error
/// (`Some`) or in an incomplete frame / nothing (`None`). For fuzzing and corpus replay.
pub fn decode_all(data: &[u8], frame_max: u32) -> (usize, Option<FrameError>) {
    let mut buf = BytesMut::from(data);
    let mut n = 0;
    loop {
        match decode(&mut buf, frame_max) {
            Ok(Some(_)) => n += 1,
            Ok(None) => return (n, None),
            Err(e) => return (n, Some(e)),
        }
    }
}

fn decode_method(channel: u16, p: &[u8]) -> Result<Frame, FrameError> {
    if p.len() < 4 {
        return Err(FrameError::BadMethod(channel));
    }
    let (class, method) = (
        u16::from_be_bytes([p[0], p[1]]),
        u16::from_be_bytes([p[2], p[3]]),
    );
    if !known_method(class, method) {
        return Err(FrameError::UnknownMethod(class, method));
    }
    // amq-protocol drops basic.qos prefetch-size; RabbitMQ refuses a non-zero one.
    if (class, method) == (60, 10) && p.len() >= 8 {
        let size = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        if size != 0 {
            return Err(FrameError::PrefetchSize(size));
        }
    }
    match parse_class(p) {
        Ok((&[], class)) => Ok(Frame::Method(channel, Box::new(class))),
        _ => Err(FrameError::BadMethod(channel)),
    }
}

/// The (class, method) pairs of AMQP 0-9-1 (with RabbitMQ's extensions).
fn known_method(class: u16, method: u16) -> bool {
    let methods: &[u16] = match class {
        10 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71],
        20 => &[10, 11, 20, 21, 40, 41],
        30 => &[10, 11],
        40 => &[10, 11, 20, 21, 30, 31, 40, 51],
        50 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51],
        60 => &[
            10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120,
        ],
        85 => &[10, 11],
        90 => &[10, 11, 20, 21, 30, 31],
        _ => &[],
    };
    methods.contains(&method)
}

fn decode_header(channel: u16, p: &[u8]) -> Result<Frame, FrameError> {
    if p.len() < 14 {
        return Err(FrameError::BadHeader(channel));
    }
    let class_id = u16::from_be_bytes([p[0], p[1]]);
    let body_size = u64::from_be_bytes([p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]]);
    match parse_properties(&p[12..]) {
        Ok((&[], properties)) => Ok(Frame::Header {
            channel,
            class_id,
            body_size,
            properties: Box::new(properties),
        }),
        _ => Err(FrameError::BadHeader(channel)),
    }
}

/// Appends a method frame.
pub fn encode_method(out: &mut Vec<u8>, channel: u16, method: AMQPClass) {
    encode_frame(out, &AMQPFrame::Method(channel, method));
}

fn encode_frame(out: &mut Vec<u8>, frame: &AMQPFrame) {
    // Generated into a scratch buffer: `gen_frame` consumes its writer and gives
    // nothing back on failure, and a failure must not lose what `out` already holds.
    // It only fails on values out of range (a short string over 255 bytes), which
    // `convert::short` prevents; such a frame would be dropped, not half-written.
    if let Ok(ctx) = gen_frame(frame)(WriteContext::from(Vec::with_capacity(128))) {
        out.extend_from_slice(&ctx.into_inner().0);
    }
}

/// Appends a content header and the body frames, split to fit `frame_max`.
pub fn encode_content(
    out: &mut Vec<u8>,
    channel: u16,
    properties: &BasicProperties,
    body: &[u8],
    frame_max: u32,
) {
    encode_frame(
        out,
        &AMQPFrame::Header(
            channel,
            amq_protocol::frame::AMQPContentHeader {
                class_id: 60,
                body_size: body.len() as u64,
                properties: properties.clone(),
            },
        ),
    );
    let chunk = (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1);
    for part in body.chunks(chunk) {
        out.reserve(part.len() + FRAME_OVERHEAD);
        out.put_u8(FRAME_BODY);
        out.put_u16(channel);
        out.put_u32(part.len() as u32);
        out.put_slice(part);
        out.put_u8(FRAME_END);
    }
}

pub fn encode_heartbeat(out: &mut Vec<u8>) {
    out.extend_from_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::queue;

    #[test]
    fn method_round_trip_and_partial_input() {
        let mut out = Vec::new();
        let m = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "q".into(),
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: Default::default(),
        }));
        encode_method(&mut out, 3, m.clone());
        for cut in 0..out.len() {
            let mut b = BytesMut::from(&out[..cut]);
            assert!(decode(&mut b, 131072).unwrap().is_none(), "cut at {cut}");
        }
        let mut b = BytesMut::from(&out[..]);
        match decode(&mut b, 131072).unwrap() {
            Some(Frame::Method(3, got)) => assert_eq!(*got, m),
            other => panic!("{other:?}"),
        }
        assert!(b.is_empty());
    }

    #[test]
    fn size_checked_before_waiting_for_payload() {
        let mut b = BytesMut::from(&[1u8, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF][..]);
        assert!(matches!(
            decode(&mut b, 131072),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn bad_type_and_end() {
        let mut b = BytesMut::from(&[9u8, 0, 0, 0, 0, 0, 0, 0xCE][..]);
        assert_eq!(
            decode(&mut b, 4096).unwrap_err(),
            FrameError::UnknownType(9)
        );
        let mut b = BytesMut::from(&[8u8, 0, 0, 0, 0, 0, 0, 0x00][..]);
        assert_eq!(decode(&mut b, 4096).unwrap_err(), FrameError::BadEnd(0));
    }

    #[test]
    fn content_splits_to_frame_max() {
        let mut out = Vec::new();
        let body = vec![7u8; 10_000];
        encode_content(&mut out, 1, &BasicProperties::default(), &body, 4096);
        let mut b = BytesMut::from(&out[..]);
        let mut got = Vec::new();
        while let Some(f) = decode(&mut b, 4096).unwrap() {
            if let Frame::Body(_, p) = f {
                got.extend_from_slice(&p);
            }
        }
        assert_eq!(got, body);
    }
}
