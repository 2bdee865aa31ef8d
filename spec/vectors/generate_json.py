#!/usr/bin/env python3
"""Generates spec/vectors/json.json: the JSON mode of spec section 12.3.

Every message vector of generate.py (which builds the native bytes from the spec, in plain
Python) is restated as the JSON object a WebSocket client sends or receives for it: binary
fields (blob and chunk `data`, done `sha256`, extension `body`) become standard base64,
everything else is already in the JSON shape. Hand-written cases add the lenient inputs the
spec allows (no `private`, no `code_name`) and the inputs a receiver must refuse, with their
error codes. core/tests/json_vectors.rs runs the file against the Rust mapping.

Run from anywhere:  python3 spec/vectors/generate_json.py
    python3 spec/vectors/generate_json.py --check
writes nothing and exits with status 1 if json.json differs from what this script generates.
"""

import base64
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # leave no __pycache__ in spec/

import generate  # noqa: E402  (the native encoder and the message vectors)

BINARY_FIELDS = {"blob": ["data"], "chunk": ["data"], "done": ["sha256"], "extension": ["body"]}


def to_json_fields(m):
    """A generate.py message (binary as hex) as a JSON-mode object (binary as base64)."""
    out = dict(m)
    for field in BINARY_FIELDS.get(m["type"], []):
        out[field] = base64.b64encode(bytes.fromhex(m[field])).decode("ascii")
    return out


def compact(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def ok_vectors():
    vs = []
    for v in generate.message_vectors():
        m = v["message"]
        vs.append({
            "name": v["name"],
            "description": v["description"],
            "json": compact(to_json_fields(m)),
            "canonical": True,
            "hex": generate.encode(m).hex(),
        })
    lenient = [
        ("text-private-omitted", "`private` may be left out: false",
         {"type": "text", "peer": "", "text": "hi"},
         {"type": "text", "peer": "", "private": False, "text": "hi"}),
        ("goodbye-without-code-name", "`code_name` is optional on input",
         {"type": "goodbye", "code": 0, "reason": "bye"},
         {"type": "goodbye", "code": 0, "reason": "bye"}),
        ("error-unassigned-code", "an unassigned code keeps its number; its name is other",
         {"type": "error", "code": 999, "code_name": "other", "text": "?"},
         {"type": "error", "code": 999, "text": "?"}),
        ("blob-private-omitted-empty-data", "no `private`, empty base64 data",
         {"type": "blob", "peer": "bob", "media_type": "", "data": ""},
         {"type": "blob", "peer": "bob", "private": False, "media_type": "", "data": ""}),
        ("whitespace-and-key-order", "JSON whitespace and key order carry no meaning",
         None, {"type": "ping", "nonce": 5}),
    ]
    for name, description, given, fields in lenient:
        text = compact(given) if given is not None else ' { "nonce" : 5 ,\n "type" : "ping" } '
        vs.append({"name": name, "description": description, "json": text,
                   "canonical": False, "hex": generate.encode(fields).hex()})
    return vs


def error_vectors():
    long_name = "n" * 256
    cases = [
        ("unknown-type", "a type the spec does not define", '{"type":"shout","text":"hi"}',
         "unknown-type"),
        ("not-json", "text that is not JSON", "hello, everyone", "malformed"),
        ("not-an-object", "a JSON array", '["text","hi"]', "malformed"),
        ("no-type", "an object without `type`", '{"peer":"","text":"hi"}', "malformed"),
        ("type-not-a-string", "`type` must be a string", '{"type":16}', "malformed"),
        ("missing-field", "text without `text`", '{"type":"text","peer":""}', "malformed"),
        ("unknown-field", "a field the type does not have",
         '{"type":"ping","nonce":1,"extra":true}', "malformed"),
        ("string-for-number", "a number field given as a string",
         '{"type":"ping","nonce":"1"}', "malformed"),
        ("negative-number", "u64 fields are unsigned", '{"type":"ping","nonce":-1}',
         "malformed"),
        ("fractional-number", "integers only", '{"type":"complete","id":1.5}', "malformed"),
        ("exponent-number", "1e3 is a double, not an integer", '{"type":"complete","id":1e3}',
         "malformed"),
        ("u64-overflow", "2^64 does not fit", '{"type":"ping","nonce":18446744073709551616}',
         "malformed"),
        ("u32-overflow", "credit bytes is u32", '{"type":"credit","id":0,"bytes":4294967296}',
         "malformed"),
        ("login-unknown-method-name", "a method name other than password or token",
         '{"type":"login","method":"otp","secret":"x"}', "malformed"),
        ("login-method-overflow", "a method number is a u8",
         '{"type":"login","method":256,"secret":"x"}', "malformed"),
        ("login-secret-too-long", "a secret over 1024 bytes",
         compact({"type": "login", "method": "password", "secret": "s" * 1025}), "malformed"),
        ("token-too-long", "a session token over 1024 bytes",
         compact({"type": "token", "token": "t" * 1025}), "malformed"),
        ("login-without-secret", "the secret is required",
         '{"type":"login","method":"password"}', "malformed"),
        ("code-overflow", "codes are u16",
         '{"type":"goodbye","code":65536,"reason":""}', "malformed"),
        ("code-name-mismatch", "`code_name` must name `code`",
         '{"type":"goodbye","code":0,"code_name":"kicked","reason":""}', "malformed"),
        ("private-not-boolean", "`private` is a boolean",
         '{"type":"text","peer":"","private":1,"text":"hi"}', "malformed"),
        ("bad-base64", "binary fields are standard base64",
         '{"type":"chunk","id":0,"offset":0,"data":"@@@@"}', "malformed"),
        ("base64-without-padding", "padding is required",
         '{"type":"chunk","id":0,"offset":0,"data":"aGk"}', "malformed"),
        ("url-safe-base64", "the URL-safe alphabet is not standard base64",
         '{"type":"chunk","id":0,"offset":0,"data":"-_-_"}', "malformed"),
        ("short-digest", "sha256 is exactly 32 bytes",
         compact({"type": "done", "id": 0,
                  "sha256": base64.b64encode(bytes(31)).decode()}), "malformed"),
        ("str8-too-long", "a name over 255 bytes cannot be encoded",
         compact({"type": "hello", "name": long_name, "capabilities": 0,
                  "max_frame": 1048576}), "malformed"),
        ("list-name-not-string", "names are strings",
         '{"type":"peer-list","names":["a",1]}', "malformed"),
        ("presence-kind", "kind is joined or left",
         '{"type":"presence","kind":"arrived","name":"bob"}', "malformed"),
        ("member-kind", "kind is joined, left or removed",
         '{"type":"member","kind":"kicked","room":"team","name":"bob"}', "malformed"),
        ("member-kind-number", "kind is a string, not the wire number",
         '{"type":"member","kind":1,"room":"team","name":"bob"}', "malformed"),
        ("room-missing", "join without `room`", '{"type":"join"}', "malformed"),
        ("room-too-long", "a room name over 255 bytes cannot be encoded",
         compact({"type": "leave", "room": long_name}), "malformed"),
        ("room-text-without-peer", "room-text carries `peer` (empty from a client)",
         '{"type":"room-text","room":"team","text":"hi"}', "malformed"),
        ("room-list-extra-field", "each room is exactly {name, members}",
         '{"type":"room-list","rooms":[{"name":"team","members":2,"topic":"x"}]}',
         "malformed"),
        ("room-list-members-missing", "each room has its member count",
         '{"type":"room-list","rooms":[{"name":"team"}]}', "malformed"),
        ("room-list-members-overflow", "members is a u32",
         '{"type":"room-list","rooms":[{"name":"team","members":4294967296}]}', "malformed"),
        ("room-list-not-array", "rooms is an array",
         '{"type":"room-list","rooms":{"team":2}}', "malformed"),
        ("room-members-name-not-string", "names are strings",
         '{"type":"room-members","room":"team","names":[1]}', "malformed"),
        ("room-list-request-extra-field", "room-list-request has no fields",
         '{"type":"room-list-request","room":"team"}', "malformed"),
        ("extension-kind-low", "extension kinds are 128 to 255",
         '{"type":"extension","kind":16,"body":""}', "malformed"),
    ]
    return [{"name": n, "description": d, "json": j, "code": generate.code_of(c),
             "code_name": c} for n, d, j, c in cases]


def main():
    oks, errs = ok_vectors(), error_vectors()
    names = [v["name"] for v in oks + errs]
    assert len(names) == len(set(names)), "vector names must be unique"
    for v in errs:
        if v["name"] not in ("not-json",):
            json.loads(v["json"])  # every refused input but one is at least JSON
    doc = {"spec": "spec/PROTOCOL.md", "protocol_version": 1,
           "generator": "spec/vectors/generate_json.py", "kind": "json",
           "vectors": oks, "errors": errs}
    text = generate.render(doc)
    path = os.path.join(HERE, "json.json")
    if "--check" in sys.argv[1:]:
        try:
            with open(path, encoding="utf-8") as f:
                same = f.read() == text
        except FileNotFoundError:
            same = False
        if not same:
            print("json.json is not what generate_json.py produces: "
                  "run python3 spec/vectors/generate_json.py")
        sys.exit(0 if same else 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"{len(oks)} JSON vectors, {len(errs)} JSON error vectors")


if __name__ == "__main__":
    main()
