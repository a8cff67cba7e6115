// What the SDK promises about lost connections (SDK.md "Behaviour a page can count on"),
// against the real server: the offline send queue across a SIGKILLed gateway, and gap
// recovery through `sync` after a reconnect. 2 gateways, 2 workers, Redis.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    useSdkCluster, connected, makeFlakyWebSocket, killGateway, startGatewayAgain, fullHistory,
    op, uid, range, sleep, withTimeout,
} from './lib/sdk-cluster.mjs';

const cluster = useSdkCluster({ gateways: 2, workers: 2 });

/** Settles every promise; returns [{status, value|reason, settledAt}] and counts settlements. */
function track(promise) {
    const t = { settled: 0, status: 'pending' };
    t.done = promise.then(
        (value) => Object.assign(t, { settled: t.settled + 1, status: 'fulfilled', value }),
        (reason) => Object.assign(t, { settled: t.settled + 1, status: 'rejected', reason }),
    );
    return t;
}

test('offline send queue: gateway SIGKILLed, 20 sends while it is down, restarted on the same port: each send settles once, stored once, cids stable', { timeout: 90000 }, async (t) => {
    const A = uid('qa');
    const B = uid('qb');
    const net = await makeFlakyWebSocket(); // only to record the frames A writes
    const a = await connected(cluster, A, 1, { WebSocket: net.WebSocket }); // the gateway that dies
    const b = await connected(cluster, B, 0); // the witness
    const room = await op('createGroup', () => a.im.createGroup({ members: [B], name: 'queue' }));
    await b.waitEvent('room.joined', (r) => r.id === room.id);
    const first = await a.im.send(room.id, 'before the crash');
    assert.equal(first.seq, 1);

    // Five sends in flight as the gateway dies: their answers may be lost after the server
    // stored them, the case the cid exists for.
    const texts = [];
    const sends = [];
    const send = (text) => {
        texts.push(text);
        sends.push(track(a.im.send(room.id, text)));
    };
    for (let i = 1; i <= 5; i++) {
        send(`in flight ${i}`);
    }
    const exit = await killGateway(cluster, 1);
    assert.equal(exit.signal, 'SIGKILL');
    await a.waitState('reconnecting', 5000);

    for (let i = 1; i <= 20; i++) {
        send(`offline ${i}`);
    }
    await sleep(1500); // a few reconnect attempts fail meanwhile
    assert.notEqual(a.state, 'open');
    const pendingWhileDown = sends.filter((s) => s.status === 'pending').length;
    assert.ok(pendingWhileDown >= 20, `the 20 offline sends wait (pending: ${pendingWhileDown})`);

    await startGatewayAgain(cluster, 1);
    await a.waitState('open', 40000); // backoff: 0.5 s doubling, with jitter
    await withTimeout(Promise.all(sends.map((s) => s.done)), 20000, 'every send to settle');

    const rejected = sends.filter((s) => s.status === 'rejected');
    assert.deepEqual(rejected.map((s) => `${s.reason.code}: ${s.reason.message}`), [], 'no send rejects');
    assert.ok(sends.every((s) => s.settled === 1), 'each promise settles once');
    const results = sends.map((s) => s.value);
    assert.deepEqual(results.map((m) => m.text), texts, 'each promise resolves with its own message');
    const cids = results.map((m) => m.cid);
    assert.equal(new Set(cids).size, cids.length, 'cids are distinct');
    for (const cid of cids) {
        assert.match(cid, /^[0-9a-f]{32}$/);
    }

    // Every write of one message (before the crash and again after it) carries the same cid.
    const writes = net.sent.map((t) => JSON.parse(t)).filter((f) => f.op === 'msg.send');
    for (const [i, m] of results.entries()) {
        const mine = writes.filter((f) => f.data.text === texts[i]);
        assert.ok(mine.length >= 1, `"${texts[i]}" was written`);
        assert.deepEqual([...new Set(mine.map((f) => f.data.cid))], [m.cid], `"${texts[i]}": one cid across ${mine.length} writes`);
    }
    const rewritten = texts.filter((t) => writes.filter((f) => f.data.text === t).length > 1);
    t.diagnostic(`in-flight sends written again after the reconnect: ${rewritten.length}`);

    const history = await fullHistory(b.im, room.id);
    assert.deepEqual(history.map((m) => m.seq), range(1, 26), 'no gap, no duplicate in seqs');
    for (const [i, m] of results.entries()) {
        const stored = history.filter((h) => h.cid === m.cid);
        assert.equal(stored.length, 1, `"${m.text}" is stored ${stored.length} times`);
        assert.equal(stored[0].seq, m.seq, `"${m.text}": the promise's seq is the stored one`);
        assert.equal(stored[0].text, texts[i]);
        assert.equal(stored[0].ts, m.ts);
    }

    // The witness on the other gateway got each message once, in order.
    await b.waitEvents('message', 26, (m) => m.room === room.id, 10000);
    await sleep(300);
    assert.deepEqual(b.messages(room.id).map((m) => m.seq), range(1, 26));
    // The sender, too, gets each of its messages once (live, or caught up by sync).
    await a.waitEvents('message', 26, (m) => m.room === room.id, 10000);
    await sleep(300);
    assert.deepEqual(a.messages(room.id).map((m) => m.seq), range(1, 26));
    a.close();
    b.close();
});

test('offline sends are stored in the order they were made (SDK.md: "sends wait in order and go out after reconnecting")', { timeout: 90000 }, async () => {
    // Known to fail with 2 workers: see README.md ("Known failures"). The SDK writes every
    // queued msg.send at once after reconnecting; the server applies pipelined commands of one
    // connection in any order when several workers run (docs/ARCHITECTURE.md). The race is
    // not won every time, so the scenario runs 5 times.
    const A = uid('oa');
    const B = uid('ob');
    const net = await makeFlakyWebSocket();
    const a = await connected(cluster, A, 0, { WebSocket: net.WebSocket });
    const rounds = [];
    for (let round = 1; round <= 5; round++) {
        const room = await a.im.createGroup({ members: [B], name: `order ${round}` });
        net.refuse(true);
        net.cut();
        await a.waitState('reconnecting', 5000);
        const sends = [];
        for (let i = 1; i <= 40; i++) {
            sends.push(a.im.send(room.id, `offline ${i}`));
        }
        net.refuse(false);
        const results = await withTimeout(Promise.all(sends), 40000, 'the 40 queued sends');
        const history = await fullHistory(a.im, room.id);
        assert.equal(history.length, 40, 'each stored once');
        rounds.push({ round, storedOrder: history.map((m) => Number(m.text.split(' ')[1])), seqs: results.map((m) => m.seq) });
    }
    const shuffled = rounds.filter((r) => r.storedOrder.some((n, i) => n !== i + 1));
    assert.deepEqual(shuffled.map((r) => `round ${r.round}: stored order ${r.storedOrder.join(',')}`), [],
        'the 40 messages queued while offline are stored in the order send() was called');
    a.close();
});

test('gap recovery: messages sent while the client is cut off come as message events, once each, in seq order, after the reconnect', { timeout: 90000 }, async () => {
    const A = uid('ga');
    const B = uid('gb');
    const net = await makeFlakyWebSocket();
    const a = await connected(cluster, A, 0);
    const b = await connected(cluster, B, 1, { WebSocket: net.WebSocket });
    const direct = await op('createDirect', () => a.im.createDirect(B));
    const busy = await a.im.createGroup({ members: [B], name: 'busy' });
    await b.waitEvent('room.joined', (r) => r.id === direct.id);
    await b.waitEvent('room.joined', (r) => r.id === busy.id);
    await a.im.send(direct.id, 'seen live');
    await b.waitEvent('message', (m) => m.room === direct.id && m.seq === 1);

    // B loses its connection and cannot reconnect for a while.
    net.refuse(true);
    net.cut();
    await b.waitState('reconnecting', 5000);

    // Meanwhile: 5 messages in the direct room, and 130 in the group (more than one sync
    // page of 100: the SDK follows has_more with msg.history after=), through the SDK and
    // through the admin API.
    for (let i = 2; i <= 6; i++) {
        await a.im.send(direct.id, `missed ${i}`);
    }
    for (let i = 1; i <= 130; i++) {
        const res = await cluster.admin('POST', `/v1/rooms/${busy.id}/messages`, { from: A, type: 'text', text: `bulk ${i}` });
        assert.equal(res.status, 201, res.text);
    }
    assert.equal(b.messages(direct.id).length, 1, 'B saw nothing while cut off');

    net.refuse(false);
    await b.waitState('open', 40000);
    await b.waitEvents('message', 6, (m) => m.room === direct.id, 15000);
    await b.waitEvents('message', 130, (m) => m.room === busy.id, 15000);
    await sleep(500); // any repeat would arrive by now

    assert.deepEqual(b.messages(direct.id).map((m) => m.seq), range(1, 6), 'direct room: each once, in order');
    assert.deepEqual(b.messages(direct.id).map((m) => m.text), ['seen live', 'missed 2', 'missed 3', 'missed 4', 'missed 5', 'missed 6']);
    assert.deepEqual(b.messages(busy.id).map((m) => m.seq), range(1, 130), 'group: each once, in order, across pages');
    assert.equal(b.messages(busy.id)[129].text, 'bulk 130');

    // Live delivery goes on after the catch-up, with no repeat.
    await a.im.send(direct.id, 'live again');
    await b.waitEvent('message', (m) => m.room === direct.id && m.seq === 7);
    await sleep(200);
    assert.deepEqual(b.messages(direct.id).map((m) => m.seq), range(1, 7));
    a.close();
    b.close();
});

test('a seq skip in live events (an event lost on the way) makes the SDK sync: the lost message comes once, the held ones after it, in order', { timeout: 60000 }, async () => {
    const A = uid('sa');
    const B = uid('sb');
    const net = await makeFlakyWebSocket();
    const a = await connected(cluster, A, 0);
    const b = await connected(cluster, B, 1, { WebSocket: net.WebSocket });
    const room = await a.im.createDirect(B);
    await b.waitEvent('room.joined', (r) => r.id === room.id);
    await a.im.send(room.id, 'one');
    await b.waitEvent('message', (m) => m.room === room.id && m.seq === 1);

    // B's connection loses the `message` event of seq 2 (and only it); no reconnect happens.
    net.dropIncoming = (text) => {
        const frame = JSON.parse(text);
        return frame.ev === 'message' && frame.data?.room === room.id && frame.data?.seq === 2;
    };
    await a.im.send(room.id, 'two');
    await a.im.send(room.id, 'three');
    await a.im.send(room.id, 'four');
    await b.waitEvents('message', 4, (m) => m.room === room.id, 10000);
    await sleep(300);
    assert.equal(net.dropped.length, 1, 'the event of seq 2 was hidden from the SDK');
    assert.equal(net.opened, 1, 'no reconnect: the gap was filled on the same connection');
    assert.deepEqual(b.messages(room.id).map((m) => [m.seq, m.text]), [[1, 'one'], [2, 'two'], [3, 'three'], [4, 'four']]);
    a.close();
    b.close();
});

test('gap recovery across a gateway restart: the client of a SIGKILLed gateway catches up when it comes back', { timeout: 90000 }, async () => {
    const A = uid('ra');
    const B = uid('rb');
    const a = await connected(cluster, A, 0);
    const b = await connected(cluster, B, 1);
    const room = await a.im.createDirect(B);
    await b.waitEvent('room.joined', (r) => r.id === room.id);
    await a.im.send(room.id, 'm1');
    await b.waitEvent('message', (m) => m.room === room.id && m.seq === 1);

    await killGateway(cluster, 1);
    await b.waitState('reconnecting', 5000);
    for (let i = 2; i <= 6; i++) {
        await a.im.send(room.id, `m${i}`);
    }
    await startGatewayAgain(cluster, 1);
    await b.waitState('open', 40000);
    await b.waitEvents('message', 6, (m) => m.room === room.id, 15000);
    await sleep(300);
    assert.deepEqual(b.messages(room.id).map((m) => m.text), ['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
    a.close();
    b.close();
});

test('a message in a room the client has not seen yet (joined while it was cut off) starts at that room\'s history', { timeout: 60000 }, async () => {
    const A = uid('na');
    const B = uid('nb');
    const net = await makeFlakyWebSocket();
    const a = await connected(cluster, A, 0);
    const b = await connected(cluster, B, 1, { WebSocket: net.WebSocket });
    net.refuse(true);
    net.cut();
    await b.waitState('reconnecting', 5000);
    const room = await a.im.createGroup({ members: [B], name: 'while away' });
    await a.im.send(room.id, 'hello while away');
    net.refuse(false);
    await b.waitState('open', 40000);
    // The room is new to B: the SDK follows it from its last_seq (the summary carries the
    // last message); the next message comes live, once.
    const list = await b.im.listRooms();
    const summary = list.rooms.find((r) => r.id === room.id);
    assert.ok(summary, 'the room is listed');
    assert.equal(summary.last_message?.text, 'hello while away');
    assert.equal(summary.unread, 1);
    await a.im.send(room.id, 'second');
    await b.waitEvent('message', (m) => m.room === room.id && m.seq === 2);
    await sleep(300);
    assert.deepEqual(b.messages(room.id).map((m) => m.seq), [2], 'no repeat, nothing emitted twice');
    a.close();
    b.close();
});
