#!/usr/bin/env python3
"""Python `websockets` clients against a running tidings server.

usage: py_client.py HOST:PORT [CA.pem]

With a CA file the same runs over TLS (wss://), trusting only that CA; HOST must be a name
the server's certificate carries.

1. JSON mode (subprotocol tidings.v1, text messages): "py" joins, sees "py2" join,
   hears py2's public text and a private message meant for it alone.
2. Legacy mode (no subprotocol, /ws?name=pyqt): its first line names who is online; a
   bare line reaches a JSON client as a text from "pyqt"; a private reply comes back as
   {"src","dst","msg"}; a taken name gets one "refused: ..." line, then the close 1008.
Exits non-zero (with the reason) on the first failure.
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 10.0


def hello(name):
    return json.dumps(
        {"type": "hello", "name": name, "capabilities": 0, "max_frame": 1048576}
    )


async def expect(ws, pred, what):
    """The first JSON message satisfying pred; others are skipped."""

    async def wait():
        while True:
            raw = await ws.recv()
            msg = json.loads(raw)
            if pred(msg):
                return msg

    try:
        return await asyncio.wait_for(wait(), TIMEOUT)
    except asyncio.TimeoutError:
        raise SystemExit(f"py_client: timed out waiting for {what}")


# The TLS context when a CA file was given (wss://), else None.
SSL = None


async def join(url, name):
    ws = await connect(url, subprotocols=["tidings.v1"], ssl=SSL)
    if ws.subprotocol != "tidings.v1":
        raise SystemExit(f"py_client: subprotocol {ws.subprotocol!r}, not tidings.v1")
    await ws.send(hello(name))
    welcome = await expect(ws, lambda m: m["type"] in ("welcome", "refused"), "welcome")
    if welcome["type"] != "welcome" or welcome["name"] != name:
        raise SystemExit(f"py_client: {name} not welcomed: {welcome}")
    return ws


async def json_mode(url):
    py = await join(url, "py")
    py2 = await join(url, "py2")
    await expect(
        py,
        lambda m: m["type"] == "presence" and m["kind"] == "joined" and m["name"] == "py2",
        "py2's presence",
    )
    await py2.send(json.dumps({"type": "text", "peer": "", "text": "hello from py2"}))
    got = await expect(py, lambda m: m["type"] == "text", "py2's public text")
    assert got["peer"] == "py2" and got["text"] == "hello from py2" and not got["private"], got
    await py2.send(json.dumps({"type": "text", "peer": "py", "text": "psst, py"}))
    got = await expect(py, lambda m: m["type"] == "text", "py2's private text")
    assert got["peer"] == "py2" and got["text"] == "psst, py" and got["private"], got
    await py2.close()
    await expect(
        py,
        lambda m: m["type"] == "presence" and m["kind"] == "left" and m["name"] == "py2",
        "py2 leaving",
    )
    await py.close()
    print(f"py_client: JSON mode ok{' over TLS' if SSL else ''}")


async def legacy_mode(url):
    watcher = await join(url, "pywatch")
    qt = await connect(url + "?name=pyqt", ssl=SSL)
    if qt.subprotocol is not None:
        raise SystemExit(f"py_client: legacy client got subprotocol {qt.subprotocol!r}")
    # Its first line says who is online: pywatch and itself.
    first = json.loads(await asyncio.wait_for(qt.recv(), TIMEOUT))
    assert first["dst"] == "" and first["msg"] == "online (2): pywatch, pyqt", first
    await expect(
        watcher,
        lambda m: m["type"] == "presence" and m["name"] == "pyqt",
        "pyqt's presence",
    )
    await qt.send("hello from a plain chat client")
    got = await expect(watcher, lambda m: m["type"] == "text", "pyqt's line")
    assert got["peer"] == "pyqt" and got["text"] == "hello from a plain chat client", got
    await watcher.send(json.dumps({"type": "text", "peer": "pyqt", "text": "hi qt"}))
    got = await expect(qt, lambda m: m.get("msg") == "hi qt", "the reply to pyqt")
    assert got == {"src": "pywatch", "dst": "pyqt", "msg": "hi qt"}, got
    # A taken name: one readable line from the server, then the close with 1008.
    imp = await connect(url + "?name=PyQt", ssl=SSL)
    line = json.loads(await asyncio.wait_for(imp.recv(), TIMEOUT))
    assert line["dst"] == "PyQt" and line["msg"].startswith("refused: name-taken: "), line
    try:
        extra = await asyncio.wait_for(imp.recv(), TIMEOUT)
        raise SystemExit(f"py_client: a refused client got more than one line: {extra!r}")
    except ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == 1008, closed
    await qt.close()
    await watcher.close()
    print(f"py_client: legacy mode ok{' over TLS' if SSL else ''}")


async def main(addr, ca):
    global SSL
    scheme = "ws"
    if ca:
        import ssl

        SSL = ssl.create_default_context(cafile=ca)
        scheme = "wss"
    url = f"{scheme}://{addr}/ws"
    await json_mode(url)
    await legacy_mode(url)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: py_client.py HOST:PORT [CA.pem]")
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else None))
    except AssertionError as err:
        raise SystemExit(f"py_client: unexpected message: {err}")
