#![no_main]
//! Arbitrary bytes through the AMQP frame decoder: it must return frames or an
//! error, never panic, and never ask for more than frame_max bytes.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchboard_amqp::codec::decode_all(data, 4096);
});
