// send(): the cid, the stored message it resolves with, and the offline queue.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NO_ANSWER, settle, startClient } from "./fake-server.mjs";

const CID = /^[0-9a-f]{32}$/;

// Answers msg.send like the server: each cid is stored once, a repeat gets the first seq.
function storeOnce() {
  const stored = new Map(); // cid → seq
  const answer = (data) => {
    if (!stored.has(data.cid)) {
      stored.set(data.cid, stored.size + 1);
    }
    return { room: data.room, seq: stored.get(data.cid), ts: 5000, cid: data.cid };
  };
  return { stored, answer };
}

function answerSends(server) {
  const { stored, answer } = storeOnce();
  server.handle("msg.send", answer);
  return stored;
}

test("send(room, text) sends a text message with a random cid and resolves with the stored message", async (t) => {
  const { server, im } = startClient(t);
  answerSends(server);
  await im.connect();

  const first = await im.send("r1", "hello");
  const second = await im.send("r1", "again");

  const [frame] = server.framesOf("msg.send");
  assert.match(frame.data.cid, CID);
  assert.deepEqual(frame.data, { room: "r1", cid: frame.data.cid, type: "text", text: "hello" });
  assert.deepEqual(first, { room: "r1", seq: 1, ts: 5000, from: "alice", type: "text", text: "hello", cid: frame.data.cid });
  assert.equal(second.seq, 2);
  assert.notEqual(second.cid, first.cid);
});

test("send(room, object) passes type, payload, reply_to and mentions", async (t) => {
  const { server, im } = startClient(t);
  answerSends(server);
  await im.connect();
  const payload = { url: "https://img.test/a.png", width: 10, height: 20 };

  const sent = await im.send("r1", { type: "image", payload, reply_to: 3, mentions: ["bob"] });

  const [frame] = server.framesOf("msg.send");
  assert.deepEqual(frame.data, { room: "r1", cid: sent.cid, type: "image", payload, reply_to: 3, mentions: ["bob"] });
  assert.deepEqual(sent, { room: "r1", seq: 1, ts: 5000, from: "alice", type: "image", payload, cid: sent.cid, reply_to: 3, mentions: ["bob"] });
});

test("a page may give its own cid, e.g. to match an optimistic bubble", async (t) => {
  const { server, im } = startClient(t);
  answerSends(server);
  await im.connect();
  const sent = await im.send("r1", { text: "hi", cid: "page-cid-1" });
  assert.equal(sent.cid, "page-cid-1");
  assert.equal(server.framesOf("msg.send")[0].data.type, "text");
});

test("sends made while disconnected wait, then go out in order after reconnecting", async (t) => {
  const { server, im } = startClient(t);
  const stored = answerSends(server);
  await im.connect();
  server.socket.drop(1006);
  assert.equal(im.state, "reconnecting");

  const sends = ["one", "two", "three"].map((text) => im.send("r1", text));
  await settle();
  assert.equal(server.framesOf("msg.send").length, 0);

  t.mock.timers.tick(500);
  const results = await Promise.all(sends);

  assert.deepEqual(results.map((message) => [message.text, message.seq]), [["one", 1], ["two", 2], ["three", 3]]);
  assert.deepEqual(server.framesOf("msg.send").map((frame) => frame.data.text), ["one", "two", "three"]);
  assert.equal(stored.size, 3);
});

test("a send in flight when the connection drops is repeated with the same cid, before later sends, and stored once", async (t) => {
  const { server, im } = startClient(t);
  const { stored, answer } = storeOnce();
  server.handle("msg.send", () => NO_ANSWER);
  await im.connect();

  let settledCount = 0;
  const inFlight = im.send("r1", "first");
  inFlight.then(() => settledCount++, () => settledCount++);
  await settle();
  server.socket.drop(1006);
  const queued = im.send("r1", "second");
  server.handle("msg.send", answer);
  t.mock.timers.tick(500);
  const [a, b] = await Promise.all([inFlight, queued]);
  await settle();

  const frames = server.framesOf("msg.send");
  assert.deepEqual(frames.map((frame) => frame.data.text), ["first", "first", "second"]);
  assert.equal(frames[1].data.cid, frames[0].data.cid, "the repeat carries the same cid");
  assert.equal(a.cid, frames[0].data.cid);
  assert.deepEqual([a.seq, b.seq], [1, 2]);
  assert.equal(settledCount, 1);
  assert.equal(stored.size, 2);
});

test("a send whose answer was lost is stored once: the repeat gets the original seq", async (t) => {
  const { server, im } = startClient(t);
  const { stored, answer } = storeOnce();
  // The server stores the first attempt but the connection dies before the answer arrives.
  server.handle("msg.send", (data) => {
    answer(data);
    queueMicrotask(() => server.socket.drop(1006));
    return NO_ANSWER;
  });
  await im.connect();
  const sending = im.send("r1", "once");
  await settle();
  server.handle("msg.send", answer);
  t.mock.timers.tick(500);

  const sent = await sending;
  assert.equal(sent.seq, 1);
  assert.equal(stored.size, 1);
  assert.equal(server.framesOf("msg.send").length, 2);
});

test("a send answered with an error rejects once and is not repeated", async (t) => {
  const { server, im } = startClient(t);
  server.handle("msg.send", () => {
    throw Object.assign(new Error("not a member of room r9"), { code: "forbidden" });
  });
  await im.connect();
  await assert.rejects(im.send("r9", "hi"), { code: "forbidden", message: "not a member of room r9" });
  server.socket.drop(1006);
  t.mock.timers.tick(500);
  await settle();
  assert.equal(server.framesOf("msg.send").length, 1);
});

test("a send made by a state listener on reconnect goes out after the sends that waited", async (t) => {
  const { server, im } = startClient(t);
  answerSends(server);
  await im.connect();
  server.socket.drop(1006);
  const waiting = im.send("r1", "waited");
  let eager = null;
  im.on("state", (state) => {
    if (state === "open") {
      eager = im.send("r1", "eager");
    }
  });
  t.mock.timers.tick(500);
  await Promise.all([waiting, settle()]);
  await eager;
  assert.deepEqual(server.framesOf("msg.send").map((frame) => frame.data.text), ["waited", "eager"]);
});

test("sends queued while reconnecting reject with code closed if the client closes", async (t) => {
  const { server, im } = startClient(t);
  await im.connect();
  server.socket.drop(1006);
  const pending = im.send("r1", "lost");
  im.close();
  await assert.rejects(pending, { code: "closed" });
});
