// An in-memory stand-in for the IMKit gateway, for the SDK's unit tests: `server.WebSocket`
// is a class to pass as the SDK's `WebSocket` option, and the server answers each request
// with the handler registered for its op. No network, no real timers.

import { IMKit } from "../imkit.mjs";

// A handler returns this to leave a request unanswered (a test may answer it later).
export const NO_ANSWER = Symbol("no answer");

// A handler throws this to answer {ok: false, error: {code, message}}.
export class ProtocolError extends Error {
  constructor(code, message = code) {
    super(message);
    this.code = code;
  }
}

export const ALICE = { id: "alice", name: "Alice", avatar: null, meta: null };

// Lets every pending promise chain and queued microtask run.
export async function settle() {
  for (let round = 0; round < 10; round += 1) {
    await new Promise((resolve) => setImmediate(resolve));
  }
}

export function message(room, seq, extra = {}) {
  return { room, seq, ts: 1000 + seq, from: "bob", type: "text", text: `m${seq}`, cid: `c${seq}`, ...extra };
}

export function summary(id, lastSeq) {
  return { id, type: "group", name: id, cover: null, meta: null, owner: null, members_count: 2, created_at: 1, updated_at: 1, last_seq: lastSeq, last_message: null, unread: 0 };
}

// A client on a fresh fake server, with mocked timers and its state changes and errors
// recorded; closed when the test ends.
export function startClient(t, options = {}) {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"] });
  const server = new FakeServer();
  const im = new IMKit({ url: "ws://chat.test/ws", token: "token-1", WebSocket: server.WebSocket, ...options });
  const states = [];
  const errors = [];
  const messages = [];
  im.on("state", (state) => states.push(state));
  im.on("error", (error) => errors.push(error));
  im.on("message", (msg) => messages.push(msg));
  t.after(() => im.close());
  return { server, im, states, errors, messages };
}

export class FakeServer {
  sockets = [];
  frames = []; // every frame a client sent, parsed, in order
  acceptConnections = true;
  #handlers = new Map();

  constructor() {
    this.handle("auth", () => ({ client: ALICE, session: "s1", server_time: 1 }));
    this.handle("sync", () => ({ rooms: [], left: [], messages: {}, has_more: {} }));
    this.handle("ping", () => ({ ts: 1 }));
    this.WebSocket = this.#socketClass();
  }

  handle(op, handler) {
    this.#handlers.set(op, handler);
  }

  get socket() {
    return this.sockets.at(-1);
  }

  framesOf(op) {
    return this.frames.filter((frame) => frame.op === op);
  }

  // Sends an event to the newest socket.
  push(ev, data) {
    this.socket.receive({ ev, data });
  }

  #answer(socket, frame) {
    const handler = this.#handlers.get(frame.op);
    if (!handler || frame.id === undefined) {
      return;
    }
    let reply;
    try {
      const data = handler(frame.data, frame);
      if (data === NO_ANSWER) {
        return;
      }
      reply = { id: frame.id, ok: true, data };
    } catch (error) {
      reply = { id: frame.id, ok: false, error: { code: error.code, message: error.message } };
    }
    queueMicrotask(() => socket.receive(reply));
  }

  #socketClass() {
    const server = this;
    return class FakeWebSocket {
      readyState = 0;
      closedWith = null; // the code the client closed with
      onopen = null;
      onmessage = null;
      onclose = null;
      onerror = null;

      constructor(url, protocols) {
        this.url = url;
        this.protocols = protocols;
        server.sockets.push(this);
        queueMicrotask(() => (server.acceptConnections ? this.#open() : this.drop(1006)));
      }

      send(text) {
        if (this.readyState !== 1) {
          throw new Error(`send on a socket in state ${this.readyState}`);
        }
        const frame = JSON.parse(text);
        server.frames.push(frame);
        server.#answer(this, frame);
      }

      close(code) {
        this.closedWith = code;
        this.readyState = 3;
      }

      receive(frame) {
        if (this.readyState === 1) {
          this.onmessage?.({ data: JSON.stringify(frame) });
        }
      }

      // The server (or the network) ends the connection.
      drop(code = 1006, reason = "") {
        this.readyState = 3;
        this.onerror?.({});
        this.onclose?.({ code, reason });
      }

      #open() {
        if (this.readyState === 0) {
          this.readyState = 1;
          this.onopen?.({});
        }
      }
    };
  }
}
