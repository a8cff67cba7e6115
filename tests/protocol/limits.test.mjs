// The contract's limits with the default configuration, each answered with its error code:
// text 16 384 bytes, payload / meta 8 KiB, 100 ids a request, WebSocket messages 64 KiB
// (close 1009), 50 requests/s with bursts of 100 (rate_limited, then close 4429).
// limits-config.test.mjs runs the configurable ones with other values.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    useCluster, uid, user, group, send, expectError, jsonOfSize, ids, sleep, withTimeout,
} from './lib/proto.mjs';

const cluster = useCluster({ gateways: 2, workers: 2 });

test('text: 16 384 bytes of UTF-8 accepted (ASCII, 2- and 4-byte characters), 16 385 bytes too_large', async () => {
    const a = await user(cluster, [0], { prefix: 'a' });
    const r = await group(a, []);
    for (const text of ['a'.repeat(16384), 'é'.repeat(8192), '😀'.repeat(4096)]) {
        assert.equal(Buffer.byteLength(text), 16384);
        const ack = await send(a, r.id, text);
        const h = await a.call('msg.history', { room: r.id, after: ack.seq - 1, limit: 1 });
        assert.equal(h.messages[0].text, text, 'stored intact');
    }
    for (const text of ['a'.repeat(16385), `${'é'.repeat(8192)}a`, 'é'.repeat(8193), `${'😀'.repeat(4096)}a`]) {
        assert.ok(Buffer.byteLength(text) > 16384);
        await expectError(a, 'msg.send', { room: r.id, cid: uid('c'), type: 'text', text }, 'too_large', 'text', `text of ${Buffer.byteLength(text)} bytes`);
    }
    assert.equal((await a.call('room.get', { room: r.id })).last_seq, 3, 'nothing stored for the refused ones');
});

test('payload and meta: 8 KiB of serialized JSON accepted, one byte more too_large naming the field', async () => {
    const a = await user(cluster, [1], { prefix: 'a' });
    const r = await group(a, []);
    const ok = await a.call('msg.send', { room: r.id, cid: uid('c'), type: 'custom', payload: jsonOfSize(8192) });
    assert.equal(ok.seq, 1);
    await expectError(a, 'msg.send', { room: r.id, cid: uid('c'), type: 'custom', payload: jsonOfSize(8193) }, 'too_large', 'payload');
    await expectError(a, 'msg.send', { room: r.id, cid: uid('c'), type: 'text', text: 't', payload: jsonOfSize(8193) }, 'too_large', 'payload');
    const created = await a.call('room.create', { type: 'group', members: [], meta: jsonOfSize(8192) });
    assert.deepEqual(created.meta, jsonOfSize(8192));
    await expectError(a, 'room.create', { type: 'group', members: [], meta: jsonOfSize(8193) }, 'too_large', 'meta');
    await expectError(a, 'room.update', { room: r.id, meta: jsonOfSize(8193) }, 'too_large', 'meta');
    await expectError(a, 'me.update', { meta: jsonOfSize(8193) }, 'too_large', 'meta');
    assert.equal((await a.call('room.get', { room: r.id })).last_seq, 1);
});

test('ids in one request: 100 accepted, 101 too_large naming the field (room.create, room.members.add / remove, client.get, presence.watch, mentions)', async () => {
    const a = await user(cluster, [0], { prefix: 'a' });
    const r = await group(a, []);
    const many = ids(101);
    await expectError(a, 'room.create', { type: 'group', members: many }, 'too_large', 'members');
    await expectError(a, 'room.members.add', { room: r.id, members: many }, 'too_large', 'members');
    await expectError(a, 'room.members.remove', { room: r.id, members: many }, 'too_large', 'members');
    await expectError(a, 'client.get', { ids: many }, 'too_large', 'ids');
    await expectError(a, 'presence.watch', { ids: many }, 'too_large', 'ids');
    await expectError(a, 'msg.send', { room: r.id, cid: uid('c'), type: 'text', text: 'x', mentions: many }, 'too_large', 'mentions');
    assert.equal((await a.call('room.get', { room: r.id })).members_count, 1, 'nobody added');

    const hundred = many.slice(0, 100);
    const big = await a.call('room.create', { type: 'group', members: hundred });
    assert.equal(big.members_count, 101, 'the creator and 100 members');
    const added = await a.call('room.members.add', { room: r.id, members: hundred });
    assert.equal(added.members_count, 101);
    assert.equal((await a.call('client.get', { ids: hundred })).clients.length, 100);
    assert.equal((await a.call('presence.watch', { ids: hundred })).clients.length, 100);
    await a.call('msg.send', { room: r.id, cid: uid('c'), type: 'text', text: 'x', mentions: hundred });
    const removed = await a.call('room.members.remove', { room: r.id, members: hundred });
    assert.equal(removed.members_count, 1);
    const adm = await cluster.admin('POST', '/v1/rooms', { type: 'group', members: many });
    assert.equal(adm.status, 413, `admin POST /v1/rooms with 101 members: ${adm.status} ${adm.text}`);
});

/** A frame of exactly `bytes` bytes: a ping padded with data.pad. */
function pingOfSize(bytes, id = 1) {
    const base = JSON.stringify({ id, op: 'ping', data: { pad: '' } });
    const f = JSON.stringify({ id, op: 'ping', data: { pad: 'p'.repeat(bytes - base.length) } });
    assert.equal(Buffer.byteLength(f), bytes);
    return f;
}

test('WebSocket message: 64 KiB answered, one byte more closed 1009, fragmented or not; other connections unaffected', async () => {
    const a = await user(cluster, [0, 1], { prefix: 'a' });
    const c = a.tabs[0];
    c.sendRaw(pingOfSize(65536, 900));
    const ans = await c.waitOrphan((f) => f.id === 900, 5000);
    assert.equal(ans.ok, true);
    // A msg.send of 64 KiB: too_large for its text, the connection stays.
    const r = await group(a, []);
    const base = JSON.stringify({ id: 901, op: 'msg.send', data: { room: r.id, cid: 'c', type: 'text', text: '' } });
    c.sendRaw(JSON.stringify({ id: 901, op: 'msg.send', data: { room: r.id, cid: 'c', type: 'text', text: 't'.repeat(65536 - base.length) } }));
    const big = await c.waitOrphan((f) => f.id === 901, 5000);
    assert.equal(big.error?.code, 'too_large');
    assert.ok(c.isOpen);

    c.sendRaw(pingOfSize(65537, 902));
    assert.equal((await c.waitClose(5000)).code, 1009);
    assert.equal(c.orphans.filter((f) => f.id === 902).length, 0, 'the oversized message was answered');

    // Fragmented: 3 fragments of 22 000 bytes, 66 000 in all.
    const f = a.tabs[1];
    const text = pingOfSize(66000, 903);
    f.ws.send(text.slice(0, 22000), { fin: false });
    f.ws.send(text.slice(22000, 44000), { fin: false });
    f.ws.send(text.slice(44000), { fin: true });
    assert.equal((await f.waitClose(5000)).code, 1009);
    const other = await user(cluster, [1], { prefix: 'b' });
    assert.ok((await other.call('ping')).ts > 0);
    // Fragmented under the limit is one message, answered.
    const g = (await user(cluster, [1], { prefix: 'g' })).tabs[0];
    const ok = pingOfSize(60000, 904);
    g.ws.send(ok.slice(0, 30000), { fin: false });
    g.ws.send(ok.slice(30000), { fin: true });
    assert.equal((await g.waitOrphan((x) => x.id === 904, 5000)).ok, true);
});

test('rate limit: a burst over 100 requests gets rate_limited; the connection stays and recovers', async () => {
    const a = await user(cluster, [0], { prefix: 'a' });
    const c = a.tabs[0];
    for (let i = 0; i < 150; i++) {
        c.sendRaw(JSON.stringify({ id: 10000 + i, op: 'ping' }));
    }
    await withTimeout((async () => {
        while (c.orphans.filter((f) => f.id >= 10000 && f.id < 10150).length < 150) {
            await sleep(20);
        }
    })(), 5000, '150 answers');
    const answers = c.orphans.filter((f) => f.id >= 10000 && f.id < 10150);
    const okN = answers.filter((f) => f.ok).length;
    const limited = answers.filter((f) => f.error?.code === 'rate_limited');
    // (the connection's auth was one of its 100)
    assert.ok(okN >= 99 && okN < 140, `the burst of 100 is served (and a few refilled), got ${okN} ok`);
    assert.equal(okN + limited.length, 150, 'every answer is ok or rate_limited');
    assert.ok(limited.every((f) => typeof f.error.message === 'string'));
    assert.ok(c.isOpen, 'rate_limited answers do not close the connection');
    await sleep(1000);
    assert.ok((await c.call('ping')).ts > 0, 'the connection recovers');
});

test('rate limit: a client flooding requests is closed 4429 (and gets that close code); its other connections are unaffected', async () => {
    const a = await user(cluster, [0, 1], { prefix: 'a' });
    const c = a.tabs[0];
    for (let i = 0; i < 2000; i++) {
        c.sendRaw(JSON.stringify({ id: 20000 + i, op: 'ping' }));
    }
    const closed = await c.waitClose(5000);
    assert.ok((await a.tabs[1].call('ping')).ts > 0, 'the client\'s other connection is unaffected');
    assert.equal(closed.code, 4429, `closed ${closed.code}${closed.code === 1006 ? ' (no close frame reached the client: the TCP connection was reset)' : ''}, expected 4429; rate_limited answers received: ${c.orphans.filter((f) => f.error?.code === 'rate_limited').length}`);
});

test('rate limit: sustained abuse (about 1 000 requests/s, 20 times the limit, for up to 3 s) is closed 4429', async () => {
    const a = await user(cluster, [1], { prefix: 'a' });
    const c = a.tabs[0];
    const t0 = Date.now();
    let n = 0;
    while (c.isOpen && Date.now() - t0 < 3000) {
        for (let i = 0; i < 10; i++) {
            c.sendRaw(JSON.stringify({ id: 30000 + n++, op: 'ping' }));
        }
        await sleep(10);
    }
    const limited = c.orphans.filter((f) => f.error?.code === 'rate_limited').length;
    assert.ok(limited > 100, `rate_limited answers: ${limited}`);
    assert.equal(c.isOpen, false, `still open after ${n} requests in ${Date.now() - t0} ms and ${limited} rate_limited answers`);
    const closed = await c.waitClose(1000);
    assert.ok(closed.code === 4429 || closed.code === 1006, `closed ${closed.code}`);
});

test('limit in room.list and msg.history is clamped, never an error', async () => {
    const a = await user(cluster, [1], { prefix: 'a' });
    const r = await group(a, []);
    for (let i = 0; i < 3; i++) {
        await send(a, r.id, `m${i}`);
    }
    assert.equal((await a.call('room.list', { limit: 100000 })).rooms.length, 1);
    assert.equal((await a.call('room.list', { limit: 0 })).rooms.length, 1);
    const h = await a.call('msg.history', { room: r.id, limit: 0 });
    assert.equal(h.messages.length, 1);
    assert.equal(h.has_more, true);
    assert.equal((await a.call('msg.history', { room: r.id, limit: 5000 })).messages.length, 3);
});
