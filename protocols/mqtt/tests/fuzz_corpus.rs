//! Replays the fuzz corpus (`fuzz/corpus/mqtt_packet`, target `mqtt_packet`) through
//! the codec the way the fuzz target does: from the first byte of a connection, and
//! after a valid 3.1.1 and 5.0 CONNECT, encoding back whatever decodes. Nothing may
//! panic. The hand-written seeds (`fuzz/mqtt_seeds.py`) say more by their names:
//! `valid_*` (a stream from CONNECT on), `after311_*` and `after5_*` (packets after
//! that version's CONNECT) decode whole without error; `bad_*` is refused.

use bytes::BytesMut;
use switchboard_mqtt::codec::{Codec, CodecError};

const CONNECT_311: &[u8] = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04fuzz";
const CONNECT_5: &[u8] = b"\x10\x11\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x04fuzz";

struct Outcome {
    packets: usize,
    error: Option<CodecError>,
    left: usize,
}

fn decode_all(codec: &mut Codec, data: &[u8]) -> Outcome {
    let mut buf = BytesMut::from(data);
    let mut packets = 0;
    loop {
        let before = buf.len();
        match codec.decode(&mut buf) {
            Ok(Some(p)) => {
                assert!(buf.len() < before, "a packet out of no input");
                packets += 1;
                let mut out = BytesMut::new();
                let _ = codec.encode(p, &mut out);
            }
            Ok(None) => {
                return Outcome {
                    packets,
                    error: None,
                    left: buf.len(),
                };
            }
            Err(e) => {
                return Outcome {
                    packets,
                    error: Some(e),
                    left: buf.len(),
                };
            }
        }
    }
}

fn after(connect: &[u8]) -> Codec {
    let mut c = Codec::new(65_536);
    let mut b = BytesMut::from(connect);
    assert!(matches!(c.decode(&mut b), Ok(Some(_))));
    c.set_max_inbound(1 << 20);
    c
}

fn whole(name: &str, o: &Outcome) {
    assert!(o.error.is_none(), "{name}: {:?}", o.error);
    assert!(o.packets > 0, "{name}: no packet decoded");
    assert_eq!(o.left, 0, "{name}: {} bytes not decoded", o.left);
}

#[test]
fn corpus_replays() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/mqtt_packet");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let data = std::fs::read(&path).expect("read corpus file");
        let first = decode_all(&mut Codec::new(65_536), &data);
        let v311 = decode_all(&mut after(CONNECT_311), &data);
        let v5 = decode_all(&mut after(CONNECT_5), &data);
        if name.starts_with("valid_") {
            whole(&name, &first);
        } else if name.starts_with("after311_") {
            whole(&name, &v311);
        } else if name.starts_with("after5_") {
            whole(&name, &v5);
        } else if name.starts_with("bad_") {
            assert!(
                first.error.is_some(),
                "{name}: accepted ({} packets, {} bytes left)",
                first.packets,
                first.left
            );
        }
        seen += 1;
    }
    assert!(seen >= 50, "corpus has only {seen} files");
}
