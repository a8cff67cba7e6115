// Authorization: a client acts only on rooms it is in and only as itself (PROTOCOL.md §2),
// and the admin API answers 401 to every endpoint without a valid key (§3). Each refusal is
// also checked for having changed nothing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uid, assertHealthy } from './lib/sec.mjs';

const cluster = useCluster();
const s = {}; // alice (owner), bob (member), mallory (outsider); group room G, direct room D

cluster.setup(async () => {
    s.alice = await cluster.login(0, uid('alice'), { name: 'Alice' });
    s.bob = await cluster.login(0, uid('bob'), { name: 'Bob' });
    s.mallory = await cluster.login(0, uid('mallory'), { name: 'Mallory' });
    s.G = (await s.alice.call('room.create', { type: 'group', members: [s.bob.clientId], name: 'private' })).id;
    s.D = (await s.alice.call('room.create', { type: 'direct', members: [s.bob.clientId] })).id;
    for (const room of [s.G, s.D]) {
        await s.alice.call('msg.send', { room, cid: 'a1', type: 'text', text: 'from alice' });
        await s.bob.call('msg.send', { room, cid: 'b1', type: 'text', text: 'from bob' });
    }
    s.missing = uid('no-such-room');
});

/** Every room operation, as mallory would send it for `room`. */
const roomOps = (room) => [
    ['room.get', { room }],
    ['room.update', { room, name: 'pwned' }],
    ['room.members.add', { room, members: [s.mallory.clientId] }],
    ['room.members.remove', { room, members: [s.bob.clientId] }],
    ['room.leave', { room }],
    ['room.read', { room, seq: 2 }],
    ['msg.send', { room, cid: uid('c'), type: 'text', text: 'intruder' }],
    ['msg.history', { room }],
    ['msg.history', { room, after: 0 }],
    ['msg.edit', { room, seq: 1, text: 'edited by mallory' }],
    ['msg.recall', { room, seq: 1 }],
    ['msg.react', { room, seq: 1, emoji: '👍', on: true }],
    ['typing', { room }],
];

async function snapshot(room) {
    const r = await s.alice.call('room.get', { room });
    const h = await s.alice.call('msg.history', { room, limit: 100 });
    return { room: { ...r, updated_at: undefined }, messages: h.messages };
}

test('a client cannot act on a room it is not in: every room op is forbidden (group and direct), not_found when the room does not exist', async () => {
    const before = { G: await snapshot(s.G), D: await snapshot(s.D) };
    const wrong = [];
    for (const [label, room, codes] of [['group', s.G, ['forbidden']], ['direct', s.D, ['forbidden']], ['missing', s.missing, ['not_found']]]) {
        for (const [op, data] of roomOps(room)) {
            const res = await s.mallory.request(op, data);
            // typing is checked by the gateway against the rooms the connection receives: a
            // room it does not know is forbidden whether or not it exists.
            const allowed = op === 'typing' && label === 'missing' ? ['not_found', 'forbidden'] : codes;
            if (res.ok !== false || !allowed.includes(res.error?.code)) {
                wrong.push(`${op} on the ${label} room: expected ${allowed.join('/')}, got ${JSON.stringify(res)}`);
            }
        }
    }
    assert.ok(wrong.length === 0, `${wrong.length} operations not refused:\n  ${wrong.join('\n  ')}`);
    assert.deepEqual({ G: await snapshot(s.G), D: await snapshot(s.D) }, before, 'the refused operations changed the rooms');
    const leaked = s.mallory.eventsList.filter((e) => [s.G, s.D].includes(e.frame.data?.room) || [s.G, s.D].includes(e.frame.data?.id));
    assert.deepEqual(leaked.map((e) => e.frame), [], 'the outsider received events of the rooms');
    // room.list and sync show the outsider nothing of them.
    const list = await s.mallory.call('room.list', { limit: 100 });
    assert.ok(!list.rooms.some((r) => [s.G, s.D].includes(r.id)), 'room.list shows rooms the client is not in');
    const sync = await s.mallory.call('sync', { known: { [s.G]: 0, [s.D]: 0 } });
    assert.ok(!sync.rooms.some((r) => [s.G, s.D].includes(r.id)), `sync lists the rooms: ${JSON.stringify(sync.rooms)}`);
    assert.ok(!Object.keys(sync.messages || {}).some((k) => [s.G, s.D].includes(k)), `sync gives messages of rooms the client is not in: ${JSON.stringify(sync.messages)}`);
    assert.deepEqual([...sync.left].sort(), [s.G, s.D].sort(), 'rooms named in known that the client is not in are reported as left');
});

test('no op acts as anyone else: a `from`, `id`, `client` or `owner` field never changes who acts', async () => {
    const { alice, bob, mallory, G } = s;
    // msg.send with from: stored as the caller, or refused.
    const sent = await bob.request('msg.send', { room: G, cid: uid('c'), type: 'text', text: 'who am I', from: alice.clientId });
    if (sent.ok) {
        const h = await alice.call('msg.history', { room: G, after: sent.data.seq - 1, limit: 1 });
        assert.equal(h.messages[0].from, bob.clientId, `a msg.send with from=alice is stored as from ${h.messages[0].from}`);
    } else {
        assert.equal(sent.error.code, 'bad_request', JSON.stringify(sent));
    }
    // me.update with an id: changes the caller only.
    const aliceBefore = (await alice.call('client.get', { ids: [alice.clientId] })).clients[0];
    const upd = await mallory.request('me.update', { id: alice.clientId, name: 'Alice (hacked)' });
    const aliceAfter = (await alice.call('client.get', { ids: [alice.clientId] })).clients[0];
    assert.equal(aliceAfter.name, aliceBefore.name, `me.update with id=alice changed alice: ${JSON.stringify(aliceAfter)}`);
    if (upd.ok) {
        assert.equal(upd.data.id, mallory.clientId, `me.update answered for ${upd.data.id}`);
        const m = (await mallory.call('client.get', { ids: [mallory.clientId] })).clients[0];
        assert.equal(m.name, 'Alice (hacked)', 'me.update changes the caller');
    }
    // room.create with an owner: the caller owns it.
    const created = await mallory.request('room.create', { type: 'group', members: [bob.clientId], owner: bob.clientId });
    if (created.ok) {
        assert.equal(created.data.owner, mallory.clientId, `room.create with owner=bob gave owner ${created.data.owner}`);
    }
    // room.list with a client: the caller's rooms.
    const list = await mallory.call('room.list', { client: alice.clientId, limit: 100 });
    assert.ok(!list.rooms.some((r) => r.id === G), 'room.list with client=alice lists alice\'s rooms');
    // room.read with a client: moves the caller's mark only.
    const read = await bob.request('room.read', { room: G, seq: 1, client: alice.clientId });
    if (read.ok) {
        const ev = await alice.waitEvent('read', (d) => d.room === G && d.seq === 1, 3000).catch(() => null);
        if (ev) {
            assert.equal(ev.client, bob.clientId, `room.read with client=alice moved ${ev.client}'s mark`);
        }
    }
    // msg.react with a client: the caller reacts.
    const react = await bob.request('msg.react', { room: G, seq: 1, emoji: '🔥', on: true, client: alice.clientId });
    assert.equal(react.ok, true, JSON.stringify(react));
    assert.deepEqual(react.data.reactions['🔥'], [bob.clientId], `reactions: ${JSON.stringify(react.data.reactions)}`);
    // A second auth as someone else on an authenticated connection is refused and changes nothing.
    const again = await bob.request('auth', { token: cluster.token(alice.clientId) });
    assert.equal(again.error?.code, 'bad_request', JSON.stringify(again));
    const who = await bob.call('me.update', {});
    assert.equal(who.id, bob.clientId, 'the connection is still bob\'s');
});

test('a member cannot do what only the sender or the owner may', async () => {
    const { alice, bob, G } = s;
    const before = await snapshot(G);
    const cases = [
        ['msg.edit of alice\'s message', 'msg.edit', { room: G, seq: 1, text: 'edited by bob' }],
        ['msg.recall of alice\'s message (bob is not the owner)', 'msg.recall', { room: G, seq: 1 }],
        ['room.update of the group (owner only)', 'room.update', { room: G, name: 'renamed by bob' }],
        ['room.members.remove of alice (owner only)', 'room.members.remove', { room: G, members: [alice.clientId] }],
    ];
    const wrong = [];
    for (const [what, op, data] of cases) {
        const res = await bob.request(op, data);
        if (res.error?.code !== 'forbidden') {
            wrong.push(`${what}: expected forbidden, got ${JSON.stringify(res)}`);
        }
    }
    assert.ok(wrong.length === 0, wrong.join('\n'));
    const after = await snapshot(G);
    assert.deepEqual(after.room, before.room, 'the room changed');
    assert.deepEqual(after.messages.map((m) => [m.seq, m.text, m.type]), before.messages.map((m) => [m.seq, m.text, m.type]), 'the messages changed');
});

test('admin operations are not reachable from a WebSocket', async () => {
    const { alice, mallory, G } = s;
    for (const [op, data] of [
        ['admin.client.delete', { id: alice.clientId }],
        ['admin.tokens.revoke', { id: alice.clientId }],
        ['admin.token.create', { id: alice.clientId, hash: 'a'.repeat(64), iat: 0 }],
        ['admin.room.delete', { room: G }],
        ['admin.client.put', { id: alice.clientId, name: 'x' }],
        ['admin.events.get', {}],
    ]) {
        const res = await mallory.request(op, data);
        assert.equal(res.error?.code, 'bad_request', `${op}: ${JSON.stringify(res)}`);
    }
    assert.ok(alice.isOpen, 'alice was not disconnected');
    assert.equal((await alice.call('room.get', { room: G })).id, G, 'the room still exists');
    const a = await cluster.admin('GET', `/v1/clients/${alice.clientId}`);
    assert.equal(a.status, 200, 'alice still exists');
    assert.equal(a.body.name, 'Alice');
});

test('the admin API answers 401 on every endpoint without a key or with a wrong one, and does nothing', async () => {
    const { alice, G } = s;
    const id = alice.clientId;
    const endpoints = [
        ['PUT', `/v1/clients/${id}`, { name: 'x' }],
        ['GET', `/v1/clients/${id}`],
        ['DELETE', `/v1/clients/${id}`],
        ['POST', `/v1/clients/${id}/tokens`, {}],
        ['DELETE', `/v1/clients/${id}/tokens`],
        ['GET', `/v1/clients/${id}/rooms`],
        ['POST', '/v1/rooms', { type: 'group', members: [id] }],
        ['GET', `/v1/rooms/${G}`],
        ['PATCH', `/v1/rooms/${G}`, { name: 'x' }],
        ['DELETE', `/v1/rooms/${G}`],
        ['POST', `/v1/rooms/${G}/members`, { members: ['x'] }],
        ['DELETE', `/v1/rooms/${G}/members/${id}`],
        ['POST', `/v1/rooms/${G}/messages`, { from: id, type: 'text', text: 'x' }],
        ['GET', `/v1/rooms/${G}/messages`],
        ['GET', '/v1/events'],
        ['GET', '/v1/no-such-endpoint'],
        ['GET', '/v1/'],
    ];
    const key = cluster.apiKey;
    const keys = {
        'no Authorization': { key: null },
        'Bearer and nothing': { headers: { authorization: 'Bearer ' }, key: null },
        'a wrong key': { key: 'wrong' },
        'the key plus one character': { key: `${key}x` },
        'the key less its last character': { key: key.slice(0, -1) },
        'the key in upper case': { key: key.toUpperCase() },
        'the key followed by %00': { headers: { authorization: `Bearer ${key}%00` }, key: null },
        'Basic with the key': { headers: { authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}` }, key: null },
        'the key without a scheme': { headers: { authorization: key }, key: null },
        'the key in another header': { headers: { 'x-api-key': key }, key: null },
        'the key in the query': { key: null, query: `?api_key=${key}` },
    };
    const wrong = [];
    for (const [method, path, body] of endpoints) {
        for (const [what, opts] of Object.entries(keys)) {
            const r = await cluster.admin(method, path + (opts.query || ''), body, opts);
            if (r.status !== 401 || r.body?.error?.code !== 'unauthenticated') {
                wrong.push(`${method} ${path} with ${what}: ${r.status} ${r.text.slice(0, 100)}`);
            }
        }
    }
    assert.ok(wrong.length === 0, `${wrong.length} requests not refused 401:\n  ${wrong.join('\n  ')}`);
    // Nothing happened: alice exists with her name, her connection is open, the room and its history are unchanged.
    const a = await cluster.admin('GET', `/v1/clients/${id}`);
    assert.equal(a.status, 200);
    assert.equal(a.body.name, 'Alice');
    assert.ok(alice.isOpen, 'alice\'s connection was not closed (no revocation, no deletion)');
    assert.equal((await alice.request('ping')).ok, true);
    const room = await cluster.admin('GET', `/v1/rooms/${G}`);
    assert.equal(room.status, 200);
    assert.equal(room.body.name, 'private');
    assert.deepEqual(room.body.members.map((m) => m.id).sort(), [s.alice.clientId, s.bob.clientId].sort());
    // The admin API is not served on the public listener at all.
    const pub = await cluster.publicGet(`/v1/clients/${id}`);
    assert.equal(pub.status, 404, `the public listener answered /v1/ with ${pub.status}`);
    await assertHealthy(cluster);
});
