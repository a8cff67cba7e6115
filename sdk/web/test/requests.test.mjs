// Requests: ids, answers, protocol errors, timeouts, queueing while not open, size limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NO_ANSWER, ProtocolError, settle, startClient } from "./fake-server.mjs";

test("each request gets the next id and resolves with the answer's data", async (t) => {
  const { server, im } = startClient(t);
  server.handle("room.get", (data) => ({ id: data.room, members: [] }));
  await im.connect();

  const [a, b] = await Promise.all([im.getRoom("r1"), im.request("room.get", { room: "r2" })]);

  assert.deepEqual(a, { id: "r1", members: [] });
  assert.deepEqual(b, { id: "r2", members: [] });
  assert.deepEqual(server.framesOf("room.get").map((frame) => frame.id), [3, 4]);
});

test("methods send the protocol's ops and fields, leaving out what was not given", async (t) => {
  const { server, im } = startClient(t);
  for (const op of ["room.create", "room.list", "room.update", "room.members.add", "room.members.remove", "room.leave", "msg.history", "room.read", "msg.edit", "msg.recall", "msg.react", "me.update", "client.get", "presence.watch"]) {
    server.handle(op, () => ({}));
  }
  await im.connect();
  const before = server.frames.length;

  await im.createDirect("seller-42");
  await im.createGroup({ members: ["a", "b"], name: "Team" });
  await im.listRooms({ limit: 20 });
  await im.updateRoom("r1", { name: "New", cover: null });
  await im.addMembers("r1", ["c"]);
  await im.removeMembers("r1", ["c"]);
  await im.leave("r1");
  await im.history("r1", { before: 40, limit: 50 });
  await im.markRead("r1", 7);
  await im.edit("r1", 7, { text: "fixed" });
  await im.recall("r1", 7);
  await im.react("r1", 7, "👍", false);
  await im.react("r1", 7, "👍");
  await im.updateMe({ name: "Al" });
  await im.getClients(["a", "b"]);
  await im.watchPresence(["a"]);

  assert.deepEqual(server.frames.slice(before).map(({ op, data }) => [op, data]), [
    ["room.create", { type: "direct", members: ["seller-42"] }],
    ["room.create", { type: "group", members: ["a", "b"], name: "Team" }],
    ["room.list", { limit: 20 }],
    ["room.update", { room: "r1", name: "New", cover: null }],
    ["room.members.add", { room: "r1", members: ["c"] }],
    ["room.members.remove", { room: "r1", members: ["c"] }],
    ["room.leave", { room: "r1" }],
    ["msg.history", { room: "r1", before: 40, limit: 50 }],
    ["room.read", { room: "r1", seq: 7 }],
    ["msg.edit", { room: "r1", seq: 7, text: "fixed" }],
    ["msg.recall", { room: "r1", seq: 7 }],
    ["msg.react", { room: "r1", seq: 7, emoji: "👍", on: false }],
    ["msg.react", { room: "r1", seq: 7, emoji: "👍", on: true }],
    ["me.update", { name: "Al" }],
    ["client.get", { ids: ["a", "b"] }],
    ["presence.watch", { ids: ["a"] }],
  ]);
});

test("a protocol error rejects with an Error carrying the protocol's code and message", async (t) => {
  const { server, im } = startClient(t);
  server.handle("room.get", () => {
    throw new ProtocolError("forbidden", "not a member of room r1");
  });
  await im.connect();

  const error = await im.getRoom("r1").catch((e) => e);

  assert.ok(error instanceof Error);
  assert.equal(error.code, "forbidden");
  assert.equal(error.message, "not a member of room r1");
  assert.equal(im.state, "open");
});

test("a request unanswered for 10 s rejects with code timeout; a late answer is ignored", async (t) => {
  const { server, im } = startClient(t);
  server.handle("room.get", () => NO_ANSWER);
  await im.connect();
  await settle();
  let outcome = null;
  im.getRoom("r1").then(
    () => (outcome = "resolved"),
    (error) => (outcome = error),
  );
  const { id } = server.framesOf("room.get")[0];

  t.mock.timers.tick(9999);
  await settle();
  assert.equal(outcome, null);
  t.mock.timers.tick(1);
  await settle();
  assert.ok(outcome instanceof Error);
  assert.equal(outcome.code, "timeout");

  server.socket.receive({ id, ok: true, data: {} });
  await settle();
  assert.equal(outcome.code, "timeout");
  assert.equal(im.state, "open");
});

test("requests made while connecting wait for auth and go out in order, before the SDK's sync", async (t) => {
  const { server, im } = startClient(t);
  server.handle("room.list", () => ({ rooms: [], next: null, unread_total: 0 }));
  server.handle("client.get", () => ({ clients: [] }));
  const connected = im.connect();
  const list = im.listRooms();
  const clients = im.getClients(["bob"]);
  await connected;

  assert.deepEqual(await list, { rooms: [], next: null, unread_total: 0 });
  assert.deepEqual(await clients, { clients: [] });
  assert.deepEqual(server.frames.map((frame) => frame.op), ["auth", "room.list", "client.get", "sync"]);
});

test("a request before connect() rejects with code closed", async (t) => {
  const { im } = startClient(t);
  await assert.rejects(im.listRooms(), { code: "closed" });
});

test("a request in flight when the connection drops rejects with code disconnected", async (t) => {
  const { server, im } = startClient(t);
  server.handle("room.create", () => NO_ANSWER);
  await im.connect();
  const creating = im.createGroup({ members: ["a"] });
  server.socket.drop(1006);

  await assert.rejects(creating, { code: "disconnected" });
  t.mock.timers.tick(500);
  await settle();
  assert.equal(im.state, "open");
  assert.equal(server.framesOf("room.create").length, 1, "not repeated: it is not idempotent");
});

test("a frame over the size limit rejects with too_large and is never sent", async (t) => {
  const { server, im } = startClient(t);
  await im.connect();
  const before = server.frames.length;

  await assert.rejects(im.send("r1", "x".repeat(70000)), { code: "too_large" });
  assert.equal(server.frames.length, before);
  assert.equal(im.state, "open");
});

test("an answer with id null (a frame the server could not read) becomes an error event", async (t) => {
  const { server, im, errors } = startClient(t);
  await im.connect();
  server.socket.receive({ id: null, ok: false, error: { code: "bad_request", message: "frame is not JSON" } });
  server.socket.onmessage({ data: "not json" });

  assert.deepEqual(errors.map((error) => error.code), ["bad_request", "bad_frame"]);
  assert.equal(im.state, "open");
});
