// Processes coming and going (PROTOCOL.md `unavailable`, close 1001; DESIGN.md "Guarantees"):
// no worker → `unavailable` within the request timeout, and a retry with the same cid once a
// worker is back stores the message once; a gateway stopped with SIGTERM closes its
// connections 1001 and exits cleanly, and its clients catch up through another gateway.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uid, assertError } from './lib/cluster.mjs';

const REQUEST_TIMEOUT_MS = 1500;
const cluster = useCluster({ gateways: 2, workers: 1, gatewaySet: { 'gateway.request_timeout_ms': REQUEST_TIMEOUT_MS } });

const A = uid('ana');
const B = uid('bo');
let a; // gateway 0
let b; // gateway 1
let room;

cluster.setup(async () => {
    a = await cluster.login(0, A);
    b = await cluster.login(1, B);
    room = await a.call('room.create', { type: 'group', members: [B] });
    await b.waitEvent('room.joined', (d) => d.id === room.id);
});

test('with no worker, a command answers unavailable after the request timeout; a retry with the same cid after a worker is back stores it once', async () => {
    const pid = cluster.workers[0].proc.child.pid;
    const exit = await cluster.stopWorker(0);
    assert.equal(exit.code, 0, `the worker exited ${JSON.stringify(exit)} on SIGTERM`);
    // Stopped cleanly with nothing pending, it left the consumer group of every stream.
    for (let p = 0; p < cluster.partitions; p++) {
        const list = await cluster.redisRaw(['XINFO', 'CONSUMERS', await cluster.jobStream(p), 'workers']);
        assert.ok(!new RegExp(`-${pid}$`, 'm').test(list), `jobs:${p} still lists the stopped worker (pid ${pid}):\n${list}`);
    }

    const data = { room: room.id, cid: 'while-down', type: 'text', text: 'anyone there?' };
    const t0 = Date.now();
    const res = await a.request('msg.send', data, { timeoutMs: REQUEST_TIMEOUT_MS + 5000 });
    const elapsed = Date.now() - t0;
    assertError(res, 'unavailable', null, 'msg.send with no worker');
    assert.ok(elapsed >= REQUEST_TIMEOUT_MS - 100 && elapsed < REQUEST_TIMEOUT_MS + 2500, `answered after ${elapsed} ms with gateway.request_timeout_ms=${REQUEST_TIMEOUT_MS}`);
    assert.ok(a.isOpen, 'unavailable closed the connection');

    await cluster.restartWorker(0);
    const retry = await a.call('msg.send', data);
    const again = await a.call('msg.send', data);
    assert.deepEqual(again, retry);
    const hist = await b.call('msg.history', { room: room.id });
    const mine = hist.messages.filter((m) => m.cid === 'while-down');
    assert.equal(mine.length, 1, `the message is stored ${mine.length} times: ${JSON.stringify(hist.messages)}`);
    assert.equal(mine[0].seq, retry.seq);
    assert.deepEqual(hist.messages.map((m) => m.seq), Array.from({ length: hist.messages.length }, (_, i) => i + 1), 'seqs have gaps');
});

test('a gateway stopped with SIGTERM closes its connections 1001 and exits 0; its clients catch up through the other gateway', async () => {
    const before = await a.call('msg.send', { room: room.id, cid: uid('c'), type: 'text', text: 'before the stop' });
    await b.waitEvent('message', (m) => m.room === room.id && m.seq === before.seq);

    const [exit, closed] = await Promise.all([cluster.stopGateway(1), b.waitClose(5000)]);
    assert.equal(closed.code, 1001);
    assert.equal(exit.code, 0, `the gateway exited ${JSON.stringify(exit)} on SIGTERM`);

    const missed = [];
    for (let i = 0; i < 3; i++) {
        missed.push((await a.call('msg.send', { room: room.id, cid: uid('c'), type: 'text', text: `missed ${i}` })).seq);
    }
    const b2 = await cluster.login(0, B);
    const hist = await b2.call('msg.history', { room: room.id, after: before.seq });
    assert.deepEqual(hist.messages.map((m) => m.seq), missed);
    assert.equal(hist.has_more, false);

    // B is reachable live again through the surviving gateway.
    const live = await a.call('msg.send', { room: room.id, cid: uid('c'), type: 'text', text: 'live again' });
    await b2.waitEvent('message', (m) => m.room === room.id && m.seq === live.seq);
});
