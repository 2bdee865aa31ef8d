#!/usr/bin/env python3
"""The Windows `tidings serve` under Wine, with Linux clients (over TLS, and one in plaintext
beside it): chat both ways and a file sent each way, byte-identical.

    python3 .ci/windows-smoke.py WINDOWS_TIDINGS_EXE LINUX_TIDINGS

Every wait is for an event (a JSON line from a process), bounded by a deadline; the server
listens on a free port of 127.0.0.1 that it picks and prints.
"""

import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

DEADLINE = 60.0  # seconds for each awaited event; Wine's first start is slow


class Proc:
    """A child whose standard output is read line by line into a queue."""

    def __init__(self, name, argv, stdin=None, cwd=None):
        self.name = name
        self.lines = queue.Queue()
        self.seen = []
        self.p = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        threading.Thread(target=self._pump, args=(self.p.stdout, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.p.stderr, False), daemon=True).start()

    def _pump(self, stream, is_stdout):
        for line in stream:
            if is_stdout:
                self.lines.put(line)
            else:
                sys.stderr.write(f"[{self.name} stderr] {line}")
        if is_stdout:
            self.lines.put(None)

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def expect(self, what, pred):
        """The first JSON event for which `pred` holds; fails after DEADLINE or at exit."""
        end = time.monotonic() + DEADLINE
        while True:
            left = end - time.monotonic()
            if left <= 0:
                fail(f"{self.name}: no {what} within {DEADLINE:.0f} s; saw {self.seen[-10:]}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                fail(f"{self.name}: ended (status {self.p.wait()}) before {what}; saw {self.seen[-10:]}")
            self.seen.append(line.rstrip())
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if pred(event):
                return event

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()


def fail(msg):
    print(f"windows smoke: FAILED: {msg}", file=sys.stderr)
    for p in PROCS:
        p.stop()
    sys.exit(1)


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


PROCS = []

# `WINE=` (empty) runs the first program natively: a check of this script on Linux alone.
WINE = os.environ.get("WINE", "wine")


def windows_path(path):
    """The name a Windows program under Wine gives a Linux path (drive Z: is the root)."""
    return "Z:" + path.replace("/", "\\") if WINE else path


def main():
    exe, linux = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    work = tempfile.mkdtemp(prefix="tidings-wine-")
    inbox, out, src = (os.path.join(work, d) for d in ("inbox", "out", "src"))
    for d in (inbox, out, src):
        os.mkdir(d)
    # Real sizes: more than one chunk, not a multiple of one; different bytes each way.
    up, down = os.path.join(src, "to-windows.bin"), os.path.join(src, "from-windows.bin")
    with open(up, "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024 + 12345))
    with open(down, "wb") as f:
        f.write(os.urandom(2 * 1024 * 1024 + 777))

    env_note = os.environ.get("WINEPREFIX", "~/.wine")
    print(f"windows smoke: Wine prefix {env_note}, work in {work}")
    # TLS with plaintext allowed beside it: alice and carol come over TLS, bob in plaintext.
    tls = os.path.join(work, "tls")
    subprocess.run([linux, "cert", "--name", "localhost", "--out", tls], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=DEADLINE)
    # Wine maps the Linux root to drive Z:, so Linux paths name the same files.
    server = Proc(
        "server (Windows)",
        [*([WINE] if WINE else []), exe, "--json", "serve", "--listen", "127.0.0.1:0", "--inbox", windows_path(inbox), "--console",
         "--tls-cert", windows_path(os.path.join(tls, "cert.pem")),
         "--tls-key", windows_path(os.path.join(tls, "key.pem")), "--allow-plaintext"],
        stdin=True,
    )
    PROCS.append(server)
    addr = server.expect("listening", lambda e: e.get("event") == "listening")["addr"]
    secure = ["--server", "tls://localhost:" + addr.rsplit(":", 1)[1], "--ca", os.path.join(tls, "ca.pem")]
    print(f"windows smoke: the Windows server listens on {addr}, TLS and plaintext")

    alice = Proc("alice (Linux chat over TLS)", [linux, "--json", "chat", "--name", "alice", *secure], stdin=True)
    PROCS.append(alice)
    server.expect("alice joined", lambda e: e.get("event") == "joined" and e.get("name") == "alice")

    # Chat both ways.
    alice.send("hello from linux")
    server.expect("alice's line", lambda e: e.get("text") == "hello from linux")
    server.send("hello from windows")
    alice.expect("the server's line", lambda e: e.get("text") == "hello from windows")
    print("windows smoke: chat both ways")

    # Linux → Windows: a file into the server's inbox.
    sent = subprocess.run(
        [linux, "send", "--name", "bob", "--server", addr, "--to", "server", up],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=DEADLINE * 2,
    )
    if sent.returncode != 0:
        fail(f"send to the Windows server exited {sent.returncode}: {sent.stderr}")
    server.expect("the file received", lambda e: e.get("event") == "received")
    got = os.path.join(inbox, "to-windows.bin")
    if not os.path.exists(got) or digest(got) != digest(up):
        fail("the file in the Windows server's inbox differs from the one sent")
    print("windows smoke: Linux → Windows file byte-identical")

    # Windows → Linux: the operator sends a file to a receiving client.
    carol = Proc("carol (Linux recv over TLS)", [linux, "--json", "recv", "--name", "carol", *secure, "--out", out])
    PROCS.append(carol)
    server.expect("carol joined", lambda e: e.get("event") == "joined" and e.get("name") == "carol")
    server.send("/send carol " + windows_path(down))
    carol.expect("the file received", lambda e: e.get("event") == "received")
    got = os.path.join(out, "from-windows.bin")
    if not os.path.exists(got) or digest(got) != digest(down):
        fail("the file carol received differs from the one the Windows server sent")
    print("windows smoke: Windows → Linux file byte-identical")

    server.send("/quit")
    code = server.p.wait(timeout=DEADLINE)
    for p in PROCS:
        p.stop()
    if code != 0:
        fail(f"the Windows server exited {code} after /quit")
    shutil.rmtree(work, ignore_errors=True)
    print("windows smoke: passed")


if __name__ == "__main__":
    main()
