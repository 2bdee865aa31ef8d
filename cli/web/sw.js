// tidings' service worker: received files streamed to disk.
//
// Why: a file received in the page used to be held in memory until its digest was checked,
// then offered as a Blob; a file larger than the tab's memory could not be received at all.
// Here the page (app.js) hands each received chunk to this worker over a MessagePort, and
// the worker answers a download address (/download/<random id>) with a ReadableStream of
// those chunks, which the browser writes to the downloads folder as it goes.
//
// Backpressure: the stream hands out a chunk only when the browser's download asks for one
// (highWaterMark 0), and then tells the page how many bytes the download has taken
// ({written}). The page gives credit back to the sender only for those bytes (spec §7.4
// rule 4: credit for what is written), so no more than the receive window (8 MiB) is ever
// held between the socket and the disk, whatever the file's size.
//
// The digest: this worker hashes the chunks as they pass (sha256.js), so that they cross
// from the page once, and tells the page the digest when asked ({digest} after the last
// chunk). The stream is written before the sender's digest is known, so the download is
// not finished (closed) until the page has checked the digest: the browser keeps it as an
// unfinished download until then. Then the page sends {close}; once the download has taken
// every queued byte the stream closes and this worker answers {closed}, and only then does
// the page send its verdict, `complete` (spec §7.4 rule 5: every byte written). On a digest
// mismatch, a cancel, or the connection lost, the page sends {error} and the stream is
// errored: the browser marks the download failed (and discards its partial file), and the
// page's card says why. Cancelling the download in the browser, before {closed}, fails the
// transfer ({cancelled} to the page). When the browser fetches the download address the
// page is told ({started}); it gives up on a download that does not start.
//
// Versions: a new sw.js is not activated while a tab uses this one (no skipWaiting), so a
// stream in progress keeps the worker that serves it; the page pings that worker to keep
// it running.
//
// Safety: the response is always application/octet-stream with Content-Disposition:
// attachment, nosniff and a sandboxing CSP, so a peer's file is never shown as a document
// of this origin; its name goes only into the header, reduced to safe characters.
//
// Service workers exist only in secure contexts (https, http://localhost, 127.0.0.1). On a
// plain-http LAN address the page cannot register this worker and keeps received files in
// memory as before.
"use strict";

importScripts("sha256.js");

// path -> download state, from the page's message until the browser fetches the path
const pending = new Map();

self.addEventListener("activate", (ev) => ev.waitUntil(self.clients.claim()));

self.addEventListener("message", (ev) => {
  const m = ev.data;
  // {type: "tidings-keepalive"}: nothing to do, the event itself keeps the worker running.
  if (!m || m.type !== "tidings-stream") return;
  const port = ev.ports && ev.ports[0];
  if (!port || typeof m.path !== "string" || !/^\/(?:[^?#]*\/)?download\/[0-9a-f]{32}$/.test(m.path)) return;
  const d = {
    port,
    name: safeName(String(m.name || "file")),
    size: Number.isSafeInteger(m.size) && m.size >= 0 ? m.size : null,
    hash: new Sha256(),
    queue: [], // chunks from the page the download has not taken yet
    end: null, // {close: true} or {error: "why"}, once the page says
    wake: null, // the stream's pending pull, waiting for a chunk
    fail: null, // errors the stream, once it exists
  };
  port.onmessage = (e) => {
    const x = e.data || {};
    if (x.bytes instanceof Uint8Array) {
      d.hash.update(x.bytes);
      d.queue.push(x.bytes);
    } else if (x.digest) {
      port.postMessage({ digest: d.hash.digest() }); // every chunk before it is hashed
    } else if (x.close) d.end = { close: true };
    else if (x.error !== undefined) d.end = { error: String(x.error) };
    if (d.end && d.end.error) {
      // An error does not wait behind the queued bytes: the download must fail, not finish.
      d.queue = [];
      pending.delete(m.path);
      if (d.fail) d.fail(d.end.error);
      port.close();
    }
    if (d.wake) { const w = d.wake; d.wake = null; w(); }
  };
  pending.set(m.path, d);
  port.postMessage({ ready: true });
});

self.addEventListener("fetch", (ev) => {
  const url = new URL(ev.request.url);
  if (url.origin !== self.location.origin) return;
  const d = pending.get(url.pathname);
  if (!d) return; // everything else goes to the server as usual
  pending.delete(url.pathname); // one download per address
  d.port.postMessage({ started: true });
  const headers = {
    "Content-Type": "application/octet-stream",
    "Content-Disposition": `attachment; filename="${d.name.ascii}"; filename*=UTF-8''${d.name.encoded}`,
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "no-store",
  };
  if (d.size !== null) headers["Content-Length"] = String(d.size);
  ev.respondWith(new Response(body(d), { headers }));
});

function body(d) {
  let written = 0;
  return new ReadableStream({
    start(ctl) {
      d.fail = (why) => { try { ctl.error(new Error(why)); } catch { /* already ended */ } };
      if (d.end && d.end.error) d.fail(d.end.error);
    },
    pull(ctl) {
      return new Promise((resolve) => {
        const next = () => {
          if (d.end && d.end.error) { resolve(); return; }
          if (d.queue.length) {
            const b = d.queue.shift();
            ctl.enqueue(b);
            written += b.byteLength;
            d.port.postMessage({ written });
            resolve();
          } else if (d.end && d.end.close) {
            ctl.close();
            d.port.postMessage({ closed: true }); // the download took every byte
            d.port.close();
            resolve();
          } else {
            d.wake = next;
          }
        };
        next();
      });
    },
    cancel(reason) {
      d.queue = [];
      d.port.postMessage({ cancelled: String(reason || "") });
      d.port.close();
    },
  }, { highWaterMark: 0 });
}

// A file name for Content-Disposition: no controls, quotes, backslashes or path separators;
// `ascii` for filename=, `encoded` (RFC 5987) for filename*=. The browser reduces it further.
function safeName(name) {
  // A lone UTF-16 surrogate would make encodeURIComponent throw: it becomes U+FFFD.
  const whole = typeof name.toWellFormed === "function" ? name.toWellFormed()
    : name.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
  const clean = whole.replace(/[\u0000-\u001f\u007f-\u009f"\\/:*?<>|\u202a-\u202e\u2066-\u2069]/g, "_").trim() || "file";
  const ascii = clean.replace(/[^\u0020-\u007e]/g, "_");
  let encoded;
  try {
    encoded = encodeURIComponent(clean).replace(/['()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  } catch {
    encoded = "file";
  }
  return { ascii, encoded };
}
