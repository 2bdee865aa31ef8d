#!/usr/bin/env python3
"""Generates the tidings conformance vectors from spec/PROTOCOL.md.

This is a second, independent implementation of the wire format: it builds every byte from
the rules of the spec (sections 3 to 7) using nothing but the Python standard library, and
never calls the Rust code. The Rust tests (core/tests/vectors.rs) then check that the Rust
codec and session agree with these bytes, so the spec, this script and the code cross-check
each other.

Run from anywhere:  python3 spec/vectors/generate.py
It rewrites messages.json, errors.json and session.json next to itself; the output is
deterministic, so a diff after running it means the spec's encoding changed.

    python3 spec/vectors/generate.py --check
writes nothing and exits with status 1 if a committed file differs from what this script
generates (core/tests/vectors.rs runs this, so the files and the script cannot drift apart).
"""

import hashlib
import json
import os
import re
import struct
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))

# ----- spec §3: the preamble --------------------------------------------------------------

MAGIC = bytes([0x89]) + b"TDG\r\n\x1a"


def preamble(version=1):
    return MAGIC + bytes([version])


# ----- spec §4: primitive fields and frames ------------------------------------------------

def u8(v):
    return struct.pack(">B", v)


def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v)


def u64(v):
    return struct.pack(">Q", v)


def utf8(s):
    return s.encode("utf-8") if isinstance(s, str) else s


def str8(s):
    b = utf8(s)
    assert len(b) <= 255
    return u8(len(b)) + b


def str16(s):
    b = utf8(s)
    assert len(b) <= 65535
    return u16(len(b)) + b


def frame(kind, body):
    return u32(len(body)) + u8(kind) + body


# ----- spec §5: the type registry and §8: error codes -------------------------------------

T = {
    "hello": 0x01, "welcome": 0x02, "refused": 0x03, "login": 0x04, "token": 0x05,
    "text": 0x10, "blob": 0x11, "room-text": 0x12,
    "presence": 0x20, "list-request": 0x21, "peer-list": 0x22,
    "join": 0x23, "leave": 0x24, "member": 0x25, "room-members": 0x26,
    "room-list-request": 0x27, "room-list": 0x28,
    "ping": 0x30, "pong": 0x31, "error": 0x3E, "goodbye": 0x3F,
    "offer": 0x40, "accept": 0x41, "reject": 0x42, "chunk": 0x43, "credit": 0x44,
    "done": 0x45, "cancel": 0x46, "complete": 0x47, "failed": 0x48,
}

CODES = {
    "normal": 0, "malformed": 1, "bad-preamble": 2, "unsupported-version": 3,
    "frame-too-large": 4, "unknown-type": 5, "invalid-utf8": 6, "unexpected-message": 7,
    "heartbeat-timeout": 8, "truncated": 9, "name-taken": 10, "name-invalid": 11,
    "server-full": 12, "unknown-peer": 13, "rate-limited": 14, "slow-consumer": 15,
    "shutdown": 16, "limit-exceeded": 17, "kicked": 18, "tls-required": 19,
    "auth-required": 20, "auth-failed": 21, "auth-insecure": 22,
    "not-member": 23, "room-refused": 24,
    "unknown-transfer": 32, "chunk-out-of-range": 33, "credit-exceeded": 34,
    "digest-mismatch": 35, "bad-file-name": 36, "cancelled": 37, "rejected": 38,
    "transfer-timeout": 39, "peer-lost": 40, "storage-failed": 41, "source-failed": 42,
}
NAMES = {v: k for k, v in CODES.items()}


def code_of(name_or_value):
    if isinstance(name_or_value, int):
        return name_or_value
    return CODES[name_or_value]


def code_fields(c):
    """A code as it appears in JSON: the number and, when known, its name."""
    return {"code": c, "code_name": NAMES.get(c, "other")}


FLAG_PRIVATE = 1
# `login` methods (section 6.2): named in the JSON form, a number when unnamed.
LOGIN_METHODS = {"password": 1, "token": 2}
MAX_SECRET = 1024
CAP_FILES, CAP_BLOBS, CAP_ROOMS = 1, 2, 4
# `member` kinds (section 6.10).
MEMBER_KINDS = {"joined": 1, "left": 2, "removed": 3}
MiB = 1 << 20

# ----- spec §6: message bodies --------------------------------------------------------------


def encode(m):
    """Encodes a message given as its JSON object (the vector format) into a whole frame."""
    t = m["type"]
    if t == "extension":
        return frame(m["kind"], bytes.fromhex(m["body"]))
    if t == "hello":
        body = str8(m["name"]) + u32(m["capabilities"]) + u32(m["max_frame"])
    elif t == "welcome":
        body = (str8(m["name"]) + str8(m["server"]) + u32(m["heartbeat_ms"])
                + u32(m["timeout_ms"]) + u32(m["max_frame"]) + u32(m["capabilities"])
                + u32(len(m["online"])) + b"".join(str8(n) for n in m["online"]))
    elif t == "login":
        method = m["method"]
        body = u8(LOGIN_METHODS.get(method, method)) + utf8(m["secret"])
    elif t == "token":
        body = utf8(m["token"])
    elif t in ("refused", "goodbye"):
        body = u16(m["code"]) + utf8(m["reason"])
    elif t == "error":
        body = u16(m["code"]) + utf8(m["text"])
    elif t == "text":
        body = str8(m["peer"]) + u8(FLAG_PRIVATE if m["private"] else 0) + utf8(m["text"])
    elif t == "blob":
        body = (str8(m["peer"]) + u8(FLAG_PRIVATE if m["private"] else 0)
                + str8(m["media_type"]) + bytes.fromhex(m["data"]))
    elif t == "presence":
        body = u8({"joined": 1, "left": 2}[m["kind"]]) + str8(m["name"])
    elif t == "room-text":
        body = str8(m["room"]) + str8(m["peer"]) + utf8(m["text"])
    elif t in ("join", "leave"):
        body = str8(m["room"])
    elif t == "member":
        body = u8(MEMBER_KINDS[m["kind"]]) + str8(m["room"]) + str8(m["name"])
    elif t == "room-members":
        body = str8(m["room"]) + u32(len(m["names"])) + b"".join(str8(n) for n in m["names"])
    elif t == "room-list":
        body = u32(len(m["rooms"])) + b"".join(
            str8(r["name"]) + u32(r["members"]) for r in m["rooms"])
    elif t in ("list-request", "room-list-request"):
        body = b""
    elif t == "peer-list":
        body = u32(len(m["names"])) + b"".join(str8(n) for n in m["names"])
    elif t in ("ping", "pong"):
        body = u64(m["nonce"])
    elif t == "offer":
        body = (u64(m["id"]) + str8(m["peer"]) + u64(m["size"]) + str16(m["name"])
                + str8(m["media_type"]))
    elif t == "accept":
        body = u64(m["id"]) + u64(m["offset"]) + u32(m["credit"])
    elif t in ("reject", "cancel", "failed"):
        body = u64(m["id"]) + u16(m["code"]) + utf8(m["reason"])
    elif t == "chunk":
        body = u64(m["id"]) + u64(m["offset"]) + bytes.fromhex(m["data"])
    elif t == "credit":
        body = u64(m["id"]) + u32(m["bytes"])
    elif t == "done":
        digest = bytes.fromhex(m["sha256"])
        assert len(digest) == 32
        body = u64(m["id"]) + digest
    elif t == "complete":
        body = u64(m["id"])
    else:
        raise ValueError(t)
    return frame(T[t], body)


def msg(t, **fields):
    m = {"type": t}
    m.update(fields)
    if "code" in fields:
        m["code_name"] = NAMES.get(fields["code"], "other")
    return m


def sha(b):
    return hashlib.sha256(b).hexdigest()


# ----- spec §4 and §6 read the other way: a decoder, to check the vectors themselves --------
#
# Every message vector must decode back to its fields, and every error vector must fail with
# its code after its number of good frames, under this reading of the spec too. A vector that
# is wrong about the spec (an "error" that is in fact valid, a code that a different rule
# reports first) fails here, before any implementation sees it.


class DecodeError(Exception):
    def __init__(self, code):
        super().__init__(NAMES.get(code, code))
        self.code = code


class Body:
    """A cursor over a frame body; reads check the remaining length first (spec §4.3)."""

    def __init__(self, data):
        self.data = data
        self.at = 0

    def take(self, n):
        if len(self.data) - self.at < n:
            raise DecodeError(CODES["malformed"])
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def int(self, n):
        return int.from_bytes(self.take(n), "big")

    def text(self, b):
        try:
            return b.decode("utf-8")  # Python's codec rejects overlongs, surrogates, > U+10FFFF
        except UnicodeDecodeError:
            raise DecodeError(CODES["invalid-utf8"])

    def str8(self):
        return self.text(self.take(self.int(1)))

    def str16(self):
        return self.text(self.take(self.int(2)))

    def rest(self):
        return self.take(len(self.data) - self.at)

    def names(self):
        count = self.int(4)
        if count > len(self.data) - self.at:
            raise DecodeError(CODES["malformed"])
        return [self.str8() for _ in range(count)]

    def flags(self):
        f = self.int(1)
        if f & ~FLAG_PRIVATE:
            raise DecodeError(CODES["malformed"])
        return bool(f & FLAG_PRIVATE)

    def code(self):
        c = self.int(2)
        return {"code": c, "code_name": NAMES.get(c, "other")}

    def end(self):
        if self.at != len(self.data):
            raise DecodeError(CODES["malformed"])


def decode_body(kind, body):
    """One frame body to the JSON form of its message (spec §6)."""
    r = Body(body)
    names_by_type = {v: k for k, v in T.items()}
    if kind >= 0x80:
        return {"type": "extension", "kind": kind, "body": r.rest().hex()}
    t = names_by_type.get(kind)
    if t is None:
        raise DecodeError(CODES["unknown-type"])
    m = {"type": t}
    if t == "hello":
        m.update(name=r.str8(), capabilities=r.int(4), max_frame=r.int(4))
    elif t == "welcome":
        m.update(name=r.str8(), server=r.str8(), heartbeat_ms=r.int(4), timeout_ms=r.int(4),
                 max_frame=r.int(4), capabilities=r.int(4), online=r.names())
    elif t == "login":
        method = r.int(1)
        names = {v: k for k, v in LOGIN_METHODS.items()}
        m["method"] = names.get(method, method)
        secret = r.rest()
        if len(secret) > MAX_SECRET:
            raise DecodeError(CODES["malformed"])
        m["secret"] = r.text(secret)
    elif t == "token":
        token = r.rest()
        if len(token) > MAX_SECRET:
            raise DecodeError(CODES["malformed"])
        m["token"] = r.text(token)
    elif t in ("refused", "goodbye"):
        m.update(r.code())
        m["reason"] = r.text(r.rest())
    elif t == "error":
        m.update(r.code())
        m["text"] = r.text(r.rest())
    elif t == "text":
        m.update(peer=r.str8(), private=r.flags())
        m["text"] = r.text(r.rest())
    elif t == "blob":
        m.update(peer=r.str8(), private=r.flags(), media_type=r.str8(), data=r.rest().hex())
    elif t == "presence":
        kind_byte = r.int(1)
        if kind_byte not in (1, 2):
            raise DecodeError(CODES["malformed"])
        m.update(kind={1: "joined", 2: "left"}[kind_byte], name=r.str8())
    elif t == "peer-list":
        m.update(names=r.names())
    elif t == "room-text":
        m.update(room=r.str8(), peer=r.str8())
        m["text"] = r.text(r.rest())
    elif t in ("join", "leave"):
        m.update(room=r.str8())
    elif t == "member":
        kind_byte = r.int(1)
        kinds = {v: k for k, v in MEMBER_KINDS.items()}
        if kind_byte not in kinds:
            raise DecodeError(CODES["malformed"])
        m.update(kind=kinds[kind_byte], room=r.str8(), name=r.str8())
    elif t == "room-members":
        m.update(room=r.str8(), names=r.names())
    elif t == "room-list":
        count = r.int(4)
        # Each entry takes at least 5 bytes (an empty name and a u32): a count that cannot
        # fit the body is refused before anything is reserved for it (section 11, Memory).
        if count * 5 > len(r.data) - r.at:
            raise DecodeError(CODES["malformed"])
        m["rooms"] = [{"name": r.str8(), "members": r.int(4)} for _ in range(count)]
    elif t in ("ping", "pong"):
        m.update(nonce=r.int(8))
    elif t == "offer":
        m.update(id=r.int(8), peer=r.str8(), size=r.int(8), name=r.str16(), media_type=r.str8())
    elif t == "accept":
        m.update(id=r.int(8), offset=r.int(8), credit=r.int(4))
    elif t in ("reject", "cancel", "failed"):
        m.update(id=r.int(8))
        m.update(r.code())
        m["reason"] = r.text(r.rest())
    elif t == "chunk":
        m.update(id=r.int(8), offset=r.int(8), data=r.rest().hex())
    elif t == "credit":
        m.update(id=r.int(8), bytes=r.int(4))
    elif t == "done":
        m.update(id=r.int(8), sha256=r.take(32).hex())
    elif t == "complete":
        m.update(id=r.int(8))
    r.end()
    return m


def decode_stream(data, max_frame, eof):
    """Frames of a byte stream: (messages, error code or None), spec §4.3."""
    out = []
    at = 0
    while len(data) - at >= 4:
        length = int.from_bytes(data[at:at + 4], "big")
        if length > max_frame:  # judged on the four length bytes alone
            return out, CODES["frame-too-large"]
        if len(data) - at < 5 + length:
            break
        try:
            out.append(decode_body(data[at + 4], data[at + 5:at + 5 + length]))
        except DecodeError as e:
            return out, e.code
        at += 5 + length
    if eof and at != len(data):
        return out, CODES["truncated"]
    return out, None


def self_check(messages, errors):
    """Decodes every message and error vector with the decoder above."""
    for v in messages:
        got, err = decode_stream(bytes.fromhex(v["hex"]), MiB, True)
        assert err is None and got == [v["message"]], (v["name"], got, err)
    for v in errors:
        got, err = decode_stream(bytes.fromhex(v["hex"]), v["max_frame"], v["eof"])
        want = (v["frames_before"], v["error"]["code"])
        assert (len(got), err) == want, (v["name"], len(got), err, want)


# ----- spec §7.8: reducing an offered file name -----------------------------------------------

MAX_WIRE_NAME = 4096
MAX_BASE_NAME = 255


def ascii_upper(text):
    return "".join(c.upper() if c.isascii() else c for c in text)


# Invisible and bidirectional formatting characters (spec §7.8 rule 4), listed explicitly.
INVISIBLE = set("\u00ad\u061c\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d"
                "\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff")


# Rule 8's "one digit": ASCII 0-9, and the superscripts that Windows reads as digits there.
DEVICE_DIGITS = "0123456789\u00b9\u00b2\u00b3"


def safe_file_name(name):
    """The rules of spec §7.8, in order; None when the name is refused."""
    if len(name.encode()) > MAX_WIRE_NAME:
        return None
    base = re.split(r"[/\\]", name)[-1]
    if len(base) >= 2 and base[0].isascii() and base[0].isalpha() and base[1] == ":":
        base = base[2:]
    out = "".join("_" if unicodedata.category(c) == "Cc" or c in INVISIBLE or c in ':*?"<>|'
                  else c for c in base)
    out = out.rstrip(" .").lstrip(" ")
    if not out:
        return None
    if out.startswith("."):
        out = "_" + out[1:]
    stem = ascii_upper(out.split(".")[0])
    device = stem in ("CON", "PRN", "AUX", "NUL") or (
        len(stem) == 4 and stem[:3] in ("COM", "LPT") and stem[3] in DEVICE_DIGITS)
    if device:
        out = "_" + out
    raw = out.encode()
    if len(raw) > MAX_BASE_NAME:
        dot = raw.rfind(b".")
        ext = raw[dot:] if dot >= 0 and len(raw) - dot <= 16 else b""
        cut = MAX_BASE_NAME - len(ext)
        while raw[cut] & 0xC0 == 0x80:  # not a character boundary
            cut -= 1
        out = (raw[:cut] + ext).decode()
    return out


MAX_PATH_DEPTH = 32


def safe_path(name, max_depth=MAX_PATH_DEPTH):
    """The folder rules of spec §7.8 ("Folders"); None when the name is refused."""
    if len(name.encode()) > MAX_WIRE_NAME:
        return None
    if name[:1] in ("/", "\\") or (len(name) >= 2 and name[0].isascii() and name[0].isalpha()
                                   and name[1] == ":"):
        return None
    parts = []
    for part in re.split(r"[/\\]", name):
        if part in ("", "."):
            continue
        if part == "..":
            return None
        reduced = safe_file_name(part)
        if reduced is None:
            return None
        parts.append(reduced)
    if not parts or len(parts) > max_depth:
        return None
    out = "/".join(parts) + ("/" if name[-1:] in ("/", "\\") else "")
    return out if len(out.encode()) <= MAX_WIRE_NAME else None


def relayed(ident, peer, relay_id):
    """The `relayed` extension (0x80, spec §10 rule 8) as a message for msg()/E()."""
    return msg("extension", kind=0x80, body=(u64(ident) + str8(peer) + u64(relay_id)).hex())


# ----- messages.json ---------------------------------------------------------------------------

def message_vectors():
    v = []

    def add(name, description, m):
        v.append({"name": name, "description": description, "message": m,
                  "hex": encode(m).hex()})

    add("hello-basic", "a client asks for the name alice with every capability",
        msg("hello", name="alice", capabilities=3, max_frame=MiB))
    add("hello-unicode-name", "names are UTF-8; the length prefix counts bytes",
        msg("hello", name="Zoë_2", capabilities=CAP_FILES, max_frame=16 * MiB))
    add("hello-no-capabilities", "capabilities 0: chat only",
        msg("hello", name="b", capabilities=0, max_frame=MiB))
    add("hello-max-name", "a name of 32 characters, each 4 bytes: 128 bytes",
        msg("hello", name="\U0001d400" * 32, capabilities=3, max_frame=2 * MiB))

    add("welcome-basic", "defaults: 10 s heartbeat, 30 s timeout, 1 MiB frames",
        msg("welcome", name="alice", server="server", heartbeat_ms=10000, timeout_ms=30000,
            max_frame=MiB, capabilities=3, online=["alice"]))
    add("welcome-several-online", "the online list includes the client itself",
        msg("welcome", name="carol", server="hub", heartbeat_ms=5000, timeout_ms=15000,
            max_frame=4 * MiB, capabilities=3, online=["alice", "bob", "carol"]))
    add("welcome-empty-list", "an empty online list and an empty server name",
        msg("welcome", name="x", server="", heartbeat_ms=1, timeout_ms=4294967295,
            max_frame=16 * MiB, capabilities=0, online=[]))

    add("refused-name-taken", "name-taken with a reason",
        msg("refused", code=10, reason="the name alice is in use"))
    add("refused-server-full", "server-full with an empty reason",
        msg("refused", code=12, reason=""))
    add("refused-auth-required", "a registered name (or no guests) and no login came",
        msg("refused", code=20,
            reason="alice is a registered name: log in with its password"))
    add("refused-auth-failed", "one answer for a wrong password, an unknown user, a bad method",
        msg("refused", code=21, reason="wrong name or password"))
    add("refused-auth-insecure", "a password over plaintext from a non-loopback address",
        msg("refused", code=22,
            reason="a password needs TLS (or loopback): connect with tls://"))
    add("login-password", "method 1 (password), sent after the preamble and before hello",
        msg("login", method="password", secret="correct horse battery staple"))
    add("login-empty-secret", "an empty password is carried as such (and judged by the server)",
        msg("login", method="password", secret=""))
    add("login-unicode-secret", "the secret is UTF-8 text taking the rest of the body",
        msg("login", method="password", secret="pässwörd 🔑"))
    add("login-token-reserved", "method 2 is reserved for a session token",
        msg("login", method="token", secret="t"))
    add("login-unknown-method", "an unnamed method is carried as its number (the server "
        "answers auth-failed)", msg("login", method=7, secret="x"))
    add("login-max-secret", "a secret of exactly 1024 bytes",
        msg("login", method="password", secret="s" * MAX_SECRET))
    add("token-session", "server to client right after welcome: a session token, opaque to "
        "the client", msg("token", token="YWxpY2V8MTIzNDU.bWFjbWFjbWFjbWFj"))
    add("login-with-token", "method 2: a session token from an earlier token message",
        msg("login", method="token", secret="YWxpY2V8MTIzNDU.bWFjbWFjbWFjbWFj"))
    add("refused-unknown-code", "an unknown code is carried as its number",
        msg("refused", code=999, reason="future"))

    add("text-broadcast", "client to server: empty peer means everyone",
        msg("text", peer="", private=False, text="hello, everyone"))
    add("text-private-delivery", "server to client: sender bob, private flag set",
        msg("text", peer="bob", private=True, text="hi"))
    add("text-empty", "an empty text is allowed",
        msg("text", peer="alice", private=False, text=""))
    add("text-unicode", "multi-byte text, emoji and a NUL character",
        msg("text", peer="Zoë", private=False, text="grüße 👋 \u0000 end"))

    add("blob-image", "a small PNG signature to everyone",
        msg("blob", peer="", private=False, media_type="image/png",
            data="89504e470d0a1a0a"))
    add("blob-private-empty", "an empty private blob without a media type",
        msg("blob", peer="bob", private=True, media_type="", data=""))
    add("blob-binary", "every byte value",
        msg("blob", peer="carol", private=False, media_type="application/octet-stream",
            data=bytes(range(256)).hex()))

    add("presence-joined", "bob is now online", msg("presence", kind="joined", name="bob"))
    add("presence-left", "bob went away", msg("presence", kind="left", name="bob"))

    add("list-request", "empty body", msg("list-request"))

    add("peer-list-two", "two names", msg("peer-list", names=["alice", "bob"]))
    add("peer-list-empty", "count 0", msg("peer-list", names=[]))
    add("peer-list-unicode", "names with multi-byte characters",
        msg("peer-list", names=["Ärger", "日本", "x.y-z_1"]))

    # Rooms (section 6.10), protocol 1.1: only between sides that both announced ROOMS.
    add("room-text-from-client", "client to server: the room is the addressee, peer empty",
        msg("room-text", room="team", peer="", text="hello, team"))
    add("room-text-delivery", "server to client: sender bob stamped, in room Team",
        msg("room-text", room="Team", peer="bob", text="grüße 👋"))
    add("room-text-empty", "an empty text in the default room",
        msg("room-text", room="lobby", peer="alice", text=""))
    add("join", "enter (or create) the room team", msg("join", room="team"))
    add("join-unicode", "room names are UTF-8 like user names", msg("join", room="Küche_2"))
    add("leave", "leave the room team", msg("leave", room="team"))
    add("member-joined", "bob joined team", msg("member", kind="joined", room="team", name="bob"))
    add("member-left", "bob left team (or went offline)",
        msg("member", kind="left", room="team", name="bob"))
    add("member-removed", "the operator removed bob from team",
        msg("member", kind="removed", room="team", name="bob"))
    add("room-members", "the answer to join: sorted by key, the joiner last",
        msg("room-members", room="team", names=["bob", "carol", "alice"]))
    add("room-members-one", "a room just created by its first member",
        msg("room-members", room="Ärger", names=["alice"]))
    add("room-list-request", "empty body", msg("room-list-request"))
    add("room-list-two", "largest rooms first",
        msg("room-list", rooms=[{"name": "lobby", "members": 3},
                                {"name": "team", "members": 2}]))
    add("room-list-empty", "count 0", msg("room-list", rooms=[]))
    add("room-list-max-members", "members is a u32",
        msg("room-list", rooms=[{"name": "日本", "members": 4294967295}]))

    add("ping-one", "nonce 1", msg("ping", nonce=1))
    add("ping-zero", "nonce 0", msg("ping", nonce=0))
    add("ping-max", "the largest nonce: u64 values use all 64 bits",
        msg("ping", nonce=18446744073709551615))
    add("pong-echo", "answers ping 0x0102030405060708",
        msg("pong", nonce=0x0102030405060708))

    add("error-unknown-peer", "a non-fatal error",
        msg("error", code=13, text="no peer named dave"))
    add("error-malformed", "a fatal error with an empty text", msg("error", code=1, text=""))
    add("error-tls-required", "a plaintext client on a TLS port (section 12.0), after the "
        "server's preamble",
        msg("error", code=19,
            text="this port speaks TLS: connect with tls://, https:// or wss://"))
    add("error-not-member", "a room message for a room the client is not in (non-fatal)",
        msg("error", code=23, text="you are not in team"))
    add("error-room-refused", "a join refused (non-fatal)",
        msg("error", code=24, text="only the operator opens rooms here"))
    add("error-unknown-code", "code 65535 is kept as a number",
        msg("error", code=65535, text="?"))

    add("goodbye-normal", "a plain quit", msg("goodbye", code=0, reason="bye"))
    add("goodbye-shutdown", "the server shuts down", msg("goodbye", code=16, reason=""))

    add("offer-to-peer", "client offers file 0 to bob",
        msg("offer", id=0, peer="bob", size=200000, name="photo.jpg", media_type="image/jpeg"))
    add("offer-from-server", "server delivers offer 1 from alice; empty media type",
        msg("offer", id=1, peer="alice", size=0, name="empty.txt", media_type=""))
    add("offer-large", "a large id and a size above 4 GiB",
        msg("offer", id=(1 << 40) + 2, peer="", size=(5 << 30) + 7, name="disk.img",
            media_type="application/octet-stream"))
    add("offer-long-name", "file names use a two-byte length: 300 bytes",
        msg("offer", id=4, peer="bob", size=1, name="n" * 296 + ".txt", media_type="text/plain"))

    add("accept-start", "from the start with 1 MiB of credit",
        msg("accept", id=0, offset=0, credit=MiB))
    add("accept-resume", "resume at byte 65536 with the rest as credit",
        msg("accept", id=3, offset=65536, credit=4096))
    add("accept-zero-credit", "an empty file needs no credit",
        msg("accept", id=1, offset=0, credit=0))

    add("reject-declined", "the person said no", msg("reject", id=0, code=38, reason="no thanks"))
    add("reject-bad-name", "bad-file-name", msg("reject", id=7, code=36, reason=""))

    add("chunk-first", "five bytes at offset 0", msg("chunk", id=0, offset=0, data=b"hello".hex()))
    add("chunk-later", "at a large offset",
        msg("chunk", id=9, offset=(1 << 33), data="00ff00ff"))
    add("chunk-empty", "a chunk may be empty", msg("chunk", id=2, offset=10, data=""))

    add("credit-window", "one more MiB", msg("credit", id=0, bytes=MiB))
    add("credit-max", "the largest grant", msg("credit", id=5, bytes=4294967295))

    add("done-hello", "SHA-256 of the five bytes 'hello'", msg("done", id=0, sha256=sha(b"hello")))
    add("done-empty-file", "SHA-256 of the empty file", msg("done", id=1, sha256=sha(b"")))

    add("cancel-by-person", "cancelled", msg("cancel", id=0, code=37, reason="stopped"))
    add("cancel-timeout", "transfer-timeout", msg("cancel", id=3, code=39, reason=""))

    add("complete", "the digest matched", msg("complete", id=0))
    add("complete-large-id", "id 2^63", msg("complete", id=1 << 63))

    add("failed-digest", "digest-mismatch",
        msg("failed", id=0, code=35, reason="the SHA-256 of the received file does not match"))
    add("failed-storage", "storage-failed", msg("failed", id=2, code=41, reason="disk full"))

    add("extension-empty", "type 0x80: the first extension type, empty body",
        msg("extension", kind=0x80, body=""))
    add("extension-ff", "type 0xFF with a body", msg("extension", kind=0xFF, body="deadbeef"))
    add("extension-relayed", "type 0x80, relayed: offer 4 reaches bob as transfer 7 "
        "(id u64, peer str8, relay_id u64)", relayed(4, "bob", 7))
    return v


# ----- errors.json -------------------------------------------------------------------------

def error_vectors():
    v = []

    def add(name, description, data, code, eof=False, max_frame=MiB, frames_before=0):
        v.append({"name": name, "description": description, "hex": data.hex(),
                  "max_frame": max_frame, "eof": eof, "frames_before": frames_before,
                  "error": code_fields(code_of(code))})

    ping = frame(T["ping"], u64(1))
    # Frame level (spec §4).
    add("too-large-by-one", "length 1 MiB + 1 is rejected on its 4 length bytes alone",
        u32(MiB + 1), "frame-too-large")
    add("too-large-max-u32", "length 0xFFFFFFFF", u32(0xFFFFFFFF) + u8(0x10), "frame-too-large")
    add("too-large-16mib-limit", "over an announced 16 MiB limit",
        u32(16 * MiB + 1), "frame-too-large", max_frame=16 * MiB)
    add("too-large-after-frame", "a good ping, then a too-large header",
        ping + u32(MiB + 1), "frame-too-large", frames_before=1)
    add("limit-is-inclusive", "exactly 1 MiB declared is allowed; the stream then ends early",
        u32(MiB) + u8(0x11) + b"\x00\x00", "truncated", eof=True)
    add("truncated-in-length", "the stream ends after 3 length bytes",
        b"\x00\x00\x00", "truncated", eof=True)
    add("truncated-in-body", "the stream ends inside a ping body",
        ping[:9], "truncated", eof=True)
    add("truncated-after-header", "header of a 8-byte body and nothing else",
        u32(8) + u8(0x30), "truncated", eof=True)
    add("truncated-after-frames", "one good frame, then half a frame",
        ping + ping[:6], "truncated", eof=True, frames_before=1)
    # 0x12 and 0x23-0x28 are rooms (protocol 1.1, section 6.10) and are no longer unknown.
    for kind in (0x00, 0x06, 0x0F, 0x13, 0x29, 0x32, 0x49, 0x7F):
        add(f"unknown-type-{kind:02x}", f"type 0x{kind:02X} is in the mandatory range",
            frame(kind, b""), "unknown-type")
    add("unknown-type-with-body", "an unknown mandatory type with a body",
        frame(0x50, b"abc"), "unknown-type")
    add("unknown-type-truncated", "the type byte is judged with the whole frame: a stream "
        "that ends inside an unknown mandatory type's body is truncated",
        frame(0x7F, b"abc")[:-1], "truncated", eof=True)

    # Body level (spec §6).
    add("trailing-ping", "a ping body of 9 bytes", frame(T["ping"], u64(1) + b"\x00"), "malformed")
    add("trailing-list-request", "list-request must be empty",
        frame(T["list-request"], b"\x00"), "malformed")
    add("trailing-complete", "complete with an extra byte",
        frame(T["complete"], u64(0) + b"\x01"), "malformed")
    add("trailing-done", "done with a 33-byte digest",
        frame(T["done"], u64(0) + bytes(33)), "malformed")
    add("trailing-hello", "hello with a byte after max_frame",
        frame(T["hello"], str8("a") + u32(3) + u32(MiB) + b"\x00"), "malformed")
    add("trailing-peer-list", "peer-list with bytes after the last name",
        frame(T["peer-list"], u32(1) + str8("a") + b"zz"), "malformed")
    add("short-ping", "a ping body of 7 bytes", frame(T["ping"], bytes(7)), "malformed")
    add("short-pong-empty", "an empty pong body", frame(T["pong"], b""), "malformed")
    add("short-hello", "hello without max_frame", frame(T["hello"], str8("a") + u32(3)), "malformed")
    add("short-str8", "a name length past the end of the body",
        frame(T["hello"], u8(10) + b"abc"), "malformed")
    add("short-text-no-flags", "text with a peer but no flags byte",
        frame(T["text"], str8("bob")), "malformed")
    add("short-text-empty", "an empty text body", frame(T["text"], b""), "malformed")
    add("short-offer-str16", "an offer whose name length runs past the body",
        frame(T["offer"], u64(0) + str8("") + u64(1) + u16(100) + b"x"), "malformed")
    add("short-offer-no-media", "an offer without the media type",
        frame(T["offer"], u64(0) + str8("") + u64(1) + str16("a")), "malformed")
    add("short-accept", "accept of 19 bytes", frame(T["accept"], bytes(19)), "malformed")
    add("short-credit", "credit of 11 bytes", frame(T["credit"], bytes(11)), "malformed")
    add("short-done", "done with a 31-byte digest", frame(T["done"], u64(0) + bytes(31)), "malformed")
    add("short-chunk", "chunk with half an offset", frame(T["chunk"], u64(0) + bytes(4)), "malformed")
    add("short-error", "error with one code byte", frame(T["error"], b"\x00"), "malformed")
    add("short-refused", "refused with an empty body", frame(T["refused"], b""), "malformed")
    add("short-login", "login with an empty body (no method)", frame(T["login"], b""), "malformed")
    add("token-too-long", "a session token of 1025 bytes",
        frame(T["token"], b"t" * (MAX_SECRET + 1)), "malformed")
    add("login-secret-too-long", "a login secret of 1025 bytes",
        frame(T["login"], u8(1) + b"s" * (MAX_SECRET + 1)), "malformed")
    add("short-goodbye", "goodbye with an empty body", frame(T["goodbye"], b""), "malformed")
    add("short-cancel", "cancel without its code", frame(T["cancel"], u64(0)), "malformed")
    add("short-welcome", "welcome that stops after the heartbeat",
        frame(T["welcome"], str8("a") + str8("s") + u32(1)), "malformed")
    add("short-presence", "presence without a name", frame(T["presence"], u8(1)), "malformed")
    add("bad-flags-2", "text flag bit 1 is not defined",
        frame(T["text"], str8("") + u8(2) + b"x"), "malformed")
    add("bad-flags-ff", "text with every flag bit",
        frame(T["text"], str8("") + u8(0xFF) + b"x"), "malformed")
    add("bad-flags-blob", "blob with flags 0x81",
        frame(T["blob"], str8("") + u8(0x81) + str8("") + b""), "malformed")
    add("bad-presence-kind-0", "presence kind 0",
        frame(T["presence"], u8(0) + str8("bob")), "malformed")
    add("bad-presence-kind-3", "presence kind 3",
        frame(T["presence"], u8(3) + str8("bob")), "malformed")
    add("bad-member-kind-0", "member kind 0",
        frame(T["member"], u8(0) + str8("team") + str8("bob")), "malformed")
    add("bad-member-kind-4", "member kind 4",
        frame(T["member"], u8(4) + str8("team") + str8("bob")), "malformed")
    add("short-member", "member without a name",
        frame(T["member"], u8(1) + str8("team")), "malformed")
    add("short-join-empty", "join with an empty body", frame(T["join"], b""), "malformed")
    add("trailing-leave", "leave with a byte after the room",
        frame(T["leave"], str8("team") + b"\x00"), "malformed")
    add("short-room-text", "room-text without its peer field",
        frame(T["room-text"], str8("team")), "malformed")
    add("trailing-room-list-request", "room-list-request must be empty",
        frame(T["room-list-request"], b"\x00"), "malformed")
    add("room-list-count-exceeds-body", "room-list claims 2 rooms, one follows",
        frame(T["room-list"], u32(2) + str8("team") + u32(2)), "malformed")
    add("room-list-count-huge", "room-list claims 2^32-1 rooms in 5 bytes",
        frame(T["room-list"], u32(0xFFFFFFFF) + str8("") + u32(0)), "malformed")
    add("room-members-count-exceeds-body", "room-members claims 3 names, one follows",
        frame(T["room-members"], str8("team") + u32(3) + str8("a")), "malformed")
    add("utf8-room-name", "the room of join",
        frame(T["join"], str8(b"te\xffam")), "invalid-utf8")
    add("utf8-room-text", "the text of room-text",
        frame(T["room-text"], str8("team") + str8("") + b"\xc3"), "invalid-utf8")
    add("count-exceeds-body", "peer-list claims 2^32-1 names in an empty rest",
        frame(T["peer-list"], u32(0xFFFFFFFF)), "malformed")
    add("count-exceeds-body-small", "peer-list claims 3 names, 2 bytes follow",
        frame(T["peer-list"], u32(3) + b"\x00\x00"), "malformed")
    add("count-exceeds-welcome", "welcome claims 1000 online names",
        frame(T["welcome"], str8("a") + str8("s") + u32(1) + u32(1) + u32(MiB) + u32(0)
              + u32(1000) + str8("a")), "malformed")
    add("utf8-text-ff", "byte 0xFF never occurs in UTF-8",
        frame(T["text"], str8("") + u8(0) + b"\xff"), "invalid-utf8")
    add("utf8-text-truncated", "a two-byte sequence cut short",
        frame(T["text"], str8("") + u8(0) + b"ab\xc3"), "invalid-utf8")
    add("utf8-overlong", "an overlong encoding of NUL",
        frame(T["text"], str8("") + u8(0) + b"\xc0\x80"), "invalid-utf8")
    add("utf8-surrogate", "an encoded UTF-16 surrogate",
        frame(T["text"], str8("") + u8(0) + b"\xed\xa0\x80"), "invalid-utf8")
    add("utf8-above-max", "a code point above U+10FFFF",
        frame(T["text"], str8("") + u8(0) + b"\xf4\x90\x80\x80"), "invalid-utf8")
    add("utf8-login-secret", "the secret of login",
        frame(T["login"], u8(1) + b"pa\xffss"), "invalid-utf8")
    add("utf8-hello-name", "the name in hello",
        frame(T["hello"], str8(b"al\xffce") + u32(3) + u32(MiB)), "invalid-utf8")
    add("utf8-peer", "the peer field of text",
        frame(T["text"], str8(b"\x80") + u8(0) + b"hi"), "invalid-utf8")
    add("utf8-media-type", "the media type of blob",
        frame(T["blob"], str8("") + u8(0) + str8(b"image/\xfe") + b"data"), "invalid-utf8")
    add("utf8-offer-name", "the file name of offer",
        frame(T["offer"], u64(0) + str8("") + u64(1) + str16(b"\xc3(") + str8("")), "invalid-utf8")
    add("utf8-error-text", "the text of error",
        frame(T["error"], u16(13) + b"\xff"), "invalid-utf8")
    add("utf8-goodbye-reason", "the reason of goodbye",
        frame(T["goodbye"], u16(0) + b"\xe2\x82"), "invalid-utf8")
    add("utf8-peer-list", "a name in peer-list",
        frame(T["peer-list"], u32(2) + str8("ok") + str8(b"\xf0\x9f")), "invalid-utf8")
    add("utf8-welcome-server", "the server name in welcome",
        frame(T["welcome"], str8("a") + str8(b"\xff") + u32(1) + u32(1) + u32(MiB) + u32(0)
              + u32(0)), "invalid-utf8")
    add("first-field-wins", "the peer field fails before the bad flags are read",
        frame(T["text"], str8(b"\xff") + u8(9)), "invalid-utf8")
    return v


# ----- session.json ----------------------------------------------------------------------------

WELCOME_DEFAULT = msg("welcome", name="alice", server="server", heartbeat_ms=10000,
                      timeout_ms=30000, max_frame=MiB, capabilities=3, online=["alice"])
HELLO_ALICE = msg("hello", name="alice", capabilities=3, max_frame=MiB)
# What the reference hub announces (files, blobs, rooms) and its default room (section 9).
HUB_CAPS = CAP_FILES | CAP_BLOBS | CAP_ROOMS
LOBBY = "lobby"

SETUPS = {
    "server-open": {
        "role": "server",
        "description": "a server that read the client's preamble and hello for alice and "
                       "answered with welcome; everything it sent so far is discarded",
        "steps": [
            {"input": (preamble() + encode(HELLO_ALICE)).hex()},
            {"command": "accept_hello", "name": "alice", "server": "server",
             "online": ["alice"]},
        ],
    },
    "server-handshake": {
        "role": "server",
        "description": "a server that read the client's preamble and answered with its own",
        "steps": [{"input": preamble().hex()}],
    },
    "server-open-rooms": {
        "role": "server",
        "description": "as server-open, but alice announced ROOMS (capabilities 7); the "
                       "vector's config says whether the server did",
        "steps": [
            {"input": (preamble() + encode(dict(HELLO_ALICE, capabilities=7))).hex()},
            {"command": "accept_hello", "name": "alice", "server": "server",
             "online": ["alice"]},
        ],
    },
    "client-open-rooms": {
        "role": "client",
        "description": "as client-open, but the welcome announces ROOMS (capabilities 7); "
                       "the vector's config says whether the client did",
        "steps": [{"input": (preamble() + encode(dict(WELCOME_DEFAULT, capabilities=7))).hex()}],
    },
    "client-open": {
        "role": "client",
        "description": "a client named alice (its preamble and hello discarded) that read the "
                       "server's preamble and the default welcome",
        "steps": [{"input": (preamble() + encode(WELCOME_DEFAULT)).hex()}],
    },
}


def exact(data, what):
    return {"hex": data.hex(), "what": what}


def of_type(t, prefix=b""):
    return {"type": T[t], "type_name": t, "prefix": prefix.hex()}


def error_reply(code):
    c = code_of(code)
    r = of_type("error", u16(c))
    r.update(code_fields(c))
    return r


def closed(by, code):
    c = code_of(code)
    d = {"by": by}
    d.update(code_fields(c))
    return d


def session_vectors():
    v = []

    def add(name, description, role, setup, steps, reply=(), events=(), close=None, config=None):
        vec = {"name": name, "description": description, "role": role, "setup": setup,
               "steps": steps, "expect": {"reply": list(reply), "events": list(events),
                                          "closed": close}}
        if config:
            vec["config"] = config
        if setup:
            assert SETUPS[setup]["role"] == role
        v.append(vec)

    def aborted(tid, direction, code):
        return {"event": "finished", "id": tid, "direction": direction, "ok": False,
                **code_fields(code_of(code))}

    def inp(*parts):
        return {"input": b"".join(parts).hex()}

    E = encode
    P = preamble()
    HELLO = E(HELLO_ALICE)
    hello_event = {"event": "hello", "name": "alice", "capabilities": 3, "max_frame": MiB}

    # --- preamble (spec §3) ---
    add("server-answers-preamble", "the server sends its preamble after the client's",
        "server", None, [inp(P)], reply=[exact(P, "preamble v1")])
    add("server-preamble-and-hello", "preamble and hello in one piece",
        "server", None, [inp(P, HELLO)], reply=[exact(P, "preamble v1")], events=[hello_event])
    add("server-partial-preamble", "five bytes of preamble: wait for more, send nothing",
        "server", None, [inp(P[:5])])
    add("server-http-request", "an HTTP request line is rejected at its first byte",
        "server", None, [inp(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")],
        reply=[exact(P, "preamble v1"), error_reply("bad-preamble")], close=closed("local", "bad-preamble"))
    add("server-tls-hello", "a TLS ClientHello is not a preamble",
        "server", None, [inp(bytes.fromhex("160301020001"))],
        reply=[exact(P, "preamble v1"), error_reply("bad-preamble")], close=closed("local", "bad-preamble"))
    add("server-bad-magic-late", "the fourth magic byte is wrong",
        "server", None, [inp(b"\x89TDX")],
        reply=[exact(P, "preamble v1"), error_reply("bad-preamble")], close=closed("local", "bad-preamble"))
    add("server-lf-mangled", "CR LF turned into LF by a text-mode transfer",
        "server", None, [inp(b"\x89TDG\n\x1a\x01")],
        reply=[exact(P, "preamble v1"), error_reply("bad-preamble")], close=closed("local", "bad-preamble"))
    add("server-version-2", "a newer client: the server still sends its own preamble, then "
        "unsupported-version", "server", None, [inp(preamble(2), HELLO)],
        reply=[exact(P, "preamble v1"), error_reply("unsupported-version")],
        close=closed("local", "unsupported-version"))
    add("server-version-0", "version 0 is not spoken either",
        "server", None, [inp(preamble(0))],
        reply=[exact(P, "preamble v1"), error_reply("unsupported-version")],
        close=closed("local", "unsupported-version"))
    add("client-version-2", "the server answers with version 2: the client gives up",
        "client", None, [inp(preamble(2))],
        reply=[error_reply("unsupported-version")], close=closed("local", "unsupported-version"))
    add("client-bad-preamble", "the server answers with HTTP",
        "client", None, [inp(b"HTTP/1.1 400 Bad Request\r\n")],
        reply=[error_reply("bad-preamble")], close=closed("local", "bad-preamble"))
    add("server-eof-before-preamble", "the client connects and closes at once",
        "server", None, [{"eof": True}], close=closed("stream", "truncated"))
    add("server-eof-in-preamble", "the stream ends inside the preamble",
        "server", None, [inp(P[:3]), {"eof": True}],
        reply=[exact(P, "preamble v1"), of_type("goodbye", u16(CODES["truncated"]))], close=closed("local", "truncated"))

    # --- handshake (spec §6.1, §9) ---
    add("server-hello-16mib", "a client that accepts 16 MiB frames",
        "server", "server-handshake", [inp(E(msg("hello", name="bob", capabilities=1,
                                                    max_frame=16 * MiB)))],
        events=[{"event": "hello", "name": "bob", "capabilities": 1, "max_frame": 16 * MiB}])
    add("server-hello-small-limit", "an announced frame limit below 1 MiB is malformed",
        "server", "server-handshake", [inp(E(msg("hello", name="bob", capabilities=3,
                                                    max_frame=MiB - 1)))],
        reply=[error_reply("malformed")], close=closed("local", "malformed"))
    add("server-ping-before-hello", "nothing but hello may come first",
        "server", "server-handshake", [inp(E(msg("ping", nonce=1)))],
        reply=[error_reply("unexpected-message")], close=closed("local", "unexpected-message"))
    add("server-text-before-hello", "chat before the handshake",
        "server", "server-handshake", [inp(E(msg("text", peer="", private=False, text="x")))],
        reply=[error_reply("unexpected-message")], close=closed("local", "unexpected-message"))
    add("server-welcome-from-client", "welcome only flows server to client",
        "server", "server-handshake", [inp(E(WELCOME_DEFAULT))],
        reply=[error_reply("unexpected-message")], close=closed("local", "unexpected-message"))
    add("server-extension-before-hello", "extension frames are ignored in every state",
        "server", "server-handshake", [inp(E(msg("extension", kind=0x80, body="01")), HELLO)],
        events=[hello_event])
    add("server-unknown-type-before-hello", "an unknown mandatory type is fatal",
        "server", "server-handshake", [inp(frame(0x06, b""))],
        reply=[error_reply("unknown-type")], close=closed("local", "unknown-type"))
    add("server-goodbye-before-hello", "goodbye is allowed in every state",
        "server", "server-handshake", [inp(E(msg("goodbye", code=0, reason="changed my mind")))],
        close=closed("peer", "normal"))
    add("server-fatal-error-before-hello", "a fatal error frame closes in every state",
        "server", "server-handshake", [inp(E(msg("error", code=16, text="")))],
        close=closed("peer", "shutdown"))
    add("server-nonfatal-error-before-hello", "a non-fatal error before the handshake is "
        "unexpected", "server", "server-handshake", [inp(E(msg("error", code=13, text="")))],
        reply=[error_reply("unexpected-message")], close=closed("local", "unexpected-message"))
    add("server-message-while-pending", "the client must wait for welcome before sending more",
        "server", "server-handshake", [inp(HELLO, E(msg("ping", nonce=1)))],
        reply=[error_reply("unexpected-message")], events=[hello_event],
        close=closed("local", "unexpected-message"))
    add("server-refuses", "the application refuses the name: refused, then close",
        "server", "server-handshake", [inp(HELLO), {"command": "refuse", "code": 10,
                                                     "reason": "taken"}],
        reply=[exact(E(msg("refused", code=10, reason="taken")), "refused name-taken")],
        events=[hello_event], close=closed("local", "name-taken"))
    add("server-welcome-bytes", "the welcome a default server sends",
        "server", "server-handshake", [inp(HELLO), {"command": "accept_hello", "name": "alice",
                                                     "server": "server", "online": ["alice"]}],
        reply=[exact(E(WELCOME_DEFAULT), "welcome")], events=[hello_event])
    add("client-connected", "preamble and welcome: the client is open",
        "client", None, [inp(P, E(WELCOME_DEFAULT))],
        events=[{"event": "connected", "name": "alice", "server": "server",
                 "online": ["alice"]}])
    add("client-refused", "refused closes the client",
        "client", None, [inp(P, E(msg("refused", code=10, reason="in use")))],
        close=closed("peer", "name-taken"))
    add("client-welcome-zero-heartbeat", "heartbeat 0 is out of range",
        "client", None, [inp(P, E(dict(WELCOME_DEFAULT, heartbeat_ms=0)))],
        reply=[error_reply("malformed")], close=closed("local", "malformed"))
    add("client-welcome-zero-timeout", "timeout 0 is out of range",
        "client", None, [inp(P, E(dict(WELCOME_DEFAULT, timeout_ms=0)))],
        reply=[error_reply("malformed")], close=closed("local", "malformed"))
    add("client-welcome-small-limit", "a server limit below 1 MiB is malformed",
        "client", None, [inp(P, E(dict(WELCOME_DEFAULT, max_frame=4096)))],
        reply=[error_reply("malformed")], close=closed("local", "malformed"))
    add("client-hello-from-server", "hello only flows client to server",
        "client", None, [inp(P, HELLO)],
        reply=[error_reply("unexpected-message")], close=closed("local", "unexpected-message"))
    add("client-text-before-welcome", "no chat before welcome",
        "client", None, [inp(P, E(msg("text", peer="bob", private=False, text="x")))],
        reply=[error_reply("unexpected-message")], close=closed("local", "unexpected-message"))

    # --- heartbeats (spec §9) ---
    fast = dict(WELCOME_DEFAULT, heartbeat_ms=2000, timeout_ms=6000)
    add("client-adopts-heartbeat", "the client pings after the server's interval, not its own",
        "client", None, [inp(P, E(fast)), {"timer_ms": 1999}, {"timer_ms": 2000}],
        reply=[of_type("ping")], events=[{"event": "connected", "name": "alice",
                                          "server": "server", "online": ["alice"]}])
    add("client-adopts-timeout", "silence for the server's timeout: heartbeat-timeout",
        "client", None, [inp(P, E(fast)), {"timer_ms": 2000}, {"timer_ms": 4000},
                         {"timer_ms": 5999}, {"timer_ms": 6000}],
        reply=[of_type("ping"), of_type("ping"), error_reply("heartbeat-timeout")],
        events=[{"event": "connected", "name": "alice", "server": "server",
                 "online": ["alice"]}],
        close=closed("local", "heartbeat-timeout"))
    add("client-input-resets-timeout", "any received byte restarts the timeout",
        "client", None, [inp(P, E(fast)), {"timer_ms": 2000}, inp(E(msg("pong", nonce=1))),
                         {"timer_ms": 6000}, {"timer_ms": 7999}],
        reply=[of_type("ping"), of_type("ping")],
        events=[{"event": "connected", "name": "alice", "server": "server",
                 "online": ["alice"]}])
    add("server-pings-after-interval", "a server pings after 10 s of not sending",
        "server", "server-open", [{"timer_ms": 9999}, {"timer_ms": 10000}],
        reply=[of_type("ping")])
    add("server-declares-death", "nothing for 30 s: error heartbeat-timeout and close",
        "server", "server-open", [{"timer_ms": 30000}],
        reply=[error_reply("heartbeat-timeout")], close=closed("local", "heartbeat-timeout"))
    add("server-handshake-timeout", "no hello within 10 s of connecting",
        "server", None, [inp(P), {"timer_ms": 10000}],
        reply=[exact(P, "preamble v1"), error_reply("heartbeat-timeout")],
        close=closed("local", "heartbeat-timeout"))
    add("ping-pong", "a ping is answered with a pong carrying the same nonce",
        "server", "server-open", [inp(E(msg("ping", nonce=0xDEADBEEF)))],
        reply=[exact(E(msg("pong", nonce=0xDEADBEEF)), "pong")])
    add("client-ping-pong", "clients answer pings too",
        "client", "client-open", [inp(E(msg("ping", nonce=18446744073709551615)))],
        reply=[exact(E(msg("pong", nonce=18446744073709551615)), "pong")])
    add("unsolicited-pong", "a pong nobody asked for is ignored",
        "server", "server-open", [inp(E(msg("pong", nonce=77)))])

    # --- open sessions (spec §6) ---
    add("server-text", "client text to everyone", "server", "server-open",
        [inp(E(msg("text", peer="", private=False, text="hi all")))],
        events=[{"event": "text", "peer": "", "private": False, "text": "hi all"}])
    add("server-blob", "client blob to bob", "server", "server-open",
        [inp(E(msg("blob", peer="bob", private=False, media_type="image/gif", data="4749463839")))],
        events=[{"event": "blob", "peer": "bob", "private": False, "media_type": "image/gif",
                 "data": "4749463839"}])
    add("server-list-request", "who is online?", "server", "server-open",
        [inp(E(msg("list-request")))], events=[{"event": "list-request"}])
    add("server-presence-from-client", "presence only flows server to client",
        "server", "server-open", [inp(E(msg("presence", kind="joined", name="x")))],
        reply=[error_reply("unexpected-message")], close=closed("local", "unexpected-message"))
    add("server-peer-list-from-client", "peer-list only flows server to client",
        "server", "server-open", [inp(E(msg("peer-list", names=[])))],
        reply=[error_reply("unexpected-message")], close=closed("local", "unexpected-message"))
    add("server-second-hello", "hello only once", "server", "server-open", [inp(HELLO)],
        reply=[error_reply("unexpected-message")], close=closed("local", "unexpected-message"))
    add("server-extension-ignored", "an extension frame changes nothing",
        "server", "server-open", [inp(E(msg("extension", kind=0xFF, body="0102")),
                                      E(msg("ping", nonce=2)))],
        reply=[exact(E(msg("pong", nonce=2)), "pong")])
    add("server-unknown-type", "type 0x7F is fatal", "server", "server-open",
        [inp(frame(0x7F, b"x"))], reply=[error_reply("unknown-type")],
        close=closed("local", "unknown-type"))
    add("server-frame-too-large", "too large after the handshake too", "server", "server-open",
        [inp(u32(MiB + 1))], reply=[error_reply("frame-too-large")],
        close=closed("local", "frame-too-large"))
    add("server-nonfatal-error", "unknown-peer is reported and the session stays up",
        "server", "server-open", [inp(E(msg("error", code=13, text="who?")))],
        events=[{"event": "peer-error", "code": 13, "code_name": "unknown-peer"}])
    add("server-unknown-code-error", "an unknown code in error is not fatal",
        "server", "server-open", [inp(E(msg("error", code=999, text="")))],
        events=[{"event": "peer-error", "code": 999, "code_name": "other"}])
    add("server-fatal-error", "a fatal code in error closes without an answer",
        "server", "server-open", [inp(E(msg("error", code=1, text="bad")))],
        close=closed("peer", "malformed"))
    add("server-goodbye", "orderly close by the client", "server", "server-open",
        [inp(E(msg("goodbye", code=0, reason="bye")))], close=closed("peer", "normal"))
    add("server-frames-after-goodbye", "nothing after goodbye is read",
        "server", "server-open", [inp(E(msg("goodbye", code=0, reason="")), frame(0x06, b""))],
        close=closed("peer", "normal"))
    add("server-goodbye-command", "the server says goodbye", "server", "server-open",
        [{"command": "goodbye", "code": 16, "reason": "maintenance"}],
        reply=[exact(E(msg("goodbye", code=16, reason="maintenance")), "goodbye shutdown")],
        close=closed("local", "shutdown"))
    add("server-eof", "the stream ends between frames", "server", "server-open",
        [{"eof": True}], close=closed("stream", "truncated"))
    add("server-eof-mid-frame", "the stream ends inside a frame", "server", "server-open",
        [inp(E(msg("ping", nonce=1))[:7]), {"eof": True}],
        reply=[of_type("goodbye", u16(CODES["truncated"]))], close=closed("local", "truncated"))
    add("client-presence", "bob joined", "client", "client-open",
        [inp(E(msg("presence", kind="joined", name="bob")))],
        events=[{"event": "presence", "kind": "joined", "name": "bob"}])
    add("client-peer-list", "the online list", "client", "client-open",
        [inp(E(msg("peer-list", names=["alice", "bob"])))],
        events=[{"event": "peer-list", "names": ["alice", "bob"]}])
    add("client-private-text", "server delivers a private text from bob",
        "client", "client-open", [inp(E(msg("text", peer="bob", private=True, text="psst")))],
        events=[{"event": "text", "peer": "bob", "private": True, "text": "psst"}])
    # --- rooms (spec §6.10): room messages only when both sides announced ROOMS ---
    R = {"capabilities": 7}
    unexpected = dict(reply=[error_reply("unexpected-message")],
                      close=closed("local", "unexpected-message"))
    add("server-room-join", "join, both sides speak rooms", "server", "server-open-rooms",
        [inp(E(msg("join", room="team")))], events=[{"event": "join", "room": "team"}],
        config=R)
    add("server-room-requests", "leave, room-text and room-list-request reach the application",
        "server", "server-open-rooms",
        [inp(E(msg("leave", room="lobby")), E(msg("room-text", room="team", peer="", text="hi")),
             E(msg("room-list-request")))],
        events=[{"event": "leave", "room": "lobby"},
                {"event": "room-text", "room": "team", "text": "hi"},
                {"event": "room-list-request"}], config=R)
    add("server-room-text-names-peer", "a client's room-text MUST have an empty peer: the "
        "sender is the server's to stamp", "server", "server-open-rooms",
        [inp(E(msg("room-text", room="team", peer="bob", text="it is me, bob")))],
        reply=[error_reply("malformed")], close=closed("local", "malformed"), config=R)
    add("server-room-unnegotiated", "a client that did not announce ROOMS sends join",
        "server", "server-open", [inp(E(msg("join", room="team")))], config=R, **unexpected)
    add("server-room-not-spoken", "the client announced ROOMS, the server did not: "
        "room messages stay unexpected", "server", "server-open-rooms",
        [inp(E(msg("room-text", room="lobby", peer="", text="hi")))], **unexpected)
    add("server-member-from-client", "member only flows server to client",
        "server", "server-open-rooms", [inp(E(msg("member", kind="joined", room="t", name="x")))],
        config=R, **unexpected)
    add("server-room-list-from-client", "room-list only flows server to client",
        "server", "server-open-rooms", [inp(E(msg("room-list", rooms=[])))],
        config=R, **unexpected)
    add("client-room-events", "room-text, member, room-members and room-list reach the "
        "application", "client", "client-open-rooms",
        [inp(E(msg("room-members", room="team", names=["bob", "alice"])),
             E(msg("member", kind="joined", room="team", name="carol")),
             E(msg("room-text", room="team", peer="carol", text="hi")),
             E(msg("member", kind="removed", room="team", name="alice")),
             E(msg("room-list", rooms=[{"name": "lobby", "members": 3}])))],
        events=[{"event": "room-members", "room": "team", "names": ["bob", "alice"]},
                {"event": "member", "kind": "joined", "room": "team", "name": "carol"},
                {"event": "room-text", "room": "team", "peer": "carol", "text": "hi"},
                {"event": "member", "kind": "removed", "room": "team", "name": "alice"},
                {"event": "room-list", "rooms": [{"name": "lobby", "members": 3}]}],
        config=R)
    add("client-room-commands", "join, leave, room-text (peer empty) and room-list-request",
        "client", "client-open-rooms",
        [{"command": "join", "room": "team"}, {"command": "send_room_text", "room": "team",
                                               "text": "hi"},
         {"command": "leave", "room": "team"}, {"command": "request_room_list"}],
        reply=[exact(E(msg("join", room="team")), "join"),
               exact(E(msg("room-text", room="team", peer="", text="hi")), "room-text"),
               exact(E(msg("leave", room="team")), "leave"),
               exact(E(msg("room-list-request")), "room-list-request")], config=R)
    add("client-room-unnegotiated", "the server did not announce ROOMS: its room-text is "
        "unexpected", "client", "client-open",
        [inp(E(msg("room-text", room="lobby", peer="bob", text="hi")))], config=R, **unexpected)
    add("client-room-not-spoken", "a 1.0 client (no ROOMS) receives member",
        "client", "client-open-rooms",
        [inp(E(msg("member", kind="joined", room="lobby", name="bob")))], **unexpected)
    add("client-join-from-server", "join only flows client to server",
        "client", "client-open-rooms", [inp(E(msg("join", room="team")))],
        config=R, **unexpected)
    add("client-room-errors", "not-member and room-refused are not fatal",
        "client", "client-open-rooms",
        [inp(E(msg("error", code=23, text="you are not in #team")),
             E(msg("error", code=24, text="bad name")))],
        events=[{"event": "peer-error", **code_fields(23)},
                {"event": "peer-error", **code_fields(24)}], config=R)

    add("client-list-request-from-server", "list-request only flows client to server",
        "client", "client-open", [inp(E(msg("list-request")))],
        reply=[error_reply("unexpected-message")], close=closed("local", "unexpected-message"))
    add("client-sends-text", "the bytes of a broadcast text", "client", "client-open",
        [{"command": "send_text", "to": "", "text": "hello"}],
        reply=[exact(E(msg("text", peer="", private=False, text="hello")), "text")])

    # --- transfers (spec §7) ---
    offer0 = E(msg("offer", id=0, peer="", size=5, name="hello.txt", media_type="text/plain"))
    offered0 = {"event": "offered", "id": 0, "peer": "", "name": "hello.txt", "size": 5,
                "media_type": "text/plain"}
    accept0 = {"command": "accept", "id": 0, "offset": 0}
    accept0_bytes = exact(E(msg("accept", id=0, offset=0, credit=5)), "accept, credit 5")
    chunk0 = E(msg("chunk", id=0, offset=0, data=b"hello".hex()))
    data0 = {"event": "data", "id": 0, "offset": 0, "data": b"hello".hex()}
    done0 = E(msg("done", id=0, sha256=sha(b"hello")))

    add("receive-file", "offer, accept, chunk, done; complete once the bytes are written",
        "server", "server-open",
        [inp(offer0), accept0, inp(chunk0, done0), {"command": "written", "id": 0, "len": 5}],
        reply=[accept0_bytes, exact(E(msg("complete", id=0)), "complete")],
        events=[offered0, data0, {"event": "finished", "id": 0, "direction": "receive",
                                  "ok": True, "sha256": sha(b"hello")}])
    add("receive-digest-mismatch", "a wrong digest: failed digest-mismatch",
        "server", "server-open",
        [inp(offer0), accept0, inp(chunk0, E(msg("done", id=0, sha256=sha(b"world")))),
         {"command": "written", "id": 0, "len": 5}],
        reply=[accept0_bytes, of_type("failed", u64(0) + u16(35))],
        events=[offered0, data0, {"event": "finished", "id": 0, "direction": "receive",
                                  "ok": False, **code_fields(35)}])
    add("receive-unsafe-name", "a receiver keeping no folders reduces the name to a base name",
        "server", "server-open",
        [inp(E(msg("offer", id=2, peer="bob", size=1, name="../../etc/passwd", media_type="")))],
        events=[{"event": "offered", "id": 2, "peer": "bob", "name": "passwd", "size": 1,
                 "media_type": ""}], config={"max_path_depth": 0})
    add("receive-path-escape", "a receiver keeping folders refuses a path that climbs out",
        "server", "server-open",
        [inp(E(msg("offer", id=2, peer="bob", size=1, name="../../etc/passwd", media_type="")))],
        reply=[of_type("reject", u64(2) + u16(36))])
    add("receive-unusable-name", "nothing usable is left: reject bad-file-name",
        "server", "server-open",
        [inp(E(msg("offer", id=0, peer="", size=1, name="..", media_type="")))],
        reply=[of_type("reject", u64(0) + u16(36))])
    add("offer-wrong-parity", "a client must use even ids", "server", "server-open",
        [inp(E(msg("offer", id=1, peer="", size=1, name="a", media_type="")))],
        reply=[error_reply("malformed")], close=closed("local", "malformed"))
    add("offer-id-in-use", "an id may not be offered twice", "server", "server-open",
        [inp(offer0, offer0)], reply=[error_reply("malformed")],
        events=[offered0, aborted(0, "receive", "malformed")],
        close=closed("local", "malformed"))
    add("client-offer-odd-parity", "a server must use odd ids", "client", "client-open",
        [inp(E(msg("offer", id=1, peer="bob", size=3, name="x.bin", media_type="")),
             E(msg("offer", id=2, peer="bob", size=3, name="y.bin", media_type="")))],
        reply=[error_reply("malformed")],
        events=[{"event": "offered", "id": 1, "peer": "bob", "name": "x.bin", "size": 3,
                 "media_type": ""}, aborted(1, "receive", "malformed")],
        close=closed("local", "malformed"))
    add("chunk-unknown-transfer", "a frame for an id never seen: unknown-transfer, not fatal",
        "server", "server-open", [inp(E(msg("chunk", id=8, offset=0, data="00")),
                                      E(msg("ping", nonce=3)))],
        reply=[error_reply("unknown-transfer"), exact(E(msg("pong", nonce=3)), "pong")])
    add("credit-unknown-transfer", "credit for an unknown id", "server", "server-open",
        [inp(E(msg("credit", id=4, bytes=10)))], reply=[error_reply("unknown-transfer")])
    add("chunk-before-accept", "data before the offer was accepted", "server", "server-open",
        [inp(offer0, chunk0)], reply=[error_reply("chunk-out-of-range")],
        events=[offered0, aborted(0, "receive", "chunk-out-of-range")],
        close=closed("local", "chunk-out-of-range"))
    add("chunk-wrong-offset", "chunks must arrive in order without gaps",
        "server", "server-open", [inp(offer0), accept0,
                                  inp(E(msg("chunk", id=0, offset=1, data="00")))],
        reply=[accept0_bytes, error_reply("chunk-out-of-range")],
        events=[offered0, aborted(0, "receive", "chunk-out-of-range")],
        close=closed("local", "chunk-out-of-range"))
    add("chunk-beyond-size", "more bytes than offered", "server", "server-open",
        [inp(offer0), accept0, inp(E(msg("chunk", id=0, offset=0, data="00" * 6)))],
        reply=[accept0_bytes, error_reply("chunk-out-of-range")],
        events=[offered0, aborted(0, "receive", "chunk-out-of-range")],
        close=closed("local", "chunk-out-of-range"))
    add("done-too-early", "done before every byte arrived", "server", "server-open",
        [inp(offer0), accept0, inp(E(msg("chunk", id=0, offset=0, data="6865")), done0)],
        reply=[accept0_bytes, error_reply("chunk-out-of-range")],
        events=[offered0, {"event": "data", "id": 0, "offset": 0, "data": "6865"},
                aborted(0, "receive", "chunk-out-of-range")],
        close=closed("local", "chunk-out-of-range"))
    big = E(msg("offer", id=0, peer="", size=8, name="eight.bin", media_type=""))
    big_offered = {"event": "offered", "id": 0, "peer": "", "name": "eight.bin", "size": 8,
                   "media_type": ""}
    add("credit-exceeded", "a window of 4 bytes: a fifth byte breaks the credit",
        "server", "server-open",
        [inp(big), accept0, inp(E(msg("chunk", id=0, offset=0, data="0102030405")))],
        reply=[exact(E(msg("accept", id=0, offset=0, credit=4)), "accept, credit 4"),
               error_reply("credit-exceeded")],
        events=[big_offered, aborted(0, "receive", "credit-exceeded")],
        close=closed("local", "credit-exceeded"), config={"window": 4})
    add("credit-returned-after-write", "credit goes back only for written bytes",
        "server", "server-open",
        [inp(big), accept0, inp(E(msg("chunk", id=0, offset=0, data="01020304"))),
         {"command": "written", "id": 0, "len": 4}],
        reply=[exact(E(msg("accept", id=0, offset=0, credit=4)), "accept, credit 4"),
               exact(E(msg("credit", id=0, bytes=4)), "credit 4")],
        events=[big_offered, {"event": "data", "id": 0, "offset": 0, "data": "01020304"}],
        config={"window": 4})
    add("cancel-by-sender", "the sender cancels; a chunk already in flight is ignored",
        "server", "server-open",
        [inp(offer0), accept0, inp(E(msg("cancel", id=0, code=37, reason="")), chunk0)],
        reply=[accept0_bytes],
        events=[offered0, {"event": "finished", "id": 0, "direction": "receive", "ok": False,
                           **code_fields(37)}])
    add("cancel-by-receiver", "the receiver cancels; chunks and done in flight are ignored",
        "server", "server-open",
        [inp(offer0), accept0, {"command": "cancel", "id": 0, "code": 37, "reason": "stop"},
         inp(chunk0, done0)],
        reply=[accept0_bytes, exact(E(msg("cancel", id=0, code=37, reason="stop")), "cancel")],
        events=[offered0, {"event": "finished", "id": 0, "direction": "receive", "ok": False,
                           **code_fields(37)}])
    add("reject-offer", "the receiver declines", "server", "server-open",
        [inp(offer0), {"command": "reject", "id": 0, "code": 38, "reason": "no"}],
        reply=[exact(E(msg("reject", id=0, code=38, reason="no")), "reject")],
        events=[offered0, {"event": "finished", "id": 0, "direction": "receive", "ok": False,
                           **code_fields(38)}])

    offer_out = {"command": "offer", "to": "bob", "name": "hello.txt", "size": 5,
                 "media_type": "text/plain"}
    offer_out_bytes = exact(E(msg("offer", id=0, peer="bob", size=5, name="hello.txt",
                                  media_type="text/plain")), "offer id 0")
    add("send-file", "offer, accept, read, chunk and done, complete",
        "client", "client-open",
        [offer_out, inp(E(msg("accept", id=0, offset=0, credit=5))),
         {"command": "provide", "id": 0, "offset": 0, "data": b"hello".hex()},
         inp(E(msg("complete", id=0)))],
        reply=[offer_out_bytes, exact(chunk0, "chunk"), exact(done0, "done")],
        events=[{"event": "accepted", "id": 0, "offset": 0},
                {"event": "read", "id": 0, "offset": 0, "len": 5},
                {"event": "finished", "id": 0, "direction": "send", "ok": True,
                 "sha256": sha(b"hello")}])
    add("send-within-credit", "a sender never sends beyond its credit",
        "client", "client-open",
        [offer_out, inp(E(msg("accept", id=0, offset=0, credit=3))),
         {"command": "provide", "id": 0, "offset": 0, "data": b"hel".hex()},
         inp(E(msg("credit", id=0, bytes=2))),
         {"command": "provide", "id": 0, "offset": 3, "data": b"lo".hex()}],
        reply=[offer_out_bytes, exact(E(msg("chunk", id=0, offset=0, data=b"hel".hex())), "chunk"),
               exact(E(msg("chunk", id=0, offset=3, data=b"lo".hex())), "chunk"),
               exact(done0, "done")],
        events=[{"event": "accepted", "id": 0, "offset": 0},
                {"event": "read", "id": 0, "offset": 0, "len": 3},
                {"event": "read", "id": 0, "offset": 3, "len": 2}])
    add("send-rejected", "the receiver declines", "client", "client-open",
        [offer_out, inp(E(msg("reject", id=0, code=38, reason="")))],
        reply=[offer_out_bytes],
        events=[{"event": "finished", "id": 0, "direction": "send", "ok": False,
                 **code_fields(38)}])
    add("send-failed", "the receiver reports a digest mismatch", "client", "client-open",
        [offer_out, inp(E(msg("accept", id=0, offset=0, credit=5))),
         {"command": "provide", "id": 0, "offset": 0, "data": b"hello".hex()},
         inp(E(msg("failed", id=0, code=35, reason="")))],
        reply=[offer_out_bytes, exact(chunk0, "chunk"), exact(done0, "done")],
        events=[{"event": "accepted", "id": 0, "offset": 0},
                {"event": "read", "id": 0, "offset": 0, "len": 5},
                {"event": "finished", "id": 0, "direction": "send", "ok": False,
                 **code_fields(35)}])
    add("accept-twice", "a second accept is unexpected", "client", "client-open",
        [offer_out, inp(E(msg("accept", id=0, offset=0, credit=0))),
         inp(E(msg("accept", id=0, offset=0, credit=0)))],
        reply=[offer_out_bytes, error_reply("unexpected-message")],
        events=[{"event": "accepted", "id": 0, "offset": 0},
                aborted(0, "send", "unexpected-message")],
        close=closed("local", "unexpected-message"))
    add("accept-beyond-size", "an offset past the end of the file", "client", "client-open",
        [offer_out, inp(E(msg("accept", id=0, offset=6, credit=0)))],
        reply=[offer_out_bytes, error_reply("chunk-out-of-range")],
        events=[aborted(0, "send", "chunk-out-of-range")],
        close=closed("local", "chunk-out-of-range"))
    add("credit-before-accept", "credit for an offer not yet accepted", "client", "client-open",
        [offer_out, inp(E(msg("credit", id=0, bytes=5)))],
        reply=[offer_out_bytes, error_reply("unexpected-message")],
        events=[aborted(0, "send", "unexpected-message")],
        close=closed("local", "unexpected-message"))
    add("complete-before-done", "a verdict before the data", "client", "client-open",
        [offer_out, inp(E(msg("accept", id=0, offset=0, credit=5))),
         inp(E(msg("complete", id=0)))],
        reply=[offer_out_bytes, error_reply("unexpected-message")],
        events=[{"event": "accepted", "id": 0, "offset": 0},
                {"event": "read", "id": 0, "offset": 0, "len": 5},
                aborted(0, "send", "unexpected-message")],
        close=closed("local", "unexpected-message"))
    add("chunk-to-the-sender", "file data for a transfer this side sends", "client",
        "client-open", [offer_out, inp(E(msg("chunk", id=0, offset=0, data="00")))],
        reply=[offer_out_bytes, error_reply("unexpected-message")],
        events=[aborted(0, "send", "unexpected-message")],
        close=closed("local", "unexpected-message"))
    add("goodbye-fails-transfers", "closing fails every running transfer",
        "client", "client-open",
        [offer_out, inp(E(msg("goodbye", code=16, reason="")))],
        reply=[offer_out_bytes],
        events=[{"event": "finished", "id": 0, "direction": "send", "ok": False,
                 **code_fields(16)}],
        close=closed("peer", "shutdown"))

    # --- resume, empty files, limits and timeouts (spec §7.4, §7.5, §7.7) ---
    add("receive-resume", "accept at offset 2 with no credit; credit once the kept prefix "
        "is hashed", "server", "server-open",
        [inp(offer0), {"command": "accept", "id": 0, "offset": 2},
         {"command": "provide", "id": 0, "offset": 0, "data": b"he".hex()},
         inp(E(msg("chunk", id=0, offset=2, data=b"llo".hex())), done0),
         {"command": "written", "id": 0, "len": 3}],
        reply=[exact(E(msg("accept", id=0, offset=2, credit=0)), "accept at 2, credit 0"),
               exact(E(msg("credit", id=0, bytes=3)), "credit 3"),
               exact(E(msg("complete", id=0)), "complete")],
        events=[offered0, {"event": "read", "id": 0, "offset": 0, "len": 2},
                {"event": "data", "id": 0, "offset": 2, "data": b"llo".hex()},
                {"event": "finished", "id": 0, "direction": "receive", "ok": True,
                 "sha256": sha(b"hello")}])
    add("receive-resume-wrong-prefix", "a kept prefix that differs fails the digest",
        "server", "server-open",
        [inp(offer0), {"command": "accept", "id": 0, "offset": 2},
         {"command": "provide", "id": 0, "offset": 0, "data": b"HE".hex()},
         inp(E(msg("chunk", id=0, offset=2, data=b"llo".hex())), done0),
         {"command": "written", "id": 0, "len": 3}],
        reply=[exact(E(msg("accept", id=0, offset=2, credit=0)), "accept at 2, credit 0"),
               exact(E(msg("credit", id=0, bytes=3)), "credit 3"),
               of_type("failed", u64(0) + u16(35))],
        events=[offered0, {"event": "read", "id": 0, "offset": 0, "len": 2},
                {"event": "data", "id": 0, "offset": 2, "data": b"llo".hex()},
                aborted(0, "receive", "digest-mismatch")])
    add("send-resume", "accepted at offset 2: the sender hashes the prefix, sends the rest",
        "client", "client-open",
        [offer_out, inp(E(msg("accept", id=0, offset=2, credit=0))),
         {"command": "provide", "id": 0, "offset": 0, "data": b"he".hex()},
         inp(E(msg("credit", id=0, bytes=3))),
         {"command": "provide", "id": 0, "offset": 2, "data": b"llo".hex()}],
        reply=[offer_out_bytes, exact(E(msg("chunk", id=0, offset=2, data=b"llo".hex())),
                                      "chunk at 2"), exact(done0, "done")],
        events=[{"event": "accepted", "id": 0, "offset": 2},
                {"event": "read", "id": 0, "offset": 0, "len": 2},
                {"event": "read", "id": 0, "offset": 2, "len": 3}])
    add("receive-resume-whole-file", "offset = size: done may come while the receiver still "
        "hashes; the verdict waits for its prefix", "server", "server-open",
        [inp(offer0), {"command": "accept", "id": 0, "offset": 5}, inp(done0),
         {"command": "provide", "id": 0, "offset": 0, "data": b"hello".hex()}],
        reply=[exact(E(msg("accept", id=0, offset=5, credit=0)), "accept at 5, credit 0"),
               exact(E(msg("complete", id=0)), "complete")],
        events=[offered0, {"event": "read", "id": 0, "offset": 0, "len": 5},
                {"event": "finished", "id": 0, "direction": "receive", "ok": True,
                 "sha256": sha(b"hello")}])
    add("receive-resume-keepalive", "hashing a long prefix: a zero credit every second",
        "server", "server-open",
        [inp(offer0), {"command": "accept", "id": 0, "offset": 4}, {"timer_ms": 1000},
         {"command": "provide", "id": 0, "offset": 0, "data": b"h".hex()},
         {"command": "provide", "id": 0, "offset": 1, "data": b"ell".hex()}],
        reply=[exact(E(msg("accept", id=0, offset=4, credit=0)), "accept at 4, credit 0"),
               exact(E(msg("credit", id=0, bytes=0)), "keepalive: credit 0"),
               exact(E(msg("credit", id=0, bytes=1)), "credit 1")],
        events=[offered0, {"event": "read", "id": 0, "offset": 0, "len": 4}])
    add("send-resume-keepalive", "hashing a long prefix: an empty chunk at the resume offset",
        "client", "client-open",
        [offer_out, inp(E(msg("accept", id=0, offset=4, credit=0))), {"timer_ms": 1000},
         {"command": "provide", "id": 0, "offset": 0, "data": b"h".hex()},
         {"command": "provide", "id": 0, "offset": 1, "data": b"ell".hex()}],
        reply=[offer_out_bytes, exact(E(msg("chunk", id=0, offset=4, data="")),
                                      "keepalive: empty chunk at 4")],
        events=[{"event": "accepted", "id": 0, "offset": 4},
                {"event": "read", "id": 0, "offset": 0, "len": 4}])
    add("empty-chunk-while-hashing", "an empty chunk at the resume offset is a keepalive",
        "server", "server-open",
        [inp(offer0), {"command": "accept", "id": 0, "offset": 2},
         inp(E(msg("chunk", id=0, offset=2, data="")))],
        reply=[exact(E(msg("accept", id=0, offset=2, credit=0)), "accept at 2, credit 0")],
        events=[offered0, {"event": "read", "id": 0, "offset": 0, "len": 2}])
    add("data-while-hashing", "file bytes before the receiver granted credit",
        "server", "server-open",
        [inp(offer0), {"command": "accept", "id": 0, "offset": 2},
         inp(E(msg("chunk", id=0, offset=2, data="6c")))],
        reply=[exact(E(msg("accept", id=0, offset=2, credit=0)), "accept at 2, credit 0"),
               error_reply("credit-exceeded")],
        events=[offered0, {"event": "read", "id": 0, "offset": 0, "len": 2},
                aborted(0, "receive", "credit-exceeded")],
        close=closed("local", "credit-exceeded"))
    # File names (spec §7.8): the reduced name is computed by safe_file_name above.
    hostile = [
        ("report.pdf", "an ordinary name is kept"),
        ("../../etc/passwd", "directories are dropped"),
        ("C:\\Windows\\win.ini", "backslashes and the drive are dropped"),
        ("D:evil", "a drive prefix without a separator"),
        (".bashrc", "no hidden files"),
        ("nul.txt", "a Windows device name gets a prefix"),
        ("lpt9.log", "LPT and a digit"),
        ("COM1", "COM and a digit, no extension"),
        ("console.log", "not a device name"),
        ("a\u0000b\u007fc", "control characters become _"),
        ("what?<is>|this*.txt", "reserved characters become _"),
        ("  spaced. . ", "spaces and dots trimmed"),
        ("grüße 👋.txt", "Unicode is kept"),
        ("é" * 300 + ".tar.gz", "cut to 255 bytes on a character boundary, extension kept"),
        ("x" * 300 + ".averyveryverylongextension", "an extension over 16 bytes is not kept"),
        ("dir/", "nothing after the last slash: refused"),
        ("...", "only dots: refused"),
        ("a" * 4097, "over 4096 bytes on the wire: refused"),
        ("evil\u202etxt.exe", "a right-to-left override cannot fake the extension"),
        ("a\u200bb\ufeff", "zero-width characters become _"),
        ("COM\u00b9.txt", "Windows reads the superscript 1 as a digit of a device name"),
        ("COM\u0663.txt", "other digits are not: only 0-9 and the superscripts 1, 2, 3"),
        ("\u00a0x\u3000", "only U+0020 is a space that is trimmed"),
    ]
    def reduced_names(prefix, cases, reduce, size, config):
        """One vector per name: offered, reduced by `reduce`, or rejected bad-file-name."""
        for i, (name, why) in enumerate(cases):
            offer = E(msg("offer", id=2 * i, peer="", size=size, name=name, media_type=""))
            reduced = reduce(name)
            if reduced is None:
                add(f"{prefix}-{i:02}", f"{why}", "server", "server-open", [inp(offer)],
                    reply=[of_type("reject", u64(2 * i) + u16(36))], config=config)
            else:
                add(f"{prefix}-{i:02}", f"{why}: {reduced[:40]!r}", "server", "server-open",
                    [inp(offer)],
                    events=[{"event": "offered", "id": 2 * i, "peer": "", "name": reduced,
                             "size": size, "media_type": ""}], config=config)
    # The rules of a receiver that keeps no folders (the version 1 rule).
    reduced_names("file-name", hostile, safe_file_name, 1, {"max_path_depth": 0})
    # Folders (spec §7.8): each component reduced by safe_path above (default depth 32).
    paths = [
        ("photos/2024/a.jpg", "a relative path is kept"),
        ("photos\\b.jpg", "a backslash separates too; the result uses /"),
        ("./a//b/./c", "empty and . components are dropped"),
        ("empty/", "a folder: the trailing / is kept"),
        ("a/.git/HEAD", "each component is reduced: no hidden folders"),
        ("CON/nul.txt", "device names in folders get a prefix"),
        ("a/C:b/x", "a drive prefix inside the path is dropped"),
        ("grüße/👋.txt", "Unicode folders"),
        ("../x", "a .. component: refused"),
        ("a/../../x", "a .. anywhere: refused"),
        ("a/..", "a trailing ..: refused"),
        ("/etc/x", "an absolute path: refused"),
        ("\\\\host\\share\\x", "a UNC path: refused"),
        ("C:\\x", "a drive: refused"),
        ("a/ /b", "a component of spaces: refused"),
        ("a/.../b", "a component of dots: refused"),
        ("/".join(["d"] * 32) + "/f", "33 levels, over the default limit of 32: refused"),
        ("/".join(["d"] * 31) + "/f", "32 levels: kept"),
        ("./", "nothing left: refused"),
        ("x\u202e/y", "a right-to-left override in a folder name becomes _"),
    ]
    reduced_names("path-name", paths, safe_path, 0, None)
    add("path-name-depth-knob", "a receiver with a depth limit of 2 refuses a third level",
        "server", "server-open",
        [inp(E(msg("offer", id=0, peer="", size=0, name="a/b/c", media_type="")))],
        reply=[of_type("reject", u64(0) + u16(36))], config={"max_path_depth": 2})
    offer_out_rel = {"command": "offer", "to": "bob", "name": "x.bin", "size": 3,
                     "media_type": ""}
    add("client-relayed", "the server tells the sender the id its offer has at the receiver",
        "client", "client-open", [offer_out_rel, inp(E(relayed(0, "bob", 7)))],
        reply=[exact(E(msg("offer", id=0, peer="bob", size=3, name="x.bin", media_type="")),
                     "offer id 0")],
        events=[{"event": "relayed", "id": 0, "peer": "bob", "relay_id": 7}])
    add("client-relayed-ignored", "relayed for an id that is not our offer, or with a body "
        "that does not decode, is ignored like any unknown extension",
        "client", "client-open",
        [inp(E(relayed(6, "bob", 7)),
             E(msg("extension", kind=0x80, body="00")))])

    empty_offer = E(msg("offer", id=0, peer="", size=0, name="empty", media_type=""))
    add("receive-empty-file", "size 0: credit 0, done at once, complete at once",
        "server", "server-open",
        [inp(empty_offer), accept0, inp(E(msg("done", id=0, sha256=sha(b""))))],
        reply=[exact(E(msg("accept", id=0, offset=0, credit=0)), "accept, credit 0"),
               exact(E(msg("complete", id=0)), "complete")],
        events=[{"event": "offered", "id": 0, "peer": "", "name": "empty", "size": 0,
                 "media_type": ""},
                {"event": "finished", "id": 0, "direction": "receive", "ok": True,
                 "sha256": sha(b"")}])
    add("send-empty-file", "size 0: done follows accept without chunks",
        "client", "client-open",
        [{"command": "offer", "to": "", "name": "empty", "size": 0, "media_type": ""},
         inp(E(msg("accept", id=0, offset=0, credit=0))), inp(E(msg("complete", id=0)))],
        reply=[exact(empty_offer, "offer id 0"),
               exact(E(msg("done", id=0, sha256=sha(b""))), "done")],
        events=[{"event": "accepted", "id": 0, "offset": 0},
                {"event": "finished", "id": 0, "direction": "send", "ok": True,
                 "sha256": sha(b"")}])
    add("too-many-transfers", "over the concurrent transfer limit: reject limit-exceeded",
        "server", "server-open",
        [inp(offer0, E(msg("offer", id=2, peer="", size=1, name="b", media_type="")))],
        reply=[of_type("reject", u64(2) + u16(17))], events=[offered0],
        config={"max_active": 1})
    add("sender-offer-timeout", "an unanswered offer is cancelled with transfer-timeout",
        "client", "client-open", [offer_out, {"timer_ms": 4999}, {"timer_ms": 5000}],
        reply=[offer_out_bytes, of_type("cancel", u64(0) + u16(39))],
        events=[aborted(0, "send", "transfer-timeout")], config={"offer_timeout_ms": 5000})
    add("receiver-offer-timeout", "an offer left unanswered is rejected with transfer-timeout",
        "server", "server-open", [inp(offer0), {"timer_ms": 5000}],
        reply=[of_type("reject", u64(0) + u16(39))],
        events=[offered0, aborted(0, "receive", "transfer-timeout")],
        config={"offer_timeout_ms": 5000})
    add("receiver-stall-timeout", "no byte for the stall timeout: cancel transfer-timeout",
        "server", "server-open", [inp(offer0), accept0, {"timer_ms": 4999}, {"timer_ms": 5000}],
        reply=[accept0_bytes, of_type("cancel", u64(0) + u16(39))],
        events=[offered0, aborted(0, "receive", "transfer-timeout")],
        config={"stall_timeout_ms": 5000})
    add("eof-fails-transfers", "a vanished peer: transfers end with peer-lost",
        "server", "server-open", [inp(offer0), {"eof": True}],
        events=[offered0, aborted(0, "receive", "peer-lost")], close=closed("stream", "truncated"))

    # --- the decisions of spec/DECISIONS.md, one or more vectors each ---
    # 1. The credit in accept is the initial credit whatever the offset (§7.4 rule 2).
    add("send-resume-credit-in-accept", "an accept at offset 2 that grants credit at once "
        "(as a relay does): the sender hashes its prefix, then sends on that credit",
        "client", "client-open",
        [offer_out, inp(E(msg("accept", id=0, offset=2, credit=3))),
         {"command": "provide", "id": 0, "offset": 0, "data": b"he".hex()},
         {"command": "provide", "id": 0, "offset": 2, "data": b"llo".hex()}],
        reply=[offer_out_bytes, exact(E(msg("chunk", id=0, offset=2, data=b"llo".hex())),
                                      "chunk at 2, on the accept's credit"),
               exact(done0, "done")],
        events=[{"event": "accepted", "id": 0, "offset": 2},
                {"event": "read", "id": 0, "offset": 0, "len": 2},
                {"event": "read", "id": 0, "offset": 2, "len": 3}])
    # 2. The default receive window is 8 MiB, the default read-ahead 1 MiB (§9).
    huge = 16 * MiB
    add("receive-default-window", "a default receiver grants its 8 MiB window in accept",
        "server", "server-open",
        [inp(E(msg("offer", id=0, peer="", size=huge, name="big.bin", media_type=""))),
         accept0],
        reply=[exact(E(msg("accept", id=0, offset=0, credit=8 * MiB)), "accept, credit 8 MiB")],
        events=[{"event": "offered", "id": 0, "peer": "", "name": "big.bin", "size": huge,
                 "media_type": ""}])
    add("send-default-read-ahead", "a default sender with 8 MiB of credit reads 1 MiB ahead "
        "of the connection, in chunks of 256 KiB", "client", "client-open",
        [{"command": "offer", "to": "", "name": "big.bin", "size": huge, "media_type": ""},
         inp(E(msg("accept", id=0, offset=0, credit=8 * MiB)))],
        reply=[exact(E(msg("offer", id=0, peer="", size=huge, name="big.bin", media_type="")),
                     "offer id 0")],
        events=[{"event": "accepted", "id": 0, "offset": 0}]
        + [{"event": "read", "id": 0, "offset": k * 256 * 1024, "len": 256 * 1024}
           for k in range(4)])
    # 4. goodbye is the last frame: queued file data is dropped, not sent after it (§6.7.1).
    add("goodbye-drops-queued-data", "a chunk and done still queued when the sender says "
        "goodbye are dropped: goodbye is the last frame", "client", "client-open",
        [offer_out, inp(E(msg("accept", id=0, offset=0, credit=5))), {"write_blocked": True},
         {"command": "provide", "id": 0, "offset": 0, "data": b"hello".hex()},
         {"command": "goodbye", "code": 0, "reason": "bye"}, {"write_blocked": False}],
        reply=[offer_out_bytes, exact(E(msg("goodbye", code=0, reason="bye")), "goodbye")],
        events=[{"event": "accepted", "id": 0, "offset": 0},
                {"event": "read", "id": 0, "offset": 0, "len": 5},
                aborted(0, "send", "normal")],
        close=closed("local", "normal"))
    # 5. After a write, a credit of 0 goes out once a keepalive interval passed, even when
    #    the grant already reached the end of the file (§7.4 rule 4).
    four = E(msg("offer", id=0, peer="", size=4, name="four.bin", media_type=""))
    add("credit-keepalive-after-last-grant", "granted to the end of the file, a receiver that "
        "writes slowly still sends credit 0 once a second passed since its last credit",
        "server", "server-open",
        [inp(four), accept0, inp(E(msg("chunk", id=0, offset=0, data="01020304"))),
         {"timer_ms": 1000}, {"command": "written", "id": 0, "len": 2},
         {"command": "written", "id": 0, "len": 2},
         inp(E(msg("done", id=0, sha256=sha(bytes([1, 2, 3, 4])))))],
        reply=[exact(E(msg("accept", id=0, offset=0, credit=4)), "accept, credit 4"),
               exact(E(msg("credit", id=0, bytes=0)), "keepalive: credit 0"),
               exact(E(msg("complete", id=0)), "complete")],
        events=[{"event": "offered", "id": 0, "peer": "", "name": "four.bin", "size": 4,
                 "media_type": ""},
                {"event": "data", "id": 0, "offset": 0, "data": "01020304"},
                {"event": "finished", "id": 0, "direction": "receive", "ok": True,
                 "sha256": sha(bytes([1, 2, 3, 4]))}],
        config={"window": 4})
    # 6. The handshake timeout: silence gets no answer, a started preamble does (§6.6.4).
    add("server-handshake-timeout-silent", "not one byte within 10 s: closed without a word",
        "server", None, [{"timer_ms": 10000}], close=closed("local", "heartbeat-timeout"))
    add("server-handshake-timeout-in-preamble", "one byte of preamble, then nothing for 10 s: "
        "preamble and heartbeat-timeout", "server", None, [inp(P[:1]), {"timer_ms": 10000}],
        reply=[exact(P, "preamble v1"), error_reply("heartbeat-timeout")],
        close=closed("local", "heartbeat-timeout"))
    # 7. Codes for the cases §7 left open.
    add("offer-reuses-ended-id", "an offer whose id names an ended transfer starts a new one",
        "server", "server-open",
        [inp(offer0), {"command": "reject", "id": 0, "code": 38, "reason": "no"}, inp(offer0)],
        reply=[exact(E(msg("reject", id=0, code=38, reason="no")), "reject")],
        events=[offered0, aborted(0, "receive", "rejected"), offered0])
    add("done-before-accept", "done for an offer not yet accepted: chunk-out-of-range",
        "server", "server-open", [inp(offer0, done0)], reply=[error_reply("chunk-out-of-range")],
        events=[offered0, aborted(0, "receive", "chunk-out-of-range")],
        close=closed("local", "chunk-out-of-range"))
    add("done-twice", "a second done while the verdict is pending: chunk-out-of-range",
        "server", "server-open", [inp(offer0), accept0, inp(chunk0, done0, done0)],
        reply=[accept0_bytes, error_reply("chunk-out-of-range")],
        events=[offered0, data0, aborted(0, "receive", "chunk-out-of-range")],
        close=closed("local", "chunk-out-of-range"))
    return v


# ----- hub.json: routing through a server (spec §6.1–§6.4, §10) ------------------------------

def hub_vectors():
    """A default server (participant "server", no inbox) and scripted clients.

    Every client is played by the vector: its bytes are given, and everything the server
    sends to each client is expected, from its preamble on.
    """
    v = []
    E = encode

    class Script:
        def __init__(self):
            self.steps = []
            self.expect = {}
            self.online = []

        def send(self, conn, *frames):
            self.steps.append({"conn": conn, "input": b"".join(frames).hex()})

        def eof(self, conn):
            self.steps.append({"conn": conn, "eof": True})

        def gets(self, conn, *items):
            self.expect.setdefault(conn, []).extend(items)

        def join(self, conn, name, rooms=False):
            """`conn` registers `name`; with `rooms` it announces ROOMS (protocol 1.1).

            The server speaks rooms (capabilities 7). `welcome` lists the default room's
            members; a 1.1 client then gets that room's `room-members`. The others hear of
            it in the default room: `member` joined (1.1) or `presence` joined (1.0).
            """
            caps = CAP_FILES | CAP_BLOBS | (CAP_ROOMS if rooms else 0)
            self.send(conn, preamble(), E(msg("hello", name=name, capabilities=caps,
                                              max_frame=MiB)))
            others = sorted(self.online, key=lambda n: n.lower())
            welcome = dict(WELCOME_DEFAULT, name=name, online=others + [name],
                           capabilities=HUB_CAPS)
            self.gets(conn, exact(preamble(), "preamble v1"), exact(E(welcome), "welcome"))
            if rooms:
                self.gets(conn, exact(E(msg("room-members", room=LOBBY, names=others + [name])),
                                      f"room-members of {LOBBY}, {name} last"))
            for other_conn, other in list(self.conns.items()):
                if self.rooms.get(other_conn):
                    news = msg("member", kind="joined", room=LOBBY, name=name)
                    self.gets(other_conn, exact(E(news), f"member: {name} joined {LOBBY}"))
                else:
                    self.gets(other_conn, exact(E(msg("presence", kind="joined", name=name)),
                                                f"presence: {name} joined"))
            self.online.append(name)
            self.conns[conn] = name
            self.rooms[conn] = rooms

        def refused(self, conn, name, code):
            self.send(conn, preamble(), E(msg("hello", name=name, capabilities=3, max_frame=MiB)))
            self.gets(conn, exact(preamble(), "preamble v1"), of_type("refused", u16(code)))

    def add(name, description, build):
        sc = Script()
        sc.conns = {}
        sc.rooms = {}
        build(sc)
        for c in sc.conns:
            sc.expect.setdefault(c, [])
        v.append({"name": name, "description": description, "steps": sc.steps,
                  "expect": sc.expect})

    def text(peer, body, private=False):
        return E(msg("text", peer=peer, private=private, text=body))

    def two(sc):
        sc.join("a", "alice")
        sc.join("b", "bob")

    add("hub-join", "the first client is welcomed with itself online", lambda sc: sc.join("a", "alice"))
    add("hub-presence", "a second client: welcome lists both, the first hears it joined", two)

    def three(sc):
        sc.join("c", "Carol")
        sc.join("a", "alice")
        sc.join("b", "bob")
    add("hub-online-order", "the others sorted case-insensitively, the new client last", three)

    def broadcast(sc):
        two(sc)
        sc.send("a", text("", "hi all"))
        sc.gets("b", exact(text("alice", "hi all"), "text from alice, not private"))
    add("hub-broadcast", "text to everyone reaches the others, stamped, not echoed", broadcast)

    def private(sc):
        two(sc)
        sc.join("c", "carol")
        sc.send("a", text("BOB", "psst"))
        sc.gets("b", exact(text("alice", "psst", True), "private text from alice"))
    add("hub-private", "text to a name (any case) reaches that client only, private", private)

    def flag_ignored(sc):
        two(sc)
        sc.send("a", text("", "not private", True))
        sc.gets("b", exact(text("alice", "not private"), "the private flag is the server's"))
    add("hub-client-flag-ignored", "a client's private flag is not relayed", flag_ignored)

    def spoof(sc):
        two(sc)
        sc.join("c", "carol")
        # alice addresses carol but cannot make it look as if bob sent it.
        sc.send("a", text("carol", "it is me, bob"))
        sc.gets("c", exact(text("alice", "it is me, bob", True), "stamped with the true sender"))
    add("hub-no-spoofing", "the peer field names the addressee; the server stamps the sender",
        spoof)

    def unknown(sc):
        two(sc)
        sc.send("a", text("dave", "anyone?"))
        sc.send("a", E(msg("ping", nonce=5)))
        sc.gets("a", error_reply("unknown-peer"), exact(E(msg("pong", nonce=5)), "pong"))
    add("hub-unknown-peer", "an unknown addressee: a non-fatal error, the session goes on",
        unknown)

    def blob(sc):
        two(sc)
        sc.send("b", E(msg("blob", peer="alice", private=False, media_type="image/png",
                           data="89504e47")))
        sc.gets("a", exact(E(msg("blob", peer="bob", private=True, media_type="image/png",
                                 data="89504e47")), "private blob from bob"))
    add("hub-blob", "blobs are routed like text", blob)

    def to_server(sc):
        two(sc)
        sc.send("a", text("server", "hello server"), text("SERVER", "again"))
    add("hub-to-server-participant", "text to the server participant reaches no client",
        to_server)

    def peer_list(sc):
        two(sc)
        sc.send("b", E(msg("list-request")))
        sc.gets("b", exact(E(msg("peer-list", names=["alice", "bob"])), "peer-list"))
    add("hub-peer-list", "list-request: every registered client, sorted", peer_list)

    def taken(sc):
        sc.join("a", "alice")
        sc.refused("b", "ALICE", CODES["name-taken"])
    add("hub-name-taken", "names compare case-insensitively", taken)

    def reserved(sc):
        sc.refused("a", "Server", CODES["name-taken"])
    add("hub-server-name-reserved", "the server participant's name is taken", reserved)

    def look_alikes(sc):
        sc.join("a", "alice")
        sc.refused("b", "\uff21lice", CODES["name-taken"])        # full-width A
        sc.refused("c", "\u0430lice", CODES["name-taken"])        # Cyrillic a
        sc.refused("d", "\U0001d41alice", CODES["name-taken"])    # mathematical bold a
        sc.refused("e", "\u0455\u0435rv\u0435r", CODES["name-taken"])  # Cyrillic s, e
        sc.refused("f", "alice\u200b", CODES["name-invalid"])     # zero-width space
        sc.refused("g", "\u3164", CODES["name-invalid"])          # Hangul filler
    add("hub-name-look-alike", "names compare by key (spec §6.1): full-width, Cyrillic and "
        "mathematical look-alikes are taken, the server's too; invisible characters are invalid",
        look_alikes)

    def invalid(sc):
        sc.refused("a", "-alice", CODES["name-invalid"])
        sc.refused("b", "a b", CODES["name-invalid"])
        sc.refused("c", "x" * 33, CODES["name-invalid"])
    add("hub-name-invalid", "names break the rules of spec §6.1", invalid)

    def valid_names(sc):
        sc.join("a", "Zoë_2")
        sc.join("b", "日本")
        sc.join("c", "x" * 32)
    add("hub-name-valid", "letters of any script, digits, - _ . and 32 characters", valid_names)

    def leaves(sc):
        two(sc)
        sc.send("b", E(msg("goodbye", code=0, reason="bye")))
        sc.gets("a", exact(E(msg("presence", kind="left", name="bob")), "presence: bob left"))
    add("hub-goodbye-presence", "a client that says goodbye is seen leaving", leaves)

    def vanishes(sc):
        two(sc)
        sc.eof("b")
        sc.gets("a", exact(E(msg("presence", kind="left", name="bob")), "presence: bob left"))
    add("hub-eof-presence", "a client whose stream ends is seen leaving", vanishes)

    def name_freed(sc):
        two(sc)
        sc.eof("b")
        sc.gets("a", exact(E(msg("presence", kind="left", name="bob")), "presence: bob left"))
        sc.online.remove("bob")
        del sc.conns["b"]
        sc.join("b2", "BOB")
    add("hub-name-freed", "a name is free again once its client left", name_freed)

    # --- rooms (spec §6.10): protocol 1.1 between clients that announced ROOMS ---
    def room_text(room, peer, body):
        return E(msg("room-text", room=room, peer=peer, text=body))

    def member(kind, room, name):
        return exact(E(msg("member", kind=kind, room=room, name=name)),
                     f"member: {name} {kind} {room}")

    def rooms_two(sc):
        sc.join("a", "alice", rooms=True)
        sc.join("b", "bob", rooms=True)

    def room_welcome(sc):
        sc.join("l", "Carol")
        rooms_two(sc)
    add("hub-room-welcome", "a 1.1 client gets welcome (the default room's members) and then "
        "that room's room-members; 1.1 members hear member joined, 1.0 ones presence",
        room_welcome)

    def room_chat(sc):
        rooms_two(sc)
        sc.join("c", "carol", rooms=True)
        sc.send("a", E(msg("join", room="team")))
        sc.gets("a", exact(E(msg("room-members", room="team", names=["alice"])),
                           "room-members: the room is created with alice in it"))
        sc.send("b", E(msg("join", room="TEAM")))
        sc.gets("b", exact(E(msg("room-members", room="team", names=["alice", "bob"])),
                           "room-members: as first spelled, bob last"))
        sc.gets("a", member("joined", "team", "bob"))
        sc.send("a", room_text("team", "", "hi team"))
        sc.gets("b", exact(room_text("team", "alice", "hi team"),
                           "room-text stamped with alice; no echo, carol is not in team"))
        sc.send("b", room_text("Team", "", "hello"))
        sc.gets("a", exact(room_text("team", "bob", "hello"), "any spelling of the room"))
        sc.send("c", E(msg("room-list-request")))
        sc.gets("c", exact(E(msg("room-list", rooms=[{"name": LOBBY, "members": 3},
                                                     {"name": "team", "members": 2}])),
                           "room-list: largest first"))
        sc.send("b", E(msg("leave", room="team")))
        sc.gets("b", member("left", "team", "bob"))
        sc.gets("a", member("left", "team", "bob"))
    add("hub-room-chat", "two 1.1 clients in a room: join creates it, room-text reaches the "
        "other members only, room-list, leave", room_chat)

    def room_legacy(sc):
        sc.join("a", "alice", rooms=True)
        sc.join("l", "len")
        sc.send("a", room_text(LOBBY, "", "hi lobby"))
        sc.gets("l", exact(text("alice", "hi lobby"), "a 1.0 client hears it as text"))
        sc.send("l", text("", "hi all"))
        sc.gets("a", exact(room_text(LOBBY, "len", "hi all"),
                           "a 1.1 client hears the default room as room-text"))
        sc.send("a", E(msg("leave", room=LOBBY)))
        sc.gets("a", member("left", LOBBY, "alice"))
        sc.gets("l", exact(E(msg("presence", kind="left", name="alice")),
                           "presence: alice left the default room"))
        sc.send("a", text("", "anyone?"))
        sc.gets("a", error_reply("not-member"))
        sc.send("a", E(msg("join", room=LOBBY)))
        sc.gets("a", exact(E(msg("room-members", room=LOBBY, names=["len", "alice"])),
                           "back in the default room"))
        sc.gets("l", exact(E(msg("presence", kind="joined", name="alice")),
                           "presence: alice joined"))
        sc.eof("a")
        sc.gets("l", exact(E(msg("presence", kind="left", name="alice")),
                           "presence: alice left"))
    add("hub-room-legacy-default", "a 1.0 and a 1.1 client in the default room: each hears "
        "the other's chat in its own form; a 1.1 client may leave it and come back", room_legacy)

    def room_refusals(sc):
        rooms_two(sc)
        sc.send("a", room_text("team", "", "hello?"))
        sc.send("a", E(msg("leave", room="team")))
        sc.send("b", E(msg("join", room="team")))
        sc.gets("b", exact(E(msg("room-members", room="team", names=["bob"])), "team"))
        sc.send("a", room_text("team", "", "let me in"))
        sc.send("a", E(msg("join", room="-team")), E(msg("join", room="te am")),
                E(msg("join", room="")))
        sc.send("a", E(msg("ping", nonce=9)))
        sc.gets("a", error_reply("not-member"), error_reply("not-member"),
                error_reply("not-member"), error_reply("room-refused"),
                error_reply("room-refused"), error_reply("room-refused"),
                exact(E(msg("pong", nonce=9)), "pong: the session goes on"))
    add("hub-room-refusals", "room-text and leave outside the room: not-member; an invalid "
        "room name: room-refused; both non-fatal", room_refusals)

    def room_look_alike(sc):
        rooms_two(sc)
        sc.send("a", E(msg("join", room="Team")))
        sc.gets("a", exact(E(msg("room-members", room="Team", names=["alice"])), "Team"))
        sc.send("b", E(msg("join", room="\uff34\u0415am")))  # full-width T, Cyrillic E
        sc.gets("b", exact(E(msg("room-members", room="Team", names=["alice", "bob"])),
                           "the same room, shown as first spelled"))
        sc.gets("a", member("joined", "Team", "bob"))
    add("hub-room-look-alike", "room names compare by the key of names (spec §6.1)",
        room_look_alike)

    def room_unnegotiated(sc):
        sc.join("a", "alice")
        sc.send("a", E(msg("join", room="team")))
        sc.gets("a", error_reply("unexpected-message"))
    add("hub-room-unnegotiated", "a room message from a client that did not announce ROOMS",
        room_unnegotiated)

    def relay_offer(sc, frm, to, ident, relay_id, names, name, size, media_type, what):
        """`frm` offers a file to `to` (`names`: their names), which sees it as `relay_id`;
        the server tells `frm` so with `relayed`."""
        sc.send(frm, E(msg("offer", id=ident, peer=names[1], size=size, name=name,
                           media_type=media_type)))
        sc.gets(to, exact(E(msg("offer", id=relay_id, peer=names[0], size=size, name=name,
                                media_type=media_type)), what))
        sc.gets(frm, exact(E(relayed(ident, names[1], relay_id)),
                           f"relayed: offer {ident} reaches {names[1]} as {relay_id}"))

    def relay(sc):
        two(sc)
        relay_offer(sc, "a", "b", 0, 1, ("alice", "bob"), "hello.txt", 5,
                    "text/plain", "offer id 1 from alice")
        sc.send("b", E(msg("accept", id=1, offset=0, credit=5)))
        sc.gets("a", exact(E(msg("accept", id=0, offset=0, credit=5)), "accept id 0"))
        sc.send("a", E(msg("chunk", id=0, offset=0, data=b"hello".hex())),
                E(msg("done", id=0, sha256=sha(b"hello"))))
        sc.gets("b", exact(E(msg("chunk", id=1, offset=0, data=b"hello".hex())), "chunk id 1"),
                exact(E(msg("done", id=1, sha256=sha(b"hello"))), "done id 1, same digest"))
        sc.send("b", E(msg("complete", id=1)))
        sc.gets("a", exact(E(msg("complete", id=0)), "complete id 0"))
    add("hub-relay-file", "a file relayed: two transfers, own ids, digest end to end", relay)

    def shared_ids(sc):
        two(sc)
        relay_offer(sc, "a", "b", 0, 1, ("alice", "bob"), "a", 1,
                    "", "offer id 1 from alice")
        relay_offer(sc, "b", "a", 0, 3, ("bob", "alice"), "b", 1,
                    "", "offer id 3: one counter for the server")
        relay_offer(sc, "a", "b", 2, 5, ("alice", "bob"), "d/c", 1,
                    "", "offer id 5, the folder kept")
    add("hub-relay-shared-ids", "the server numbers the offers it relays from one counter and "
        "tells each sender the number its receiver sees", shared_ids)

    def relay_escape(sc):
        two(sc)
        sc.send("a", E(msg("offer", id=0, peer="bob", size=1, name="a/../../x",
                           media_type="")))
        sc.gets("a", of_type("reject", u64(0) + u16(CODES["bad-file-name"])))
    add("hub-relay-path-escape", "a relaying server refuses a path that climbs out",
        relay_escape)

    def relay_resume(sc):
        two(sc)
        relay_offer(sc, "a", "b", 0, 1, ("alice", "bob"), "hello.txt", 5,
                    "", "offer id 1 from alice")
        sc.send("b", E(msg("accept", id=1, offset=3, credit=0)))
        sc.gets("a", exact(E(msg("accept", id=0, offset=3, credit=2)),
                           "accept at the receiver's offset"))
    add("hub-relay-resume", "the receiver's resume offset is passed back to the sender",
        relay_resume)

    def relay_reject(sc):
        two(sc)
        relay_offer(sc, "a", "b", 0, 1, ("alice", "bob"), "x", 5,
                    "", "offer id 1")
        sc.send("b", E(msg("reject", id=1, code=38, reason="no")))
        sc.gets("a", of_type("reject", u64(0) + u16(38)))
    add("hub-relay-reject", "the receiver's reject reaches the sender with its code",
        relay_reject)

    def relay_unknown(sc):
        two(sc)
        sc.send("a", E(msg("offer", id=0, peer="dave", size=5, name="x", media_type="")))
        sc.gets("a", of_type("reject", u64(0) + u16(CODES["unknown-peer"])))
    add("hub-relay-unknown-peer", "an offer to a name nobody has", relay_unknown)

    def no_inbox(sc):
        sc.join("a", "alice")
        sc.send("a", E(msg("offer", id=0, peer="", size=5, name="x", media_type="")))
        sc.gets("a", of_type("reject", u64(0) + u16(CODES["storage-failed"])))
    add("hub-no-inbox", "an offer to a server without an inbox", no_inbox)

    def to_self(sc):
        two(sc)
        sc.send("a", text("ALICE", "note to self"))
        sc.gets("a", exact(text("alice", "note to self", True), "private text from alice"))
    add("hub-text-to-self", "text addressed to the sender's own name comes back to it, private",
        to_self)

    def bad_name_first(sc):
        two(sc)
        sc.send("a", E(msg("offer", id=0, peer="dave", size=1, name="..", media_type="")))
        sc.gets("a", of_type("reject", u64(0) + u16(CODES["bad-file-name"])))
    add("hub-relay-bad-name-before-peer", "an unusable name to a name nobody has: the name is "
        "judged first (bad-file-name, not unknown-peer)", bad_name_first)

    def relay_lost(sc):
        two(sc)
        relay_offer(sc, "a", "b", 0, 1, ("alice", "bob"), "x", 5,
                    "", "offer id 1")
        sc.eof("a")
        sc.gets("b", of_type("cancel", u64(1) + u16(CODES["peer-lost"])),
                exact(E(msg("presence", kind="left", name="alice")), "alice left"))
    add("hub-relay-sender-lost", "the sender vanishes: the receiver's hop ends with peer-lost",
        relay_lost)
    return v


# ----- legacy.json: the legacy WebSocket mode (spec §12.4) ------------------------------

def legacy_vectors():
    """A server's gateway for one plain WebSocket client named "dave", played from both sides.

    The vector gives what the server sends the gateway (native bytes) and what the client
    sends (WebSocket texts); it expects every byte the gateway sends the server and every
    WebSocket message it sends the client (text lines as JSON objects, then the close).
    """
    v = []
    E = encode
    hello = E(msg("hello", name="dave", capabilities=0, max_frame=MiB))

    def welcome(online):
        return E(dict(WELCOME_DEFAULT, name="dave", online=online))

    def line(src, dst, text):
        return {"text": {"src": src, "dst": dst, "msg": text}}

    def close(code, reason):
        return {"close": code, "reason": reason}

    def online(names):
        return line("server", "", f"online ({len(names)}): " + ", ".join(names))

    def farewell(kind, code, reason, src="server"):
        said = f"{kind}: {code}" + (f": {reason}" if reason else "")
        return line(src, "dave", said)

    # Close codes of §12.3: 1000 for a normal goodbye, 1001 for a shutdown, 1008 otherwise.
    def ws_close(code, reason):
        ws = {"normal": 1000, "shutdown": 1001}.get(code, 1008)
        return close(ws, reason if reason or code == "normal" else code)

    def add(name, description, steps, to_server=b"", to_client=(), server_name="server"):
        v.append({"name": name, "description": description, "client": "dave",
                  "server_name": server_name,
                  "steps": [dict(s, native=s["native"].hex()) if "native" in s else s
                            for s in steps],
                  "expect": {"to_server": (preamble() + hello + to_server).hex(),
                             "to_client": list(to_client)}})

    joined = {"native": preamble() + welcome(["bob", "Carol", "dave"])}

    add("legacy-hello", "the gateway joins for the client: preamble and hello, capabilities 0",
        [])
    add("legacy-online-at-join", "welcome becomes one line naming everyone online, in order",
        [joined], to_client=[online(["bob", "Carol", "dave"])])
    add("legacy-online-alone", "alone on the server: the line names the client only",
        [{"native": preamble() + welcome(["dave"])}], to_client=[online(["dave"])])
    add("legacy-server-lines", "chat and presence from the server, as the Qt clients read them",
        [joined, {"native": E(msg("text", peer="bob", private=False, text="hi all"))
                  + E(msg("text", peer="Carol", private=True, text="psst"))
                  + E(msg("presence", kind="joined", name="erin"))
                  + E(msg("presence", kind="left", name="bob"))}],
        to_client=[online(["bob", "Carol", "dave"]), line("bob", "", "hi all"),
                   line("Carol", "dave", "psst"), line("server", "", "erin joined"),
                   line("server", "", "bob left")])
    add("legacy-client-lines", "bare text to everyone; an object to its dst, its src ignored",
        [joined, {"ws_text": "hello all"},
         {"ws_text": '{"src":"mallory","dst":" bob ","msg":"just you"}'},
         {"ws_text": '{"msg":"to all"}'}, {"ws_text": '{"dst":"bob","msg":3}'}],
        to_server=E(msg("text", peer="", private=False, text="hello all"))
        + E(msg("text", peer="bob", private=False, text="just you"))
        + E(msg("text", peer="", private=False, text="to all"))
        + E(msg("text", peer="", private=False, text='{"dst":"bob","msg":3}')),
        to_client=[online(["bob", "Carol", "dave"])])
    add("legacy-ping", "the gateway answers the server's ping itself",
        [joined, {"native": E(msg("ping", nonce=77))}],
        to_server=E(msg("pong", nonce=77)), to_client=[online(["bob", "Carol", "dave"])])
    add("legacy-nonfatal-error", "a non-fatal error is a line from the server to the client",
        [joined, {"native": E(msg("error", code=CODES["unknown-peer"],
                                  text="no peer named zed is online"))}],
        to_client=[online(["bob", "Carol", "dave"]),
                   line("server", "dave", "unknown-peer: no peer named zed is online")])

    def ends(name, description, kind, code, reason, before=(joined,), server_name="server"):
        fields = {"text": reason} if kind == "error" else {"reason": reason}
        # Refused before welcome: the server's preamble comes with the refusal.
        start = b"" if before else preamble()
        end = {"native": start + E(msg(kind, code=CODES[code], **fields))}
        said = [online(["bob", "Carol", "dave"])] if before else []
        src = server_name if server_name is not None else ""
        add(name, description, list(before) + [end, {"native_eof": True}],
            to_client=said + [farewell(kind, code, reason, src), ws_close(code, reason)],
            server_name=server_name)

    ends("legacy-refused-name-taken", "a refused name: one line saying why, then 1008",
         "refused", "name-taken", "the name dave is taken", before=())
    ends("legacy-refused-server-unnamed", "a refusal from a gateway not told the server's "
         "name: the line's src is empty", "refused", "name-invalid", "bad name", before=(),
         server_name=None)
    ends("legacy-refused-full", "server full", "refused", "server-full", "the server is full",
         before=())
    ends("legacy-kicked", "kicked: the line, then 1008 with the reason", "goodbye", "kicked",
         "spamming")
    ends("legacy-kicked-no-reason", "an empty reason: the line and the close name the code",
         "goodbye", "kicked", "")
    ends("legacy-shutdown", "shutdown: the line, then 1001", "goodbye", "shutdown",
         "the server is shutting down")
    ends("legacy-rate-limited", "a fatal error: the line, then 1008", "error", "rate-limited",
         "too many messages")
    add("legacy-silent-end", "the server's stream ends without a word: still a line, then 1000",
        [joined, {"native_eof": True}],
        to_client=[online(["bob", "Carol", "dave"]),
                   farewell("goodbye", "normal", "the server closed the connection"),
                   close(1000, "")])
    return v


def render(doc):
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def write(name, doc):
    path = os.path.join(HERE, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(doc))
    return path


def stale(name, doc):
    """Whether the file on disk differs from the generated document."""
    try:
        with open(os.path.join(HERE, name), encoding="utf-8") as f:
            return f.read() != render(doc)
    except FileNotFoundError:
        return True


def main():
    common = {"spec": "spec/PROTOCOL.md", "protocol_version": 1,
              "generator": "spec/vectors/generate.py"}
    mv = message_vectors()
    ev = error_vectors()
    sv = session_vectors()
    hv = hub_vectors()
    lv = legacy_vectors()
    self_check(mv, ev)
    for vs in (mv, ev, sv, hv, lv):
        names = [x["name"] for x in vs]
        assert len(names) == len(set(names)), "vector names must be unique"
    docs = {
        "messages.json": dict(common, kind="messages", vectors=mv),
        "errors.json": dict(common, kind="errors", vectors=ev),
        "session.json": dict(common, kind="session", setups=SETUPS, vectors=sv),
        "hub.json": dict(common, kind="hub", vectors=hv),
        "legacy.json": dict(common, kind="legacy", vectors=lv),
    }
    if "--check" in sys.argv[1:]:
        bad = [name for name, doc in docs.items() if stale(name, doc)]
        for name in bad:
            print(f"{name} is not what generate.py produces: run python3 spec/vectors/generate.py")
        sys.exit(1 if bad else 0)
    for name, doc in docs.items():
        write(name, doc)
    print(f"{len(mv)} message, {len(ev)} error, {len(sv)} session, {len(hv)} hub, "
          f"{len(lv)} legacy vectors")


if __name__ == "__main__":
    main()
