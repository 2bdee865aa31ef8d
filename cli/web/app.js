// tidings in the browser: the JSON mode of spec §12.3 over a WebSocket to /ws.
// Plain script, no build step and no external resources: the page must work offline.
"use strict";

(() => {
  const CAP_FILES = 1;
  const CAP_BLOBS = 2;
  const CAP_ROOMS = 4; // protocol 1.1: rooms (spec §6.10)
  const RELAYED = 0x80; // the `relayed` extension's frame type (spec §10 rule 8)
  const MAX_FRAME = 1 << 20; // what we announce: the protocol minimum, 1 MiB
  // 256 KiB of raw bytes, the most spec §7.2 says a chunk should carry, become 342 KiB of
  // base64: a chunk message stays far below 1 MiB. (Fewer, larger messages: less work per byte.)
  const CHUNK = 256 * 1024;
  const WINDOW = 8 * 1024 * 1024; // receive window: at most this much granted but not yet stored
  const SEND_BUFFER = 4 * 1024 * 1024; // stop reading the file while the socket holds this much
  // The file is read in slices this large and chunks are cut from them, and the next slice
  // is read while this one is sent. Not larger: the hashing worker took twice as long over
  // 4 MiB slices as over 1 MiB ones (measured in browser/run, TIDINGS_PROFILE=cpu).
  const READ = 1024 * 1024;
  // A sender's slices given to the hashing worker and not hashed yet: at most this much, so
  // that sending faster than hashing does not pile the file up in the worker.
  const HASH_BACKLOG = 4 * READ;
  // Progress cards are redrawn at most this often while bytes move (drawing a card on every
  // chunk cost more than the chunk).
  const PROGRESS_MS = 100;
  // Received files at least this large go straight to disk through the service worker
  // (sw.js) where there is one; smaller ones, and pictures shown inline, stay in memory.
  const STREAM_FROM = 16 * 1024 * 1024;
  // A picture is shown inline, so kept in memory, only up to this size: a peer could label
  // any large file image/png.
  const INLINE_MAX = 64 * 1024 * 1024;
  // A download stream: the service worker answers `ready` within READY_MS (else the file is
  // received in memory), the browser starts the download within START_MS, and once the
  // digest is checked takes the bytes still queued within CLOSE_MS (else the transfer fails).
  const READY_MS = 5_000;
  const START_MS = 15_000;
  const CLOSE_MS = 45_000;
  // The digest of a received file, once `done` came, within this (below the sender's 60 s
  // stall timeout, spec §7.7): else the transfer fails rather than wait forever.
  const DIGEST_MS = 30_000;
  const BACKOFF_MAX_S = 30;
  const NAME_KEY = "tidings.name";
  // The session token (spec §6.2) of this tab, {name, token}: a reload logs in with it
  // instead of the password, which the page never stores.
  const TOKEN_KEY = "tidings.token";
  const AUTH = { required: 20, failed: 21, insecure: 22 };
  const NOTIFY_KEY = "tidings.notify"; // "on" once the user asked for notifications
  // The rooms this browser was in, so that a reconnection or a reload is in them again.
  const ROOMS_KEY = "tidings.rooms";
  // The default room's name once the user left it, so that coming back leaves it again.
  const LEFT_DEFAULT_KEY = "tidings.left-default";
  const ROOM_REFUSED = [17, 24]; // limit-exceeded, room-refused: a join that did not happen
  // A room name as spec §6.1 has it: letters and digits (Alphabetic, Nd, Nl, No), - _ .
  const ROOM_CHARS = /^[\p{Alphabetic}\p{N}_.-]+$/u;
  const INVISIBLE_LETTERS = /[\u115f\u1160\u3164\uffa0]/;
  const MESSAGE_MAX_HEIGHT = 160; // px: the composer grows with its lines up to this
  // Only these schemes become links; anything else (javascript:, data:, …) stays text.
  const LINK_SCHEMES = ["http:", "https:", "mailto:"];
  // Media types a peer may have shown inline. Every other type is stored as
  // application/octet-stream, so that a blob: URL opened in a tab (which runs with the page's
  // origin) can never render a peer's HTML or SVG as a document.
  const INLINE_IMAGES = ["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"];
  const CODE = { rejected: 38, cancelled: 37, digestMismatch: 35, chunkOutOfRange: 33, creditExceeded: 34, storageFailed: 41 };

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"), rename: $("rename"), users: $("users"), count: $("count"),
    log: $("log"), composer: $("composer"), message: $("message"), send: $("send"),
    file: $("file"), target: $("target"), drop: $("drop"), dropTarget: $("drop-target"),
    notify: $("notify"),
    roomPanel: $("room-panel"), rooms: $("rooms"), joinRoom: $("join-room"), roomName: $("room-name"),
    browse: $("browse"), roomList: $("room-list"), peopleTitle: $("people-title"),
    login: $("login"), loginForm: $("login-form"), name: $("name"), loginError: $("login-error"),
    password: $("password"),
  };

  // Connection state. `session` is non-null between welcome and the socket closing.
  let ws = null;
  let name = localStorage.getItem(NAME_KEY) || "";
  // Typed in the name prompt and kept in memory only until the server sends a token.
  let password = "";
  let session = null; // {name, server, heartbeatMs, timeoutMs}
  let online = [];
  let target = ""; // "" = everyone (the room); else the private conversation shown and written to
  // Rooms, once both sides announced them (spec §6.10). `room` is the one on screen and
  // written to when no person is selected, as the server spells it ("" without rooms).
  let roomsOn = false;
  let defaultRoom = ""; // the server's default room: the first `room-members` after welcome
  let defaultPending = false; // welcome came, the default room's answer has not
  let room = "";
  const rooms = new Map(); // room key -> {name, members: [names], unread}
  // The room the address names, to open once the default room has answered ("" for none).
  let opening = "";
  // The joins sent and not answered yet, oldest first: the server answers each join, in
  // order, with `room-members` or an error (17 or 24), spelling the room its own way.
  // Each is {name, open: whether its answer is shown, rejoin: a room this browser was in}.
  const joins = [];
  // From welcome until the rooms asked for again are answered: the saved list is kept as it
  // is (a room not answered yet is not lost), and the default room is left at the end if
  // the user had left it.
  let settling = false;
  let leaveDefault = false;
  const unread = new Map(); // lower-case name -> private messages not yet viewed
  let notifyOn = localStorage.getItem(NOTIFY_KEY) === "on";
  let attempts = 0;
  let reconnectTimer = null;
  let countdownTimer = null;
  let heartbeatTimer = null;
  let lastSent = 0;
  let lastReceived = 0;
  let pingNonce = 0;
  let nextOfferId = 0; // our offers use even ids, per connection (spec §7.1)
  const transfers = new Map(); // key "out:ID" / "in:ID" -> transfer

  // ---------------------------------------------------------------- status

  function setStatus(state, text) {
    ui.status.dataset.state = state;
    ui.status.textContent = text;
    const open = state === "connected";
    ui.message.disabled = !open;
    ui.send.disabled = !open;
    ui.file.disabled = !open;
  }

  // ---------------------------------------------------------------- connection

  function connect() {
    clearTimeout(reconnectTimer);
    clearInterval(countdownTimer);
    if (!name) { askName(); return; }
    setStatus("connecting", `connecting as ${name}…`);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const host = location.host || "127.0.0.1:9988"; // file:// has no host: the default server
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${host}/ws`, "tidings.v1");
    } catch (e) {
      scheduleReconnect(String(e.message || e));
      return;
    }
    ws = socket;
    let refused = false;
    let goodbye = null;
    let usedToken = false;
    socket.onopen = () => {
      if (socket.protocol !== "tidings.v1") { socket.close(1002, "no tidings.v1"); return; }
      // A login comes before hello: the tab's token for this name, else a typed password.
      // Only where it cannot be read on the way (spec §11): https, or this machine, which
      // is what the browser calls a secure context; elsewhere the server would refuse it
      // (auth-insecure) after it had crossed the network in the clear.
      const token = window.isSecureContext ? storedToken() : null;
      if (!window.isSecureContext) password = "";
      if (token) {
        usedToken = true;
        send({ type: "login", method: "token", secret: token });
      } else if (password) {
        send({ type: "login", method: "password", secret: password });
      }
      send({ type: "hello", name, capabilities: CAP_FILES | CAP_BLOBS | CAP_ROOMS, max_frame: MAX_FRAME });
    };
    socket.onmessage = (ev) => {
      if (typeof ev.data !== "string") return; // the JSON mode only carries text
      lastReceived = Date.now();
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg.type === "refused" && usedToken && msg.code === AUTH.failed) {
        // The token is no longer good (expired, the server restarted): the password again.
        sessionStorage.removeItem(TOKEN_KEY);
        if (password) { refused = "retry"; return; }
      }
      if (msg.type === "refused") refused = true;
      if (msg.type === "goodbye") goodbye = msg;
      handle(msg, ev.data);
    };
    socket.onclose = (ev) => {
      if (ws !== socket) return;
      ws = null;
      const wasOpen = session !== null;
      session = null;
      clearInterval(heartbeatTimer);
      endAllTransfers("connection closed");
      // No join is answered any more: the next welcome starts over from the address.
      opening = "";
      joins.length = 0;
      defaultPending = false;
      settling = false;
      // Who is online is unknown until the next welcome; the chosen target is kept for it.
      online = [];
      renderUsers();
      if (refused === "retry") { connect(); return; }
      if (refused) return; // handled: the name prompt is showing
      if (goodbye && goodbye.code === 18) {
        setStatus("closed", `kicked: ${goodbye.reason || "removed by the operator"}`);
        note(`You were removed from the server${goodbye.reason ? ": " + goodbye.reason : ""}.`);
        ui.rename.hidden = false;
        return;
      }
      if (wasOpen) note(goodbye ? `Disconnected: ${goodbye.reason || goodbye.code_name}` : "Connection lost.");
      if (wasOpen) attempts = 0;
      scheduleReconnect(ev.reason);
    };
  }

  function scheduleReconnect(why) {
    const delay = Math.min(BACKOFF_MAX_S, 2 ** Math.min(attempts, 5)); // 1, 2, 4 … 30 s
    attempts += 1;
    let left = delay;
    const show = () => setStatus("reconnecting", `reconnecting in ${left}s${why ? " (" + why + ")" : ""}`);
    show();
    countdownTimer = setInterval(() => { left -= 1; if (left > 0) show(); }, 1000);
    reconnectTimer = setTimeout(() => { clearInterval(countdownTimer); connect(); }, delay * 1000);
  }

  function send(msg) {
    return sendRaw(JSON.stringify(msg));
  }

  function sendRaw(text) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(text);
    lastSent = Date.now();
    return true;
  }

  // Heartbeats (spec §6.6): ping when we have sent nothing for the interval; declare the
  // server dead when nothing arrived for the timeout.
  function startHeartbeat() {
    clearInterval(heartbeatTimer);
    const tick = Math.max(100, Math.min(session.heartbeatMs, session.timeoutMs) / 4);
    heartbeatTimer = setInterval(() => {
      if (!session || !ws) return;
      const now = Date.now();
      if (now - lastReceived >= session.timeoutMs) {
        ws.close(4000, "heartbeat timeout");
        return;
      }
      if (now - lastSent >= session.heartbeatMs) send({ type: "ping", nonce: ++pingNonce });
    }, tick);
  }

  // ---------------------------------------------------------------- incoming messages

  function handle(msg, raw) {
    switch (msg.type) {
      case "welcome":
        session = {
          name: msg.name, server: msg.server || "",
          heartbeatMs: msg.heartbeat_ms, timeoutMs: msg.timeout_ms,
        };
        name = msg.name;
        localStorage.setItem(NAME_KEY, name);
        attempts = 0;
        nextOfferId = 0;
        // Rooms start over: the server puts us in its default room and says so next.
        roomsOn = ((msg.capabilities || 0) & CAP_ROOMS) !== 0;
        rooms.clear();
        defaultRoom = "";
        room = "";
        joins.length = 0;
        defaultPending = roomsOn;
        settling = roomsOn;
        leaveDefault = false;
        opening = roomsOn ? roomFromHash() : "";
        renderRooms();
        setOnline(msg.online || []);
        setStatus("connected", `connected as ${name}`);
        ui.rename.hidden = false;
        note(`Welcome, ${name}. ${online.length - 1} other${online.length === 2 ? "" : "s"} online.`);
        startHeartbeat();
        break;
      case "token":
        // Logged in: reconnections and reloads of this tab use the token from now on.
        sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ name, token: msg.token }));
        password = "";
        break;
      case "refused": {
        setStatus("refused", `refused: ${msg.reason || msg.code_name}`);
        const hint = msg.code === AUTH.required
          ? (window.isSecureContext ? " Give its password below."
            : " Passwords are sent only over https: open the page over https:// to log in.")
          : msg.code === AUTH.insecure ? " Open the page over https:// to log in." : "";
        askName(`The server refused “${name}”: ${msg.reason || msg.code_name}.${hint}`);
        break;
      }
      case "presence":
        if (msg.kind === "joined") {
          setOnline(online.concat([msg.name]));
          note(`${msg.name} joined`);
        } else {
          note(`${msg.name} left`);
          unread.delete(msg.name.toLowerCase()); // their list entry, where it showed, is gone
          setOnline(online.filter((n) => !same(n, msg.name)));
        }
        break;
      case "peer-list":
        setOnline(msg.names || []);
        break;
      case "text":
        onText(msg);
        break;
      case "room-text":
        onRoomText(msg);
        break;
      case "room-members":
        onRoomMembers(msg);
        break;
      case "member":
        onMember(msg);
        break;
      case "room-list":
        showRoomList(msg.rooms || []);
        break;
      case "blob":
        addBlob(msg);
        break;
      case "ping": {
        // Echo the nonce exactly as it was written: a u64 beyond 2^53 would not survive
        // a trip through a JavaScript number.
        const m = /"nonce"\s*:\s*(\d+)/.exec(raw);
        sendRaw(`{"type":"pong","nonce":${m ? m[1] : JSON.stringify(msg.nonce)}}`);
        break;
      }
      case "pong":
        break;
      case "error":
        // The only room requests refused with these codes are joins: the oldest one is not
        // coming (or, right after welcome, the default room's list is too large to send).
        if (roomsOn && ROOM_REFUSED.includes(msg.code) && (defaultPending || joins.length)) onJoinRefused(msg);
        else note(`Error ${msg.code_name || msg.code}: ${msg.text || ""}`, "error");
        break;
      case "goodbye":
        break; // the close handler reports it
      case "offer": onOffer(msg); break;
      case "accept": onAccept(msg); break;
      case "credit": onCredit(msg); break;
      case "chunk": onChunk(msg); break;
      case "done": onDone(msg); break;
      case "complete": onComplete(msg); break;
      case "failed": onEnded(msg, "out", "failed"); break;
      case "reject": onEnded(msg, "out", "rejected"); break;
      case "cancel": onCancel(msg); break;
      case "extension":
        if (msg.kind === RELAYED) onRelayed(msg.body);
        break; // other extensions: ignored
      default:
        break; // extension messages and anything newer: ignored
    }
  }

  function same(a, b) {
    return a.toLowerCase() === b.toLowerCase();
  }

  // ---------------------------------------------------------------- people

  function setOnline(names) {
    const seen = new Set();
    online = names.filter((n) => {
      const k = n.toLowerCase();
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    }).sort((a, b) => a.localeCompare(b, undefined, { sensitivity: "base" }));
    // With rooms the list is one room's members: someone not in it may still be online.
    if (!roomsOn && target && !online.some((n) => same(n, target))) {
      const gone = target;
      select("");
      note(`${gone} is no longer online; messages go to everyone.`);
    }
    renderUsers();
  }

  function renderUsers() {
    const everyone = roomsOn ? (room ? `#${room}` : "no room") : "everyone";
    ui.users.replaceChildren(userItem("", roomsOn ? everyone : "Everyone"));
    for (const n of online) ui.users.append(userItem(n, n));
    // People with private lines waiting who are not in this room: still reachable.
    for (const k of unread.keys()) {
      const n = privateNames.get(k);
      if (n && !online.some((o) => same(o, n))) ui.users.append(userItem(n, n));
    }
    ui.count.textContent = online.length ? `(${online.length})` : "";
    ui.peopleTitle.textContent = roomsOn && room ? "In this room" : "Online";
    ui.target.textContent = target ? `${target} (private)` : everyone;
    ui.dropTarget.textContent = target || (roomsOn && room ? `everyone in #${room}` : "…");
    ui.message.placeholder = target ? `Private message to ${target}`
      : roomsOn ? (room ? `Message #${room}` : "Join a room to chat") : "Message everyone";
    ui.composer.classList.toggle("private", !!target);
    let total = 0;
    for (const c of unread.values()) total += c;
    document.title = total ? `(${total}) tidings` : "tidings";
  }

  // Selecting a person shows only the private conversation with them (messages and files,
  // both ways) and clears their unread count; "Everyone" shows the whole log.
  function select(n) {
    target = n;
    if (n) unread.delete(n.toLowerCase());
    else if (room) clearRoomUnread(room);
    renderUsers();
    renderRooms(); // the room is no longer the one selected while a person is
    applyView();
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  // A room's view shows that room's lines and everything that belongs to no room (private
  // lines, files, notes about the connection); a person's view, their conversation.
  function shown(li) {
    if (!target) return li.dataset.room === undefined || (!!room && li.dataset.room === key(room));
    return li.dataset.with === target.toLowerCase() || li.classList.contains("error");
  }

  function applyView() {
    ui.log.dataset.view = target ? "person" : "everyone";
    for (const li of ui.log.children) li.hidden = !shown(li);
  }

  // A private message (or file offer) from `peer` counts as unread unless their
  // conversation is the one on screen.
  function countUnread(peer) {
    if (!peer || (session && same(peer, session.name))) return;
    if (target && same(peer, target)) return;
    const k = peer.toLowerCase();
    unread.set(k, (unread.get(k) || 0) + 1);
    privateNames.set(k, peer);
    renderUsers();
  }
  const privateNames = new Map(); // lower-case name -> the name as its sender spelled it

  function userItem(n, label) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "user" + (n === "" ? " everyone" : "");
    b.dataset.name = n;
    const l = document.createElement("span");
    l.className = "label";
    l.textContent = label;
    b.append(l);
    const count = n ? unread.get(n.toLowerCase()) || 0 : 0;
    if (count) {
      const u = document.createElement("span");
      u.className = "unread";
      u.textContent = String(count);
      u.title = `${count} unread`;
      b.append(u);
    }
    const isMe = session && n && same(n, session.name);
    if (isMe) {
      b.disabled = true;
      b.classList.add("me");
      b.title = "you";
    }
    const selected = n === "" ? !target : !!target && same(n, target);
    b.classList.toggle("selected", selected);
    b.setAttribute("aria-pressed", String(selected));
    b.onclick = () => {
      select(n === "" || (target && same(n, target)) ? "" : n);
      ui.message.focus();
    };
    li.append(b);
    return li;
  }

  // ---------------------------------------------------------------- the log

  function time() {
    return new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // A new log entry; `peer` names the private conversation it belongs to, if any, `inRoom`
  // the room.
  function entry(cls, peer, inRoom) {
    const li = document.createElement("li");
    li.className = cls;
    if (peer) li.dataset.with = peer.toLowerCase();
    if (inRoom) li.dataset.room = key(inRoom);
    li.hidden = !shown(li);
    const nearBottom = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
    ui.log.append(li);
    if (nearBottom) requestAnimationFrame(() => { ui.log.scrollTop = ui.log.scrollHeight; });
    return li;
  }

  function head(li, from, to, isPrivate) {
    const h = document.createElement("div");
    h.className = "head";
    const who = document.createElement("span");
    who.className = "from";
    who.textContent = from;
    h.append(who);
    if (to) {
      const t = document.createElement("span");
      t.className = "to";
      t.textContent = `→ ${to}`;
      h.append(t);
    }
    if (isPrivate) {
      const p = document.createElement("span");
      p.className = "badge";
      p.textContent = "private";
      h.append(p);
    }
    const t = document.createElement("time");
    t.textContent = time();
    h.append(t);
    li.append(h);
  }

  function senderLabel(peer) {
    if (!peer) return session && session.server ? session.server : "server";
    return peer;
  }

  function onText(msg) {
    const from = msg.peer;
    const mention = !msg.private && !!session && mentions(msg.text, session.name);
    addMessage({ from, to: msg.private ? name : "", text: msg.text, mention });
    if (msg.private) countUnread(from);
    if (msg.private || mention) notify(from, msg.text, !!msg.private);
  }

  // ---------------------------------------------------------------- rooms

  // The server compares room names by a key that also folds look-alikes (spec §6.1); the
  // page keeps rooms by lower case, enough for the names the server sends, since it spells
  // each room one way. A name the user typed may be another spelling of a room: its join's
  // answer (the joins are answered in order) names the room as the server spells it.
  function key(roomName) {
    return String(roomName).toLowerCase();
  }

  // Why `n` cannot be a room name (spec §6.1 and §6.10.2), or "" if it can. The server
  // judges too (room-refused); the page refuses what is plainly wrong before sending it, and
  // never sends a name over 32 characters (at most 128 bytes: the JSON mode takes 255).
  function roomProblem(n) {
    if (!n) return "a room name cannot be empty";
    const chars = [...n].length;
    if (chars > 32) return `a room name has at most 32 characters, not ${chars}`;
    if (/\s/.test(n)) return "a room name has no spaces";
    if (!ROOM_CHARS.test(n) || INVISIBLE_LETTERS.test(n)) return "a room name has only letters, digits, - _ and .";
    if (/^[.-]/.test(n)) return "a room name cannot start with . or -";
    return "";
  }

  // A room name as shown in a note: a link may carry anything, of any length.
  function shortName(n) {
    const c = [...String(n)];
    return c.length > 40 ? c.slice(0, 40).join("") + "…" : c.join("");
  }

  // The room in the address: `#room=NAME` (a link or a reload opens that room).
  function roomFromHash() {
    const m = /^#room=(.*)$/.exec(location.hash);
    if (!m) return "";
    try { return decodeURIComponent(m[1]).trim(); } catch { return ""; }
  }

  // Puts room `n` in the address ("" for none) without adding to the history.
  function setAddress(n) {
    const hash = n ? `#room=${encodeURIComponent(n)}` : "";
    if (location.hash !== hash && (n || location.hash)) {
      history.replaceState(null, "", hash || location.pathname + location.search);
    }
  }

  function savedRooms() {
    try {
      const r = JSON.parse(localStorage.getItem(ROOMS_KEY) || "null");
      return Array.isArray(r) ? r.filter((n) => typeof n === "string") : [];
    } catch { return []; }
  }

  // Not while the rooms of a reconnection are being asked for again: those not answered yet
  // would drop out of the list.
  function saveRooms() {
    if (settling) return;
    localStorage.setItem(ROOMS_KEY, JSON.stringify([...rooms.values()].map((r) => r.name)));
  }

  // Sends a join and queues it for its answer.
  function join(n, open, rejoin) {
    joins.push({ name: n, open, rejoin });
    send({ type: "join", room: n });
  }

  // The default room has answered (or could not): in the rooms this browser was in, then in
  // the room the address names.
  function afterDefault() {
    const left = localStorage.getItem(LEFT_DEFAULT_KEY);
    leaveDefault = !!defaultRoom && !!left && same(left, defaultRoom);
    let wanted = opening;
    opening = "";
    if (wanted) {
      const problem = roomProblem(wanted);
      if (problem) {
        note(`Cannot open #${shortName(wanted)}: ${problem}.`, "error");
        wanted = "";
        setAddress(room);
      } else if (defaultRoom && same(wanted, defaultRoom)) {
        leaveDefault = false; // the link names the default room: stay in it
        wanted = "";
      }
    }
    for (const n of savedRooms()) {
      if ((defaultRoom && same(n, defaultRoom)) || roomProblem(n)) continue;
      const open = !!wanted && same(wanted, n);
      if (open) wanted = "";
      join(n, open, true);
    }
    if (wanted) join(wanted, true, false);
    settle();
  }

  // Once every join since welcome is answered: out of the default room if the user had left
  // it, and the list of rooms saved.
  function settle() {
    if (!settling || defaultPending || joins.length) return;
    settling = false;
    if (leaveDefault && rooms.has(key(defaultRoom))) send({ type: "leave", room: defaultRoom });
    leaveDefault = false;
    saveRooms();
  }

  // `room-members`: the default room's, right after welcome, or the answer to the oldest
  // join; any other is none the page asked for and is ignored.
  function onRoomMembers(msg) {
    const n = typeof msg.room === "string" ? msg.room : "";
    if (!n) return;
    let asked = null;
    if (defaultPending) {
      defaultPending = false;
      defaultRoom = n;
    } else if (joins.length) {
      asked = joins.shift();
    } else {
      return;
    }
    const k = key(n);
    const r = rooms.get(k) || { name: n, members: [], unread: 0 };
    r.name = n;
    r.members = (Array.isArray(msg.names) ? msg.names : []).filter((m) => typeof m === "string");
    rooms.set(k, r);
    if (!asked) {
      openRoom(n);
      afterDefault();
    } else {
      if (defaultRoom && same(n, defaultRoom)) {
        // In the default room again (asked for by the user, or by a link): stay in it.
        leaveDefault = false;
        localStorage.removeItem(LEFT_DEFAULT_KEY);
      }
      if (asked.open || !room) openRoom(n);
      saveRooms();
      settle();
    }
    renderRooms();
    if (same(room, n)) setOnline(r.members);
  }

  // An error 17 or 24 that answers the oldest join, or stands for the default room's list.
  function onJoinRefused(msg) {
    const why = msg.text || msg.code_name || `error ${msg.code}`;
    if (defaultPending) {
      // Only limit-exceeded comes instead of the default room's `room-members`.
      defaultPending = false;
      note(`The default room's member list is too large to be sent here (${why}); its chat still reaches you.`, "error");
      afterDefault();
      return;
    }
    const asked = joins.shift();
    if (asked.open) {
      note(`Cannot open #${shortName(asked.name)}: ${why}.`, "error");
      setAddress(room);
    } else {
      note(`Could not rejoin #${shortName(asked.name)}: ${why}.`, "error");
    }
    settle();
  }

  function onRoomText(msg) {
    const from = msg.peer;
    const mention = !!session && mentions(msg.text, session.name);
    addMessage({ from, to: "", text: msg.text, mention, inRoom: msg.room });
    const r = rooms.get(key(msg.room));
    if (r && (target || !same(room, msg.room))) {
      r.unread += 1;
      renderRooms();
    }
    if (mention) notify(from, msg.text, false);
  }

  function onMember(msg) {
    const k = key(msg.room);
    const r = rooms.get(k);
    if (!r) return;
    if (session && same(msg.name, session.name)) {
      if (msg.kind === "joined") return;
      rooms.delete(k);
      note(msg.kind === "removed" ? `You were removed from #${r.name}.` : `You left #${r.name}.`);
      // Said explicitly, not guessed from the saved list: the next connection leaves it too.
      if (defaultRoom && same(r.name, defaultRoom)) localStorage.setItem(LEFT_DEFAULT_KEY, defaultRoom);
      saveRooms();
      if (same(room, msg.room)) {
        const next = rooms.get(key(defaultRoom)) || rooms.values().next().value;
        openRoom(next ? next.name : "");
      }
      renderRooms();
      return;
    }
    if (msg.kind === "joined") {
      r.members = r.members.concat([msg.name]);
      note(`${msg.name} joined #${r.name}`, "", r.name);
    } else {
      r.members = r.members.filter((n) => !same(n, msg.name));
      note(`${msg.name} ${msg.kind === "removed" ? "was removed from" : "left"} #${r.name}`, "", r.name);
    }
    if (same(room, msg.room)) setOnline(r.members);
  }

  // Shows room `n` (one we are in; "" for none), its members beside it, in the address.
  function openRoom(n) {
    room = n;
    target = "";
    if (n) clearRoomUnread(n);
    const r = n ? rooms.get(key(n)) : null;
    setAddress(n);
    setOnline(r ? r.members : []);
    renderRooms();
    applyView();
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  function clearRoomUnread(n) {
    const r = rooms.get(key(n));
    if (r && r.unread) { r.unread = 0; renderRooms(); }
  }

  // Opens `n` if we are in it, else asks to join it (it opens when the server answers, by
  // the name the server gives it, whatever the spelling asked for).
  function goToRoom(n) {
    n = String(n).trim();
    if (!roomsOn || !session) return;
    const problem = roomProblem(n);
    if (problem) {
      note(`Cannot open #${shortName(n)}: ${problem}.`, "error");
      setAddress(room);
      return;
    }
    const r = rooms.get(key(n));
    if (r) { openRoom(r.name); return; }
    if (defaultPending) { opening = n; return; } // asked for with the rooms after welcome
    join(n, true, false);
  }

  function renderRooms() {
    ui.roomPanel.hidden = !roomsOn;
    const items = [...rooms.values()].sort((a, b) => a.name.localeCompare(b.name, undefined, { sensitivity: "base" }));
    ui.rooms.replaceChildren(...items.map(roomItem));
  }

  function roomItem(r) {
    const li = document.createElement("li");
    li.className = "room-row";
    const b = document.createElement("button");
    b.type = "button";
    b.className = "user room";
    b.dataset.room = r.name;
    const l = document.createElement("span");
    l.className = "label";
    l.textContent = `#${r.name}`;
    b.append(l);
    if (r.unread) {
      const u = document.createElement("span");
      u.className = "unread";
      u.textContent = String(r.unread);
      u.title = `${r.unread} unread`;
      b.append(u);
    }
    const selected = !target && same(room, r.name);
    b.classList.toggle("selected", selected);
    b.setAttribute("aria-pressed", String(selected));
    b.onclick = () => { openRoom(r.name); ui.message.focus(); };
    const x = document.createElement("button");
    x.type = "button";
    x.className = "leave";
    x.textContent = "×";
    x.title = `leave #${r.name}`;
    x.setAttribute("aria-label", `leave #${r.name}`);
    x.onclick = () => send({ type: "leave", room: r.name });
    li.append(b, x);
    return li;
  }

  // `room-list`: the server's rooms, largest first, each a button that joins it.
  function showRoomList(list) {
    ui.roomList.replaceChildren(...list.map((r) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "user";
      b.dataset.room = String(r.name);
      const l = document.createElement("span");
      l.className = "label";
      l.textContent = `#${r.name}`;
      const c = document.createElement("span");
      c.className = "count";
      c.textContent = String(r.members);
      b.append(l, c);
      b.onclick = () => goToRoom(r.name);
      li.append(b);
      return li;
    }));
    if (!list.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "no rooms";
      ui.roomList.append(li);
    }
    ui.roomList.hidden = false;
    ui.browse.setAttribute("aria-expanded", "true");
  }

  ui.joinRoom.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const n = ui.roomName.value.trim().replace(/^#/, "");
    if (!n) return;
    ui.roomName.value = "";
    goToRoom(n);
  });
  ui.browse.addEventListener("click", () => {
    if (!ui.roomList.hidden) {
      ui.roomList.hidden = true;
      ui.browse.setAttribute("aria-expanded", "false");
      return;
    }
    send({ type: "room-list-request" });
  });
  window.addEventListener("hashchange", () => {
    const n = roomFromHash();
    if (!same(n, room) && (n || location.hash.startsWith("#room="))) goToRoom(n);
  });

  // The peer's text goes in as text nodes and anchors made with the DOM, never as markup;
  // its newlines are kept by `white-space: pre-wrap` (.text).
  function addMessage({ from, to, text, mine, mention, inRoom }) {
    const isPrivate = !!to;
    const cls = "msg" + (mine ? " mine" : "") + (isPrivate ? " private" : "") + (mention ? " mention" : "");
    const li = entry(cls, isPrivate ? (mine ? to : from) : "", isPrivate ? "" : inRoom);
    li.dataset.from = from;
    head(li, senderLabel(from), mine && to ? to : "", isPrivate);
    const body = document.createElement("div");
    body.className = "text";
    appendLinked(body, text);
    li.append(body);
  }

  // Characters that would make a peer's text read as something else: controls (line breaks
  // and tabs are kept), C1 controls, and invisible or bidirectional formatting characters
  // (a right-to-left override shows `\u202egnp.exe` as `exe.png`). The terminal clients show
  // the same set escaped (cli/src/safe.rs); so does the page, as `\u{202e}`.
  const HIDDEN = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]|\udb40[\udc00-\udc7f]/g;

  function visible(text) {
    return String(text).replace(HIDDEN, (c) => `\\u{${c.codePointAt(0).toString(16)}}`);
  }

  // Web and mail addresses in a message, as written. Punctuation that ends a sentence is
  // left out of the link (see trimLink).
  const LINK = /\b(?:https?:\/\/|mailto:)[^\s<>"]+/gi;

  function appendLinked(parent, raw) {
    const text = visible(raw);
    let last = 0;
    for (const m of text.matchAll(LINK)) {
      const written = trimLink(m[0]);
      const href = safeHref(written);
      if (!href) continue;
      if (m.index > last) parent.append(text.slice(last, m.index));
      const a = document.createElement("a");
      a.href = href;
      a.textContent = written;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      parent.append(a);
      last = m.index + written.length;
    }
    if (last < text.length) parent.append(text.slice(last));
  }

  // "see https://x.org/a." links https://x.org/a; "(https://x.org/a_(b))" keeps its
  // balanced parenthesis and drops the closing one.
  function trimLink(s) {
    for (;;) {
      const c = s.at(-1);
      if (".,;:!?'\u2019".includes(c)) s = s.slice(0, -1);
      else if (c === ")" && s.split("(").length < s.split(")").length) s = s.slice(0, -1);
      else if (c === "]" && s.split("[").length < s.split("]").length) s = s.slice(0, -1);
      else return s;
    }
  }

  function safeHref(s) {
    try {
      const u = new URL(s);
      return LINK_SCHEMES.includes(u.protocol) ? u.href : null;
    } catch {
      return null;
    }
  }

  // Whether `text` names `me` as a word: "bob", "@bob", "bob:" but not "bobby".
  function mentions(text, me) {
    const esc = me.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    return new RegExp(`(^|[^\\w.-])@?${esc}($|[^\\w-])`, "i").test(text);
  }

  function note(text, kind, inRoom) {
    const li = entry("note" + (kind ? " " + kind : ""), "", inRoom);
    const t = document.createElement("time");
    t.textContent = time();
    const s = document.createElement("span");
    s.textContent = visible(text);
    li.append(t, s);
  }

  function addBlob(msg) {
    // A blob to everyone is the default room's (there is no blob to another room).
    const li = entry("msg" + (msg.private ? " private" : ""), msg.private ? msg.peer : "", msg.private ? "" : defaultRoom);
    li.dataset.from = msg.peer;
    head(li, senderLabel(msg.peer), "", !!msg.private);
    const bytes = fromBase64(msg.data || "");
    const type = msg.media_type || "application/octet-stream";
    const url = URL.createObjectURL(new Blob([bytes], { type: blobType(type) }));
    if (msg.private) {
      countUnread(msg.peer);
      notify(msg.peer, `sent ${type.startsWith("image/") ? "a picture" : type}`, true);
    }
    if (INLINE_IMAGES.includes(type)) {
      const img = document.createElement("img");
      img.className = "inline";
      img.src = url;
      img.alt = `image from ${senderLabel(msg.peer)}`;
      li.append(img);
    } else {
      const a = document.createElement("a");
      a.href = url;
      a.download = "blob";
      a.textContent = `${type}, ${fmtBytes(bytes.length)}`;
      li.append(a);
    }
  }

  function blobType(type) {
    return INLINE_IMAGES.includes(type) ? type : "application/octet-stream";
  }

  // ---------------------------------------------------------------- notifications

  // Desktop notifications for private messages, offers and mentions while the tab is
  // hidden. Permission is asked only when the user clicks the bell; browsers grant it
  // only to secure contexts (https, localhost), so elsewhere the bell says why it is off.
  const canNotify = () => "Notification" in window && window.isSecureContext;

  function renderBell() {
    ui.notify.hidden = !("Notification" in window);
    if (ui.notify.hidden) return;
    const perm = canNotify() ? Notification.permission : "denied";
    const on = notifyOn && perm === "granted";
    ui.notify.disabled = !canNotify();
    ui.notify.setAttribute("aria-pressed", String(on));
    ui.notify.title = !canNotify() ? "Desktop notifications need https or localhost"
      : perm === "denied" ? "Notifications are blocked in this browser's settings for the site"
      : on ? "Notifying private messages and mentions while the tab is hidden (click to stop)"
      : "Notify me of private messages and mentions while this tab is hidden";
  }

  ui.notify.addEventListener("click", async () => {
    if (!canNotify()) return;
    if (notifyOn && Notification.permission === "granted") {
      notifyOn = false;
    } else {
      const perm = Notification.permission === "default" ? await Notification.requestPermission() : Notification.permission;
      notifyOn = perm === "granted";
    }
    localStorage.setItem(NOTIFY_KEY, notifyOn ? "on" : "off");
    renderBell();
  });

  // A private message (or offer) from `peer` ("" = the server), or a mention by them.
  // Clicking the notification opens their conversation.
  function notify(peer, body, isPrivate) {
    if (!notifyOn || !document.hidden || !canNotify() || Notification.permission !== "granted") return;
    const who = senderLabel(peer);
    try {
      const n = new Notification(isPrivate ? `${who} (private)` : `${who} mentioned you`, {
        body: visible(body.length > 200 ? body.slice(0, 199) + "…" : body),
        tag: `tidings:${isPrivate ? "private" : "mention"}:${who.toLowerCase()}`,
      });
      n.onclick = () => {
        window.focus();
        if (isPrivate && peer && (roomsOn || online.some((o) => same(o, peer)))) select(peer);
        n.close();
      };
    } catch {
      // Some browsers allow notifications only from a service worker: then there are none.
    }
  }

  // ---------------------------------------------------------------- sending chat

  ui.composer.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = ui.message.value;
    if (!text.trim() || !session) return;
    if (!target && roomsOn && !room) { note("Join a room first, or select a person.", "error"); return; }
    const msg = !target && roomsOn
      ? { type: "room-text", room, peer: "", text }
      : { type: "text", peer: target, private: false, text };
    if (send(msg)) {
      addMessage({ from: session.name, to: target, text, mine: true, inRoom: msg.room });
      ui.message.value = "";
      fitMessage();
    }
  });

  // Enter sends, Shift+Enter (or an input method composing) makes a new line.
  ui.message.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter" || ev.shiftKey || ev.isComposing || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    ev.preventDefault();
    ui.composer.requestSubmit();
  });

  function fitMessage() {
    ui.message.style.height = "auto";
    ui.message.style.height = `${Math.min(ui.message.scrollHeight + 2, MESSAGE_MAX_HEIGHT)}px`;
  }
  ui.message.addEventListener("input", fitMessage);

  // ---------------------------------------------------------------- base64 and digests

  // Transfers are hashed in a Worker running sha256.js, on another core than the page's
  // reading, encoding and socket work. Where no worker can be started (a page opened from
  // file://), or if it fails, on this thread.
  let hashWorker = null;
  let nextJob = 1;
  const digests = new Map(); // job -> {resolve, reject}
  const acks = new Map(); // job -> the Hasher waiting for its bytes to be hashed (senders)
  const workerFailed = () => Object.assign(new Error("the page's hashing worker failed"), { hashing: true });
  try {
    hashWorker = new Worker("sha256.js");
    hashWorker.onmessage = (ev) => {
      if (typeof ev.data.hashed === "number") {
        const h = acks.get(ev.data.job);
        if (h) h.acked(ev.data.hashed);
        return;
      }
      const d = digests.get(ev.data.job);
      if (d) { digests.delete(ev.data.job); d.resolve(ev.data); }
    };
    hashWorker.onerror = (ev) => {
      ev.preventDefault();
      hashWorker = null;
      for (const d of digests.values()) d.reject(workerFailed());
      digests.clear();
      for (const h of acks.values()) h.acked(0, workerFailed());
      acks.clear();
    };
  } catch {
    hashWorker = null;
  }

  // The SHA-256 of one transfer. `keep`: the bytes are kept too, and finish() returns them
  // as a Blob of `type`. update() takes ownership of the bytes (they move to the worker):
  // the caller must not use them afterwards.
  class Hasher {
    constructor(keep, type) {
      this.keep = keep;
      this.type = type;
      this.worker = hashWorker;
      this.job = nextJob++;
      this.failed = false;
      // A sender's bytes given to the worker and those it has hashed: room() waits on them.
      this.given = 0;
      this.hashed = 0;
      this.waiting = null; // {limit, resolve, reject} while room() waits
      if (!this.worker) { this.hash = new Sha256(); this.parts = []; }
    }

    update(bytes) {
      if (this.worker === hashWorker && this.worker) {
        const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
        const b = whole ? bytes : bytes.slice();
        // A sender (keep false) asks the worker to say what it has hashed (room()).
        const ack = !this.keep;
        if (ack) { this.given += b.byteLength; acks.set(this.job, this); }
        this.worker.postMessage({ job: this.job, bytes: b, keep: this.keep, ack }, [b.buffer]);
      } else if (this.hash) {
        this.hash.update(bytes);
        if (this.keep) this.parts.push(bytes);
      } else {
        this.failed = true; // the worker died under this transfer: finish() says so
      }
    }

    // Resolves once no more than `limit` bytes given to the worker wait to be hashed, so
    // that a sender faster than the hash does not pile the file up in the worker's queue.
    room(limit) {
      if (this.failed || (this.worker && this.worker !== hashWorker)) return Promise.reject(workerFailed());
      if (!this.worker || this.given - this.hashed <= limit) return Promise.resolve();
      return new Promise((resolve, reject) => { this.waiting = { limit, resolve, reject }; });
    }

    acked(hashed, error) {
      this.hashed = Math.max(this.hashed, hashed);
      const w = this.waiting;
      if (!w) return;
      if (error) { this.waiting = null; w.reject(error); } else if (this.given - this.hashed <= w.limit) { this.waiting = null; w.resolve(); }
    }

    // -> Promise<{digest: Uint8Array, blob: Blob | null}>
    finish() {
      acks.delete(this.job);
      if (this.hash) {
        const blob = this.keep ? new Blob(this.parts, { type: this.type }) : null;
        this.parts = [];
        return Promise.resolve({ digest: this.hash.digest(), blob });
      }
      if (this.failed || this.worker !== hashWorker) return Promise.reject(workerFailed());
      return new Promise((resolve, reject) => {
        digests.set(this.job, { resolve, reject });
        this.worker.postMessage({ job: this.job, digest: true, type: this.keep ? this.type : undefined });
      });
    }

    // Forgets the transfer: a finish() or room() still waiting is rejected.
    drop() {
      if (this.worker && this.worker === hashWorker) this.worker.postMessage({ job: this.job, drop: true });
      const d = digests.get(this.job);
      digests.delete(this.job);
      acks.delete(this.job);
      if (d) d.reject(new Error("the transfer ended"));
      if (this.waiting) { const w = this.waiting; this.waiting = null; w.reject(new Error("the transfer ended")); }
      this.parts = [];
    }
  }

  function toBase64(bytes) {
    if (bytes.toBase64) return bytes.toBase64();
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(s);
  }

  function fromBase64(text) {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text);
    const s = atob(text);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  function fmtBytes(n) {
    if (n < 1024) return `${n} B`;
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let v = n / 1024;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
  }

  // ---------------------------------------------------------------- transfer cards

  // One card per transfer in the log: name, peer, a progress bar with bytes, percent and
  // rate, and the buttons that fit its state.
  function card(t) {
    const li = entry("msg transfer " + t.dir + (t.dir === "out" ? " mine" : ""), t.peer);
    li.dataset.id = String(t.id);
    li.dataset.dir = t.dir;
    head(li, t.dir === "out" ? session.name : senderLabel(t.peer), t.dir === "out" ? t.peer : "", false);
    const box = document.createElement("div");
    box.className = "file";
    const title = document.createElement("div");
    title.className = "fname";
    const fname = document.createElement("bdi"); // a peer's bidi controls stay inside it
    fname.textContent = visible(t.name);
    title.append(fname);
    const size = document.createElement("span");
    size.className = "muted";
    size.textContent = ` ${fmtBytes(t.size)}`;
    // The number both people see: an offer to us is known by its id on the whole server
    // (spec §10 rule 8); ours gets the receiver's once the server says it (`relayed`).
    const number = document.createElement("span");
    number.className = "muted number";
    title.append(size, number);
    const bar = document.createElement("progress");
    bar.max = Math.max(1, t.size);
    bar.value = 0;
    const info = document.createElement("div");
    info.className = "info";
    const actions = document.createElement("div");
    actions.className = "actions";
    box.append(title, bar, info, actions);
    li.append(box);
    t.el = { li, bar, info, actions, box, number };
    if (t.dir === "in") showNumber(t, String(t.id));
    return li;
  }

  function showNumber(t, number) {
    t.el.number.textContent = ` · transfer ${number}`;
    t.el.li.dataset.number = number;
  }

  function button(label, cls, onclick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = label;
    b.onclick = onclick;
    return b;
  }

  function render(t, text) {
    const { li, bar, info, actions } = t.el;
    li.dataset.state = t.state;
    bar.value = t.done;
    const pct = t.size ? Math.floor((t.done / t.size) * 100) : 100;
    const secs = t.started ? Math.max(0.001, ((t.ended || Date.now()) - t.started) / 1000) : 0;
    // Bytes the receiver already had (a resumed transfer) are not counted in the rate.
    const rate = secs ? `${fmtBytes(Math.round((t.done - (t.startOffset || 0)) / secs))}/s` : "";
    const figures = `${fmtBytes(t.done)} of ${fmtBytes(t.size)} · ${pct}%${rate ? " · " + rate : ""}`;
    info.textContent = text ? `${visible(text)} — ${figures}` : figures;
    actions.replaceChildren();
    if (t.state === "offered" && t.dir === "in") {
      actions.append(button("Accept", "accept", () => acceptOffer(t)));
      actions.append(button("Reject", "reject secondary", () => rejectOffer(t)));
    } else if (t.state === "offered" || t.state === "running") {
      actions.append(button("Cancel", "cancel secondary", () => cancelTransfer(t)));
    }
    if (t.url) actions.append(t.el.download);
  }

  // A card's progress while bytes move, redrawn at most every PROGRESS_MS.
  function progress(t, text) {
    const now = Date.now();
    if (now - (t.drawn || 0) < PROGRESS_MS) return;
    t.drawn = now;
    render(t, text);
  }

  function finish(t, state, text) {
    if (t.state === "complete" || t.state === "failed") return;
    t.state = state;
    t.ended = Date.now();
    if (state === "failed") {
      if (t.hash) t.hash.drop();
      if (t.sink) t.sink.fail(text || "failed");
      t.slab = t.next = null; // the card outlives the transfer: not the file's slices
    }
    render(t, text);
  }

  function endAllTransfers(why) {
    for (const t of transfers.values()) {
      if (t.state === "offered" || t.state === "running" || t.state === "verifying") finish(t, "failed", why);
    }
    transfers.clear();
  }

  // ---------------------------------------------------------------- sending files

  // Files go to the selected person, or to everyone else in the room on screen: there is
  // no offer to a room, so each member gets an ordinary offer of their own and accepts,
  // rejects and paces it alone (the upload is sent once per member). More than one
  // receiver (in the default room that is everyone) is asked about first.
  function offerFiles(files) {
    if (!session || !files.length) return;
    const r = roomsOn && room ? rooms.get(key(room)) : null;
    const peers = target ? [target] : r ? r.members.filter((n) => !same(n, session.name)) : [];
    if (!peers.length) {
      note(r ? `Nobody else is in #${r.name} to send files to.` : "Select a user on the left first: files go to one person.", "error");
      return;
    }
    if (peers.length > 1) {
      const what = files.length === 1 ? `“${visible(files[0].name)}”` : `${files.length} files`;
      const ok = confirm(`Send ${what} to all ${peers.length} other members of #${visible(r.name)}? `
        + "Each of them gets an offer to accept or reject. To send to one person, select them first.");
      if (!ok) { note(`Not sent: ${files.length === 1 ? files[0].name : `${files.length} files`}.`); return; }
    }
    for (const file of files) {
      for (const peer of peers) {
        const id = nextOfferId;
        nextOfferId += 2;
        const t = {
          dir: "out", id, peer, name: file.name, size: file.size, file,
          state: "offered", done: 0, limit: 0, pumping: false, started: 0,
        };
        transfers.set(`out:${id}`, t);
        card(t);
        render(t, "waiting for the receiver");
        send({ type: "offer", id, peer, size: file.size, name: file.name, media_type: file.type || "" });
      }
    }
  }

  ui.file.addEventListener("change", () => {
    offerFiles([...ui.file.files]);
    ui.file.value = "";
  });

  // The `relayed` extension (spec §10 rule 8): "your offer `id` reaches `peer` as transfer
  // `relay_id`", body `id u64 | n u8 | peer (n bytes) | relay_id u64`, big-endian, in base64
  // on this mode (§12.3). One that does not decode, or names no offer of ours still
  // running, is ignored: an extension never ends a session.
  function onRelayed(body) {
    let b;
    try {
      b = fromBase64(typeof body === "string" ? body : "");
    } catch {
      return;
    }
    if (b.length < 17 || b.length !== 17 + b[8]) return;
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const id = view.getBigUint64(0);
    // Our ids count up from 0; a larger one is none of ours (and would not fit a Number).
    if (id > BigInt(Number.MAX_SAFE_INTEGER)) return;
    const t = transfers.get(`out:${Number(id)}`);
    if (!t) return;
    // As a decimal string: a u64 beyond 2^53 stays exact.
    showNumber(t, view.getBigUint64(9 + b[8]).toString());
  }

  function onAccept(msg) {
    const t = transfers.get(`out:${msg.id}`);
    if (!t || t.state !== "offered") return;
    t.state = "running";
    t.done = msg.offset;
    t.limit = msg.offset + msg.credit;
    t.started = Date.now();
    t.startOffset = msg.offset;
    // The digest covers the whole file: it is computed from the chunks as they go out,
    // after the part the receiver kept (offset > 0) was read and hashed first (pump).
    t.hash = new Hasher(false);
    t.hashed = 0; // bytes given to the hasher: the kept part, then each slice once it is sent
    t.kept = msg.offset;
    t.slab = null; // the slice of the file being cut into chunks: {start, end, bytes}
    t.next = null; // the slice after it, being read: {start, end, read: Promise<ArrayBuffer>}
    render(t, "sending");
    pump(t);
  }

  function onCredit(msg) {
    const t = transfers.get(`out:${msg.id}`);
    if (!t) return;
    t.limit += msg.bytes;
    pump(t);
  }

  // Starts reading the slice of the file from `start` (READ bytes at most).
  function readSlice(t, start) {
    const end = Math.min(t.size, start + READ);
    const read = t.file.slice(start, end).arrayBuffer();
    read.catch(() => {}); // a transfer ended meanwhile: nobody waits for it
    return { start, end, read };
  }

  // Sends chunks while credit allows, holding back while the socket's own buffer is full
  // so that a large file is never read into memory all at once. Chunks are cut from slices
  // of READ bytes; a slice goes to the hasher (moved, not copied) once all of it is sent.
  async function pump(t) {
    if (t.pumping) return;
    t.pumping = true;
    try {
      while (t.state === "running" && t.hashed < t.kept) {
        await t.hash.room(HASH_BACKLOG);
        const end = Math.min(t.kept, t.hashed + READ);
        t.hash.update(new Uint8Array(await t.file.slice(t.hashed, end).arrayBuffer()));
        t.hashed = end;
        progress(t, `hashing the part the receiver kept (${Math.floor((t.hashed / t.kept) * 100)}%)`);
      }
      while (t.state === "running" && t.done < t.size && t.done < t.limit) {
        if (!ws) return;
        if (ws.bufferedAmount > SEND_BUFFER) {
          // The socket drains hundreds of MiB/s: look again soon, not after a long sleep.
          await new Promise((r) => setTimeout(r, 2));
          continue;
        }
        if (!t.slab) {
          // The slices sent wait in the hashing worker's queue: no more than a few of them.
          await t.hash.room(HASH_BACKLOG);
          if (t.state !== "running") return;
          const next = t.next && t.next.start === t.done ? t.next : readSlice(t, t.done);
          t.next = null;
          const bytes = new Uint8Array(await next.read);
          if (t.state !== "running") return;
          t.slab = { start: next.start, end: next.end, bytes };
          if (next.end < t.size) t.next = readSlice(t, next.end);
        }
        const slab = t.slab;
        const end = Math.min(slab.end, t.limit, t.done + CHUNK);
        const bytes = slab.bytes.subarray(t.done - slab.start, end - slab.start);
        // Written out rather than JSON.stringify'd: base64 needs no escaping, and the
        // 342 KiB string is not scanned again.
        sendRaw(`{"type":"chunk","id":${t.id},"offset":${t.done},"data":"${toBase64(bytes)}"}`);
        t.done = end;
        if (end === slab.end) {
          t.slab = null;
          t.hash.update(slab.bytes);
          t.hashed = end;
        }
        progress(t, "sending");
      }
      if (t.state === "running" && t.done >= t.size) {
        t.state = "verifying";
        render(t, "waiting for confirmation");
        const { digest } = await t.hash.finish();
        if (t.state === "verifying") send({ type: "done", id: t.id, sha256: toBase64(digest) });
      }
    } catch (e) {
      if (t.state === "running" || t.state === "verifying") {
        const why = e && e.hashing ? "the page could not hash the file" : "cannot read the file";
        send({ type: "cancel", id: t.id, code: 42, reason: why });
        finish(t, "failed", `${why}: ${(e && e.message) || e}`);
        transfers.delete(`out:${t.id}`);
      }
    } finally {
      t.pumping = false;
    }
  }

  function onComplete(msg) {
    const t = transfers.get(`out:${msg.id}`);
    if (!t) return;
    t.done = t.size;
    finish(t, "complete", "delivered, digest confirmed");
    transfers.delete(`out:${msg.id}`);
  }

  // `failed` and `reject` end one of our offers.
  function onEnded(msg, dir, what) {
    const t = transfers.get(`${dir}:${msg.id}`);
    if (!t) return;
    finish(t, "failed", `${what}: ${msg.reason || msg.code_name || msg.code}`);
    transfers.delete(`${dir}:${msg.id}`);
  }

  // `cancel` can name either direction: the sender's id space is the offerer's, so an id we
  // received an offer for is incoming; otherwise it is one of ours.
  function onCancel(msg) {
    const dir = transfers.has(`in:${msg.id}`) ? "in" : "out";
    onEnded(msg, dir, "cancelled");
  }

  function cancelTransfer(t, why = "", code = CODE.cancelled) {
    if (t.dir === "in" && t.state === "running" && !t.hash) {
      // Not accepted yet (its download was starting): an offer is refused with reject.
      send({ type: "reject", id: t.id, code: CODE.rejected, reason: why || "declined" });
    } else {
      send({ type: "cancel", id: t.id, code, reason: why || "cancelled by the user" });
    }
    finish(t, "failed", why ? `cancelled: ${why}` : "cancelled");
    transfers.delete(`${t.dir}:${t.id}`);
  }

  // ---------------------------------------------------------------- receiving files

  // Senders that do not say what a file is (the terminal client) still get their pictures
  // shown: a known image extension stands in for the media type.
  const IMAGE_TYPES = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp" };
  function mediaType(msg) {
    if (msg.media_type) return msg.media_type;
    const ext = /\.([a-z0-9]+)$/i.exec(msg.name || "");
    return (ext && IMAGE_TYPES[ext[1].toLowerCase()]) || "";
  }

  function onOffer(msg) {
    const t = {
      dir: "in", id: msg.id, peer: msg.peer, name: msg.name || "file", size: msg.size,
      mediaType: mediaType(msg), state: "offered", done: 0, granted: 0, started: 0,
    };
    transfers.set(`in:${msg.id}`, t);
    card(t);
    render(t, "offered to you");
    countUnread(t.peer);
    notify(t.peer, `offers ${t.name} (${fmtBytes(t.size)})`, true);
  }

  async function acceptOffer(t) {
    if (t.state !== "offered") return;
    t.state = "running";
    t.started = Date.now();
    t.granted = Math.min(WINDOW, t.size);
    // A large file goes to disk as it arrives, through the service worker, where there is
    // one; the rest is kept in memory (the hashing worker keeps it, and returns a Blob).
    // A picture is shown inline, unless it is too large to keep in memory.
    const large = t.size >= STREAM_FROM && (!INLINE_IMAGES.includes(t.mediaType) || t.size > INLINE_MAX);
    let why = "large files go straight to disk only when this page is opened over https or on localhost";
    if (large && streamer) {
      render(t, "starting the download");
      const sink = openSink(t);
      t.sink = sink; // a cancel meanwhile fails it
      // Nothing is accepted before the service worker is ready for the bytes.
      if (await sink.ready) {
        if (t.state !== "running") return; // cancelled meanwhile
        t.hash = sink.hash; // the service worker hashes what it streams
        t.activity = "receiving, saving to your downloads";
      } else {
        if (t.state !== "running") return;
        t.sink = null;
        sink.fail("the service worker did not answer");
        why = "the download could not be started";
      }
    }
    if (!t.hash) t.hash = new Hasher(true, blobType(t.mediaType));
    // Said on the card while bytes arrive; a large file kept in memory says why.
    if (!t.activity) t.activity = large ? `receiving into memory (${why})` : "receiving";
    send({ type: "accept", id: t.id, offset: 0, credit: t.granted });
    render(t, t.activity);
  }

  function rejectOffer(t) {
    send({ type: "reject", id: t.id, code: CODE.rejected, reason: "declined" });
    finish(t, "failed", "rejected");
    transfers.delete(`in:${t.id}`);
  }

  function onChunk(msg) {
    const t = transfers.get(`in:${msg.id}`);
    if (!t || t.state !== "running" || !t.hash) return;
    const bytes = fromBase64(msg.data);
    // Spec §7.4 rule 3: a chunk starts at the next byte and ends by the size
    // (chunk-out-of-range), and within the credit granted (credit-exceeded), the range
    // first. Anything else is refused: it would pile up in memory or in the download.
    const end = msg.offset + bytes.length;
    if (msg.offset !== t.done || end > t.size) {
      refuseChunk(t, CODE.chunkOutOfRange, "chunk-out-of-range", `a chunk at ${msg.offset}..${end} does not follow ${t.done} within the size ${t.size}`);
      return;
    }
    if (end > t.granted) {
      refuseChunk(t, CODE.creditExceeded, "credit-exceeded", `a chunk up to ${end} goes past the ${t.granted} bytes granted`);
      return;
    }
    t.done = end;
    t.hash.update(bytes); // to the hashing worker, or to the service worker's stream
    if (!t.sink) grant(t, t.done); // bytes held in memory count as stored
    progress(t, t.activity);
  }

  function refuseChunk(t, code, name, reason) {
    send({ type: "cancel", id: t.id, code, reason });
    finish(t, "failed", `the sender broke the protocol (${name}): ${reason}`);
    transfers.delete(`in:${t.id}`);
  }

  // Gives back credit for what is stored (`stored`: bytes up to there are in memory, or taken
  // by the download stream), once half the window is free again or when the grant can
  // reach the end of the file (spec §7.4 rule 4).
  function grant(t, stored) {
    const free = WINDOW - (t.granted - stored);
    const more = Math.min(free, t.size - t.granted);
    if (more > 0 && (more >= WINDOW / 2 || t.granted + more === t.size)) {
      t.granted += more;
      send({ type: "credit", id: t.id, bytes: more });
    }
  }

  // The verdict (spec §7.4 rule 5): the digest is compared, and for a download the bytes
  // still queued are written, before `complete`. The transfer stays in `transfers` until
  // then, so that a cancel or a lost connection still ends it and its download.
  async function onDone(msg) {
    const t = transfers.get(`in:${msg.id}`);
    if (!t || t.state !== "running") return;
    t.state = "verifying";
    render(t, "checking the digest");
    const verdict = (code, reason, text) => {
      if (t.state !== "verifying") return; // ended meanwhile (a cancel, the connection closed)
      if (code) send({ type: "failed", id: t.id, code, reason });
      else send({ type: "complete", id: t.id });
      transfers.delete(`in:${t.id}`);
      if (code) finish(t, "failed", text);
    };
    let got;
    try {
      got = await timeout(t.hash.finish(), DIGEST_MS, `no digest from the page's hashing within ${DIGEST_MS / 1000} s`);
    } catch (e) {
      const why = `${(e && e.message) || e}`;
      verdict(CODE.storageFailed, `the page could not hash the file: ${why}`, `cannot check the digest: ${why}`);
      return;
    }
    if (t.state !== "verifying") return;
    if (t.done !== t.size || toBase64(got.digest) !== msg.sha256) {
      // A streamed download is failed (errored): the browser marks it failed, not done.
      verdict(CODE.digestMismatch, "the SHA-256 differs", t.sink ? "digest mismatch: the download was stopped and is incomplete" : "digest mismatch");
      return;
    }
    if (t.sink) {
      // The download ends only now, after the digest was checked, and the verdict waits
      // until the browser has taken every byte still queued for it.
      render(t, "digest verified, writing the last bytes");
      try {
        await timeout(t.sink.close(), CLOSE_MS, `the browser did not take the last bytes within ${CLOSE_MS / 1000} s`);
      } catch (e) {
        const why = `${(e && e.message) || e}`;
        verdict(CODE.storageFailed, `the download was not finished: ${why}`, `the download was not finished: ${why}`);
        return;
      }
      if (t.state !== "verifying") return;
      verdict(0);
      finish(t, "complete", "received, digest verified, saved to your downloads");
      return;
    }
    verdict(0);
    t.url = URL.createObjectURL(got.blob);
    const a = document.createElement("a");
    a.className = "download";
    a.href = t.url;
    a.download = t.name;
    a.textContent = "Download";
    t.el.download = a;
    if (INLINE_IMAGES.includes(t.mediaType)) {
      const img = document.createElement("img");
      img.className = "inline";
      img.src = t.url;
      img.alt = t.name;
      t.el.box.insertBefore(img, t.el.actions);
    }
    finish(t, "complete", "received, digest verified");
  }

  // `promise`, or a rejection with `why` once `ms` passed.
  function timeout(promise, ms, why) {
    let timer;
    return Promise.race([
      promise,
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(why)), ms); }),
    ]).finally(() => clearTimeout(timer));
  }

  // ---------------------------------------------------------------- downloads streamed to disk

  // The service worker (sw.js) answers a download address with a stream this page feeds,
  // so that a received file goes to disk as it arrives instead of into memory. Browsers
  // give service workers only to secure contexts (https, localhost): elsewhere `streamer`
  // stays null and files are received in memory, as a Blob.
  let streamer = null; // the active service worker
  if (window.isSecureContext && navigator.serviceWorker && location.protocol !== "file:") {
    // A newer sw.js waits until no tab uses this one (it does not skip waiting): a download
    // being streamed keeps the worker that streams it.
    navigator.serviceWorker.register("sw.js", { scope: "./" })
      .then(() => navigator.serviceWorker.ready)
      .then((reg) => { streamer = reg.active; })
      .catch(() => { streamer = null; });
    // A worker that takes over later (once no tab used the old one) gets the next streams;
    // a stream keeps the worker it began with (openSink).
    navigator.serviceWorker.addEventListener("controllerchange", () => {
      streamer = navigator.serviceWorker.controller || streamer;
    });
  }

  // One download stream: write() moves bytes to the service worker, which hands them to the
  // browser's download as it asks for more; credit goes back to the sender only for bytes
  // the download took, so memory stays bounded by the window however large the file.
  // `ready` resolves true once the worker is ready for the bytes, false if it did not answer.
  function openSink(t) {
    const worker = streamer; // this stream's worker, whatever worker comes later
    const channel = new MessageChannel();
    const port = channel.port1;
    const id = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
    const path = new URL(`download/${id}`, location.href).pathname;
    let frame = null;
    let ended = null; // the Error the stream ended with (a finished one too)
    let digested = null; // {resolve, reject} of finish(), until the worker's digest
    let closed = null; // {resolve, reject} of close(), until the worker says it closed
    let startTimer = null;
    let answerReady;
    const ready = new Promise((resolve) => { answerReady = resolve; });
    const readyTimer = setTimeout(() => answerReady(false), READY_MS);
    const sink = {
      ready,
      // A Hasher's interface: the service worker hashes the bytes it streams.
      hash: {
        update(bytes) { if (!ended) port.postMessage({ bytes }, [bytes.buffer]); },
        finish() {
          if (ended) return Promise.reject(ended);
          return new Promise((resolve, reject) => {
            digested = { resolve, reject };
            port.postMessage({ digest: true });
          });
        },
        drop() {},
      },
      // Ends the download; resolves once the browser has taken every byte and the stream
      // is closed, rejects if the download fails or is cancelled first.
      close() {
        if (ended) return Promise.reject(ended);
        return new Promise((resolve, reject) => {
          closed = { resolve, reject };
          port.postMessage({ close: true });
        });
      },
      // Fails the download (the browser marks it failed and discards the partial file).
      fail(why) {
        if (!ended) port.postMessage({ error: String(why) });
        end(new Error(String(why)));
      },
    };
    // A service worker may be stopped when it has had no event for a while: a message now
    // and then keeps it up while the page feeds it.
    const keepalive = setInterval(() => worker.postMessage({ type: "tidings-keepalive" }), 10_000);
    // Every end of the stream goes through here: timers, the port, whoever waits, the frame.
    function end(error) {
      if (ended) return;
      ended = error;
      clearInterval(keepalive);
      clearTimeout(readyTimer);
      clearTimeout(startTimer);
      answerReady(false);
      port.close();
      for (const w of [digested, closed]) if (w) w.reject(error);
      digested = closed = null;
      // The download has its own life once it started; the frame that began it can go.
      if (frame) { const f = frame; frame = null; setTimeout(() => f.remove(), 60_000); }
    }
    port.onmessage = (ev) => {
      const m = ev.data || {};
      if (m.ready) {
        clearTimeout(readyTimer);
        if (ended) return;
        // The worker knows the address: fetch it in a hidden frame, which the browser turns
        // into a download (Content-Disposition: attachment).
        frame = document.createElement("iframe");
        frame.hidden = true;
        frame.src = path;
        document.body.append(frame);
        startTimer = setTimeout(() => {
          if (t.state === "running") cancelTransfer(t, "the browser did not start the download", CODE.storageFailed);
        }, START_MS);
        answerReady(true);
      } else if (m.started) {
        clearTimeout(startTimer); // the browser fetched the download
      } else if (m.digest instanceof Uint8Array) {
        if (digested) digested.resolve({ digest: m.digest, blob: null });
        digested = null;
      } else if (typeof m.written === "number") {
        if (t.state === "running") grant(t, m.written);
      } else if (m.closed) {
        const c = closed;
        closed = null;
        end(new Error("the download ended"));
        if (c) c.resolve();
      } else if (m.cancelled !== undefined && !ended) {
        // The download was cancelled in the browser: the transfer with it. After `done`,
        // the verdict waiting on the digest or the last bytes fails (onDone).
        end(new Error("the download was cancelled in the browser"));
        if (t.state === "running") cancelTransfer(t, "the download was cancelled in the browser");
      }
    };
    worker.postMessage({ type: "tidings-stream", path, name: t.name, size: t.size }, [channel.port2]);
    return sink;
  }

  // ---------------------------------------------------------------- drag and drop

  let dragDepth = 0;
  const hasFiles = (ev) => ev.dataTransfer && [...ev.dataTransfer.types].includes("Files");
  document.addEventListener("dragenter", (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    dragDepth++;
    ui.drop.hidden = false;
  });
  document.addEventListener("dragover", (ev) => { if (hasFiles(ev)) ev.preventDefault(); });
  document.addEventListener("dragleave", () => {
    if (--dragDepth <= 0) { dragDepth = 0; ui.drop.hidden = true; }
  });
  document.addEventListener("drop", (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    dragDepth = 0;
    ui.drop.hidden = true;
    offerFiles([...ev.dataTransfer.files]);
  });

  // ---------------------------------------------------------------- the name prompt

  // The token this tab holds for the current name, if any.
  function storedToken() {
    try {
      const t = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || "null");
      return t && typeof t.token === "string" && same(t.name, name) ? t.token : "";
    } catch { return ""; }
  }

  function askName(error) {
    ui.name.value = name;
    ui.password.value = "";
    ui.loginError.hidden = !error;
    ui.loginError.textContent = error || "";
    if (!ui.login.open) ui.login.showModal();
    ui.name.focus();
  }

  ui.loginForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const n = ui.name.value.trim();
    if (!n) return;
    if (!same(n, name)) sessionStorage.removeItem(TOKEN_KEY);
    name = n;
    password = ui.password.value;
    ui.password.value = "";
    if (password) sessionStorage.removeItem(TOKEN_KEY); // a typed password wins
    localStorage.setItem(NAME_KEY, name);
    ui.login.close();
    if (ws) { const old = ws; ws = null; old.close(1000, "new name"); endAllTransfers("reconnecting"); session = null; }
    attempts = 0;
    connect();
  });
  ui.login.addEventListener("cancel", (ev) => { if (!name) ev.preventDefault(); });
  ui.rename.addEventListener("click", () => askName());

  renderUsers();
  renderBell();
  if (name) connect(); else { setStatus("idle", "not connected"); askName(); }
})();
