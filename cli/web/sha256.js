// SHA-256 (FIPS 180-4) for the page, incremental: `new Sha256().update(bytes)…digest()`.
// Browsers give `crypto.subtle` only to secure contexts (https, localhost), and it hashes only
// whole buffers; the page is served over plain HTTP on LAN addresses and hashes files as they
// stream, so it carries its own. Plain script, no build step: it defines `Sha256` globally.
"use strict";

(() => {
  const K = new Int32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);
  const INIT = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

  // Compresses the 64-byte blocks p[pos..end) into the state H. The state lives in locals
  // and every sum is cut back to 32 bits with `| 0`, which keeps V8 on integer arithmetic.
  function blocks(H, W, p, pos, end) {
    let h0 = H[0], h1 = H[1], h2 = H[2], h3 = H[3], h4 = H[4], h5 = H[5], h6 = H[6], h7 = H[7];
    while (pos < end) {
      for (let i = 0; i < 16; i++, pos += 4) {
        W[i] = (p[pos] << 24) | (p[pos + 1] << 16) | (p[pos + 2] << 8) | p[pos + 3];
      }
      for (let i = 16; i < 64; i++) {
        const x = W[i - 15];
        const y = W[i - 2];
        const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
      }
      let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
      for (let i = 0; i < 64; i++) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        h = g; g = f; f = e; e = (d + t1) | 0;
        d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
    }
    H[0] = h0; H[1] = h1; H[2] = h2; H[3] = h3; H[4] = h4; H[5] = h5; H[6] = h6; H[7] = h7;
  }

  class Sha256 {
    constructor() {
      this.state = new Int32Array(INIT);
      this.w = new Int32Array(64);
      this.buf = new Uint8Array(64); // the start of a block not yet complete
      this.fill = 0;
      this.length = 0; // bytes hashed; a Number is exact far beyond any file's size
      this.done = false;
    }

    // Adds bytes (a Uint8Array or an ArrayBuffer); returns this.
    update(data) {
      if (this.done) throw new Error("Sha256: update after digest");
      const p = data instanceof Uint8Array ? data : new Uint8Array(data);
      const n = p.length;
      let pos = 0;
      this.length += n;
      if (this.fill > 0) {
        const take = Math.min(64 - this.fill, n);
        this.buf.set(p.subarray(0, take), this.fill);
        this.fill += take;
        pos = take;
        if (this.fill < 64) return this;
        blocks(this.state, this.w, this.buf, 0, 64);
        this.fill = 0;
      }
      const whole = (n - pos) & ~63; // hashed straight from the caller's bytes, no copy
      if (whole > 0) {
        blocks(this.state, this.w, p, pos, pos + whole);
        pos += whole;
      }
      if (pos < n) {
        this.buf.set(p.subarray(pos), 0);
        this.fill = n - pos;
      }
      return this;
    }

    // The 32-byte digest. The hash is finished: further updates throw.
    digest() {
      if (this.done) throw new Error("Sha256: digest taken twice");
      this.done = true;
      // 0x80, zeros, then the length in bits as a 64-bit big-endian number, to a whole block.
      const tail = new Uint8Array(this.fill < 56 ? 64 : 128);
      tail.set(this.buf.subarray(0, this.fill));
      tail[this.fill] = 0x80;
      const view = new DataView(tail.buffer);
      view.setUint32(tail.length - 8, Math.floor(this.length / 0x20000000));
      view.setUint32(tail.length - 4, (this.length << 3) >>> 0);
      blocks(this.state, this.w, tail, 0, tail.length);
      const out = new Uint8Array(32);
      const outView = new DataView(out.buffer);
      for (let i = 0; i < 8; i++) outView.setInt32(i * 4, this.state[i]);
      return out;
    }
  }

  globalThis.Sha256 = Sha256;

  // Loaded as a dedicated Worker (`new Worker("sha256.js")`), the same file hashes transfers
  // off the page's main thread, so that hashing runs on another core while the page reads,
  // encodes and moves the next chunks. Messages, answered in order:
  //   {job, bytes}              adds bytes (an ArrayBuffer or Uint8Array, transferred)
  //   {job, bytes, keep: true}  adds them and keeps them for the Blob the digest returns
  //   {job, bytes, ack: true}   adds them and answers {job, hashed: bytes of the job so far},
  //                             so that a sender can bound what waits here to be hashed
  //   {job, digest: true, type} -> {job, digest: Uint8Array(32), blob: Blob | null}
  //   {job, drop: true}         forgets the job (a cancelled or failed transfer)
  // A Blob made here holds the kept bytes without a copy back to the page.
  const worker = typeof WorkerGlobalScope !== "undefined" && self instanceof WorkerGlobalScope
    && typeof DedicatedWorkerGlobalScope !== "undefined" && self instanceof DedicatedWorkerGlobalScope;
  if (worker) {
    const jobs = new Map(); // job -> {hash, parts}
    self.onmessage = (ev) => {
      const m = ev.data;
      let j = jobs.get(m.job);
      if (m.drop) { jobs.delete(m.job); return; }
      if (!j) { j = { hash: new Sha256(), parts: [] }; jobs.set(m.job, j); }
      if (m.bytes) {
        j.hash.update(m.bytes);
        if (m.keep) j.parts.push(m.bytes);
        if (m.ack) self.postMessage({ job: m.job, hashed: j.hash.length });
      }
      if (m.digest) {
        jobs.delete(m.job);
        const blob = j.parts.length || m.type !== undefined ? new Blob(j.parts, { type: m.type || "" }) : null;
        self.postMessage({ job: m.job, digest: j.hash.digest(), blob });
      }
    };
  }
})();
