// Connection life cycle: connect, states, reconnection backoff, keep-alive, close.
import { test } from "node:test";
import assert from "node:assert/strict";
import { IMKit } from "../imkit.mjs";
import { ALICE, NO_ANSWER, settle, startClient } from "./fake-server.mjs";

test("connect sends auth first, then sync, and resolves with the client", async (t) => {
  const { server, im, states } = startClient(t);
  assert.equal(im.state, "idle");

  const me = await im.connect();

  assert.deepEqual(me, ALICE);
  assert.equal(im.state, "open");
  assert.deepEqual(states, ["connecting", "open"]);
  assert.equal(server.socket.url, "ws://chat.test/ws");
  assert.equal(server.socket.protocols, "imkit.v1");
  assert.deepEqual(server.frames[0], { id: 1, op: "auth", data: { token: "token-1" } });
  assert.deepEqual(server.frames[1], { id: 2, op: "sync", data: { known: {} } });
});

test("a token function is called once and its answer trimmed; reconnects reuse the token", async (t) => {
  let calls = 0;
  const { server, im } = startClient(t, { token: async () => `jwt-${++calls}\n` });
  await im.connect();
  server.socket.drop(1001, "going away");
  t.mock.timers.tick(500);
  await settle();

  assert.equal(im.state, "open");
  assert.equal(calls, 1);
  assert.deepEqual(server.framesOf("auth").map((frame) => frame.data.token), ["jwt-1", "jwt-1"]);
});

test("connect() while connecting or open returns the same promise", async (t) => {
  const { im } = startClient(t);
  const first = im.connect();
  assert.equal(im.connect(), first);
  await first;
  assert.equal(im.connect(), first);
});

test("the constructor refuses missing options", () => {
  assert.throws(() => new IMKit({ token: "t", WebSocket: class {} }), TypeError);
  assert.throws(() => new IMKit({ url: "ws://x/ws", WebSocket: class {} }), TypeError);
  assert.throws(() => new IMKit({ url: "ws://x/ws", token: "t" }), /WebSocket/); // Node 20 has none
});

// Checks that each reconnect attempt comes exactly `delays[n]` ms after the previous failure.
async function expectReconnectDelays(t, random, delays) {
  t.mock.method(Math, "random", () => random);
  const { server, im } = startClient(t);
  await im.connect();
  server.acceptConnections = false;
  server.socket.drop(1006);
  for (const delay of delays) {
    const before = server.sockets.length;
    t.mock.timers.tick(delay - 1);
    await settle();
    assert.equal(server.sockets.length, before, `no attempt before ${delay} ms`);
    t.mock.timers.tick(1);
    await settle();
    assert.equal(server.sockets.length, before + 1, `an attempt at ${delay} ms`);
  }
}

test("reconnect backoff: at least half of 0.5 s doubling to 30 s", async (t) => {
  await expectReconnectDelays(t, 0, [250, 500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
});

test("reconnect backoff: at most 0.5 s doubling to 30 s", async (t) => {
  await expectReconnectDelays(t, 0.999999, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test("backoff starts again from 0.5 s after a successful reconnect", async (t) => {
  t.mock.method(Math, "random", () => 0.999999);
  const { server, im, states } = startClient(t);
  await im.connect();
  server.acceptConnections = false;
  server.socket.drop(1006);
  t.mock.timers.tick(500); // attempt 1 fails
  await settle();
  server.acceptConnections = true;
  t.mock.timers.tick(1000); // attempt 2 succeeds
  await settle();
  assert.equal(im.state, "open");

  server.socket.drop(1006);
  t.mock.timers.tick(499);
  await settle();
  assert.equal(im.state, "reconnecting");
  t.mock.timers.tick(1);
  await settle();
  assert.equal(im.state, "open");
  assert.deepEqual(states, ["connecting", "open", "reconnecting", "open", "reconnecting", "open"]);
});

test("a first connection that fails is retried, and connect() resolves when one succeeds", async (t) => {
  const { server, im, states } = startClient(t);
  server.acceptConnections = false;
  let me = null;
  im.connect().then((client) => (me = client));
  await settle();
  assert.equal(im.state, "reconnecting");

  server.acceptConnections = true;
  t.mock.timers.tick(500);
  await settle();
  assert.deepEqual(me, ALICE);
  assert.deepEqual(states, ["connecting", "reconnecting", "open"]);
});

test("with reconnect: false a lost connection closes the client with an error", async (t) => {
  const { server, im, states, errors } = startClient(t, { reconnect: false });
  await im.connect();
  server.socket.drop(1006);

  assert.equal(im.state, "closed");
  assert.deepEqual(states, ["connecting", "open", "closed"]);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "disconnected");
});

test("a failed auth that is not a refusal is retried with backoff", async (t) => {
  let answers = 0;
  const { server, im } = startClient(t);
  server.handle("auth", () => {
    answers += 1;
    if (answers === 1) {
      throw Object.assign(new Error("storage down"), { code: "unavailable" });
    }
    return { client: ALICE, session: "s", server_time: 1 };
  });
  const connected = im.connect();
  await settle();
  assert.equal(im.state, "reconnecting");
  assert.equal(server.sockets[0].closedWith, 1000);
  t.mock.timers.tick(500);
  assert.deepEqual(await connected, ALICE);
});

test("an idle connection pings every 25 s", async (t) => {
  const { server, im } = startClient(t);
  await im.connect();
  await settle();
  t.mock.timers.tick(24999);
  assert.equal(server.framesOf("ping").length, 0);
  t.mock.timers.tick(1);
  assert.equal(server.framesOf("ping").length, 1);
  await settle();
  t.mock.timers.tick(25000);
  assert.equal(server.framesOf("ping").length, 2);
});

test("any request postpones the next ping", async (t) => {
  const { server, im } = startClient(t);
  server.handle("room.list", () => ({ rooms: [], next: null, unread_total: 0 }));
  await im.connect();
  await settle();
  t.mock.timers.tick(20000);
  await im.listRooms();
  t.mock.timers.tick(20000);
  assert.equal(server.framesOf("ping").length, 0);
  t.mock.timers.tick(5000);
  assert.equal(server.framesOf("ping").length, 1);
});

test("a ping left unanswered for 10 s drops the connection and reconnects", async (t) => {
  const { server, im } = startClient(t);
  await im.connect();
  await settle();
  server.handle("ping", () => NO_ANSWER);
  const first = server.socket;
  t.mock.timers.tick(25000);
  t.mock.timers.tick(9999);
  await settle();
  assert.equal(im.state, "open");
  t.mock.timers.tick(1);
  await settle();
  assert.equal(im.state, "reconnecting");
  assert.equal(first.closedWith, 1000);
  t.mock.timers.tick(500);
  await settle();
  assert.equal(im.state, "open");
  assert.notEqual(server.socket, first);
});

test("typing sends a frame without id, at most once per 2 s per room, and only when open", async (t) => {
  const { server, im } = startClient(t);
  im.typing("r1"); // idle: dropped
  await im.connect();
  const before = server.frames.length;
  im.typing("r1");
  im.typing("r1");
  im.typing("r2");
  t.mock.timers.tick(2000);
  im.typing("r1");

  assert.deepEqual(server.frames.slice(before), [
    { op: "typing", data: { room: "r1" } },
    { op: "typing", data: { room: "r2" } },
    { op: "typing", data: { room: "r1" } },
  ]);
});

test("server events are emitted by their protocol names; off() removes a listener", async (t) => {
  const { server, im } = startClient(t);
  await im.connect();
  const seen = [];
  const onRead = (data) => seen.push(["read", data]);
  im.on("read", onRead);
  im.on("typing", (data) => seen.push(["typing", data]));
  im.on("room.updated", (data) => seen.push(["room.updated", data]));

  server.push("read", { room: "r1", client: "bob", seq: 4 });
  server.push("typing", { room: "r1", client: "bob" });
  server.push("room.updated", { id: "r1", name: "New name" });
  im.off("read", onRead);
  server.push("read", { room: "r1", client: "bob", seq: 5 });

  assert.deepEqual(seen, [
    ["read", { room: "r1", client: "bob", seq: 4 }],
    ["typing", { room: "r1", client: "bob" }],
    ["room.updated", { id: "r1", name: "New name" }],
  ]);
});

test("a throwing listener does not stop other listeners or the SDK; its error is rethrown apart", async (t) => {
  const { server, im } = startClient(t);
  await im.connect();
  const seen = [];
  im.on("typing", () => {
    throw new Error("page bug");
  });
  im.on("typing", (data) => seen.push(data.client));
  const rethrown = [];
  t.mock.method(globalThis, "queueMicrotask", (callback) => rethrown.push(callback));

  server.push("typing", { room: "r1", client: "bob" });
  t.mock.restoreAll();

  assert.deepEqual(seen, ["bob"]);
  assert.equal(rethrown.length, 1);
  assert.throws(rethrown[0], /page bug/);
  assert.equal(im.state, "open");
});

test("close() rejects pending requests, closes the socket and never reconnects", async (t) => {
  const { server, im, states, errors } = startClient(t);
  await im.connect();
  server.handle("room.get", () => NO_ANSWER);
  const pending = im.getRoom("r1");

  im.close();

  await assert.rejects(pending, { code: "closed" });
  assert.equal(server.socket.closedWith, 1000);
  t.mock.timers.tick(60000);
  await settle();
  assert.equal(server.sockets.length, 1);
  assert.deepEqual(states, ["connecting", "open", "closed"]);
  assert.deepEqual(errors, []);
  await assert.rejects(im.getRoom("r1"), { code: "closed" });
});

test("connect() after close() starts a new session", async (t) => {
  const { server, im } = startClient(t);
  await im.connect();
  im.close();
  assert.deepEqual(await im.connect(), ALICE);
  assert.equal(server.sockets.length, 2);
  assert.deepEqual(server.framesOf("sync").at(-1).data, { known: {} });
});

test("close() while waiting to reconnect cancels the reconnect", async (t) => {
  const { server, im } = startClient(t);
  await im.connect();
  server.socket.drop(1006);
  im.close();
  t.mock.timers.tick(60000);
  await settle();
  assert.equal(server.sockets.length, 1);
  assert.equal(im.state, "closed");
});
