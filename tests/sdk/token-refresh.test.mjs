// Token refresh against the real server (SDK.md: "Token expiry or revocation (close
// 4401/4403) calls token() again once; if that fails, state becomes closed and an error
// event says why"): a JWT with a short exp, revocation through the admin API, and a
// refreshed token that is refused too. 2 gateways, 2 workers, Redis.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    useSdkCluster, sdkClient, rejectsWithCode, makeFlakyWebSocket, uid, sleep, jwt, nowSec, waitFor,
} from './lib/sdk-cluster.mjs';

const cluster = useSdkCluster({ gateways: 2, workers: 2 });

/** A JWT for `sub` signed with the cluster's secret, `ttl` seconds from now, iat = now. */
function shortJwt(sub, ttl, claims = {}) {
    const now = nowSec();
    return jwt(cluster.secret, { sub, iat: now, exp: now + ttl, ...claims });
}

/** Waits until the wall clock is in a later whole second than `sec`. */
async function nextSecondAfter(sec) {
    while (nowSec() <= sec) {
        await sleep(20);
    }
}

test('an expired JWT: the server closes 4401, the SDK calls token() again and reconnects with the new one', { timeout: 30000 }, async () => {
    const id = uid('exp');
    const calls = [];
    const net = await makeFlakyWebSocket();
    const x = sdkClient(cluster, {
        gateway: 1,
        WebSocket: net.WebSocket,
        token: () => {
            calls.push(Date.now());
            return calls.length === 1 ? shortJwt(id, 2) : shortJwt(id, 3600);
        },
    });
    await x.im.connect();
    const room = await x.im.createDirect(uid('peer'));
    assert.equal(calls.length, 1);

    await x.waitState('reconnecting', 6000); // the 2 s token ran out
    await x.waitState('open', 10000);
    assert.equal(calls.length, 2, 'token() was called once more');
    assert.deepEqual(net.closes, [4401], 'the server closed with 4401');
    assert.deepEqual(x.events('error'), [], 'no error event for a refresh that worked');
    assert.deepEqual(x.events('state'), ['connecting', 'open', 'reconnecting', 'open']);

    // The session works with the new token, and stays up past the old token's expiry.
    const sent = await x.im.send(room.id, 'after the refresh');
    assert.equal(sent.seq, 1);
    await sleep(1500);
    assert.equal(x.state, 'open');
    assert.equal(calls.length, 2);
    x.close();
});

test('a second expiry gets a second refresh (each refusal after a successful auth has its own)', { timeout: 30000 }, async () => {
    const id = uid('exp2');
    let calls = 0;
    const x = sdkClient(cluster, {
        gateway: 0,
        token: () => {
            calls += 1;
            return calls <= 2 ? shortJwt(id, 2) : shortJwt(id, 3600);
        },
    });
    await x.im.connect();
    await waitFor(() => calls === 3 && x.state === 'open', 15000, 'two refreshes, then open');
    assert.deepEqual(x.events('error'), []);
    await x.im.request('ping');
    x.close();
});

test('revocation (DELETE /v1/clients/{id}/tokens): closed 4403, token() is called again, the new token works', { timeout: 30000 }, async () => {
    const id = uid('rev');
    let calls = 0;
    let revokedAt = null;
    const net = await makeFlakyWebSocket();
    const x = sdkClient(cluster, {
        gateway: 1,
        WebSocket: net.WebSocket,
        token: async () => {
            calls += 1;
            if (revokedAt !== null) {
                // A token issued in the second of the revocation is refused too (iat whole
                // seconds): a backend that mints right away would need to wait this long.
                await nextSecondAfter(revokedAt);
            }
            return shortJwt(id, 3600);
        },
    });
    await x.im.connect();
    const room = await x.im.createDirect(uid('peer'));
    revokedAt = nowSec();
    const res = await cluster.admin('DELETE', `/v1/clients/${id}/tokens`);
    assert.equal(res.status, 204, res.text);
    await x.waitState('reconnecting', 5000);
    await x.waitState('open', 10000);
    assert.equal(calls, 2, 'token() was called once more');
    assert.deepEqual(net.closes, [4403], 'the server closed with 4403');
    assert.deepEqual(x.events('error'), []);
    assert.equal((await x.im.send(room.id, 'back')).seq, 1);
    x.close();
});

test('revocation with a refreshed token that is refused too: state closed, then an error event (forbidden or unauthenticated)', { timeout: 30000 }, async () => {
    const id = uid('rev2');
    let calls = 0;
    const stale = shortJwt(id, 3600); // issued before the revocation: refused after it
    const x = sdkClient(cluster, {
        gateway: 0,
        token: () => {
            calls += 1;
            return stale;
        },
    });
    await x.im.connect();
    await sleep(1100); // the revocation falls in a later second than the token's iat...
    const res = await cluster.admin('DELETE', `/v1/clients/${id}/tokens`);
    assert.equal(res.status, 204, res.text);
    const error = await x.waitEvent('error', () => true, 10000);
    assert.equal(x.state, 'closed');
    assert.ok(['unauthenticated', 'forbidden'].includes(error.code), `error code ${error.code}: ${error.message}`);
    assert.equal(calls, 2, 'token() is called once more, not in a loop');
    await sleep(1500);
    assert.equal(calls, 2);
    assert.equal(x.state, 'closed');
    await rejectsWithCode(x.im.request('ping'), 'closed', 'a request after the SDK gave up');
});

test('a token() that throws on refresh: closed, error unauthenticated with the cause', { timeout: 30000 }, async () => {
    const id = uid('thr');
    let calls = 0;
    const x = sdkClient(cluster, {
        gateway: 1,
        token: () => {
            calls += 1;
            if (calls > 1) {
                throw new Error('backend down');
            }
            return shortJwt(id, 2);
        },
    });
    await x.im.connect();
    const error = await x.waitEvent('error', () => true, 10000);
    assert.equal(error.code, 'unauthenticated');
    assert.equal(error.cause?.message, 'backend down');
    assert.equal(x.state, 'closed');
    assert.equal(calls, 2);
});

test('a deleted client (DELETE /v1/clients/{id}) is closed 4403; the refreshed JWT makes it anew, in no room', { timeout: 30000 }, async () => {
    const id = uid('del');
    let calls = 0;
    const net = await makeFlakyWebSocket();
    const x = sdkClient(cluster, {
        gateway: 0,
        WebSocket: net.WebSocket,
        token: async () => {
            calls += 1;
            if (calls > 1) {
                await sleep(1100); // a fresh iat, in a later second than the deletion
            }
            return shortJwt(id, 3600, { name: 'Again' });
        },
    });
    await x.im.connect();
    await x.im.createDirect(uid('peer'));
    assert.equal((await x.im.listRooms()).rooms.length, 1);
    const res = await cluster.admin('DELETE', `/v1/clients/${id}`);
    assert.equal(res.status, 204, res.text);
    await x.waitState('reconnecting', 5000);
    await x.waitState('open', 10000);
    assert.deepEqual(net.closes, [4403]);
    assert.equal(calls, 2);
    assert.equal((await x.im.listRooms()).rooms.length, 0, 'the deleted client left every room');
    x.close();
});
