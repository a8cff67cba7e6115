// Admin REST API (PROTOCOL.md §3): clients with percent-encoded ids, tokens, rooms, messages
// that reach connected members live, a client's room list; 404, 405, 400.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    useCluster, uid, assertHttp, assertKeys, assertTs, sleep,
    CLIENT_KEYS, ROOM_KEYS, MESSAGE_KEYS,
} from './lib/cluster.mjs';

const cluster = useCluster({ gateways: 2, workers: 1 });
const enc = encodeURIComponent;

const A = uid('ada');
const B = uid('bea');
let a; // gateway 0
let b; // gateway 1

// A and B are connected only by the tests that need them, so that the admin-only tests
// still say something when the WebSocket side is broken.
async function connectAB() {
    if (!a) {
        a = await cluster.login(0, A, { name: 'Ada' });
        b = await cluster.login(1, B, { name: 'Bea' });
    }
}

test('PUT /v1/clients/{id} creates and updates only the named fields; GET shows online and last_seen (ids with @ and :)', async () => {
    const id = `${uid('eve')}@example.com:42`;
    const p = `/v1/clients/${enc(id)}`;
    assert.ok(p.includes('%40') && p.includes('%3A'));

    const put = await cluster.admin('PUT', p, { name: 'Eve', avatar: 'https://example.com/eve.png', meta: { plan: 'pro', n: 1 } });
    assertHttp(put, 200, null, 'PUT create');
    assert.match(put.headers.get('content-type') || '', /application\/json/);
    assertKeys(put.body, CLIENT_KEYS, 'PUT answer');
    assert.deepEqual(put.body, { id, name: 'Eve', avatar: 'https://example.com/eve.png', meta: { plan: 'pro', n: 1 } });

    const get = await cluster.admin('GET', p);
    assertHttp(get, 200, null, 'GET');
    assertKeys(get.body, [...CLIENT_KEYS, 'online', 'last_seen'], 'GET answer');
    assert.equal(get.body.id, id);
    assert.equal(get.body.name, 'Eve');
    assert.equal(get.body.online, false);

    const rename = await cluster.admin('PUT', p, { name: 'Eve Two' });
    assertHttp(rename, 200, null, 'PUT name only');
    assert.deepEqual(rename.body, { id, name: 'Eve Two', avatar: 'https://example.com/eve.png', meta: { plan: 'pro', n: 1 } });
    const clear = await cluster.admin('PUT', p, { avatar: null });
    assertHttp(clear, 200, null, 'PUT avatar null');
    assert.deepEqual(clear.body, { id, name: 'Eve Two', avatar: null, meta: { plan: 'pro', n: 1 } });

    // The same client connects (JWT sub with @ and :): online; after leaving: last_seen.
    const e = await cluster.login(1, id);
    assert.equal(e.authResult.client.id, id);
    assert.equal(e.authResult.client.name, 'Eve Two', 'a JWT without name keeps the admin-set name');
    const on = await cluster.admin('GET', p, undefined, { gateway: 1 });
    assert.equal(on.body.online, true);
    e.close();
    await e.waitClose(3000);
    const off = await waitForGet(p, (body) => body.online === false, 3000);
    assertTs(off.last_seen, 'last_seen after disconnect');
});

async function waitForGet(p, pred, ms) {
    const deadline = Date.now() + ms;
    let last;
    while (Date.now() < deadline) {
        last = await cluster.admin('GET', p);
        if (last.status === 200 && pred(last.body)) {
            return last.body;
        }
        await sleep(100);
    }
    assert.fail(`GET ${p} never matched: last answer ${last && last.text}`);
}

test('GET of an unknown client is 404 not_found; bad ids and bad fields are 400 bad_request', async () => {
    assertHttp(await cluster.admin('GET', `/v1/clients/${uid('nobody')}`), 404, 'not_found', 'GET unknown client');
    assertHttp(await cluster.admin('PUT', `/v1/clients/${enc('has space')}`, { name: 'x' }), 400, 'bad_request', 'PUT id with a space');
    assertHttp(await cluster.admin('PUT', `/v1/clients/${'x'.repeat(65)}`, { name: 'x' }), 400, 'bad_request', 'PUT id of 65 bytes');
    assertHttp(await cluster.admin('PUT', `/v1/clients/${uid('n')}`, { name: 5 }), 400, 'bad_request', 'PUT name not a string');
    assertHttp(await cluster.admin('PUT', `/v1/clients/${uid('n')}`, { meta: 'text' }), 400, 'bad_request', 'PUT meta not an object');
});

test('POST /v1/clients/{id}/tokens: 201 with token and expires_at (default ttl one day)', async () => {
    const id = `${uid('tok')}:x@y`;
    assertHttp(await cluster.admin('PUT', `/v1/clients/${enc(id)}`, { name: 'Tok' }), 200, null, 'PUT');
    const t0 = Date.now();
    const dflt = await cluster.admin('POST', `/v1/clients/${enc(id)}/tokens`, {});
    assertHttp(dflt, 201, null, 'POST tokens {}');
    assertKeys(dflt.body, ['token', 'expires_at'], 'tokens answer');
    assert.equal(typeof dflt.body.token, 'string');
    assert.ok(dflt.body.token.length >= 16, 'token too short');
    assert.ok(Math.abs(dflt.body.expires_at - (t0 + 86400 * 1000)) < 60000, `expires_at ${dflt.body.expires_at} is not about a day from now (ms)`);
    const short = await cluster.admin('POST', `/v1/clients/${enc(id)}/tokens`, { ttl: 120 });
    assertHttp(short, 201, null, 'POST tokens ttl 120');
    assert.ok(Math.abs(short.body.expires_at - (t0 + 120 * 1000)) < 60000, `expires_at ${short.body.expires_at} is not 120 s from now (ms)`);
    assert.notEqual(short.body.token, dflt.body.token);
    const c = await cluster.connect(1, short.body.token);
    assert.equal(c.authResult.client.id, id);
    c.close();
});

let group;
const C_OF_GROUP = uid('cy');

test('POST /v1/rooms: 201 group with owner and members; connected members get room.joined', async () => {
    await connectAB();
    const C = C_OF_GROUP;
    const res = await cluster.admin('POST', '/v1/rooms', { type: 'group', members: [A, B, C], owner: B, name: 'Admin made', meta: { k: 'v' } });
    assertHttp(res, 201, null, 'POST /v1/rooms group');
    assertKeys(res.body, ROOM_KEYS, 'POST /v1/rooms answer');
    assert.equal(res.body.type, 'group');
    assert.equal(res.body.owner, B);
    assert.equal(res.body.name, 'Admin made');
    assert.deepEqual(res.body.meta, { k: 'v' });
    assert.equal(res.body.members_count, 3);
    if (Object.hasOwn(res.body, 'created')) {
        assert.equal(res.body.created, true);
    }
    group = res.body;
    await a.waitEvent('room.joined', (d) => d.id === group.id);
    await b.waitEvent('room.joined', (d) => d.id === group.id);

    const got = await a.call('room.get', { room: group.id });
    const roles = Object.fromEntries(got.members.map((m) => [m.id, m.role]));
    assert.deepEqual(roles, { [A]: 'member', [B]: 'owner', [C]: 'member' });

    assertHttp(await cluster.admin('POST', '/v1/rooms', { type: 'group', id: group.id, members: [A] }), 409, 'conflict', 'POST /v1/rooms existing id');
});

test('GET /v1/rooms/{rid}: 200 room with members and roles; 404 for a missing room', async () => {
    assert.ok(group, 'depends on the POST /v1/rooms test');
    const get = await cluster.admin('GET', `/v1/rooms/${enc(group.id)}`, undefined, { gateway: 1 });
    assertHttp(get, 200, null, 'GET /v1/rooms/{rid}');
    assertKeys(get.body, [...ROOM_KEYS, 'members'], 'GET /v1/rooms/{rid} answer');
    assert.equal(get.body.id, group.id);
    const roles = Object.fromEntries(get.body.members.map((m) => [m.id, m.role]));
    assert.deepEqual(roles, { [A]: 'member', [B]: 'owner', [C_OF_GROUP]: 'member' });
    assertHttp(await cluster.admin('GET', `/v1/rooms/${uid('nope')}`), 404, 'not_found', 'GET missing room');
});

test('POST /v1/rooms direct: 201, then 200 with created:false for the same pair in either order', async () => {
    const P = `${uid('buyer')}@shop`;
    const Q = `${uid('seller')}:7`;
    const first = await cluster.admin('POST', '/v1/rooms', { type: 'direct', members: [P, Q] });
    assertHttp(first, 201, null, 'POST direct');
    assert.equal(first.body.type, 'direct');
    assert.equal(first.body.owner, null);
    const again = await cluster.admin('POST', '/v1/rooms', { type: 'direct', members: [P, Q] });
    assertHttp(again, 200, null, 'POST direct again');
    assert.equal(again.body.created, false);
    assert.equal(again.body.id, first.body.id);
    const reversed = await cluster.admin('POST', '/v1/rooms', { type: 'direct', members: [Q, P] }, { gateway: 1 });
    assertHttp(reversed, 200, null, 'POST direct reversed');
    assert.equal(reversed.body.created, false);
    assert.equal(reversed.body.id, first.body.id);
    // Ids that never connected got profiles named by their id.
    const prof = await cluster.admin('GET', `/v1/clients/${enc(Q)}`);
    assertHttp(prof, 200, null, 'GET member profile');
    assert.equal(prof.body.name, Q);
    assertHttp(await cluster.admin('POST', '/v1/rooms', { type: 'direct', members: [P] }), 400, 'bad_request', 'direct with one member');
});

test('POST /v1/rooms/{rid}/messages: 201, reaches connected members live on both gateways; cid makes it idempotent', async () => {
    assert.ok(group, 'depends on the POST /v1/rooms test');
    await connectAB();
    const res = await cluster.admin('POST', `/v1/rooms/${enc(group.id)}/messages`, { from: A, type: 'text', text: 'from the backend', cid: 'backend-1' });
    assertHttp(res, 201, null, 'POST messages');
    assertKeys(res.body, ['room', 'seq', 'ts', 'cid'], 'POST messages answer');
    assert.equal(res.body.room, group.id);
    assert.equal(res.body.seq, 1);
    assert.equal(res.body.cid, 'backend-1');
    assertTs(res.body.ts);
    for (const conn of [a, b]) {
        const m = await conn.waitEvent('message', (d) => d.room === group.id && d.seq === 1);
        assertKeys(m, MESSAGE_KEYS, 'message event');
        assert.equal(m.from, A);
        assert.equal(m.text, 'from the backend');
        assert.equal(m.ts, res.body.ts);
    }
    const noCid = await cluster.admin('POST', `/v1/rooms/${enc(group.id)}/messages`, { from: B, type: 'image', payload: { url: 'https://x/1.png' } }, { gateway: 1 });
    assertHttp(noCid, 201, null, 'POST messages without cid');
    assert.equal(noCid.body.seq, 2);
    assert.ok(Object.hasOwn(noCid.body, 'cid'), 'cid is always present (null or generated)');

    const again = await cluster.admin('POST', `/v1/rooms/${enc(group.id)}/messages`, { from: A, type: 'text', text: 'from the backend', cid: 'backend-1' });
    assert.ok(again.status === 200 || again.status === 201, `retry status ${again.status}`);
    assert.equal(again.body.seq, 1, 'a retry with the same cid is idempotent');

    const hist = await b.call('msg.history', { room: group.id });
    assert.deepEqual(hist.messages.map((m) => m.seq), [1, 2], 'a retry stored a message');
    assert.deepEqual(hist.messages[1].payload, { url: 'https://x/1.png' });
    assert.equal(hist.messages[1].from, B);

    assertHttp(await cluster.admin('POST', `/v1/rooms/${enc(group.id)}/messages`, { from: A, type: 'text' }), 400, 'bad_request', 'POST messages without text');
    assertHttp(await cluster.admin('POST', `/v1/rooms/${enc(group.id)}/messages`, { from: A, type: 'text', text: 'x'.repeat(16385) }), 413, 'too_large', 'POST messages text too long');
    assertHttp(await cluster.admin('POST', `/v1/rooms/${uid('missing')}/messages`, { from: A, type: 'text', text: 'x' }), 404, 'not_found', 'POST messages missing room');
});

test('GET /v1/rooms/{rid}/messages answers as msg.history', async () => {
    assert.ok(group, 'depends on the POST /v1/rooms test');
    await connectAB();
    const hist = await cluster.admin('GET', `/v1/rooms/${enc(group.id)}/messages?after=0&limit=10`);
    assertHttp(hist, 200, null, 'GET messages');
    assertKeys(hist.body, ['messages', 'has_more'], 'GET messages answer');
    assert.deepEqual(hist.body.messages.map((m) => m.seq), [1, 2]);
    assert.equal(hist.body.has_more, false);
    assert.deepEqual(hist.body, await a.call('msg.history', { room: group.id, after: 0, limit: 10 }), 'differs from msg.history');
    const last = await cluster.admin('GET', `/v1/rooms/${enc(group.id)}/messages?limit=1`);
    assertHttp(last, 200, null, 'GET messages limit=1');
    assert.deepEqual(last.body.messages.map((m) => m.seq), [2]);
    assert.equal(last.body.has_more, true);
    const before = await cluster.admin('GET', `/v1/rooms/${enc(group.id)}/messages?before=2`);
    assert.deepEqual(before.body.messages.map((m) => m.seq), [1]);
    assert.equal(before.body.has_more, false);
    assertHttp(await cluster.admin('GET', `/v1/rooms/${uid('nope')}/messages`), 404, 'not_found', 'GET messages of a missing room');
});

test('GET /v1/clients/{id}/rooms answers as room.list for that client', async () => {
    assert.ok(group, 'depends on the POST /v1/rooms test');
    await connectAB();
    // A's view: seq 1 is A's own, seq 2 is B's: one unread whatever A's read mark is.
    const res = await cluster.admin('GET', `/v1/clients/${enc(A)}/rooms?limit=10`);
    assertHttp(res, 200, null, 'GET client rooms');
    assertKeys(res.body, ['rooms', 'next', 'unread_total'], 'GET client rooms answer');
    const s = res.body.rooms.find((r) => r.id === group.id);
    assert.ok(s, `room ${group.id} missing from ${res.text}`);
    assert.equal(s.last_seq, 2);
    assert.equal(s.last_message.seq, 2);
    assert.equal(s.unread, 1, 'A has one unread message (B\'s); its own does not count');
    assert.equal(res.body.unread_total, 1);
    const ws = await a.call('room.list', { limit: 10 });
    assert.deepEqual(res.body, ws, 'the admin answer differs from room.list');

    const paged = await cluster.admin('GET', `/v1/clients/${enc(A)}/rooms?limit=1`);
    assertHttp(paged, 200, null, 'GET client rooms limit=1');
    assert.equal(paged.body.rooms.length, 1);
    assert.equal(paged.body.unread_total, 1);
});

test('unknown path 404, wrong method 405, bad JSON 400', async () => {
    assertHttp(await cluster.admin('GET', '/v1/nothing-here'), 404, 'not_found', 'GET /v1/nothing-here');
    assertHttp(await cluster.admin('GET', `/v1/clients/${A}/nothing`), 404, 'not_found', 'GET /v1/clients/{id}/nothing');
    assertHttp(await cluster.admin('GET', '/nothing'), 404, null, 'GET /nothing');
    assertHttp(await cluster.admin('POST', `/v1/clients/${A}`, { name: 'x' }), 405, null, 'POST /v1/clients/{id}');
    assertHttp(await cluster.admin('PUT', `/v1/rooms/${uid('r')}/messages`, {}), 405, null, 'PUT /v1/rooms/{rid}/messages');
    assertHttp(await cluster.admin('GET', `/v1/clients/${A}/tokens`), 405, null, 'GET /v1/clients/{id}/tokens');
    assertHttp(await cluster.admin('POST', '/v1/rooms', '{"type": "group", "members": ['), 400, 'bad_request', 'POST /v1/rooms bad JSON');
    const F = uid('fay');
    assertHttp(await cluster.admin('PUT', `/v1/clients/${F}`, { name: 'Fay' }), 200, null, 'PUT client');
    assertHttp(await cluster.admin('PUT', `/v1/clients/${F}`, 'not json'), 400, 'bad_request', 'PUT client bad JSON');
    assertHttp(await cluster.admin('PUT', `/v1/clients/${F}`, '[1,2]'), 400, 'bad_request', 'PUT client JSON array');
    const get = await cluster.admin('GET', `/v1/clients/${F}`);
    assert.equal(get.body.name, 'Fay', 'a refused PUT changed the client');
});
