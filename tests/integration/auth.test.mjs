// Authentication (PROTOCOL.md §2 "Authentication", §3 admin API key): JWT HS256 with kid
// rotation, opaque admin-issued tokens, refusals, the 3-failure and timeout closes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
    useCluster, jwt, nowSec, uid, assertOk, assertError, assertHttp, assertKeys, assertTs,
    CLIENT_KEYS, WsClient,
} from './lib/cluster.mjs';

const S1 = 'rotation-secret-one';
const S2 = 'rotation-secret-two';
const DEFAULT_SECRET = 'the-default-secret';

const cluster = useCluster({
    gateways: 1,
    workers: 1,
    secret: DEFAULT_SECRET,
    jwtSecrets: `${DEFAULT_SECRET},k1:${S1},k2:${S2}`,
});

// Opened before the first test and never authenticated: the last test checks that the
// server closed it 4401 after the 10 s auth timeout (so the wait overlaps the other tests).
let idle = null;
let idleOpenedAt = 0;
cluster.setup(async () => {
    idle = await cluster.adopt(new WsClient(cluster.wsUrl(0))).opened();
    idleOpenedAt = Date.now();
});

async function authOnFreshConnection(token) {
    const c = await cluster.connect(0);
    try {
        return await c.request('auth', { token });
    } finally {
        c.close();
    }
}

test('healthz answers 200 on both listeners, without any key', async () => {
    const pub = await cluster.publicGet('/healthz');
    assert.equal(pub.status, 200);
    const adm = await cluster.admin('GET', '/healthz', undefined, { key: null });
    assert.equal(adm.status, 200);
});

test('the imkit.v1 subprotocol is echoed when offered, none is chosen when none is offered, no extension is negotiated', async () => {
    const withProto = await cluster.connect(0, null, { protocols: ['imkit.v1'], perMessageDeflate: true });
    assert.equal(withProto.protocol, 'imkit.v1');
    assert.equal(withProto.extensions, '', 'permessage-deflate must not be negotiated');
    withProto.close();
    const without = await cluster.connect(0);
    assert.equal(without.protocol, '');
    without.close();
});

test('a JWT with name and avatar authenticates and creates the profile that client.get shows', async () => {
    const id = uid('alice');
    const avatar = 'https://cdn.example.com/a/alice.png';
    const before = Date.now();
    const a = await cluster.connect(0);
    const res = await a.request('auth', { token: cluster.token(id, { name: 'Alice', avatar }) });
    assertOk(res, 'auth');
    assert.equal(res.id, 1);
    assertKeys(res.data, ['client', 'session', 'server_time'], 'auth answer');
    assertKeys(res.data.client, CLIENT_KEYS, 'auth client');
    assert.equal(res.data.client.id, id);
    assert.equal(res.data.client.name, 'Alice');
    assert.equal(res.data.client.avatar, avatar);
    assert.equal(res.data.client.meta, null);
    assert.equal(typeof res.data.session, 'string');
    assert.ok(res.data.session.length > 0, 'session id is empty');
    assertTs(res.data.server_time, 'server_time');
    assert.ok(res.data.server_time >= before - 1000, 'server_time before the request was sent');

    const bobId = uid('bob');
    const b = await cluster.login(0, bobId, { name: 'Bob' });
    const got = await b.call('client.get', { ids: [id, 'never-seen-' + uid('x')] });
    assertKeys(got, ['clients'], 'client.get answer');
    assert.equal(got.clients.length, 1, `unknown ids are left out: ${JSON.stringify(got)}`);
    const c = got.clients[0];
    assertKeys(c, [...CLIENT_KEYS, 'online', 'last_seen'], 'client.get client');
    assert.equal(c.id, id);
    assert.equal(c.name, 'Alice');
    assert.equal(c.avatar, avatar);
    assert.equal(c.online, true, 'alice has an open authenticated connection');

    // A later auth with a new name updates the profile; one without name/avatar keeps them.
    const a2 = await cluster.login(0, id, { name: 'Alice Liddell' });
    assert.equal(a2.authResult.client.name, 'Alice Liddell');
    assert.equal(a2.authResult.client.avatar, avatar, 'a JWT without avatar must not clear the avatar');
    const a3 = await cluster.login(0, id);
    assert.equal(a3.authResult.client.name, 'Alice Liddell', 'a JWT without name must not clear the name');
    const got2 = await b.call('client.get', { ids: [id] });
    assert.equal(got2.clients[0].name, 'Alice Liddell');
    for (const x of [a, a2, a3, b]) {
        x.close();
    }
});

/** Jobs ever added to the job streams (XINFO STREAM entries-added, summed). */
async function jobsAdded() {
    let n = 0;
    for (let p = 0; p < cluster.partitions; p++) {
        const info = await cluster.redisRaw(['XINFO', 'STREAM', await cluster.jobStream(p)]).catch(() => '');
        const m = info.match(/entries-added\n(\d+)/);
        n += m ? Number(m[1]) : 0;
    }
    return n;
}

test('a returning client whose token changes nothing authenticates with a read, without a job; a change goes as a job', async () => {
    const id = uid('back');
    const first = await cluster.login(0, id, { name: 'Back' });
    assert.equal(first.authResult.client.name, 'Back');
    const before = await jobsAdded();
    const again = await cluster.login(0, id, { name: 'Back' });
    const plain = await cluster.login(0, id);
    assert.equal(again.authResult.client.name, 'Back');
    assert.equal(plain.authResult.client.name, 'Back');
    assert.equal(await jobsAdded(), before, 'a returning client\'s auth added a job');
    const renamed = await cluster.login(0, id, { name: 'Back Again' });
    assert.equal(renamed.authResult.client.name, 'Back Again');
    assert.equal(await jobsAdded(), before + 1, 'a new name is written by exactly one auth job');
    for (const c of [first, again, plain, renamed]) {
        c.close();
    }
});

test('a client first created without name is named by its id', async () => {
    const id = uid('noname');
    const c = await cluster.login(0, id);
    assert.equal(c.authResult.client.id, id);
    assert.equal(c.authResult.client.name, id);
    assert.equal(c.authResult.client.avatar, null);
    c.close();
});

test('kid selects the secret; a token without kid is checked against every secret; iat/nbf within 60 s skew are accepted', async () => {
    const cases = [
        ['kid k1 signed with its secret', jwt(S1, { sub: uid('k'), exp: nowSec() + 600 }, { kid: 'k1' })],
        ['kid k2 signed with its secret', jwt(S2, { sub: uid('k'), exp: nowSec() + 600 }, { kid: 'k2' })],
        ['no kid, signed with the default secret', jwt(DEFAULT_SECRET, { sub: uid('k'), exp: nowSec() + 600 })],
        ['no kid, signed with k2\'s secret', jwt(S2, { sub: uid('k'), exp: nowSec() + 600 })],
        ['iat 30 s in the future', cluster.token(uid('k'), { iat: nowSec() + 30 })],
        ['nbf 30 s in the future', cluster.token(uid('k'), { nbf: nowSec() + 30 })],
        ['iat and nbf in the past', cluster.token(uid('k'), { iat: nowSec() - 100, nbf: nowSec() - 100 })],
    ];
    for (const [what, token] of cases) {
        const res = await authOnFreshConnection(token);
        assertOk(res, `auth (${what})`);
    }
});

test('refused tokens answer unauthenticated: expired, bad signature, alg none, other alg, wrong kid, missing claims, future iat/nbf, garbage', async () => {
    const sub = uid('bad');
    const good = cluster.token(sub);
    const [h, p, s] = good.split('.');
    const flipped = s[0] === 'A' ? 'B' + s.slice(1) : 'A' + s.slice(1);
    const cases = [
        ['expired (exp 5 s ago)', cluster.token(sub, { exp: nowSec() - 5 })],
        ['expired (exp = now - 1, no leeway)', cluster.token(sub, { exp: nowSec() - 1 })],
        ['bad signature (other secret)', jwt('not-the-secret', { sub, exp: nowSec() + 600 })],
        ['bad signature (one character changed)', `${h}.${p}.${flipped}`],
        ['payload changed after signing', `${h}.${Buffer.from(JSON.stringify({ sub: 'someone-else', exp: nowSec() + 600 })).toString('base64url')}.${s}`],
        ['alg none', jwt('', { sub, exp: nowSec() + 600 }, { alg: 'none' })],
        ['alg none with a valid HS256 signature attached', `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.${s}`],
        ['alg HS512', jwt(DEFAULT_SECRET, { sub, exp: nowSec() + 600 }, { alg: 'HS512' })],
        ['unknown kid (signed with the default secret)', jwt(DEFAULT_SECRET, { sub, exp: nowSec() + 600 }, { kid: 'k9' })],
        ['kid k1 but signed with k2\'s secret', jwt(S2, { sub, exp: nowSec() + 600 }, { kid: 'k1' })],
        ['no exp', jwt(DEFAULT_SECRET, { sub })],
        ['no sub', jwt(DEFAULT_SECRET, { exp: nowSec() + 600 })],
        ['sub outside the id alphabet', jwt(DEFAULT_SECRET, { sub: 'has space', exp: nowSec() + 600 })],
        ['nbf 5 minutes in the future', cluster.token(sub, { nbf: nowSec() + 300 })],
        ['iat 5 minutes in the future', cluster.token(sub, { iat: nowSec() + 300 })],
        ['garbage', 'not-a-token'],
        ['three dots of garbage', 'a.b.c'],
        ['unknown opaque token', 'imk_' + 'x'.repeat(40)],
    ];
    const failures = [];
    for (const [what, token] of cases) {
        const res = await authOnFreshConnection(token);
        if (!(res.ok === false && res.error && res.error.code === 'unauthenticated')) {
            failures.push(`${what}: ${JSON.stringify(res)}`);
        }
    }
    assert.deepEqual(failures, [], `tokens that should have been refused with unauthenticated:\n${failures.join('\n')}`);
});

test('operations before auth answer unauthenticated; auth still works afterwards', async () => {
    const c = await cluster.connect(0);
    assertError(await c.request('ping'), 'unauthenticated', null, 'ping before auth');
    assertError(await c.request('room.list', {}), 'unauthenticated', null, 'room.list before auth');
    const id = uid('late');
    const res = await c.request('auth', { token: cluster.token(id) });
    assertOk(res, 'auth after refused ops');
    assert.equal(res.data.client.id, id);
    const pong = await c.call('ping');
    assertTs(pong.ts, 'ping ts');
    c.close();
});

test('three failed auth attempts close the connection with 4401', async () => {
    const c = await cluster.connect(0);
    const bad = jwt('wrong-secret', { sub: uid('x'), exp: nowSec() + 600 });
    assertError(await c.request('auth', { token: bad }), 'unauthenticated', null, 'first failed auth');
    assert.ok(c.isOpen, 'closed after one failure');
    assertError(await c.request('auth', { token: bad }), 'unauthenticated', null, 'second failed auth');
    assert.ok(c.isOpen, 'closed after two failures');
    const third = await c.request('auth', { token: bad }).catch((e) => ({ closedBeforeAnswer: e.message }));
    if (!third.closedBeforeAnswer) {
        assertError(third, 'unauthenticated', null, 'third failed auth');
    }
    const { code } = await c.waitClose(3000);
    assert.equal(code, 4401);
});

test('a second auth on an authenticated connection is bad_request and changes nothing', async () => {
    const id = uid('twice');
    const c = await cluster.login(0, id);
    const res = await c.request('auth', { token: cluster.token(uid('other')) });
    assertError(res, 'bad_request', null, 'second auth');
    assert.ok(c.isOpen);
    const me = await c.call('client.get', { ids: [id] });
    assert.equal(me.clients.length, 1);
    const list = await c.call('room.list', {});
    assert.ok(Array.isArray(list.rooms));
    c.close();
});

test('an opaque token issued by POST /v1/clients/{id}/tokens authenticates its client', async () => {
    const id = uid('dave');
    const put = await cluster.admin('PUT', `/v1/clients/${id}`, { name: 'Dave' });
    assertHttp(put, 200, null, 'PUT client');
    const issued = await cluster.admin('POST', `/v1/clients/${id}/tokens`, { ttl: 3600 });
    assertHttp(issued, 201, null, 'POST tokens');
    assert.equal(typeof issued.body.token, 'string');
    const c = await cluster.connect(0);
    const res = await c.request('auth', { token: issued.body.token });
    assertOk(res, 'auth with opaque token');
    assert.equal(res.data.client.id, id);
    assert.equal(res.data.client.name, 'Dave');
    c.close();

    const tampered = issued.body.token.slice(0, -1) + (issued.body.token.endsWith('A') ? 'B' : 'A');
    assertError(await authOnFreshConnection(tampered), 'unauthenticated', null, 'auth with a changed opaque token');
});

test('an opaque token whose key does not hold "<client id> <issued at>" is refused as unknown', async () => {
    const token = `imk_${uid('raw')}`;
    const key = `${cluster.prefix}tok:${createHash('sha256').update(token).digest('hex')}`;
    for (const value of ['garbage', 'bob', 'bob 12x', 'b/b 12', ' 12', 'bob -1', `${'a'.repeat(65)} 12`]) {
        await cluster.redis('SET', key, value, 'EX', 60);
        const res = await authOnFreshConnection(token);
        assertError(res, 'unauthenticated', null, `a token key holding '${value}'`);
        assert.equal(res.error.message, 'unknown or expired token', `the message for '${value}'`);
    }
    await cluster.redis('SET', key, 'bob 12', 'EX', 60);
    assertOk(await authOnFreshConnection(token), 'the same key holding a client and a time');
    await cluster.redis('DEL', key);
});

test('the admin API answers 401 without a key or with a wrong one', async () => {
    const id = uid('x');
    for (const [what, opts] of [
        ['no Authorization', { key: null }],
        ['wrong key', { key: 'wrong-key' }],
        ['empty key', { key: '' }],
        ['Basic scheme with the right key', { key: null, headers: { authorization: `Basic ${cluster.apiKey}` } }],
    ]) {
        const get = await cluster.admin('GET', `/v1/clients/${id}`, undefined, opts);
        assertHttp(get, 401, 'unauthenticated', `GET client, ${what}`);
        const put = await cluster.admin('PUT', `/v1/clients/${id}`, { name: 'X' }, opts);
        assertHttp(put, 401, 'unauthenticated', `PUT client, ${what}`);
    }
    // Nothing was created by the refused PUTs.
    assertHttp(await cluster.admin('GET', `/v1/clients/${id}`), 404, 'not_found', 'GET client after refused PUTs');
});

test('an open connection is closed 4401 when its token expires', async () => {
    const c = await cluster.connect(0, jwt(DEFAULT_SECRET, { sub: uid('short'), exp: nowSec() + 2 }));
    const pong = await c.call('ping');
    assertTs(pong.ts);
    const { code } = await c.waitClose(6000);
    assert.equal(code, 4401);
});

test('a connection that never sends auth is closed 4401 after the 10 s auth timeout', async () => {
    const remaining = Math.max(0, idleOpenedAt + 13000 - Date.now());
    const { code, at } = await idle.waitClose(remaining + 500);
    const elapsed = at - idleOpenedAt;
    assert.equal(code, 4401);
    assert.ok(elapsed >= 9500, `closed after ${elapsed} ms, before the 10 s auth timeout`);
});
