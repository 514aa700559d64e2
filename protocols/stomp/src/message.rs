//! MESSAGE frames written straight from the core message into the connection's
//! buffer: no [`Frame`], no `String` per header. A MESSAGE that has to wait behind
//! frames not yet released becomes a [`Frame`] with the same headers instead.

use crate::convert;
use crate::destination::Destination;
use crate::encode::{Decimal, Sink, Writer};
use crate::frame::{Command, Frame};
use crate::version::Version;
use bytes::BytesMut;
use switchboard_api::Message;

/// One delivery as a MESSAGE frame.
pub(crate) struct MessageFrame<'a> {
    pub subscription: &'a str,
    pub message: &'a Message,
    /// The delivery's number: `message-id`, and `ack` when `ack` is set.
    pub n: u64,
    pub ack: bool,
    pub redelivered: bool,
}

impl MessageFrame<'_> {
    /// Every header in order, each value in parts written one after the other.
    fn headers(&self, mut put: impl FnMut(&str, &[&str])) {
        let m = self.message;
        put("subscription", &[self.subscription]);
        put(
            "destination",
            &Destination::message_parts(&m.exchange, &m.routing_key),
        );
        let n = Decimal::new(self.n);
        put("message-id", &[n.as_str()]);
        if self.ack {
            put("ack", &[n.as_str()]);
        }
        put(
            "redelivered",
            &[if self.redelivered { "true" } else { "false" }],
        );
        convert::message_headers(m, |k, v| put(k, &[v]));
    }

    fn write<S: Sink>(&self, version: Version, sink: &mut S) {
        let body = &self.message.body;
        let mut w = Writer::new(sink, Command::Message, Some(version), body.len());
        self.headers(|name, parts| w.header_parts(name, parts));
        w.finish(body);
    }

    /// Appends the frame, as `encode_frame` would append [`MessageFrame::to_frame`].
    pub fn encode(&self, version: Version, dst: &mut BytesMut) {
        let mut size = 0;
        self.write(version, &mut size);
        dst.reserve(size);
        self.write(version, dst);
    }

    pub fn to_frame(&self) -> Frame {
        let mut f = Frame::new(Command::Message);
        self.headers(|name, parts| f.headers.push((name.to_string(), parts.concat())));
        f.body = self.message.body.clone();
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::encode_frame;
    use switchboard_api::{Table, Value};

    #[test]
    fn written_as_the_frame_would_be() {
        let mut m = Message::new("amq.topic", "a.b", bytes::Bytes::from_static(b"x\0y"));
        let mut h = Table::new();
        h.insert("n:l\\x".into(), Value::string("v\nw"));
        h.insert("content-length".into(), Value::string("99"));
        h.insert("count".into(), Value::I64(-3));
        m.properties.headers = Some(h);
        m.properties.priority = Some(4);
        m.properties.timestamp = Some(1_700_000_000);
        m.properties.reply_to = Some("rq".into());
        for (ack, version) in [(true, Version::V12), (false, Version::V10)] {
            let mf = MessageFrame {
                subscription: "s-1",
                message: &m,
                n: 42,
                ack,
                redelivered: true,
            };
            let mut direct = BytesMut::new();
            mf.encode(version, &mut direct);
            let mut via = BytesMut::new();
            encode_frame(&mf.to_frame(), Some(version), &mut via);
            assert_eq!(direct, via, "{version:?}");
        }
    }
}
