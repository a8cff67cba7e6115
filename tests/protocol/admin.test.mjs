// Every endpoint of the admin REST API (PROTOCOL.md section 3): success, its errors, and that a
// change made through it raises the same events, to the same connections, as the same change
// made by a client. Calls alternate between the two gateways' admin listeners.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    useCluster, uid, nowSec, sleep, user, group, send, expectDelivery, expectSilence, assertNone,
    expectError, assertHttp, assertKeys, assertTs, jsonOfSize, roomEvents, waitFor,
    CLIENT_KEYS, ROOM_KEYS, SUMMARY_KEYS, QUIET_MS,
} from './lib/proto.mjs';

const cluster = useCluster({ gateways: 2, workers: 2 });

const enc = encodeURIComponent;
let flip = 0;
/** An admin call, on gateway 1 and 2 in turn unless `gw` is given. */
const adm = (method, path, body, gw) => cluster.admin(method, path, body, { gateway: gw ?? (flip++ % 2) });

// ---------------------------------------------------------------------------------------
// API key, unknown paths, wrong methods

const ENDPOINTS = [
    ['PUT', '/v1/clients/k1', { name: 'x' }],
    ['GET', '/v1/clients/k1'],
    ['DELETE', '/v1/clients/k1'],
    ['POST', '/v1/clients/k1/tokens', {}],
    ['DELETE', '/v1/clients/k1/tokens'],
    ['GET', '/v1/clients/k1/rooms'],
    ['POST', '/v1/rooms', { type: 'group', members: ['k1'] }],
    ['GET', '/v1/rooms/r1'],
    ['PATCH', '/v1/rooms/r1', { name: 'x' }],
    ['DELETE', '/v1/rooms/r1'],
    ['POST', '/v1/rooms/r1/members', { members: ['k2'] }],
    ['DELETE', '/v1/rooms/r1/members/k1'],
    ['POST', '/v1/rooms/r1/messages', { from: 'k1', type: 'text', text: 'x' }],
    ['GET', '/v1/rooms/r1/messages'],
];

test('every /v1 endpoint answers 401 without an API key, with a wrong one, or with another scheme; nothing is done', async () => {
    for (const [method, path, body] of ENDPOINTS) {
        for (const [key, headers] of [[null, {}], ['wrong-key', {}], [null, { authorization: `Basic ${Buffer.from(`x:${cluster.apiKey}`).toString('base64')}` }], [`${cluster.apiKey}x`, {}]]) {
            const res = await cluster.admin(method, path, body, { key, headers, gateway: flip++ % 2 });
            assertHttp(res, 401, 'unauthenticated', `${method} ${path} with key ${key}`);
        }
    }
    const check = await adm('GET', '/v1/clients/k1');
    assertHttp(check, 404, 'not_found', 'the unauthenticated PUT created nothing');
});

test('GET /healthz needs no key; GET /metrics needs none and answers Prometheus text', async () => {
    for (const gw of [0, 1]) {
        const h = await cluster.admin('GET', '/healthz', undefined, { key: null, gateway: gw });
        assert.equal(h.status, 200);
    }
    const m = await cluster.admin('GET', '/metrics', undefined, { key: null });
    assert.equal(m.status, 200, `GET /metrics: ${m.status} ${m.text.slice(0, 200)}`);
    assert.match(m.headers.get('content-type') || '', /text\/plain/);
});

test('an unknown path is 404, a wrong method 405, both with an error body', async () => {
    for (const p of ['/v1/nope', '/v1/clients', '/v1/clients/a/nope', '/v1/clients/a/tokens/x', '/v1/rooms/r/nope',
        '/v1/rooms/r/members/a/b', '/v1/rooms/r/messages/1', '/v2/clients/a', '/v1']) {
        assertHttp(await adm('GET', p), 404, 'not_found', `GET ${p}`);
    }
    for (const [method, p] of [['POST', '/v1/clients/a'], ['PATCH', '/v1/clients/a'], ['GET', '/v1/clients/a/tokens'],
        ['PUT', '/v1/clients/a/tokens'], ['POST', '/v1/clients/a/rooms'], ['DELETE', '/v1/clients/a/rooms'], ['GET', '/v1/rooms'],
        ['DELETE', '/v1/rooms'], ['PUT', '/v1/rooms/r'], ['POST', '/v1/rooms/r'], ['GET', '/v1/rooms/r/members'],
        ['DELETE', '/v1/rooms/r/members'], ['PUT', '/v1/rooms/r/messages'], ['DELETE', '/v1/rooms/r/messages'],
        ['GET', '/v1/rooms/r/members/a'], ['POST', '/v1/rooms/r/members/a']]) {
        const res = await adm(method, p, method === 'GET' || method === 'DELETE' ? undefined : {});
        assertHttp(res, 405, null, `${method} ${p}`);
        assert.ok(res.body?.error && typeof res.body.error.code === 'string' && typeof res.body.error.message === 'string', `${method} ${p}: error body: ${res.text}`);
    }
});

// ---------------------------------------------------------------------------------------
// Clients

test('PUT /v1/clients/{id}: 200 client, created or updated; only the fields named change, null clears; ids percent-decoded; seen over WebSocket', async () => {
    const id = `${uid('shop')}@example.com:42`;
    const c1 = await adm('PUT', `/v1/clients/${enc(id)}`, {});
    assertHttp(c1, 200);
    assert.deepEqual(c1.body, { id, name: id, avatar: null, meta: null }, 'a client created without name is named by its id');
    // (as text: a JS number cannot hold 2^53+1)
    const c2 = await adm('PUT', `/v1/clients/${enc(id)}`, '{"name":"Seller","avatar":"https://img/s.png","meta":{"tier":2,"big":9007199254740993}}');
    assertHttp(c2, 200);
    assertKeys(c2.body, CLIENT_KEYS, 'PUT answer');
    assert.equal(c2.body.name, 'Seller');
    assert.match(c2.text, /"big":9007199254740993/, 'meta kept verbatim (big integer exact)');
    const c3 = await adm('PUT', `/v1/clients/${enc(id)}`, { avatar: null });
    assert.equal(c3.body.avatar, null);
    assert.equal(c3.body.name, 'Seller');
    assert.equal(c3.body.meta.tier, 2);
    const viewer = await user(cluster, [1], { prefix: 'viewer' });
    const { clients } = await viewer.call('client.get', { ids: [id] });
    assert.equal(clients[0].name, 'Seller');
    assert.equal(clients[0].avatar, null);
    // The client, logging in later, keeps that profile (its JWT carries no name).
    const self = await user(cluster, [0], { id });
    assert.equal(self.tabs[0].authResult.client.name, 'Seller');
});

test('PUT /v1/clients/{id} validation: 400 naming the field, 413 for meta over 8 KiB', async () => {
    const id = uid('v');
    assertHttp(await adm('PUT', `/v1/clients/${enc('bad id')}`, {}), 400, 'bad_request', 'invalid id');
    assertHttp(await adm('PUT', `/v1/clients/${'x'.repeat(65)}`, {}), 400, 'bad_request', '65-byte id');
    const r1 = await adm('PUT', `/v1/clients/${id}`, { name: 7 });
    assertHttp(r1, 400, 'bad_request');
    assert.match(r1.body.error.message, /name/);
    const r2 = await adm('PUT', `/v1/clients/${id}`, { meta: 'x' });
    assertHttp(r2, 400, 'bad_request');
    assert.match(r2.body.error.message, /meta/);
    const r3 = await adm('PUT', `/v1/clients/${id}`, { avatar: [] });
    assertHttp(r3, 400, 'bad_request');
    assert.match(r3.body.error.message, /avatar/);
    assertHttp(await adm('PUT', `/v1/clients/${id}`, '{"name":'), 400, 'bad_request', 'body not JSON');
    assertHttp(await adm('PUT', `/v1/clients/${id}`, '[1]'), 400, 'bad_request', 'body not an object');
    const r4 = await adm('PUT', `/v1/clients/${id}`, { meta: jsonOfSize(8193) });
    assertHttp(r4, 413, 'too_large');
    assert.match(r4.body.error.message, /meta/);
    assertHttp(await adm('GET', `/v1/clients/${id}`), 404, 'not_found', 'refused PUTs created nothing');
});

test('GET /v1/clients/{id}: 200 client with online and last_seen, across gateways; 404 for an unknown id', async () => {
    const a = await user(cluster, [1], { prefix: 'a', claims: { name: 'Ann' } });
    const g = await adm('GET', `/v1/clients/${a.id}`, undefined, 0);
    assertHttp(g, 200);
    assertKeys(g.body, [...CLIENT_KEYS, 'online', 'last_seen'], 'GET client');
    assert.equal(g.body.name, 'Ann');
    assert.equal(g.body.online, true);
    a.tabs[0].close();
    await a.tabs[0].waitClose(3000);
    const off = await waitFor(async () => {
        const r = await adm('GET', `/v1/clients/${a.id}`);
        return r.body.online === false ? r : null;
    }, 3000, 'offline in the admin API');
    assertTs(off.body.last_seen, 'last_seen');
    assertHttp(await adm('GET', `/v1/clients/${uid('nobody')}`), 404, 'not_found');
});

test('POST /v1/clients/{id}/tokens: 201 {token, expires_at}; the token authenticates on every gateway; ttl honoured and validated', async () => {
    const id = uid('tok');
    const t = await adm('POST', `/v1/clients/${id}/tokens`, {});
    assertHttp(t, 201);
    assertKeys(t.body, ['token', 'expires_at'], 'token answer');
    assert.equal(typeof t.body.token, 'string');
    assert.ok(!t.body.token.includes('.'), 'an opaque token, not a JWT');
    assert.ok(Math.abs(t.body.expires_at - (Date.now() + 86400 * 1000)) < 60000, `default ttl one day: ${t.body.expires_at}`);
    for (const gw of [0, 1]) {
        const c = await cluster.connect(gw, t.body.token);
        assert.equal(c.authResult.client.id, id);
        c.close();
    }
    const t2 = await adm('POST', `/v1/clients/${id}/tokens`, { ttl: 60 });
    assertHttp(t2, 201);
    assert.ok(Math.abs(t2.body.expires_at - (Date.now() + 60000)) < 10000, `ttl 60 s: ${t2.body.expires_at}`);
    assert.notEqual(t2.body.token, t.body.token);
    for (const ttl of [0, -5, 'x', 1.5]) {
        const r = await adm('POST', `/v1/clients/${id}/tokens`, { ttl });
        assertHttp(r, 400, 'bad_request', `ttl ${ttl}`);
        assert.match(r.body.error.message, /ttl/);
    }
    assertHttp(await adm('POST', `/v1/clients/${enc('no good')}/tokens`, {}), 400, 'bad_request');
    const bogus = await cluster.connect(1);
    const res = await bogus.request('auth', { token: 'not-a-real-token-at-all' });
    assert.equal(res.error?.code, 'unauthenticated');
    bogus.close();
});

test('DELETE /v1/clients/{id}/tokens: 204; open connections closed 4403 on both gateways; every token issued before now refused (JWT with or without iat, opaque); later ones accepted', async () => {
    const id = uid('rev');
    const other = await user(cluster, [0, 1], { prefix: 'bystander' });
    const opaque = (await adm('POST', `/v1/clients/${id}/tokens`, {})).body.token;
    const jwtOld = cluster.token(id, { iat: nowSec() - 5 });
    const jwtNoIat = cluster.token(id);
    const c1 = await cluster.connect(0, jwtOld);
    const c2 = await cluster.connect(1, opaque);
    const c3 = await cluster.connect(1, jwtNoIat);

    const res = await adm('DELETE', `/v1/clients/${id}/tokens`);
    assertHttp(res, 204);
    assert.equal(res.text, '');
    const revokedAt = nowSec();
    for (const c of [c1, c2, c3]) {
        const info = await c.waitClose(5000);
        assert.equal(info.code, 4403, `closed ${info.code}, expected 4403`);
    }
    for (const [what, token] of [['old JWT', jwtOld], ['JWT without iat', jwtNoIat], ['opaque token', opaque], ['JWT issued this second', cluster.token(id, { iat: revokedAt })]]) {
        for (const gw of [0, 1]) {
            const c = await cluster.connect(gw);
            const r = await c.request('auth', { token });
            assert.equal(r.error?.code, 'unauthenticated', `${what} on gateway ${gw + 1}: ${JSON.stringify(r)}`);
            c.close();
        }
    }
    for (const t of other.tabs) {
        assert.ok(t.isOpen, 'another client\'s connections stay open');
    }
    // Tokens issued after the revocation second work.
    while (nowSec() <= revokedAt) {
        await sleep(50);
    }
    await cluster.connect(0, cluster.token(id, { iat: nowSec() }));
    const fresh = (await adm('POST', `/v1/clients/${id}/tokens`, {})).body.token;
    await cluster.connect(1, fresh);
    assertHttp(await adm('DELETE', `/v1/clients/${uid('nobody')}/tokens`), 404, 'not_found');
});

test('DELETE /v1/clients/{id}: 204; connections closed 4403 on both gateways; it leaves every room (member.left, owner handed over, a room left empty deleted), its messages stay; a later GET is 404 and its old tokens are refused', async () => {
    const v = await user(cluster, [0, 1], { prefix: 'victim' });
    const a = await user(cluster, [1], { prefix: 'a' });
    const b = await user(cluster, [0], { prefix: 'b' });
    const x = await user(cluster, [0, 1], { prefix: 'outsider' });
    const owned = await group(v, [a, b]); // v owns it: a (joined with b, id order) or b inherits
    const plain = await group(a, [v]);
    const alone = await group(v, []);
    const direct = await v.call('room.create', { type: 'direct', members: [b.id] });
    const ack = await send(v, plain.id, 'my message stays');
    const oldToken = cluster.token(v.id, { iat: nowSec() - 1 });

    const res = await adm('DELETE', `/v1/clients/${v.id}`, undefined, 1);
    assertHttp(res, 204);
    for (const t of v.tabs) {
        assert.equal((await t.waitClose(5000)).code, 4403, `${t.label} closed 4403`);
    }
    await expectDelivery('member.left', (d) => d.room === owned.id && d.member === v.id, [a, b], [x]);
    await expectDelivery('member.left', (d) => d.room === plain.id && d.member === v.id, [a], [b, x]);
    await expectDelivery('member.left', (d) => d.room === direct.id && d.member === v.id, [b], [a, x]);
    const heir = [a.id, b.id].sort()[0]; // same joined_at: the smaller id
    const upd = await expectDelivery('room.updated', (d) => d.id === owned.id, [a, b], [x]);
    assert.equal(upd[0].owner, heir);

    assertHttp(await adm('GET', `/v1/clients/${v.id}`), 404, 'not_found', 'GET after DELETE');
    assertHttp(await adm('DELETE', `/v1/clients/${v.id}`), 404, 'not_found', 'DELETE twice');
    assert.deepEqual((await a.call('client.get', { ids: [v.id] })).clients, []);
    const h = await a.call('msg.history', { room: plain.id });
    assert.equal(h.messages.find((m) => m.seq === ack.seq).from, v.id, 'its messages stay');
    assert.equal(h.messages.find((m) => m.seq === ack.seq).text, 'my message stays');
    const info = await a.call('room.get', { room: owned.id });
    assert.deepEqual(info.members.map((m) => m.id).sort(), [a.id, b.id].sort());
    assert.equal((await b.call('room.get', { room: direct.id })).members_count, 1);
    assertHttp(await adm('GET', `/v1/rooms/${alone.id}`), 404, 'not_found', 'a room left by its last member is deleted');
    const rooms = await adm('GET', `/v1/clients/${v.id}/rooms`);
    assert.deepEqual(rooms.body.rooms, []);
    const c = await cluster.connect(0);
    assert.equal((await c.request('auth', { token: oldToken })).error?.code, 'unauthenticated', 'a token issued before the deletion');
    c.close();
    assertHttp(await adm('DELETE', `/v1/clients/${uid('nobody')}`), 404, 'not_found');
});

test('GET /v1/clients/{id}/rooms: 200 as room.list for that client (order, unread, unread_total, paging with next)', async () => {
    const c = await user(cluster, [0], { prefix: 'c' });
    const o = await user(cluster, [1], { prefix: 'o' });
    const rs = [];
    for (let i = 0; i < 3; i++) {
        rs.push(await group(o, [c], { name: `r${i}` }));
        for (let k = 0; k <= i; k++) {
            await send(o, rs[i].id, `m${k}`);
        }
    }
    const own = await c.call('room.list', {});
    const res = await adm('GET', `/v1/clients/${c.id}/rooms`);
    assertHttp(res, 200);
    assertKeys(res.body, ['rooms', 'next', 'unread_total'], 'rooms answer');
    assert.deepEqual(res.body, own, 'the same answer as the client\'s own room.list');
    assert.equal(res.body.unread_total, 6);
    const p1 = await adm('GET', `/v1/clients/${c.id}/rooms?limit=2`);
    assert.equal(p1.body.rooms.length, 2);
    assert.equal(typeof p1.body.next, 'string');
    assert.equal(p1.body.unread_total, 6, 'unread_total counts every room, not only the page');
    const p2 = await adm('GET', `/v1/clients/${c.id}/rooms?limit=2&before=${enc(p1.body.next)}`);
    assert.deepEqual([...p1.body.rooms, ...p2.body.rooms].map((r) => r.id), own.rooms.map((r) => r.id));
    assert.equal(p2.body.next, null);
    for (const s of res.body.rooms) {
        assertKeys(s, SUMMARY_KEYS, 'summary');
    }
    assertHttp(await adm('GET', `/v1/clients/${c.id}/rooms?limit=abc`), 400, 'bad_request');
    const none = await adm('GET', `/v1/clients/${uid('nobody')}/rooms`);
    assertHttp(none, 200);
    assert.deepEqual(none.body.rooms, []);
});

// ---------------------------------------------------------------------------------------
// Rooms

test('POST /v1/rooms (group): 201 room; room.joined to every tab of every member, no member.joined; owner as given, else the first member; an existing id 409', async () => {
    const a = await user(cluster, [0, 1], { prefix: 'a' });
    const b = await user(cluster, [1], { prefix: 'b' });
    const x = await user(cluster, [0], { prefix: 'x' });
    const never = uid('never');
    const rid = `${uid('shop')}:order@1`;
    const res = await adm('POST', '/v1/rooms', { type: 'group', id: rid, members: [a.id, b.id, never], owner: b.id, name: 'Order 1', meta: { order: 1 } });
    assertHttp(res, 201);
    assertKeys(res.body, ROOM_KEYS, 'POST /v1/rooms answer');
    assert.equal(res.body.id, rid);
    assert.equal(res.body.owner, b.id);
    assert.equal(res.body.members_count, 3);
    assert.equal(res.body.name, 'Order 1');
    assert.deepEqual(res.body.meta, { order: 1 });
    const joined = await expectDelivery('room.joined', (d) => d.id === rid, [a, b], [x]);
    assertKeys(joined[0], SUMMARY_KEYS, 'room.joined');
    assertNone('member.joined', () => true, [a, b], 'room creation');
    const got = await adm('GET', `/v1/rooms/${enc(rid)}`);
    assertHttp(got, 200);
    assert.deepEqual(got.body.members.map((m) => [m.id, m.role]).sort(), [[a.id, 'member'], [b.id, 'owner'], [never, 'member']].sort());
    assert.equal((await a.call('client.get', { ids: [never] })).clients[0].name, never);
    assertHttp(await adm('POST', '/v1/rooms', { type: 'group', id: rid, members: [a.id] }), 409, 'conflict');

    const r2 = await adm('POST', '/v1/rooms', { type: 'group', members: [b.id, a.id] });
    assertHttp(r2, 201);
    assert.equal(r2.body.owner, b.id, 'without owner, the first member owns the room');
    assert.ok(r2.body.id.length >= 16, `a random room id: ${r2.body.id}`);
    const r3 = await adm('POST', '/v1/rooms', { type: 'group', members: [a.id], owner: b.id });
    assertHttp(r3, 201);
    assert.equal(r3.body.members_count, 2, 'an owner not listed is a member too');
    assert.equal(r3.body.owner, b.id);
});

test('POST /v1/rooms (direct): 201 then 200 created:false for the same pair, from either side and from a client', async () => {
    const a = await user(cluster, [0], { prefix: 'a' });
    const b = await user(cluster, [1], { prefix: 'b' });
    const r1 = await adm('POST', '/v1/rooms', { type: 'direct', members: [a.id, b.id] });
    assertHttp(r1, 201);
    assert.equal(r1.body.owner, null);
    assert.equal(r1.body.created, true);
    await expectDelivery('room.joined', (d) => d.id === r1.body.id, [a, b], []);
    const r2 = await adm('POST', '/v1/rooms', { type: 'direct', members: [b.id, a.id] });
    assertHttp(r2, 200);
    assert.equal(r2.body.created, false);
    assert.equal(r2.body.id, r1.body.id);
    const r3 = await a.call('room.create', { type: 'direct', members: [b.id] });
    assert.equal(r3.created, false);
    assert.equal(r3.id, r1.body.id);
});

test('POST /v1/rooms validation: 400 naming the field, 413 over the limits', async () => {
    const cases = [
        [{ members: ['a'] }, 'type'],
        [{ type: 'channel', members: ['a'] }, 'type'],
        [{ type: 'group' }, 'members'],
        [{ type: 'group', members: 'a' }, 'members'],
        [{ type: 'group', members: ['a b'] }, 'members'],
        [{ type: 'group', members: ['a', 'a'] }, 'members'],
        [{ type: 'group', members: [] }, 'members'],
        [{ type: 'direct', members: ['a', 'b', 'c'] }, 'members'],
        [{ type: 'direct', members: ['a'] }, 'members'],
        [{ type: 'group', members: ['a'], id: 'bad id' }, 'id'],
        [{ type: 'group', members: ['a'], owner: 'bad owner' }, 'owner'],
        [{ type: 'group', members: ['a'], name: 1 }, 'name'],
        [{ type: 'group', members: ['a'], meta: 'x' }, 'meta'],
    ];
    for (const [body, field] of cases) {
        const r = await adm('POST', '/v1/rooms', body);
        assertHttp(r, 400, 'bad_request', JSON.stringify(body));
        assert.ok(r.body.error.message.includes(field), `${JSON.stringify(body)}: the message should name ${field}: ${r.text}`);
    }
    const big = await adm('POST', '/v1/rooms', { type: 'group', members: ['a'], meta: jsonOfSize(8193) });
    assertHttp(big, 413, 'too_large');
});

test('GET /v1/rooms/{rid}: 200 room with members {id, role, joined_at}; 404 unknown', async () => {
    const o = await user(cluster, [0], { prefix: 'o' });
    const m = uid('m');
    const r = await group(o, [m], { name: 'g' });
    const g = await adm('GET', `/v1/rooms/${r.id}`);
    assertHttp(g, 200);
    assertKeys(g.body, [...ROOM_KEYS, 'members'], 'GET room');
    assert.equal(g.body.name, 'g');
    for (const mem of g.body.members) {
        assertKeys(mem, ['id', 'role', 'joined_at'], 'member');
        assertTs(mem.joined_at, 'joined_at');
    }
    assert.deepEqual(g.body.members.map((e) => [e.id, e.role]), [[o.id, 'owner'], [m, 'member']].sort((p, q) => (p[0] < q[0] ? -1 : 1)));
    assertHttp(await adm('GET', `/v1/rooms/${uid('missing')}`), 404, 'not_found');
});

test('PATCH /v1/rooms/{rid}: 200 room; room.updated to every tab of every member as for the owner\'s room.update; null clears; 404 unknown; 400 / 413 for bad fields', async () => {
    const o = await user(cluster, [0, 1], { prefix: 'o' });
    const m = await user(cluster, [1], { prefix: 'm' });
    const x = await user(cluster, [0], { prefix: 'x' });
    const r = await group(o, [m], { name: 'n0', cover: 'c0' });
    const p = await adm('PATCH', `/v1/rooms/${r.id}`, { name: 'n1', meta: { k: 1 } });
    assertHttp(p, 200);
    assertKeys(p.body, ROOM_KEYS, 'PATCH answer');
    assert.equal(p.body.name, 'n1');
    assert.equal(p.body.cover, 'c0', 'fields not named are kept');
    const got = await expectDelivery('room.updated', (d) => d.id === r.id && d.name === 'n1', [o, m], [x]);
    assert.deepEqual(got[0], p.body);
    const c = await o.call('room.update', { room: r.id, name: 'n2' });
    const byClient = await expectDelivery('room.updated', (d) => d.id === r.id && d.name === 'n2', [o, m], [x]);
    assert.deepEqual(Object.keys(byClient[0]), Object.keys(got[0]), 'the same event shape as a client\'s change');
    assert.deepEqual(byClient[0], c);
    const p2 = await adm('PATCH', `/v1/rooms/${r.id}`, { cover: null, meta: null });
    assert.equal(p2.body.cover, null);
    assert.equal(p2.body.meta, null);
    assert.equal(p2.body.name, 'n2');
    assertHttp(await adm('PATCH', `/v1/rooms/${uid('missing')}`, { name: 'x' }), 404, 'not_found');
    assertHttp(await adm('PATCH', `/v1/rooms/${r.id}`, { name: 1 }), 400, 'bad_request');
    assertHttp(await adm('PATCH', `/v1/rooms/${r.id}`, { meta: 'x' }), 400, 'bad_request');
    assertHttp(await adm('PATCH', `/v1/rooms/${r.id}`, { meta: jsonOfSize(8193) }), 413, 'too_large');
    assertHttp(await adm('PATCH', `/v1/rooms/${enc('bad id')}`, { name: 'x' }), 400, 'bad_request');
});

test('DELETE /v1/rooms/{rid}: 204; room.left to every tab of every member, no member.left, nothing to outsiders; the room, its messages and its subscriptions are gone', async () => {
    const o = await user(cluster, [0, 1], { prefix: 'o' });
    const m = await user(cluster, [1, 0], { prefix: 'm' });
    const x = await user(cluster, [0, 1], { prefix: 'x' });
    const r = await group(o, [m]);
    await send(m, r.id, 'soon gone');
    const res = await adm('DELETE', `/v1/rooms/${r.id}`);
    assertHttp(res, 204);
    const left = await expectDelivery('room.left', (d) => d.room === r.id, [o, m], [x]);
    assert.deepEqual(left[0], { room: r.id });
    assertNone('member.left', (d) => d.room === r.id, [o, m, x], 'room deletion');
    assertHttp(await adm('GET', `/v1/rooms/${r.id}`), 404, 'not_found');
    assertHttp(await adm('GET', `/v1/rooms/${r.id}/messages`), 404, 'not_found');
    assertHttp(await adm('DELETE', `/v1/rooms/${r.id}`), 404, 'not_found', 'DELETE twice');
    await expectError(m, 'msg.send', { room: r.id, cid: uid('c'), type: 'text', text: 'x' }, 'not_found');
    assert.ok(!(await o.call('room.list', {})).rooms.some((e) => e.id === r.id));
    await cluster.roomFollowed(r.id, 0, 'both gateways unsubscribed the deleted room');
});

test('POST /v1/rooms/{rid}/members: 200 room; events as for a client\'s room.members.add (room.joined to the added, member.joined to the others, live messages at once)', async () => {
    const o = await user(cluster, [0], { prefix: 'o' });
    const m = await user(cluster, [1], { prefix: 'm' });
    const n = await user(cluster, [0, 1], { prefix: 'n' });
    const x = await user(cluster, [1], { prefix: 'x' });
    const r = await group(o, [m]);
    const res = await adm('POST', `/v1/rooms/${r.id}/members`, { members: [n.id] });
    assertHttp(res, 200);
    assertKeys(res.body, ROOM_KEYS, 'members answer');
    assert.equal(res.body.members_count, 3);
    await expectDelivery('room.joined', (d) => d.id === r.id && d.members_count === 3, [n], [o, m, x]);
    const mj = await expectDelivery('member.joined', (d) => d.room === r.id, [o, m], [n, x]);
    assert.deepEqual(mj[0], { room: r.id, members: [n.id] });
    const ack = await send(m, r.id, 'hi n');
    await expectDelivery('message', (d) => d.room === r.id && d.seq === ack.seq, [o, m, n], [x]);

    const d = await o.call('room.create', { type: 'direct', members: [m.id] });
    assertHttp(await adm('POST', `/v1/rooms/${d.id}/members`, { members: [n.id] }), 400, 'bad_request', 'direct room');
    assertHttp(await adm('POST', `/v1/rooms/${uid('missing')}/members`, { members: [n.id] }), 404, 'not_found');
    assertHttp(await adm('POST', `/v1/rooms/${r.id}/members`, { members: [] }), 400, 'bad_request');
    assertHttp(await adm('POST', `/v1/rooms/${r.id}/members`, {}), 400, 'bad_request');
    assertHttp(await adm('POST', `/v1/rooms/${r.id}/members`, { members: ['a b'] }), 400, 'bad_request');
});

test('DELETE /v1/rooms/{rid}/members/{id}: 204; room.left to the removed, member.left to the rest, nothing more to the removed; removing the owner hands the room over', async () => {
    const o = await user(cluster, [0], { prefix: 'o' });
    const m = await user(cluster, [1], { prefix: 'm' });
    const n = await user(cluster, [0, 1], { prefix: 'n' });
    const r = await group(o, [m, n]);
    const res = await adm('DELETE', `/v1/rooms/${r.id}/members/${n.id}`);
    assertHttp(res, 204);
    await expectDelivery('room.left', (d) => d.room === r.id, [n], [o, m]);
    await expectDelivery('member.left', (d) => d.room === r.id && d.member === n.id, [o, m], [n]);
    const seen = roomEvents(n, r.id).length;
    const ack = await send(o, r.id, 'after');
    await expectDelivery('message', (d) => d.room === r.id && d.seq === ack.seq, [o, m], [n]);
    assert.equal(roomEvents(n, r.id).length, seen);

    assertHttp(await adm('DELETE', `/v1/rooms/${r.id}/members/${o.id}`), 204, null, 'removing the owner');
    const upd = await expectDelivery('room.updated', (d) => d.id === r.id && d.owner === m.id, [m], [o, n]);
    assert.equal(upd[0].members_count, 1);
    await expectDelivery('room.left', (d) => d.room === r.id, [o], []);
    assertHttp(await adm('DELETE', `/v1/rooms/${r.id}/members/${uid('never')}`), 204, null, 'a non-member is ignored');
    assertHttp(await adm('DELETE', `/v1/rooms/${uid('missing')}/members/${m.id}`), 404, 'not_found');
    const d = await m.call('room.create', { type: 'direct', members: [o.id] });
    assertHttp(await adm('DELETE', `/v1/rooms/${d.id}/members/${o.id}`), 400, 'bad_request', 'direct room');
    assertHttp(await adm('DELETE', `/v1/rooms/${r.id}/members/${enc('a b')}`), 400, 'bad_request');
});

test('POST /v1/rooms/{rid}/messages: 201 {room, seq, ts, cid}; a message event to every tab of every member; idempotent on cid; 403 for a non-member sender; 404 / 400 / 413', async () => {
    const o = await user(cluster, [0, 1], { prefix: 'o' });
    const m = await user(cluster, [1], { prefix: 'm' });
    const x = await user(cluster, [0], { prefix: 'x' });
    const r = await group(o, [m]);
    const res = await adm('POST', `/v1/rooms/${r.id}/messages`, { from: o.id, type: 'text', text: 'from the backend', cid: 'order-1' });
    assertHttp(res, 201);
    assertKeys(res.body, ['room', 'seq', 'ts', 'cid'], 'message answer');
    assert.deepEqual([res.body.room, res.body.seq, res.body.cid], [r.id, 1, 'order-1']);
    const got = await expectDelivery('message', (d) => d.room === r.id && d.seq === 1, [o, m], [x]);
    assert.equal(got[0].from, o.id);
    assert.equal(got[0].text, 'from the backend');
    const again = await adm('POST', `/v1/rooms/${r.id}/messages`, { from: o.id, type: 'text', text: 'from the backend', cid: 'order-1' });
    assert.ok(again.status === 201 || again.status === 200, `retry: ${again.status}`);
    assert.deepEqual(again.body, res.body, 'a retry with the same cid answers the original');
    const img = await adm('POST', `/v1/rooms/${r.id}/messages`, { from: m.id, type: 'image', payload: { url: 'u' } });
    assertHttp(img, 201);
    assert.equal(img.body.seq, 2);
    assert.equal(typeof img.body.cid, 'string', 'a cid is made when none is given');
    await expectDelivery('message', (d) => d.room === r.id && d.seq === 2, [o, m], [x]);
    assert.equal((await o.call('msg.history', { room: r.id })).messages.length, 2);

    assertHttp(await adm('POST', `/v1/rooms/${r.id}/messages`, { from: x.id, type: 'text', text: 'x' }), 403, 'forbidden');
    assertHttp(await adm('POST', `/v1/rooms/${uid('missing')}/messages`, { from: o.id, type: 'text', text: 'x' }), 404, 'not_found');
    for (const [body, field] of [[{ type: 'text', text: 'x' }, 'from'], [{ from: o.id, text: 'x' }, 'type'], [{ from: o.id, type: 'video', text: 'x' }, 'type'],
        [{ from: o.id, type: 'text' }, 'text'], [{ from: o.id, type: 'image' }, 'payload'], [{ from: o.id, type: 'text', text: 'x', cid: 'bad cid' }, 'cid']]) {
        const e = await adm('POST', `/v1/rooms/${r.id}/messages`, body);
        assertHttp(e, 400, 'bad_request', JSON.stringify(body));
        assert.ok(e.body.error.message.includes(field), `${JSON.stringify(body)} should name ${field}: ${e.text}`);
    }
    assertHttp(await adm('POST', `/v1/rooms/${r.id}/messages`, { from: o.id, type: 'text', text: 'x'.repeat(16385) }), 413, 'too_large');
    assertHttp(await adm('POST', `/v1/rooms/${r.id}/messages`, { from: o.id, type: 'text', text: 'x'.repeat(16384) }), 201);
    assertHttp(await adm('POST', `/v1/rooms/${r.id}/messages`, { from: o.id, type: 'custom', payload: jsonOfSize(8193) }), 413, 'too_large');
});

test('GET /v1/rooms/{rid}/messages: 200 as msg.history (before / after exclusive, limit, has_more); 400 for both or a bad value; 404 unknown', async () => {
    const o = await user(cluster, [0], { prefix: 'o' });
    const r = await group(o, []);
    for (let i = 1; i <= 7; i++) {
        await send(o, r.id, `m${i}`);
    }
    const all = await adm('GET', `/v1/rooms/${r.id}/messages`);
    assertHttp(all, 200);
    assert.deepEqual(all.body.messages.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7]);
    assert.equal(all.body.has_more, false);
    assert.deepEqual(all.body, await o.call('msg.history', { room: r.id }), 'the same as msg.history');
    const newest = await adm('GET', `/v1/rooms/${r.id}/messages?limit=3`);
    assert.deepEqual(newest.body.messages.map((m) => m.seq), [5, 6, 7]);
    assert.equal(newest.body.has_more, true);
    const before = await adm('GET', `/v1/rooms/${r.id}/messages?before=5&limit=3`);
    assert.deepEqual(before.body.messages.map((m) => m.seq), [2, 3, 4]);
    assert.equal(before.body.has_more, true);
    const after = await adm('GET', `/v1/rooms/${r.id}/messages?after=5`);
    assert.deepEqual(after.body.messages.map((m) => m.seq), [6, 7]);
    assert.equal(after.body.has_more, false);
    const after2 = await adm('GET', `/v1/rooms/${r.id}/messages?after=2&limit=2`);
    assert.deepEqual(after2.body.messages.map((m) => m.seq), [3, 4]);
    assert.equal(after2.body.has_more, true);
    assertHttp(await adm('GET', `/v1/rooms/${r.id}/messages?before=5&after=2`), 400, 'bad_request');
    assertHttp(await adm('GET', `/v1/rooms/${r.id}/messages?before=abc`), 400, 'bad_request');
    assertHttp(await adm('GET', `/v1/rooms/${r.id}/messages?limit=x`), 400, 'bad_request');
    assertHttp(await adm('GET', `/v1/rooms/${uid('missing')}/messages`), 404, 'not_found');
    const clamped = await adm('GET', `/v1/rooms/${r.id}/messages?limit=100000`);
    assertHttp(clamped, 200);
    assert.equal(clamped.body.messages.length, 7);
});

// ---------------------------------------------------------------------------------------
// An admin change raises the same events as a client's

test('the same change by the admin API and by a client raises the same events to the same connections', async () => {
    const o = await user(cluster, [0, 1], { prefix: 'o' });
    const m = await user(cluster, [1, 0], { prefix: 'm' });
    const x = await user(cluster, [0, 1], { prefix: 'x' });
    const nA = await user(cluster, [0, 1], { prefix: 'nA' });
    const nC = await user(cluster, [0, 1], { prefix: 'nC' });
    const ra = await group(o, [m]); // changed by the admin API
    const rc = await group(o, [m]); // changed by the owner
    const shape = (who, rid) => roomEvents(who, rid).map((e) => e.split(':').slice(-1)[0]);
    const recipients = (rid, n) => [o, m, x, n].flatMap((u) => u.tabs.map((t, i) => `${u === n ? 'new' : u.id}#${i}:${shape(t, rid).join(',')}`));

    const steps = [
        [() => adm('PATCH', `/v1/rooms/${ra.id}`, { name: 'renamed' }), () => o.call('room.update', { room: rc.id, name: 'renamed' })],
        [() => adm('POST', `/v1/rooms/${ra.id}/members`, { members: [nA.id] }), () => o.call('room.members.add', { room: rc.id, members: [nC.id] })],
        [() => adm('POST', `/v1/rooms/${ra.id}/messages`, { from: m.id, type: 'text', text: 'same', cid: 'same' }), () => m.call('msg.send', { room: rc.id, type: 'text', text: 'same', cid: 'same' })],
        [() => adm('DELETE', `/v1/rooms/${ra.id}/members/${nA.id}`), () => o.call('room.members.remove', { room: rc.id, members: [nC.id] })],
    ];
    for (const [byAdmin, byClient] of steps) {
        await byAdmin();
        await byClient();
    }
    await sleep(QUIET_MS + 300);
    const a = recipients(ra.id, nA);
    const c = recipients(rc.id, nC);
    assert.deepEqual(roomEvents([nA], rc.id), []);
    assert.deepEqual(roomEvents([nC], ra.id), []);
    assert.deepEqual(a, c, 'who got which events, admin room vs client room');
    assert.ok(a.some((e) => e.includes('member.joined')) && a.some((e) => e.includes('room.left')), `events seen: ${a.join(' ')}`);
    // Same data, but for ids and times.
    const norm = (d, rid, n) => JSON.parse(JSON.stringify(d).replaceAll(rid, 'R').replaceAll(n, 'N').replace(/"(ts|created_at|updated_at|joined_at)":\d+/g, '"$1":0').replace(/"cid":"[^"]*"/g, '"cid":"C"'));
    for (const ev of ['room.updated', 'member.joined', 'message', 'member.left']) {
        const da = m.tabs[0].events(ev).filter((d) => d.room === ra.id || d.id === ra.id).map((d) => norm(d, ra.id, nA.id));
        const dc = m.tabs[0].events(ev).filter((d) => d.room === rc.id || d.id === rc.id).map((d) => norm(d, rc.id, nC.id));
        assert.deepEqual(da, dc, `${ev}: admin vs client`);
    }
    await expectSilence('room.joined', (d) => d.id === ra.id, [x], 'outsider', 0);
});
