//! spec/vectors/json.json against the JSON mapping: each JSON text parses to the message its
//! native bytes decode to, canonical texts are what `to_json` writes (as JSON values), and
//! refused inputs fail with their code.

mod sim;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tidings_core::json::{from_json, from_json_limited, to_json};
use tidings_core::wire::{FrameDecoder, Message, DEFAULT_MAX_FRAME};
use tidings_core::ErrorCode;

const VECTORS: &str = include_str!("../../spec/vectors/json.json");

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn decode_native(hex: &str) -> Message {
    let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
    dec.push(&unhex(hex));
    let msg = Message::decode(dec.next_frame().unwrap().unwrap()).unwrap();
    assert_eq!(dec.buffered(), 0, "one frame per vector");
    msg
}

fn encode_native(msg: &Message) -> Bytes {
    let mut out = BytesMut::new();
    msg.encode(&mut out);
    out.freeze()
}

fn doc() -> Value {
    serde_json::from_str(VECTORS).unwrap()
}

#[test]
fn every_json_vector_maps_to_its_native_frame() {
    let doc = doc();
    let vectors = doc["vectors"].as_array().unwrap();
    let mut types = std::collections::BTreeSet::new();
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let text = v["json"].as_str().unwrap();
        let hex = v["hex"].as_str().unwrap();
        let native = decode_native(hex);
        types.insert(native.name());

        let parsed = from_json(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed, native, "{name}: JSON and native disagree");
        assert_eq!(
            encode_native(&parsed),
            Bytes::from(unhex(hex)),
            "{name}: re-encoding"
        );

        let written = to_json(&native);
        assert_eq!(from_json(&written).unwrap(), native, "{name}: round trip");
        if v["canonical"].as_bool().unwrap() {
            let ours: Value = serde_json::from_str(&written).unwrap();
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{name}: to_json writes other fields");
        }
    }
    // Every message type of the registry (rooms included, §6.10) has at least one vector.
    assert_eq!(types.len(), 31, "types covered: {types:?}");
    eprintln!("{} JSON vectors", vectors.len());
}

#[test]
fn every_error_vector_is_refused_with_its_code() {
    let doc = doc();
    let errors = doc["errors"].as_array().unwrap();
    for v in errors {
        let name = v["name"].as_str().unwrap();
        let code = ErrorCode::from_u16(v["code"].as_u64().unwrap() as u16);
        assert_eq!(code.name(), v["code_name"].as_str().unwrap(), "{name}");
        let err = from_json(v["json"].as_str().unwrap()).expect_err(name);
        assert_eq!(err.code, code, "{name}: {err}");
    }
    assert!(errors.len() >= 20);
}

#[test]
fn texts_over_the_frame_limit_are_refused_before_parsing() {
    // Not even JSON: refused by size alone, so no parser ever sees a huge text.
    let huge = "x".repeat(DEFAULT_MAX_FRAME as usize + 1);
    assert_eq!(from_json(&huge).unwrap_err().code, ErrorCode::FrameTooLarge);

    // A valid chunk whose JSON fits a small limit only just.
    let msg = Message::Chunk {
        id: 2,
        offset: 0,
        data: Bytes::from(vec![7u8; 3000]),
    };
    let text = to_json(&msg);
    assert_eq!(
        from_json_limited(&text, text.len() as u32).unwrap(),
        msg,
        "exactly at the limit"
    );
    let err = from_json_limited(&text, text.len() as u32 - 1).unwrap_err();
    assert_eq!(err.code, ErrorCode::FrameTooLarge);
}

#[test]
fn u64_fields_are_exact_beyond_two_to_the_53() {
    let msg = Message::Ping { nonce: u64::MAX };
    let text = to_json(&msg);
    assert_eq!(text, r#"{"type":"ping","nonce":18446744073709551615}"#);
    assert_eq!(from_json(&text).unwrap(), msg);
}

#[test]
fn control_characters_and_quotes_are_escaped() {
    let msg = Message::Text {
        peer: "bob".into(),
        private: false,
        text: "a\"b\\c\nd\u{1}\u{7f}é\u{2028}".into(),
    };
    let text = to_json(&msg);
    assert!(text.contains(r#"a\"b\\c\nd\u0001"#), "{text}");
    assert_eq!(from_json(&text).unwrap(), msg);
    // What a standard JSON parser reads is the same text.
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["text"], "a\"b\\c\nd\u{1}\u{7f}é\u{2028}");
}

#[test]
fn vector_file_is_what_the_generator_produces() {
    sim::check_generated("generate_json.py");
}

#[test]
fn fuzz_body_runs_every_vector_through_each_mode() {
    let doc = doc();
    let mut lines = vec![r#"{"type":"hello","name":"fuzz","capabilities":3,"max_frame":1048576}"#];
    for v in doc["vectors"].as_array().unwrap() {
        lines.push(v["json"].as_str().unwrap());
    }
    let text = lines.join("\n");
    for flags in 0..3u8 {
        let mut input = vec![flags];
        input.extend_from_slice(text.as_bytes());
        tidings_core::fuzz::json(&input, std::time::Instant::now());
    }
}

#[test]
fn spec_table_examples_are_what_to_json_writes() {
    let spec = include_str!("../../spec/PROTOCOL.md");
    let section = &spec[spec.find("### 12.3 JSON mode").unwrap()..];
    let section = &section[..section.find("### 12.4").unwrap()];
    let mut seen = 0;
    for line in section.lines() {
        let (Some(start), Some(end)) = (line.find("`{\"type\""), line.find("}`")) else {
            continue;
        };
        let example = &line[start + 1..end + 1];
        let msg = from_json(example).unwrap_or_else(|e| panic!("{example}: {e}"));
        assert_eq!(
            to_json(&msg),
            example,
            "the spec shows another member order"
        );
        seen += 1;
    }
    assert_eq!(seen, 31, "one example per message type");
}
