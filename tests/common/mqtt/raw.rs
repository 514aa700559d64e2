//! rumqttc's 5.0 packet codec over a bare `TcpStream`.

use super::super::WAIT;
use bytes::BytesMut;
use rumqttc::v5::mqttbytes::v5 as p5;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A 5.0 connection driven packet by packet.
pub struct RawV5 {
    stream: TcpStream,
    buf: BytesMut,
}

impl RawV5 {
    /// Connects with `clean_start` and a session expiry; returns the CONNACK.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        clean_start: bool,
        expiry: u32,
    ) -> (RawV5, p5::ConnAck) {
        let mut props = p5::ConnectProperties::new();
        props.session_expiry_interval = Some(expiry);
        let connect = p5::Connect {
            keep_alive: 30,
            client_id: client_id.to_string(),
            clean_start,
            properties: Some(props),
        };
        Self::connect_with(addr, connect, None).await
    }

    /// Sends this CONNECT (and will); returns the CONNACK.
    pub async fn connect_with(
        addr: &str,
        connect: p5::Connect,
        will: Option<p5::LastWill>,
    ) -> (RawV5, p5::ConnAck) {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("TCP connect timed out")
            .expect("TCP connect");
        let mut raw = RawV5 {
            stream,
            buf: BytesMut::new(),
        };
        raw.send(p5::Packet::Connect(connect, will, None)).await;
        match raw.recv().await {
            p5::Packet::ConnAck(c) => (raw, c),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Panics unless the server closes the connection within [`WAIT`] (after
    /// whatever packets it still had to send, which are returned).
    pub async fn eof(&mut self) -> Vec<p5::Packet> {
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        loop {
            while let Ok(p) = p5::Packet::read(&mut self.buf, None) {
                got.push(p);
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => panic!("connection still open after {WAIT:?}; got {got:?}"),
                Ok(Ok(0)) | Ok(Err(_)) => return got,
                Ok(Ok(_)) => {}
            }
        }
    }

    pub async fn send(&mut self, p: p5::Packet) {
        let mut out = BytesMut::new();
        p.write(&mut out, None).expect("encode");
        self.stream.write_all(&out).await.expect("write");
    }

    /// The next packet; panics after [`WAIT`] or if the server closes.
    pub async fn recv(&mut self) -> p5::Packet {
        let deadline = Instant::now() + WAIT;
        loop {
            match p5::Packet::read(&mut self.buf, None) {
                Ok(p) => return p,
                Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!("undecodable packet from the server: {e:?}"),
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf))
                .await
                .expect("no packet from the server in time")
                .expect("read");
            assert!(n > 0, "server closed the connection");
        }
    }
}
