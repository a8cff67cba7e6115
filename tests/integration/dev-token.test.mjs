// dev.demo_tokens: with it on, GET /dev/token on the public listener mints a token for any
// id (local development only); with it off (the default), the endpoint does not exist.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uid } from './lib/cluster.mjs';

// Gateway 0 has dev.demo_tokens=on, gateway 1 the default (off).
const cluster = useCluster({ gateways: 2, workers: 1, gatewaySet: (i) => (i === 0 ? { 'dev.demo_tokens': 'on' } : {}) });

test('with dev.demo_tokens=on, /dev/token answers a token that authenticates the id with its name', async () => {
    const id = uid('demo');
    const r = await cluster.publicGet(`/dev/token?id=${id}&name=Demo%20User`, 0);
    assert.equal(r.status, 200, r.text);
    const body = JSON.parse(r.text);
    assert.equal(typeof body.token, 'string');
    const c = await cluster.connect(0, body.token);
    assert.equal(c.authResult.client.id, id);
    assert.equal(c.authResult.client.name, 'Demo User');
    c.close();
});

test('with dev.demo_tokens=on, /dev/token refuses an id outside the alphabet', async () => {
    const r = await cluster.publicGet('/dev/token?id=bad%20id', 0);
    assert.equal(r.status, 400, r.text);
});

test('with dev.demo_tokens off (the default), /dev/token gives no token', async () => {
    const r = await cluster.publicGet(`/dev/token?id=${uid('demo')}`, 1);
    assert.equal(r.status, 404, r.text);
    assert.ok(!r.text.includes('token"'), r.text);
});
