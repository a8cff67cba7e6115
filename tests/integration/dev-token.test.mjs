// dev.demo_tokens: with it on, GET /dev/token on the public listener mints a token for any
// id (local development only); with it off (the default), the endpoint does not exist.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uid } from './lib/cluster.mjs';

// Two independent clusters: their start hooks may run concurrently, which is fine.
const on = useCluster({ gateways: 1, workers: 1, gatewaySet: { 'dev.demo_tokens': 'on' } });
const off = useCluster({ gateways: 1, workers: 1 });

test('with dev.demo_tokens=on, /dev/token answers a token that authenticates the id with its name', async () => {
    const id = uid('demo');
    const r = await on.publicGet(`/dev/token?id=${id}&name=Demo%20User`);
    assert.equal(r.status, 200, r.text);
    const body = JSON.parse(r.text);
    assert.equal(typeof body.token, 'string');
    const c = await on.connect(0, body.token);
    assert.equal(c.authResult.client.id, id);
    assert.equal(c.authResult.client.name, 'Demo User');
    c.close();
});

test('with dev.demo_tokens=on, /dev/token refuses an id outside the alphabet', async () => {
    const r = await on.publicGet('/dev/token?id=bad%20id');
    assert.equal(r.status, 400, r.text);
});

test('with dev.demo_tokens off (the default), /dev/token gives no token', async () => {
    const r = await off.publicGet(`/dev/token?id=${uid('demo')}`);
    assert.equal(r.status, 404, r.text);
    assert.ok(!r.text.includes('token"'), r.text);
});
