// Catching up: after reconnects and seq gaps, missed messages come as `message` events,
// in seq order per room, each once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NO_ANSWER, message, settle, startClient, summary } from "./fake-server.mjs";

function seqsOf(messages, room = "r1") {
  return messages.filter((m) => m.room === room).map((m) => m.seq);
}

// A client connected to a server whose first sync reports rooms r1 (last seq 5) and r2 (2).
async function connectedWithRooms(t) {
  const client = startClient(t);
  client.server.handle("sync", () => ({ rooms: [summary("r1", 5), summary("r2", 2)], left: [], messages: {}, has_more: {} }));
  await client.im.connect();
  await settle();
  return client;
}

test("live messages in order are emitted at once; repeats are dropped", async (t) => {
  const { server, messages } = await connectedWithRooms(t);
  server.push("message", message("r1", 6));
  server.push("message", message("r1", 7));
  server.push("message", message("r1", 7));
  server.push("message", message("r1", 5));

  assert.deepEqual(seqsOf(messages), [6, 7]);
  assert.equal(server.framesOf("sync").length, 1);
});

test("a seq gap holds later messages, runs sync with the last seq held, and emits all in order once", async (t) => {
  const { server, messages } = await connectedWithRooms(t);
  server.push("message", message("r1", 6));
  server.handle("sync", () => ({
    rooms: [summary("r1", 9), summary("r2", 2)],
    left: [],
    messages: { r1: [message("r1", 6), message("r1", 7), message("r1", 8), message("r1", 9)] },
    has_more: { r1: false },
  }));

  server.push("message", message("r1", 9));
  assert.deepEqual(seqsOf(messages), [6], "9 waits for 7 and 8");
  assert.deepEqual(server.framesOf("sync").at(-1).data, { known: { r1: 6, r2: 2 } });
  await settle();
  server.push("message", message("r1", 8)); // the late live copy

  assert.deepEqual(seqsOf(messages), [6, 7, 8, 9]);
  assert.deepEqual(messages.map((m) => m.text), ["m6", "m7", "m8", "m9"]);
});

test("has_more is followed with msg.history after= the last seq delivered", async (t) => {
  const { server, messages } = await connectedWithRooms(t);
  server.handle("sync", () => ({
    rooms: [summary("r1", 12)],
    left: [],
    messages: { r1: [message("r1", 6), message("r1", 7), message("r1", 8)] },
    has_more: { r1: true },
  }));
  const pages = {
    8: { messages: [message("r1", 9), message("r1", 10)], has_more: true },
    10: { messages: [message("r1", 11), message("r1", 12)], has_more: false },
  };
  server.handle("msg.history", (data) => pages[data.after]);

  server.push("message", message("r1", 12));
  await settle();

  assert.deepEqual(seqsOf(messages), [6, 7, 8, 9, 10, 11, 12]);
  assert.deepEqual(server.framesOf("msg.history").map((frame) => frame.data), [
    { room: "r1", after: 8, limit: 100 },
    { room: "r1", after: 10, limit: 100 },
  ]);
});

test("after a reconnect, sync carries the last seq of every room and missed messages are emitted", async (t) => {
  const { server, messages } = await connectedWithRooms(t);
  server.push("message", message("r1", 6));
  server.socket.drop(1006);
  server.handle("sync", () => ({
    rooms: [summary("r1", 8), summary("r2", 3), summary("r3", 4)],
    left: [],
    messages: { r2: [message("r2", 3)], r1: [message("r1", 7), message("r1", 8)] },
    has_more: { r1: false, r2: false },
  }));

  t.mock.timers.tick(500);
  await settle();

  assert.deepEqual(server.framesOf("sync").at(-1).data, { known: { r1: 6, r2: 2 } });
  assert.deepEqual(seqsOf(messages, "r1"), [6, 7, 8]);
  assert.deepEqual(seqsOf(messages, "r2"), [3]);

  // r3, joined while offline, is followed from its summary on.
  server.push("message", message("r3", 5));
  server.socket.drop(1006);
  t.mock.timers.tick(500);
  await settle();
  assert.deepEqual(server.framesOf("sync").at(-1).data, { known: { r1: 8, r2: 3, r3: 5 } });
});

test("rooms the sync reports as left are no longer followed", async (t) => {
  const { server } = await connectedWithRooms(t);
  server.socket.drop(1006);
  server.handle("sync", () => ({ rooms: [summary("r1", 5)], left: ["r2"], messages: {}, has_more: {} }));
  t.mock.timers.tick(500);
  await settle();

  server.socket.drop(1006);
  t.mock.timers.tick(500);
  await settle();
  assert.deepEqual(server.framesOf("sync").at(-1).data, { known: { r1: 5 } });
});

test("room.joined starts following a room from its last seq; room.left stops", async (t) => {
  const { server, messages } = await connectedWithRooms(t);
  server.push("room.joined", summary("r3", 4));
  server.push("message", message("r3", 5));
  server.push("room.left", { room: "r2" });
  assert.deepEqual(seqsOf(messages, "r3"), [5]);

  server.socket.drop(1006);
  t.mock.timers.tick(500);
  await settle();
  assert.deepEqual(server.framesOf("sync").at(-1).data, { known: { r1: 5, r3: 5 } });
});

test("a live message in a room not yet followed is emitted and starts following it", async (t) => {
  const { server, messages } = await connectedWithRooms(t);
  server.push("message", message("r9", 40));
  server.push("message", message("r9", 41));
  assert.deepEqual(seqsOf(messages, "r9"), [40, 41]);
  assert.equal(server.framesOf("sync").length, 1);
});

test("seqs the server no longer has (trimmed) do not hold later messages forever", async (t) => {
  const { server, messages } = await connectedWithRooms(t);
  server.handle("sync", () => ({
    rooms: [summary("r1", 9)],
    left: [],
    messages: { r1: [message("r1", 7), message("r1", 9)] }, // 6 and 8 are gone
    has_more: { r1: false },
  }));
  server.push("message", message("r1", 9));
  await settle();
  assert.deepEqual(seqsOf(messages), [7, 9]);
});

test("messages arriving while a catch-up runs are emitted once, in order", async (t) => {
  const { server, messages } = await connectedWithRooms(t);
  let answerSync = null;
  server.handle("sync", (data, frame) => {
    answerSync = () =>
      server.socket.receive({
        id: frame.id,
        ok: true,
        data: { rooms: [summary("r1", 8)], left: [], messages: { r1: [message("r1", 6), message("r1", 7), message("r1", 8)] }, has_more: { r1: false } },
      });
    return NO_ANSWER;
  });

  server.push("message", message("r1", 7)); // gap: 6 missing
  server.push("message", message("r1", 8));
  server.push("message", message("r1", 10)); // another gap while the sync runs
  server.handle("sync", () => ({ rooms: [summary("r1", 10)], left: [], messages: { r1: [message("r1", 9), message("r1", 10)] }, has_more: { r1: false } }));
  answerSync();
  await settle();

  assert.deepEqual(seqsOf(messages), [6, 7, 8, 9, 10]);
  assert.equal(server.framesOf("sync").length, 3, "the first sync, the gap's, and one more for the gap found meanwhile");
});

test("a failed catch-up is retried on the same connection", async (t) => {
  t.mock.method(Math, "random", () => 0.999999);
  const { server, messages, im } = await connectedWithRooms(t);
  server.handle("sync", () => {
    throw Object.assign(new Error("redis down"), { code: "unavailable" });
  });
  server.push("message", message("r1", 7));
  await settle();
  assert.deepEqual(seqsOf(messages), []);

  server.handle("sync", () => ({ rooms: [], left: [], messages: { r1: [message("r1", 6), message("r1", 7)] }, has_more: { r1: false } }));
  t.mock.timers.tick(500);
  await settle();
  assert.deepEqual(seqsOf(messages), [6, 7]);
  assert.equal(im.state, "open");
});

test("a user in many rooms gets several sync requests, each small enough for one frame", async (t) => {
  const client = startClient(t);
  const { server, im } = client;
  const rooms = Array.from({ length: 1200 }, (_, n) => summary(`room-${n}`, n));
  server.handle("sync", () => ({ rooms, left: [], messages: {}, has_more: {} }));
  await im.connect();
  await settle();
  server.socket.drop(1006);
  t.mock.timers.tick(500);
  await settle();

  const sizes = server.framesOf("sync").slice(1).map((frame) => Object.keys(frame.data.known).length);
  assert.deepEqual(sizes, [500, 500, 200]);
  assert.equal(im.state, "open");
});
