/*
 * IMKit Web SDK: a chat client speaking the IMKit WebSocket protocol (imkit.v1).
 * This file is the only implementation. As a classic <script> it defines window.IMKit;
 * required as CommonJS it exports { IMKit }; imkit.mjs re-exports it as an ES module.
 * Zero dependencies: it needs WebSocket, crypto.getRandomValues, TextEncoder and timers.
 */
(function () {
  "use strict";

  const REQUEST_TIMEOUT_MS = 10000;
  const PING_IDLE_MS = 25000;
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 30000;
  const TYPING_INTERVAL_MS = 2000;
  const HISTORY_PAGE = 100;
  // Keeps a `sync` frame well under the server's 64 KiB frame limit even with 64-byte room ids.
  const SYNC_ROOMS_PER_REQUEST = 500;
  const DEFAULT_MAX_FRAME_BYTES = 65536;
  const SUBPROTOCOL = "imkit.v1";
  const WS_OPEN = 1;
  const CLOSE_CODE_ERRORS = { 4401: "unauthenticated", 4403: "forbidden" };
  // Only msg.send is repeated after a lost connection: its cid makes a repeat harmless.
  const RETRIED_OPS = new Set(["msg.send"]);

  function imkitError(code, message, cause) {
    const error = new Error(message, cause === undefined ? undefined : { cause });
    error.code = code;
    return error;
  }

  function ignore() {}

  function randomCid() {
    const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  // "Equal jitter": half of each delay is fixed and half random, so clients that lost the
  // same server spread their retries while none retries sooner than half the nominal delay.
  function backoffDelay(attempt) {
    const nominal = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
    return nominal / 2 + Math.random() * (nominal / 2);
  }

  function byteLength(text) {
    return new TextEncoder().encode(text).length;
  }

  function definedOnly(object) {
    return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined));
  }

  function deferred() {
    const handle = {};
    handle.promise = new Promise((resolve, reject) => {
      handle.resolve = resolve;
      handle.reject = reject;
    });
    return handle;
  }

  function chunks(object, size) {
    const entries = Object.entries(object);
    const parts = [];
    for (let start = 0; start < entries.length; start += size) {
      parts.push(Object.fromEntries(entries.slice(start, start + size)));
    }
    return parts.length > 0 ? parts : [{}];
  }

  // The fields of msg.send for send(room, "text") or send(room, { type, text, payload, ... }).
  function messageFields(content) {
    if (typeof content === "string") {
      return { type: "text", text: content };
    }
    const { type = "text", text, payload, reply_to, mentions, cid } = content;
    return definedOnly({ type, text, payload, reply_to, mentions, cid });
  }

  function storedMessage(sent, ack, from) {
    return definedOnly({
      room: sent.room,
      seq: ack.seq,
      ts: ack.ts,
      from,
      type: sent.type,
      text: sent.text,
      payload: sent.payload,
      cid: ack.cid ?? sent.cid,
      reply_to: sent.reply_to,
      mentions: sent.mentions,
    });
  }

  /** Listeners by event name. A throwing listener must not break the SDK's own bookkeeping,
   *  so its error is rethrown on its own, where the page's error reporting sees it. */
  class Emitter {
    #listeners = new Map();

    on(name, listener) {
      if (!this.#listeners.has(name)) {
        this.#listeners.set(name, new Set());
      }
      this.#listeners.get(name).add(listener);
    }

    off(name, listener) {
      this.#listeners.get(name)?.delete(listener);
    }

    emit(name, value) {
      for (const listener of [...(this.#listeners.get(name) ?? [])]) {
        try {
          listener(value);
        } catch (error) {
          queueMicrotask(() => {
            throw error;
          });
        }
      }
    }
  }

  /** Per room, the last message seq handed to the page, and the messages that arrived after
   *  a gap, held back until the gap is filled: the page sees each message once, in seq order. */
  class SeqTracker {
    #rooms = new Map(); // room id → { last, held: Map<seq, message> }

    isTracked(room) {
      return this.#rooms.has(room);
    }

    last(room) {
      return this.#rooms.get(room)?.last;
    }

    // Starts following a room from `seq`, the last message the page is taken to hold.
    track(room, seq) {
      if (!this.#rooms.has(room)) {
        this.#rooms.set(room, { last: seq, held: new Map() });
      }
    }

    forget(room) {
      this.#rooms.delete(room);
    }

    clear() {
      this.#rooms.clear();
    }

    known() {
      const known = {};
      for (const [room, { last }] of this.#rooms) {
        known[room] = last;
      }
      return known;
    }

    hasGap(room) {
      return (this.#rooms.get(room)?.held.size ?? 0) > 0;
    }

    // Returns the messages that become ready, in seq order: none for a repeat, an untracked
    // room or a message after a gap, several when `message` fills a gap.
    accept(message) {
      const state = this.#rooms.get(message.room);
      if (!state || message.seq <= state.last || state.held.has(message.seq)) {
        return [];
      }
      state.held.set(message.seq, message);
      return this.#drain(state);
    }

    // The highest held seq of each room with a gap: a catch-up that starts now answers for
    // every seq up to it.
    heldTops() {
      const tops = new Map();
      for (const [room, { held }] of this.#rooms) {
        if (held.size > 0) {
          tops.set(room, Math.max(...held.keys()));
        }
      }
      return tops;
    }

    // After a catch-up, seqs up to `upTo` still missing no longer exist on the server
    // (trimmed by retention): releases the held messages across those holes.
    skipTo(room, upTo) {
      const state = this.#rooms.get(room);
      if (!state) {
        return [];
      }
      const ready = [];
      const seqs = [...state.held.keys()].filter((seq) => seq <= upTo).sort((a, b) => a - b);
      for (const seq of seqs) {
        if (seq > state.last) {
          state.last = seq - 1;
          ready.push(...this.#drain(state));
        }
      }
      return ready;
    }

    #drain(state) {
      const ready = [];
      while (state.held.has(state.last + 1)) {
        state.last += 1;
        ready.push(state.held.get(state.last));
        state.held.delete(state.last);
      }
      return ready;
    }
  }

  /** Requests waiting for an answer, in the order they were made, which is also the order in
   *  which requests queued while offline go out. */
  class PendingRequests {
    #nextId = 1;
    #byId = new Map();

    add(op, data) {
      const request = { id: this.#nextId++, op, retry: RETRIED_OPS.has(op), sent: false, timer: null };
      request.frame = JSON.stringify(data === undefined ? { id: request.id, op } : { id: request.id, op, data });
      request.promise = new Promise((resolve, reject) => {
        request.resolve = resolve;
        request.reject = reject;
      });
      this.#byId.set(request.id, request);
      return request;
    }

    unsent() {
      return [...this.#byId.values()].filter((request) => !request.sent);
    }

    // Starts the answer timeout of a request just written to the socket.
    markSent(request) {
      request.sent = true;
      request.timer = setTimeout(() => {
        this.fail(request.id, imkitError("timeout", `${request.op}: no answer in ${REQUEST_TIMEOUT_MS / 1000} s`));
      }, REQUEST_TIMEOUT_MS);
    }

    answer(frame) {
      if (frame.ok === true) {
        this.#take(frame.id)?.resolve(frame.data ?? {});
      } else {
        const { code = "internal", message = "" } = frame.error ?? {};
        this.fail(frame.id, imkitError(code, message));
      }
    }

    fail(id, error) {
      this.#take(id)?.reject(error);
    }

    // The connection is gone. Sends go back to the queue with the same frame (same cid);
    // other requests fail, since whether the server applied them cannot be known.
    requeueOrFail() {
      for (const request of this.#byId.values()) {
        if (!request.sent) {
          continue;
        }
        clearTimeout(request.timer);
        request.sent = false;
        if (!request.retry) {
          this.fail(request.id, imkitError("disconnected", `${request.op}: connection lost before the answer`));
        }
      }
    }

    failAll(error) {
      for (const id of [...this.#byId.keys()]) {
        this.fail(id, error);
      }
    }

    // Removes a request so that it settles exactly once, whatever arrives later.
    #take(id) {
      const request = this.#byId.get(id);
      if (request) {
        this.#byId.delete(id);
        clearTimeout(request.timer);
      }
      return request;
    }
  }

  class IMKit {
    #options;
    #WebSocket;
    #events = new Emitter();
    #requests = new PendingRequests();
    #sendChain = Promise.resolve(); // settles when the last send() in order has settled
    #seqs = new SeqTracker();
    #state = "idle";
    #socket = null;
    #me = null;
    #connecting = null; // the deferred result of connect()
    #token = null; // the token in use, fetched again after a refusal
    #tokenRefreshed = false; // token() was called again after a refusal and no auth passed since
    #attempt = 0; // reconnect attempts since the last successful auth
    #generation = 0; // bumped by close(): async work of an older session stops when it sees it
    #timers = { reconnect: null, ping: null, catchUp: null };
    #catchUp = { running: false, again: false, failures: 0 };
    #typingSentAt = new Map();

    constructor(options = {}) {
      if (typeof options.url !== "string" || options.url === "") {
        throw new TypeError("IMKit: options.url must be the server's ws:// or wss:// URL");
      }
      if (typeof options.token !== "string" && typeof options.token !== "function") {
        throw new TypeError("IMKit: options.token must be a string or a function returning one");
      }
      this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
      if (typeof this.#WebSocket !== "function") {
        throw new TypeError("IMKit: no WebSocket here; pass one as options.WebSocket (in Node: the ws package)");
      }
      this.#options = { reconnect: true, maxFrameBytes: DEFAULT_MAX_FRAME_BYTES, ...options };
    }

    get state() {
      return this.#state;
    }

    on(name, listener) {
      this.#events.on(name, listener);
      return this;
    }

    off(name, listener) {
      this.#events.off(name, listener);
      return this;
    }

    connect() {
      if (this.#state === "idle" || this.#state === "closed") {
        this.#connecting = deferred();
        this.#setState("connecting");
        this.#openSocket();
      }
      return this.#connecting.promise;
    }

    close() {
      if (this.#state === "closed") {
        return;
      }
      const error = imkitError("closed", "close() was called");
      this.#shutdown(error);
      this.#connecting?.reject(error);
      this.#setState("closed");
    }

    request(op, data) {
      if (this.#state === "idle" || this.#state === "closed") {
        return Promise.reject(imkitError("closed", `${op}: not connected (call connect() first)`));
      }
      const request = this.#requests.add(op, data);
      const size = byteLength(request.frame);
      if (size > this.#options.maxFrameBytes) {
        this.#requests.fail(request.id, imkitError("too_large", `${op}: ${size} bytes, over the ${this.#options.maxFrameBytes}-byte frame limit`));
      } else if (this.#state === "open") {
        this.#write(request);
      }
      return request.promise;
    }

    createDirect(peer) {
      return this.request("room.create", { type: "direct", members: [peer] });
    }

    createGroup({ members, name, id, cover, meta } = {}) {
      return this.request("room.create", { type: "group", members, id, name, cover, meta });
    }

    listRooms({ limit, before } = {}) {
      return this.request("room.list", { limit, before });
    }

    getRoom(room) {
      return this.request("room.get", { room });
    }

    updateRoom(room, { name, cover, meta } = {}) {
      return this.request("room.update", { room, name, cover, meta });
    }

    addMembers(room, members) {
      return this.request("room.members.add", { room, members });
    }

    removeMembers(room, members) {
      return this.request("room.members.remove", { room, members });
    }

    leave(room) {
      return this.request("room.leave", { room });
    }

    // One message at a time: the server may apply two sends in flight together in either
    // order, and a conversation must keep the order in which it was typed. A failed send
    // does not hold back the next.
    async send(room, content) {
      const sent = { room, cid: randomCid(), ...messageFields(content) };
      const previous = this.#sendChain;
      let release;
      this.#sendChain = new Promise((resolve) => (release = resolve));
      try {
        await previous;
        const ack = await this.request("msg.send", sent);
        return storedMessage(sent, ack, this.#me?.id);
      } finally {
        release();
      }
    }

    history(room, { before, after, limit } = {}) {
      return this.request("msg.history", { room, before, after, limit });
    }

    markRead(room, seq) {
      return this.request("room.read", { room, seq });
    }

    // Typing is ephemeral: dropped while offline, and sent at most once per interval per room
    // so that a page may call this on every keystroke.
    typing(room) {
      if (this.#state !== "open") {
        return;
      }
      const now = Date.now();
      if (now - (this.#typingSentAt.get(room) ?? -Infinity) < TYPING_INTERVAL_MS) {
        return;
      }
      this.#typingSentAt.set(room, now);
      this.#socket.send(JSON.stringify({ op: "typing", data: { room } }));
    }

    edit(room, seq, { text, payload } = {}) {
      return this.request("msg.edit", { room, seq, text, payload });
    }

    recall(room, seq) {
      return this.request("msg.recall", { room, seq });
    }

    react(room, seq, emoji, on = true) {
      return this.request("msg.react", { room, seq, emoji, on });
    }

    updateMe({ name, avatar, meta } = {}) {
      return this.request("me.update", { name, avatar, meta });
    }

    getClients(ids) {
      return this.request("client.get", { ids });
    }

    watchPresence(ids) {
      return this.request("presence.watch", { ids });
    }

    // --- connection life cycle ---

    #setState(state) {
      if (this.#state !== state) {
        this.#state = state;
        this.#events.emit("state", state);
      }
    }

    async #openSocket() {
      const generation = this.#generation;
      let token;
      try {
        token = await this.#currentToken();
      } catch (error) {
        if (generation === this.#generation) {
          this.#fail(imkitError("unauthenticated", `token() failed: ${error.message}`, error));
        }
        return;
      }
      if (generation !== this.#generation) {
        return;
      }
      let socket;
      try {
        socket = new this.#WebSocket(this.#options.url, SUBPROTOCOL);
      } catch (error) {
        this.#fail(imkitError("bad_url", `cannot open ${this.#options.url}: ${error.message}`, error));
        return;
      }
      this.#socket = socket;
      socket.onopen = () => this.#authenticate(socket, token);
      socket.onmessage = (event) => this.#onFrame(event.data);
      socket.onclose = (event) => this.#onSocketClosed(event.code, event.reason);
      socket.onerror = ignore; // a close event always follows, and says what happened
    }

    async #currentToken() {
      if (this.#token === null) {
        this.#token = await this.#fetchToken();
      }
      return this.#token;
    }

    async #fetchToken() {
      const source = this.#options.token;
      const token = typeof source === "function" ? await source() : source;
      if (typeof token !== "string" || token.trim() === "") {
        throw new Error("the token is not a non-empty string");
      }
      return token.trim(); // a backend answering with text often adds a newline
    }

    async #authenticate(socket, token) {
      const auth = this.#requests.add("auth", { token });
      this.#write(auth);
      let answer;
      try {
        answer = await auth.promise;
      } catch (error) {
        if (socket === this.#socket) {
          this.#onAuthFailed(error);
        }
        return;
      }
      if (socket === this.#socket) {
        this.#onAuthenticated(answer.client);
      }
    }

    // Everything queued goes out, in order, before "open" is announced: a state listener that
    // sends at once must not overtake the sends that waited.
    #onAuthenticated(client) {
      this.#me = client;
      this.#attempt = 0;
      this.#tokenRefreshed = false;
      this.#runCatchUp(); // queues its sync behind the requests that waited
      for (const request of this.#requests.unsent()) {
        this.#write(request);
      }
      this.#armPing();
      this.#connecting.resolve(client);
      this.#setState("open");
    }

    #onAuthFailed(error) {
      this.#detachSocket();
      if (error.code === "unauthenticated" || error.code === "bad_request") {
        this.#onTokenRefused(error);
      } else {
        this.#reconnectLater(error); // timeout, unavailable, rate_limited: worth another try
      }
    }

    #onSocketClosed(code, reason) {
      this.#detachSocket();
      const detail = `connection closed (${code}${reason ? `: ${reason}` : ""})`;
      if (CLOSE_CODE_ERRORS[code]) {
        this.#onTokenRefused(imkitError(CLOSE_CODE_ERRORS[code], detail));
      } else {
        this.#reconnectLater(imkitError("disconnected", detail));
      }
    }

    // An expired or revoked token: call token() again, once; a second refusal is final.
    #onTokenRefused(error) {
      if (this.#tokenRefreshed) {
        this.#fail(error);
        return;
      }
      this.#tokenRefreshed = true;
      this.#token = null;
      this.#reconnectLater(error);
    }

    #reconnectLater(error) {
      if (!this.#options.reconnect) {
        this.#fail(error);
        return;
      }
      this.#setState("reconnecting");
      this.#timers.reconnect = setTimeout(() => this.#openSocket(), backoffDelay(this.#attempt++));
    }

    // Used when the socket is known to be useless although it may not have closed yet.
    #dropConnection(error) {
      this.#detachSocket();
      this.#reconnectLater(error);
    }

    // Forgets the current socket (whatever it does next is ignored) and settles its requests.
    #detachSocket() {
      clearTimeout(this.#timers.ping);
      clearTimeout(this.#timers.catchUp);
      const socket = this.#socket;
      if (socket) {
        this.#socket = null;
        socket.onopen = socket.onmessage = socket.onclose = socket.onerror = ignore;
        if (socket.readyState <= WS_OPEN) {
          socket.close(1000);
        }
      }
      this.#requests.requeueOrFail();
    }

    // The SDK gives up: closed, then an `error` event saying why. The state changes first so
    // that an error listener sees a client it may connect() again.
    #fail(error) {
      this.#shutdown(imkitError("closed", `client closed: ${error.message}`, error));
      this.#connecting?.reject(error);
      this.#setState("closed");
      this.#events.emit("error", error);
    }

    // Ends the session: a later connect() starts afresh (new token, rooms followed anew).
    #shutdown(error) {
      this.#generation += 1;
      clearTimeout(this.#timers.reconnect);
      this.#requests.failAll(error);
      this.#detachSocket();
      this.#seqs.clear();
      this.#typingSentAt.clear();
      this.#token = null;
      this.#tokenRefreshed = false;
      this.#attempt = 0;
      this.#catchUp.failures = 0;
    }

    // --- frames ---

    #write(request) {
      this.#socket.send(request.frame);
      this.#requests.markSent(request);
      if (this.#state === "open") {
        this.#armPing();
      }
    }

    #onFrame(text) {
      let frame;
      try {
        frame = JSON.parse(text);
      } catch (error) {
        this.#events.emit("error", imkitError("bad_frame", "the server sent a frame that is not JSON", error));
        return;
      }
      if (typeof frame.ev === "string") {
        this.#onServerEvent(frame.ev, frame.data);
      } else if (frame.id == null) {
        // The server could not read one of our frames: a bug worth surfacing, not fatal.
        this.#events.emit("error", imkitError(frame.error?.code ?? "bad_request", frame.error?.message ?? ""));
      } else {
        this.#requests.answer(frame);
      }
    }

    #onServerEvent(name, data) {
      if (name === "message") {
        this.#onMessageEvent(data);
        return;
      }
      if (name === "room.joined") {
        this.#seqs.track(data.id, data.last_seq);
      } else if (name === "room.left") {
        this.#seqs.forget(data.room);
      }
      this.#events.emit(name, data);
    }

    #onMessageEvent(message) {
      // A room first seen through a live message starts at that message.
      this.#seqs.track(message.room, message.seq - 1);
      this.#emitMessages(this.#seqs.accept(message));
      if (this.#seqs.hasGap(message.room)) {
        this.#runCatchUp();
      }
    }

    #emitMessages(messages) {
      for (const message of messages) {
        this.#events.emit("message", message);
      }
    }

    // --- keep-alive ---

    #armPing() {
      clearTimeout(this.#timers.ping);
      this.#timers.ping = setTimeout(() => this.#ping(), PING_IDLE_MS);
    }

    #ping() {
      const socket = this.#socket;
      this.request("ping").catch((error) => {
        // No answer means a dead connection, even when the socket has not noticed yet.
        if (error.code === "timeout" && socket === this.#socket) {
          this.#dropConnection(error);
        }
      });
    }

    // --- catching up with missed messages ---

    // Runs sync rounds until no new reason to sync came up meanwhile; on failure retries
    // later on the same connection (a reconnect catches up by itself).
    async #runCatchUp() {
      if (this.#catchUp.running) {
        this.#catchUp.again = true;
        return;
      }
      this.#catchUp.running = true;
      let failure = null;
      try {
        do {
          this.#catchUp.again = false;
          await this.#syncRound();
        } while (this.#catchUp.again);
        this.#catchUp.failures = 0;
      } catch (error) {
        failure = error;
      } finally {
        this.#catchUp.running = false;
      }
      if (failure && this.#state === "open") {
        this.#timers.catchUp = setTimeout(() => this.#runCatchUp(), backoffDelay(this.#catchUp.failures++));
      }
    }

    async #syncRound() {
      const coveredUpTo = this.#seqs.heldTops();
      for (const known of chunks(this.#seqs.known(), SYNC_ROOMS_PER_REQUEST)) {
        await this.#syncRooms(known);
      }
      for (const [room, seq] of coveredUpTo) {
        this.#emitMessages(this.#seqs.skipTo(room, seq));
      }
    }

    async #syncRooms(known) {
      const answer = await this.request("sync", { known });
      for (const room of answer.left ?? []) {
        this.#seqs.forget(room);
      }
      for (const summary of answer.rooms ?? []) {
        this.#seqs.track(summary.id, summary.last_seq);
      }
      for (const messages of Object.values(answer.messages ?? {})) {
        this.#deliver(messages);
      }
      for (const [room, more] of Object.entries(answer.has_more ?? {})) {
        if (more) {
          await this.#pageAfter(room);
        }
      }
    }

    // Follows `has_more` of a sync with msg.history after= the last delivered seq.
    async #pageAfter(room) {
      while (this.#seqs.isTracked(room)) {
        const page = await this.request("msg.history", { room, after: this.#seqs.last(room), limit: HISTORY_PAGE });
        this.#deliver(page.messages);
        if (!page.has_more || page.messages.length === 0) {
          return;
        }
      }
    }

    #deliver(messages) {
      for (const message of messages) {
        this.#emitMessages(this.#seqs.accept(message));
      }
    }
  }

  if (typeof module === "object" && module && module.exports) {
    module.exports = { IMKit };
  } else {
    globalThis.IMKit = IMKit;
  }
})();
