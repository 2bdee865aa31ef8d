//! Property tests of the JSON mapping: every message of every type survives
//! `to_json` → `from_json` unchanged, standard JSON parsers read the same fields, and every
//! required field is really required.

mod sim;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::Value;
use sim::messages::message;
use tidings_core::json::{from_json, to_json, write_json};
use tidings_core::wire::{Message, Utf8};
use tidings_core::ErrorCode;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_message_round_trips(msg in message()) {
        let text = to_json(&msg);
        prop_assert_eq!(from_json(&text).unwrap(), msg.clone());
        // Appending into a buffer writes the same object.
        let mut buf = String::from("prefix");
        write_json(&msg, &mut buf);
        prop_assert_eq!(&buf["prefix".len()..], text.as_str());
    }

    #[test]
    fn a_standard_parser_sees_the_spec_fields(msg in message()) {
        let value: Value = serde_json::from_str(&to_json(&msg)).unwrap();
        prop_assert_eq!(value["type"].as_str(), Some(msg.name()));
        if let Some(code) = value.get("code") {
            let code = ErrorCode::from_u16(code.as_u64().unwrap() as u16);
            prop_assert_eq!(value["code_name"].as_str(), Some(code.name()));
        }
    }

    #[test]
    fn dropping_a_required_field_is_malformed(msg in message(), pick in any::<prop::sample::Index>()) {
        let Value::Object(mut map) = serde_json::from_str(&to_json(&msg)).unwrap() else {
            unreachable!()
        };
        let required: Vec<String> = map
            .keys()
            .filter(|k| !matches!(k.as_str(), "type" | "private" | "code_name"))
            .cloned()
            .collect();
        prop_assume!(!required.is_empty());
        map.remove(&required[pick.index(required.len())]);
        let err = from_json(&Value::Object(map).to_string()).unwrap_err();
        prop_assert_eq!(err.code, ErrorCode::Malformed);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = from_json(&text);
    }
}

/// Throughput of the mapping, for the report (run in release):
/// `cargo test --release -p tidings-core --test json_roundtrip -- --ignored --nocapture`
#[test]
#[ignore]
fn measure_json_throughput() {
    use std::time::Instant;
    let text = Message::Text {
        peer: Utf8::from("bob"),
        private: true,
        text: Utf8::from("a chat line of a typical length, sixty-odd bytes long."),
    };
    let chunk = Message::Chunk {
        id: 2,
        offset: 1 << 20,
        data: Bytes::from(vec![0xA5u8; 64 << 10]),
    };
    for (name, msg, rounds) in [("text", text, 200_000u32), ("chunk 64 KiB", chunk, 2_000)] {
        let json = to_json(&msg);
        let start = Instant::now();
        let mut buf = String::new();
        for _ in 0..rounds {
            buf.clear();
            write_json(&msg, &mut buf);
        }
        let write = start.elapsed();
        let start = Instant::now();
        for _ in 0..rounds {
            assert!(from_json(&json).is_ok());
        }
        let read = start.elapsed();
        let per_s = |d: std::time::Duration| f64::from(rounds) / d.as_secs_f64();
        let mib_s = |d: std::time::Duration| per_s(d) * json.len() as f64 / f64::from(1 << 20);
        eprintln!(
            "{name}: {} JSON bytes; to_json {:.0} msg/s ({:.0} MiB/s), from_json {:.0} msg/s ({:.0} MiB/s)",
            json.len(),
            per_s(write),
            mib_s(write),
            per_s(read),
            mib_s(read)
        );
    }
}
