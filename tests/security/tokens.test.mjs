// Tokens, through the real `auth` op: only HS256 with a known kid (or the default key) and
// sound claims authenticate; everything else is `unauthenticated` and leaves the connection
// unauthenticated. Revocation is honoured for JWTs and opaque tokens alike; opaque tokens are
// stored only as their SHA-256; no token, API key or secret is ever written to a log.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { useCluster, RawWs, jwt, b64url, nowSec, uid, sleep, serverLogLines, assertHealthy } from './lib/sec.mjs';

const KID_SECRET = `kid-secret-${randomBytes(8).toString('hex')}`;
const DEFAULT_SECRET = `default-secret-${randomBytes(8).toString('hex')}`;
const cluster = useCluster({
    secret: DEFAULT_SECRET,
    jwtSecrets: `k1:${KID_SECRET},${DEFAULT_SECRET}`,
    gatewaySet: { 'limits.auth_failures': 100 },
});
const port = () => cluster.gateways[0].publicPort;

/** Every token, key and secret used in this file: none may appear in a server log. */
const secrets = new Set([KID_SECRET, DEFAULT_SECRET]);
const remember = (t) => {
    secrets.add(t);
    return t;
};

/** Signs `header.payload` as given (objects are JSON-encoded) with HMAC-`hash`. */
function signed(header, payload, { secret = DEFAULT_SECRET, hash = 'sha256' } = {}) {
    const enc = (x) => (typeof x === 'string' ? x : b64url(JSON.stringify(x)));
    const input = `${enc(header)}.${enc(payload)}`;
    return `${input}.${createHmac(hash, Buffer.from(secret)).update(input).digest('base64url')}`;
}

let conn;
async function tryAuth(token) {
    // A fresh connection now and then: two requests per case, well within the burst (100).
    if (!conn || conn.tcpClosedAt || conn.closeCode !== null || conn.nextId > 40) {
        conn?.close();
        conn = await RawWs.open(port());
    }
    const res = await conn.request('auth', { token: remember(token) });
    return res;
}

/** Asserts each token is refused unauthenticated and that the connection stays unauthenticated. */
async function expectRefused(cases) {
    const wrong = [];
    for (const [what, token] of cases) {
        const res = await tryAuth(token);
        if (res.ok !== false || res.error?.code !== 'unauthenticated') {
            wrong.push(`${what}: ${JSON.stringify(res)}`);
            if (res.ok) {
                conn.close();
                conn = null;
            }
            continue;
        }
        const after = await conn.request('ping');
        if (after.error?.code !== 'unauthenticated') {
            wrong.push(`${what}: refused, yet the connection acts authenticated: ${JSON.stringify(after)}`);
        }
    }
    assert.ok(wrong.length === 0, `${wrong.length} of ${cases.length} bad tokens not refused as unauthenticated:\n  ${wrong.join('\n  ')}`);
}

async function expectAccepted(token, sub) {
    const ws = await RawWs.open(port());
    const res = await ws.request('auth', { token: remember(token) });
    ws.close();
    assert.equal(res.ok, true, `expected accepted: ${JSON.stringify(res)}`);
    assert.equal(res.data.client.id, sub);
}

const claims = (extra = {}) => ({ sub: 'tok-user', exp: nowSec() + 600, ...extra });

test('controls: HS256 with the default key, with kid k1, with nbf/iat inside the 60 s skew are accepted', async () => {
    await expectAccepted(jwt(DEFAULT_SECRET, claims()), 'tok-user');
    await expectAccepted(jwt(KID_SECRET, claims(), { kid: 'k1' }), 'tok-user');
    await expectAccepted(jwt(DEFAULT_SECRET, claims({ nbf: nowSec() + 30, iat: nowSec() + 30 })), 'tok-user');
});

test('alg none (any spelling), other HMACs (HS384, HS512) and asymmetric algs are refused', async () => {
    const h = (alg) => ({ alg, typ: 'JWT' });
    await expectRefused([
        ['alg none, empty signature', jwt(DEFAULT_SECRET, claims(), { alg: 'none' })],
        ['alg none with an HS256 signature', signed(h('none'), claims())],
        ['alg None', signed(h('None'), claims())],
        ['alg NONE', `${b64url(JSON.stringify(h('NONE')))}.${b64url(JSON.stringify(claims()))}.`],
        ['alg hs256 (lower case)', signed(h('hs256'), claims())],
        ['alg "HS256 "', signed(h('HS256 '), claims())],
        ['alg HS384', signed(h('HS384'), claims(), { hash: 'sha384' })],
        ['alg HS512', signed(h('HS512'), claims(), { hash: 'sha512' })],
        ['alg HS512 header, HS256 signature', signed(h('HS512'), claims())],
        ['alg RS256 with an HMAC signature (alg confusion)', signed(h('RS256'), claims())],
        ['alg ES256', signed(h('ES256'), claims())],
        ['no alg', signed({ typ: 'JWT' }, claims())],
        ['alg as an array', signed({ alg: ['HS256'] }, claims())],
        ['crit header', signed({ alg: 'HS256', crit: ['exp'] }, claims())],
    ]);
});

test('missing, non-numeric and past exp are refused', async () => {
    const { exp, ...noExp } = claims();
    await expectRefused([
        ['missing exp', jwt(DEFAULT_SECRET, noExp)],
        ['exp a string', jwt(DEFAULT_SECRET, claims({ exp: String(nowSec() + 600) }))],
        ['exp null', jwt(DEFAULT_SECRET, claims({ exp: null }))],
        ['exp true', jwt(DEFAULT_SECRET, claims({ exp: true }))],
        ['exp an object', jwt(DEFAULT_SECRET, claims({ exp: { n: nowSec() + 600 } }))],
        ['exp an array', jwt(DEFAULT_SECRET, claims({ exp: [nowSec() + 600] }))],
        ['exp one second ago (no leeway)', jwt(DEFAULT_SECRET, claims({ exp: nowSec() - 1 }))],
        ['exp 0', jwt(DEFAULT_SECRET, claims({ exp: 0 }))],
        ['exp negative', jwt(DEFAULT_SECRET, claims({ exp: -1 }))],
    ]);
});

test('nbf or iat beyond the 60 s skew is refused; so are non-numeric ones', async () => {
    await expectRefused([
        ['nbf now + 120 s', jwt(DEFAULT_SECRET, claims({ nbf: nowSec() + 120 }))],
        ['nbf now + 1 h', jwt(DEFAULT_SECRET, claims({ nbf: nowSec() + 3600 }))],
        ['iat now + 120 s', jwt(DEFAULT_SECRET, claims({ iat: nowSec() + 120 }))],
        ['nbf a string', jwt(DEFAULT_SECRET, claims({ nbf: '0' }))],
        ['iat a string', jwt(DEFAULT_SECRET, claims({ iat: '0' }))],
    ]);
});

test('bad base64url in any segment is refused', async () => {
    const good = jwt(DEFAULT_SECRET, claims());
    const [h, p, s] = good.split('.');
    // A correctly signed token whose signature, in standard base64, holds + or /.
    let stdSig;
    for (let i = 0; !stdSig; i++) {
        const t = jwt(DEFAULT_SECRET, claims({ n: i }));
        const sig = t.split('.')[2];
        const std = Buffer.from(sig, 'base64url').toString('base64').replace(/=+$/, '');
        if (std !== sig) {
            stdSig = `${t.split('.').slice(0, 2).join('.')}.${std}`;
        }
    }
    // A payload whose standard base64 holds '+' or '/': re-sign it so that only the encoding is wrong.
    const weird = claims({ name: '~~~???>>>' });
    const weirdStd = Buffer.from(JSON.stringify(weird)).toString('base64');
    assert.ok(/[+/=]/.test(weirdStd), 'the test payload has + / or = in standard base64');
    await expectRefused([
        ['standard base64 payload (+ / =), correctly signed', signed(h, weirdStd)],
        ['padding on the header', signed(`${h}=`, p)],
        ['padding on the signature', `${h}.${p}.${s}=`],
        ['a correct signature in standard base64 (+ or /)', stdSig],
        ['a correct signature in standard base64 with its = padding', `${stdSig}=`],
        ['a * in the payload', signed(h, `${p.slice(0, 4)}*${p.slice(5)}`)],
        ['a space in the header', signed(`${h.slice(0, 3)} ${h.slice(4)}`, p)],
        ['a NUL-free but non-JSON header', signed(b64url('not json'), p)],
        ['a JSON array header', signed(b64url('["HS256"]'), p)],
        ['a header with a trailing byte', signed(`${h}A`, p)],
        ['a signature one character short', `${h}.${p}.${s.slice(0, -1)}`],
        ['a signature with a character more', `${h}.${p}.${s}A`],
        ['an empty payload', signed(h, '')],
    ]);
});

test('extra or missing segments are refused', async () => {
    const good = jwt(DEFAULT_SECRET, claims());
    const [h, p, s] = good.split('.');
    await expectRefused([
        ['four segments', `${good}.${s}`],
        ['a trailing dot', `${good}.`],
        ['an empty segment inside', `${h}..${p}.${s}`],
        ['two segments', `${h}.${p}`],
        ['a leading dot', `.${good}`],
        ['five segments signed over four', (() => {
            const input = `${h}.${p}.${h}`;
            return `${input}.${createHmac('sha256', DEFAULT_SECRET).update(input).digest('base64url')}`;
        })()],
    ]);
});

test('an unknown kid is refused even when the default key signed it; so are a wrong secret and a tampered payload', async () => {
    const good = jwt(DEFAULT_SECRET, claims());
    const [h, , s] = good.split('.');
    await expectRefused([
        ['unknown kid, default key', jwt(DEFAULT_SECRET, claims(), { kid: 'nope' })],
        ['unknown kid, k1 key', jwt(KID_SECRET, claims(), { kid: 'k2' })],
        ['kid k1, default key', jwt(DEFAULT_SECRET, claims(), { kid: 'k1' })],
        ['kid a number', signed({ alg: 'HS256', kid: 1 }, claims())],
        ['kid empty', jwt(DEFAULT_SECRET, claims(), { kid: '' })],
        ['another secret', jwt('not-the-secret', claims())],
        ['the secret with one more byte', jwt(`${DEFAULT_SECRET}x`, claims())],
        ['a tampered payload (other sub), original signature', `${h}.${b64url(JSON.stringify(claims({ sub: 'admin' })))}.${s}`],
        ['duplicate sub in the payload', signed({ alg: 'HS256', typ: 'JWT' }, b64url(`{"sub":"tok-user","sub":"admin","exp":${nowSec() + 600}}`))],
        ['sub with characters outside the id alphabet', jwt(DEFAULT_SECRET, claims({ sub: 'a b' }))],
        ['sub of 65 bytes', jwt(DEFAULT_SECRET, claims({ sub: 'a'.repeat(65) }))],
        ['no sub', jwt(DEFAULT_SECRET, { exp: nowSec() + 600 })],
        ['an unknown opaque token', randomBytes(32).toString('base64url')],
    ]);
    await assertHealthy(cluster);
});

test('revocation: DELETE /v1/clients/{id}/tokens closes the open connections 4403 and refuses every older token; a later one works', async () => {
    const id = uid('revoked');
    const iat = nowSec();
    const oldJwt = remember(jwt(DEFAULT_SECRET, { sub: id, iat, exp: iat + 600 }));
    const noIat = remember(jwt(DEFAULT_SECRET, { sub: id, exp: iat + 600 }));
    const issued = await cluster.admin('POST', `/v1/clients/${id}/tokens`, {});
    assert.equal(issued.status, 201, issued.text);
    const oldOpaque = remember(issued.body.token);
    const a = await RawWs.open(port());
    assert.equal((await a.request('auth', { token: oldJwt })).ok, true);
    const b = await RawWs.open(port());
    assert.equal((await b.request('auth', { token: oldOpaque })).ok, true);

    const del = await cluster.admin('DELETE', `/v1/clients/${id}/tokens`);
    assert.equal(del.status, 204, del.text);
    const revokedAt = nowSec();
    assert.equal((await a.waitClose(5000)).code, 4403, 'the JWT connection is closed 4403');
    assert.equal((await b.waitClose(5000)).code, 4403, 'the opaque-token connection is closed 4403');

    await expectRefused([
        ['the JWT issued before the revocation', oldJwt],
        ['the opaque token issued before the revocation', oldOpaque],
        ['a JWT without iat', noIat],
        ['a JWT issued at (or just before) the revocation second', jwt(DEFAULT_SECRET, { sub: id, iat: revokedAt - 1, exp: iat + 600 })],
    ]);
    // The next second, new tokens work.
    while (nowSec() <= revokedAt) {
        await sleep(50);
    }
    await sleep(20);
    const later = nowSec();
    await expectAccepted(jwt(DEFAULT_SECRET, { sub: id, iat: later, exp: later + 600 }), id);
    const fresh = await cluster.admin('POST', `/v1/clients/${id}/tokens`, {});
    assert.equal(fresh.status, 201, fresh.text);
    await expectAccepted(fresh.body.token, id);
    // And the old ones are still refused.
    await expectRefused([['the old JWT, again', oldJwt], ['the old opaque token, again', oldOpaque]]);
});

test('an opaque token is stored only as its SHA-256: redis holds the hash, never the token', async () => {
    const id = uid('opaque');
    const issued = await cluster.admin('POST', `/v1/clients/${id}/tokens`, { ttl: 600 });
    assert.equal(issued.status, 201, issued.text);
    const token = remember(issued.body.token);
    assert.ok(token.length >= 40, `token ${token}`);
    await expectAccepted(token, id);
    const hash = createHash('sha256').update(token).digest('hex');
    const keys = await cluster.keys(`${cluster.prefix}tok:*`);
    assert.ok(keys.includes(`${cluster.prefix}tok:${hash}`), `no key ${cluster.prefix}tok:<sha256> among ${keys.join(', ')}`);
    assert.ok(!keys.some((k) => k.includes(token)), 'a key holds the token itself');
    const ttl = Number(await cluster.redisRaw(['TTL', `${cluster.prefix}tok:${hash}`]));
    assert.ok(ttl > 0 && ttl <= 600, `the hash expires with the token: TTL ${ttl}`);
    // Nowhere in Redis: every key, whatever its type (streams of jobs included).
    const all = await cluster.keys('*');
    const found = [];
    for (const key of all) {
        const type = await cluster.redisRaw(['TYPE', key]);
        const dump = {
            string: ['GET', key], hash: ['HGETALL', key], list: ['LRANGE', key, 0, -1], set: ['SMEMBERS', key],
            zset: ['ZRANGE', key, 0, -1, 'WITHSCORES'], stream: ['XRANGE', key, '-', '+'],
        }[type];
        if (dump) {
            const text = await cluster.redisRaw(dump, 10000);
            if (text.includes(token)) {
                found.push(`${key} (${type})`);
            }
        }
    }
    assert.deepEqual(found, [], `the opaque token is stored in clear in ${found.join(', ')}`);
});

test('no token, API key or secret appears in the gateway or worker logs', async () => {
    // Make the logs interesting first: a wrong API key, a failed and a successful auth, a
    // revocation; the harness runs every process at log.level=debug.
    const wrongKey = remember(`${cluster.apiKey}-wrong`);
    const r = await cluster.admin('GET', '/v1/clients/nobody', undefined, { key: wrongKey });
    assert.equal(r.status, 401);
    secrets.add(cluster.apiKey);
    const procs = [...cluster.gateways.map((g) => g.proc), ...cluster.workers.map((w) => w.proc)];
    const leaks = [];
    for (const p of procs) {
        const lines = serverLogLines(p);
        assert.ok(lines.length > 0, `${p.name} logged something`);
        for (const s of secrets) {
            // Whole tokens, and for JWTs the signature alone.
            const needles = [s, ...(s.split('.').length === 3 && s.split('.')[2].length >= 20 ? [s.split('.')[2]] : [])];
            for (const n of needles) {
                const line = lines.find((l) => l.includes(n));
                if (line) {
                    leaks.push(`${p.name}: ${line.slice(0, 200)}`);
                }
            }
        }
    }
    assert.deepEqual(leaks, [], `${leaks.length} log lines hold a token, key or secret:\n${leaks.join('\n')}`);
});
