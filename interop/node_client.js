#!/usr/bin/env node
// Node `ws` clients against a running tidings server. JSON mode (subprotocol
// tidings.v1): "node" joins, sees "node2" join, hears its public text and a private
// message for it alone, and sees it leave. Legacy mode (no subprotocol): "nodeqt" is
// told who is online first; a taken name gets one "refused: ..." line, then the close 1008.
// Exits non-zero with the reason on failure.
//
// usage: NODE_PATH=interop/node/node_modules node interop/node_client.js HOST:PORT [CA.pem]
// (with a CA file: wss://, trusting only that CA)
'use strict';

const WebSocket = require('ws');

const TIMEOUT_MS = 10000;

function fail(why) {
  console.error(`node_client: ${why}`);
  process.exit(1);
}

// Wraps a socket so messages can be awaited one predicate at a time.
function open(url, protocols) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, TLS);
    const inbox = [];
    const waiters = [];
    ws.on('message', (data, isBinary) => {
      if (isBinary) fail(`binary message on a JSON connection`);
      inbox.push(JSON.parse(data.toString()));
      for (const w of waiters.splice(0)) w();
    });
    ws.on('error', (err) => reject(err));
    ws.on('open', () => resolve({
      ws,
      send: (obj) => ws.send(JSON.stringify(obj)),
      pending: () => inbox.length,
      expect(pred, what) {
        return new Promise((ok) => {
          const timer = setTimeout(() => fail(`timed out waiting for ${what}`), TIMEOUT_MS);
          const look = () => {
            while (inbox.length > 0) {
              const msg = inbox.shift();
              if (pred(msg)) {
                clearTimeout(timer);
                return ok(msg);
              }
            }
            waiters.push(look);
          };
          look();
        });
      },
    }));
  });
}

async function join(url, name) {
  const c = await open(url, ['tidings.v1']);
  if (c.ws.protocol !== 'tidings.v1') fail(`subprotocol ${c.ws.protocol}, not tidings.v1`);
  c.send({ type: 'hello', name, capabilities: 0, max_frame: 1048576 });
  const w = await c.expect((m) => m.type === 'welcome' || m.type === 'refused', 'welcome');
  if (w.type !== 'welcome' || w.name !== name) fail(`${name} not welcomed: ${JSON.stringify(w)}`);
  return c;
}

function check(cond, msg) {
  if (!cond) fail(`unexpected message: ${JSON.stringify(msg)}`);
}

// With a CA file: wss://, trusting only that CA.
let TLS = {};

async function main(addr, ca) {
  const scheme = ca ? 'wss' : 'ws';
  if (ca) TLS = { ca: require('fs').readFileSync(ca) };
  const url = `${scheme}://${addr}/ws`;
  const a = await join(url, 'node');
  const b = await join(url, 'node2');
  await a.expect((m) => m.type === 'presence' && m.kind === 'joined' && m.name === 'node2',
    "node2's presence");
  b.send({ type: 'text', peer: '', text: 'hello from node2' });
  let got = await a.expect((m) => m.type === 'text', "node2's public text");
  check(got.peer === 'node2' && got.text === 'hello from node2' && !got.private, got);
  b.send({ type: 'text', peer: 'node', text: 'psst, node' });
  got = await a.expect((m) => m.type === 'text', "node2's private text");
  check(got.peer === 'node2' && got.text === 'psst, node' && got.private === true, got);
  b.ws.close(1000);
  await a.expect((m) => m.type === 'presence' && m.kind === 'left' && m.name === 'node2',
    'node2 leaving');
  a.ws.close(1000);
  await new Promise((ok) => a.ws.on('close', ok));
  console.log('node_client: JSON mode ok');
  await legacy(url);
}

async function legacy(url) {
  const watcher = await join(url, 'nodewatch');
  const qt = await open(`${url}?name=nodeqt`, []);
  if (qt.ws.protocol !== '') fail(`legacy client got subprotocol ${qt.ws.protocol}`);
  let got = await qt.expect(() => true, "nodeqt's first line");
  check(got.src === 'server' && got.dst === '' && got.msg === 'online (2): nodewatch, nodeqt',
    got);
  const imp = await open(`${url}?name=NodeQt`, []);
  const closed = new Promise((ok) => imp.ws.on('close', (code) => ok(code)));
  got = await imp.expect(() => true, 'the refusal line');
  check(got.dst === 'NodeQt' && got.msg.startsWith('refused: name-taken: '), got);
  const code = await closed;
  if (code !== 1008) fail(`the refused legacy client was closed with ${code}, not 1008`);
  if (imp.pending() !== 0) fail('the refused legacy client got more than one line');
  qt.ws.close(1000);
  watcher.ws.close(1000);
  await new Promise((ok) => watcher.ws.on('close', ok));
  console.log('node_client: legacy mode ok');
}

if (process.argv.length < 3 || process.argv.length > 4) {
  fail('usage: node_client.js HOST:PORT [CA.pem]');
}
main(process.argv[2], process.argv[3]).catch((err) => fail(String(err)));
