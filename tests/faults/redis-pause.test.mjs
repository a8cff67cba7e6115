// Redis paused (kill -STOP redis-server) for 10 s under load, then continued. The TCP
// connections stay up, so nothing tells the gateways that Redis is gone: only the request
// timeout (gateway.request_timeout_ms, 5 s) does. Pass: every request made during the pause is
// answered `unavailable` within 5 s (+1 s slack on this shared machine), no client request goes
// unanswered, no WebSocket connection is closed; after the pause everything recovers (the run
// completes, /healthz 200, no job pending) and the checker finds 0 lost, 0 duplicated, 0 gaps,
// every member's view equal to history.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFaultCluster, sleep, httpStatus } from './lib/fault-cluster.mjs';
import { Recorder, setupChat, runLoad } from './lib/chat.mjs';
import { checkRun, summary, assertClean } from './lib/checker.mjs';
import { assertSettled } from './lib/util.mjs';

const TOTAL = 3000;
const RATE = 200;
const PAUSE_MS = 10000;
const REQUEST_TIMEOUT_MS = 5000;
const SLACK_MS = 1000;

const fc = useFaultCluster({
    gateways: 2,
    workers: 2,
    gatewaySet: { 'limits.rate': 100000, 'limits.burst': 100000 },
    workerSet: { 'worker.claim_idle_ms': 1000 },
});

test(`Redis paused ${PAUSE_MS / 1000} s under load: unavailable within ${REQUEST_TIMEOUT_MS / 1000} s, connections stay open, everything recovers`, { timeout: 120000 }, async (t) => {
    const rec = new Recorder();
    const { clients, rooms } = await setupChat(fc, { nClients: 6, nRooms: 3, roomsPerClient: 2, recorder: rec });
    let pausedAt = 0;
    let resumedAt = 0;
    const probes = []; // {op, ms, result}
    const healthz = [];
    const chaos = (async () => {
        await sleep(3000);
        fc.pauseRedis();
        pausedAt = Date.now();
        // A query and a command on a quiet connection of their own, plus /healthz, meanwhile.
        const probe = clients[0];
        const runProbe = async (op, data) => {
            const t0 = Date.now();
            const r = await probe.conn.request(op, data, REQUEST_TIMEOUT_MS + 4000).catch((e) => ({ thrown: e.kind }));
            probes.push({ op, ms: Date.now() - t0, result: r.ok ? 'ok' : r.error ? r.error.code : r.thrown });
        };
        const ps = [
            runProbe('msg.history', { room: rooms[0].id, limit: 5 }),
            runProbe('room.list', {}),
            sleep(2000).then(() => runProbe('msg.history', { room: rooms[1].id, limit: 5 })),
        ];
        for (let k = 0; k < 4; k++) {
            healthz.push(await httpStatus(fc.gateways[0].publicPort, '/healthz', 2000));
            await sleep(1500);
        }
        await Promise.all(ps);
        await sleep(Math.max(0, pausedAt + PAUSE_MS - Date.now()));
        fc.resumeRedis();
        resumedAt = Date.now();
    })();
    const load = await runLoad(clients, { total: TOTAL, window: 4, rate: RATE, deadline: Date.now() + 90000 });
    await chaos;

    const during = rec.unavailable.filter((u) => u.at >= pausedAt && u.at < resumedAt);
    const slow = during.filter((u) => u.latencyMs > REQUEST_TIMEOUT_MS + SLACK_MS);
    const closes = clients.reduce((n, c) => n + c.closes.length, 0);
    t.diagnostic(`load: ${JSON.stringify(load)}; paused ${resumedAt - pausedAt} ms; sends answered unavailable during the pause: ${during.length}, ` +
        `latency max ${Math.max(0, ...during.map((u) => u.latencyMs))} ms; client-side timeouts (> 7 s): ${rec.timeouts}; connections closed: ${closes}`);
    t.diagnostic(`probes during the pause: ${JSON.stringify(probes)}; /healthz during the pause: ${healthz.join(',')}`);

    assert.ok(during.length > 0, 'sends during the pause were answered unavailable');
    assert.deepEqual(slow.slice(0, 3), [], `${slow.length} unavailable answers came later than ${REQUEST_TIMEOUT_MS + SLACK_MS} ms`);
    assert.equal(rec.timeouts, 0, `${rec.timeouts} requests got no answer at all within 7 s`);
    for (const p of probes) {
        assert.equal(p.result, 'unavailable', `${p.op} during the pause: ${JSON.stringify(p)}`);
        assert.ok(p.ms <= REQUEST_TIMEOUT_MS + SLACK_MS, `${p.op} answered after ${p.ms} ms`);
    }
    assert.equal(closes, 0, `connections closed during the pause: ${JSON.stringify(clients.flatMap((c) => c.closes).slice(0, 3))}`);
    assert.equal(load.acked, TOTAL, `unacknowledged: ${JSON.stringify(rec.errors.slice(0, 3))}; gave up: ${rec.gaveUp.length}`);

    await assertSettled(fc, t);
    await Promise.all(clients.map((c) => c.catchUp(Date.now() + 30000)));
    const report = await checkRun(fc, { roomIds: rooms.map((r) => r.id), recorder: rec, clients });
    t.diagnostic(summary(report));
    assertClean(report, 'Redis paused');
    assert.equal(report.stored, TOTAL);
});
