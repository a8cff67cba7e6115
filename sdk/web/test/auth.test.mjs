// Token refresh: close 4401/4403 or a refused auth calls token() again, once; a second
// refusal, or a token() that fails, closes the client with an `error` event.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ALICE, ProtocolError, settle, startClient } from "./fake-server.mjs";

// A token function handing out "t1", "t2", … and recording each call.
function tokenSource() {
  const issued = [];
  const token = async () => {
    issued.push(`t${issued.length + 1}`);
    return issued.at(-1);
  };
  return { issued, token };
}

// Makes the server accept only the tokens in `valid`.
function acceptTokens(server, valid) {
  server.handle("auth", (data) => {
    if (!valid.has(data.token)) {
      throw new ProtocolError("unauthenticated", "token expired");
    }
    return { client: ALICE, session: "s", server_time: 1 };
  });
}

for (const code of [4401, 4403]) {
  test(`close ${code} calls token() again and reconnects with the new token`, async (t) => {
    const { issued, token } = tokenSource();
    const { server, im, states, errors } = startClient(t, { token });
    acceptTokens(server, new Set(["t1", "t2"]));
    await im.connect();

    server.socket.drop(code, "token expired");
    assert.equal(im.state, "reconnecting");
    t.mock.timers.tick(500);
    await settle();

    assert.equal(im.state, "open");
    assert.deepEqual(issued, ["t1", "t2"]);
    assert.deepEqual(server.framesOf("auth").map((frame) => frame.data.token), ["t1", "t2"]);
    assert.deepEqual(states, ["connecting", "open", "reconnecting", "open"]);
    assert.deepEqual(errors, []);
  });
}

test("a refreshed token that is refused too closes the client with an error event", async (t) => {
  const { issued, token } = tokenSource();
  const { server, im, states, errors } = startClient(t, { token });
  acceptTokens(server, new Set(["t1"]));
  await im.connect();

  server.socket.drop(4401);
  t.mock.timers.tick(500);
  await settle();

  assert.equal(im.state, "closed");
  assert.deepEqual(issued, ["t1", "t2"], "token() is called again once, not more");
  assert.deepEqual(states, ["connecting", "open", "reconnecting", "closed"]);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "unauthenticated");
  assert.equal(errors[0].message, "token expired");
  t.mock.timers.tick(60000);
  await settle();
  assert.equal(server.sockets.length, 2, "no further attempt");
});

test("close 4403 whose refresh is refused reports the refusal", async (t) => {
  const { token } = tokenSource();
  const { server, im, errors } = startClient(t, { token });
  acceptTokens(server, new Set(["t1"]));
  await im.connect();
  server.socket.drop(4403, "tokens revoked");
  t.mock.timers.tick(500);
  await settle();
  assert.equal(im.state, "closed");
  assert.equal(errors[0].code, "unauthenticated");
});

test("token() failing on refresh closes the client with an error saying why", async (t) => {
  let calls = 0;
  const token = async () => {
    calls += 1;
    if (calls > 1) {
      throw new Error("backend said 500");
    }
    return "t1";
  };
  const { server, im, errors } = startClient(t, { token });
  await im.connect();

  server.socket.drop(4401);
  t.mock.timers.tick(500);
  await settle();

  assert.equal(im.state, "closed");
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "unauthenticated");
  assert.match(errors[0].message, /token\(\) failed: backend said 500/);
  assert.equal(errors[0].cause.message, "backend said 500");
});

test("a token refused at connect is fetched again once, then connect() rejects", async (t) => {
  const { issued, token } = tokenSource();
  const { server, im, errors } = startClient(t, { token });
  acceptTokens(server, new Set());
  const connecting = im.connect();
  connecting.catch(() => {});
  await settle();
  t.mock.timers.tick(500);

  await assert.rejects(connecting, { code: "unauthenticated" });
  assert.deepEqual(issued, ["t1", "t2"]);
  assert.equal(im.state, "closed");
  assert.equal(errors.length, 1);
  assert.equal(server.sockets[0].closedWith, 1000, "the SDK closes a socket whose auth was refused");
});

test("a token refused at connect but accepted on refresh connects", async (t) => {
  const { issued, token } = tokenSource();
  const { server, im } = startClient(t, { token });
  acceptTokens(server, new Set(["t2"]));
  const connecting = im.connect();
  await settle();
  t.mock.timers.tick(500);
  assert.deepEqual(await connecting, ALICE);
  assert.deepEqual(issued, ["t1", "t2"]);
});

test("each expiry gets its own refresh: a later 4401 after a good refresh refreshes again", async (t) => {
  const { issued, token } = tokenSource();
  const { server, im, errors } = startClient(t, { token });
  acceptTokens(server, new Set(["t1", "t2", "t3"]));
  await im.connect();
  for (let round = 0; round < 2; round += 1) {
    server.socket.drop(4401);
    t.mock.timers.tick(500);
    await settle();
    assert.equal(im.state, "open");
  }
  assert.deepEqual(issued, ["t1", "t2", "t3"]);
  assert.deepEqual(errors, []);
});

test("a string token is tried again once after 4401, then the client closes", async (t) => {
  const { server, im, errors } = startClient(t, { token: "fixed" });
  await im.connect();
  acceptTokens(server, new Set());
  server.socket.drop(4401);
  t.mock.timers.tick(500);
  await settle();
  assert.deepEqual(server.framesOf("auth").map((frame) => frame.data.token), ["fixed", "fixed"]);
  assert.equal(im.state, "closed");
  assert.equal(errors[0].code, "unauthenticated");
});

test("with reconnect: false, 4401 closes the client at once", async (t) => {
  let calls = 0;
  const { server, im, errors } = startClient(t, { token: () => `t${++calls}`, reconnect: false });
  await im.connect();
  server.socket.drop(4401, "token expired");
  assert.equal(im.state, "closed");
  assert.equal(calls, 1);
  assert.equal(errors[0].code, "unauthenticated");
  assert.match(errors[0].message, /4401: token expired/);
});
