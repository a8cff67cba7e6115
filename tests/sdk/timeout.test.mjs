// Request timeouts are typed (SDK.md: "Requests that get no answer in 10 s reject with an
// Error whose code is timeout"). The gateway's own deadline (gateway.request_timeout_ms,
// default 5 s, answered `unavailable`) is raised to 30 s here so that the SDK's 10 s clock
// is the one that runs out. No answer is provoked by SIGSTOP of the workers (commands wait
// in the job stream) or of redis-server (queries wait on the gateway's Redis link); both are
// resumed with SIGCONT whatever happens. 1 gateway, 2 workers, Redis. On a Redis Cluster
// (IMKIT_TEST_REDIS=cluster) the gateway does answer a paused master's queries: it drops a
// master silent for 5 s and answers `unavailable` (OPERATIONS.md), which the SDK passes on.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    useSdkCluster, connected, rejectsWithCode, freeze, thaw, fullHistory, uid, sleep, waitFor,
} from './lib/sdk-cluster.mjs';
import { ON_REDIS_CLUSTER } from '../integration/lib/cluster.mjs';

const SDK_TIMEOUT_MS = 10000;
const NODE_STALL_MS = 5000; // a cluster master silent this long is dropped by the gateway
const cluster = useSdkCluster({ gateways: 1, workers: 2, gatewaySet: { 'gateway.request_timeout_ms': 30000 } });

test('workers stopped (SIGSTOP): send() rejects with code timeout after 10 s; the connection stays open; the late job is applied once', { timeout: 60000 }, async () => {
    const A = uid('ta');
    const a = await connected(cluster, A, 0);
    const room = await a.im.createGroup({ members: [uid('tb')], name: 'slow' });
    const workers = cluster.workers.map((w) => w.proc);
    workers.forEach(freeze);
    let error;
    const t0 = Date.now();
    try {
        error = await rejectsWithCode(a.im.send(room.id, 'into the void'), 'timeout', 'send() with the workers stopped');
    } finally {
        workers.forEach(thaw);
    }
    const elapsed = Date.now() - t0;
    assert.ok(error instanceof Error);
    assert.ok(elapsed >= SDK_TIMEOUT_MS - 200 && elapsed < SDK_TIMEOUT_MS + 3000, `rejected after ${elapsed} ms`);
    assert.match(error.message, /msg\.send/);
    assert.equal(a.state, 'open', 'a timeout does not drop the connection');

    // The job was still in the stream: the workers apply it once they run again; the late
    // answer is ignored by the SDK (nothing settles twice, nothing throws).
    const next = await a.im.send(room.id, 'after');
    const history = await fullHistory(a.im, room.id);
    assert.deepEqual(history.map((m) => m.text), ['into the void', 'after']);
    assert.equal(next.seq, 2);
    assert.deepEqual(a.events('error'), []);
    a.close();
});

test('redis-server stopped (SIGSTOP): a query (getRoom, history) rejects with code timeout after 10 s (on a cluster: unavailable after 5 s); later requests work', { timeout: 60000 }, async () => {
    const A = uid('tr');
    const a = await connected(cluster, A, 0);
    const room = await a.im.createDirect(uid('peer'));
    // One Redis: no answer, the SDK's clock runs out. A cluster: the gateway's answer.
    const [code, after] = ON_REDIS_CLUSTER ? ['unavailable', NODE_STALL_MS] : ['timeout', SDK_TIMEOUT_MS];
    cluster.pauseRedis();
    let errors;
    const t0 = Date.now();
    try {
        errors = await Promise.all([
            rejectsWithCode(a.im.getRoom(room.id), code, 'getRoom with redis stopped'),
            rejectsWithCode(a.im.history(room.id), code, 'history with redis stopped'),
        ]);
    } finally {
        cluster.resumeRedis();
    }
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= after - 200 && elapsed < after + 3000, `rejected after ${elapsed} ms`);
    // The SDK's timeout names the operation; the gateway's answer says why.
    assert.match(errors[0].message, ON_REDIS_CLUSTER ? /storage unreachable/ : /room\.get/);
    assert.match(errors[1].message, ON_REDIS_CLUSTER ? /storage unreachable/ : /msg\.history/);
    // The late answers arrive and are dropped; the session goes on (reconnecting if the
    // gateway dropped it meanwhile).
    await waitFor(() => a.state === 'open', 15000, 'the client open again');
    // Once the gateway has Redis again (on a cluster it connects to the master anew).
    await waitFor(async () => (await fetch(`http://127.0.0.1:${cluster.gateways[0].adminPort}/healthz`)).status === 200, 15000, 'the gateway healthy again');
    const got = await a.im.getRoom(room.id);
    assert.equal(got.id, room.id);
    await sleep(200);
    a.close();
});
