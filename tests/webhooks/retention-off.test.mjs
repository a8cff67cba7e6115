// The feed is off until events.retention_s is set (docs/WEBHOOKS.md "Configuration": default
// 0, "must be > 0 for the feed and for webhooks"). With events.retention_s=0 every kind of
// change is made and nothing is recorded: the stream imkit:events stays empty and
// GET /v1/events answers {"events":[]}. A worker given webhook.url with retention 0 (or
// without a secret) refuses to start instead of silently sending nothing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { useCluster, uid, withTimeout, BUILD_DIR, assertHttp } from '../integration/lib/cluster.mjs';
import path from 'node:path';

const cluster = useCluster({ workerSet: { 'events.retention_s': 0 } });

test('with events.retention_s=0, no change records an event and the feed is empty', async () => {
    const a = await cluster.login(0, uid('a'), { name: 'A' });
    const put = await cluster.admin('PUT', `/v1/clients/${uid('put')}`, { name: 'P' });
    assert.equal(put.status, 200, put.text);
    const b = uid('b');
    const room = (await a.call('room.create', { type: 'group', members: [b], name: 'off' })).id;
    await a.call('msg.send', { room, cid: 'c1', type: 'text', text: 'hello' });
    await a.call('room.update', { room, name: 'off 2' });
    await a.call('room.members.add', { room, members: [uid('c')] });
    await a.call('room.members.remove', { room, members: [b] });
    assert.equal((await cluster.admin('POST', `/v1/rooms/${room}/messages`, { from: a.clientId, type: 'text', text: 'admin' })).status, 201);
    assert.equal((await cluster.admin('DELETE', `/v1/rooms/${room}`)).status, 204);

    assert.equal(await cluster.redis('XLEN', 'imkit:events'), 0, 'XLEN imkit:events');
    assert.equal(await cluster.redis('EXISTS', 'imkit:webhook:cursor'), 0, 'no webhook cursor');
    for (const q of ['', '?after=0-0', '?limit=1000']) {
        const r = await cluster.admin('GET', `/v1/events${q}`);
        assertHttp(r, 200, undefined, `GET /v1/events${q}`);
        assert.deepEqual(r.body, { events: [] }, `GET /v1/events${q}`);
    }
});

function runWorker(set) {
    const args = [];
    for (const [k, v] of Object.entries({ 'redis.url': cluster.redisUrl, ...set })) {
        args.push('--set', `${k}=${v}`);
    }
    const child = spawn(path.join(BUILD_DIR, 'imkit-worker'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, out })));
    return withTimeout(exited, 5000, 'imkit-worker to refuse its configuration').finally(() => {
        if (child.exitCode === null) {
            child.kill('SIGKILL');
        }
    });
}

test('a worker with webhook.url but events.retention_s=0, or without webhook.secret, refuses to start', async () => {
    const url = 'http://127.0.0.1:9/hook';
    for (const [label, set] of [
        ['retention 0', { 'webhook.url': url, 'webhook.secret': 's', 'events.retention_s': 0 }],
        ['no secret', { 'webhook.url': url, 'events.retention_s': 60 }],
    ]) {
        const r = await runWorker(set);
        assert.notEqual(r.code, 0, `${label}: the worker should exit non-zero, got ${JSON.stringify(r)}`);
        assert.match(r.out, /webhook\.url needs webhook\.secret and events\.retention_s/, `${label}: says why: ${r.out}`);
    }
});
