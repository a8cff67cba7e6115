// kill -9 Redis under load and restart it from its AOF on the same port. Redis runs with
// `appendonly yes`, `appendfsync always` for this case (turned on with CONFIG SET once the
// cluster is up), so every write Redis acknowledged is on disk. Pass: every message that was
// acknowledged before the kill is still there after the restart (0 lost), nothing doubled, no
// gap, every member's view equal to history; while Redis is away requests get `unavailable`
// (WebSocket) or 503 (admin API), never a success; gateways and workers recover by
// themselves (/healthz 200 again, the run completes); no job left pending.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFaultCluster, sleep } from './lib/fault-cluster.mjs';
import { Recorder, setupChat, runLoad } from './lib/chat.mjs';
import { checkRun, summary, assertClean } from './lib/checker.mjs';
import { assertSettled } from './lib/util.mjs';

const TOTAL = 5000;
const RATE = 300;
const DOWN_MS = 3000;

const fc = useFaultCluster({
    gateways: 2,
    workers: 2,
    gatewaySet: { 'limits.rate': 100000, 'limits.burst': 100000 },
    workerSet: { 'worker.claim_idle_ms': 1000 },
});

test(`kill -9 Redis during ${TOTAL} messages and restart it from its AOF: nothing acknowledged is lost, outage requests get unavailable`, { timeout: 120000 }, async (t) => {
    await fc.enableAof('always');
    const rec = new Recorder();
    const { clients, rooms } = await setupChat(fc, { nClients: 6, nRooms: 3, roomsPerClient: 2, recorder: rec });
    const probe = clients[0];
    let killedAt = 0;
    let restartedAt = 0;
    let ackedBeforeKill = 0;
    const outage = { history: [], admin: [], healthz: [] };
    const chaos = (async () => {
        await sleep(4000);
        ackedBeforeKill = rec.acks.length;
        await fc.killRedis();
        killedAt = Date.now();
        await sleep(300);
        // Queries and commands while Redis is away: unavailable, never a made-up success.
        const until = killedAt + DOWN_MS;
        while (Date.now() < until) {
            const conn = probe.conn;
            if (conn && conn.isOpen) {
                const r = await conn.request('msg.history', { room: rooms[0].id, limit: 5 }, 7000).catch((e) => ({ thrown: e.kind }));
                outage.history.push(r.ok === true ? 'ok' : r.error ? r.error.code : r.thrown);
            }
            const a = await fc.admin('GET', `/v1/rooms/${encodeURIComponent(rooms[0].id)}`).catch(() => ({ status: 0 }));
            outage.admin.push(a.status);
            const h = await fetch(`http://127.0.0.1:${fc.gateways[0].publicPort}/healthz`, { signal: AbortSignal.timeout(1500) }).then((r) => r.status).catch(() => 0);
            outage.healthz.push(h);
            await sleep(250);
        }
        await fc.restartRedis();
        restartedAt = Date.now();
        // Gateways and workers come back by themselves: /healthz 200, workers alive.
        await fc.waitHealthy(20000);
        return Date.now() - restartedAt;
    })();
    const load = await runLoad(clients, { total: TOTAL, window: 4, rate: RATE, deadline: Date.now() + 90000 });
    const recoveredIn = await chaos;
    const firstAckAfter = Math.min(...rec.acks.filter((a) => a.at >= restartedAt).map((a) => a.at)) - restartedAt;
    const inOutage = rec.acks.filter((a) => a.at > killedAt + 500 && a.at < restartedAt);
    const unavailableInOutage = rec.unavailable.filter((u) => u.at >= killedAt && u.at < restartedAt);
    t.diagnostic(`load: ${JSON.stringify(load)}; acked before the kill: ${ackedBeforeKill}; Redis down ${restartedAt - killedAt} ms; ` +
        `sends answered unavailable during the outage: ${unavailableInOutage.length} (max latency ${Math.max(0, ...unavailableInOutage.map((u) => u.latencyMs))} ms); ` +
        `acks received during the outage: ${inOutage.length}; healthy again ${recoveredIn} ms and first ack ${firstAckAfter} ms after the restart`);
    t.diagnostic(`during the outage: msg.history → ${JSON.stringify(countBy(outage.history))}, admin GET → ${JSON.stringify(countBy(outage.admin))}, /healthz → ${JSON.stringify(countBy(outage.healthz))}`);

    assert.ok(ackedBeforeKill > 500, 'the kill came under load');
    assert.equal(inOutage.length, 0, `sends acknowledged while Redis was down: ${JSON.stringify(inOutage.slice(0, 3))}`);
    assert.ok(outage.history.length > 0 && outage.history.every((x) => x === 'unavailable'), `msg.history while Redis was down: ${outage.history}`);
    assert.ok(outage.admin.every((s) => s === 503), `admin API while Redis was down: ${outage.admin}`);
    assert.ok(outage.healthz.every((s) => s === 503), `/healthz while Redis was down: ${outage.healthz}`);
    assert.ok(unavailableInOutage.length > 0, 'sends during the outage were answered unavailable');
    assert.equal(load.acked, TOTAL, `unacknowledged: ${JSON.stringify(rec.errors.slice(0, 3))}; gave up: ${rec.gaveUp.length}`);

    await assertSettled(fc, t);
    await Promise.all(clients.map((c) => c.catchUp(Date.now() + 30000)));
    const report = await checkRun(fc, { roomIds: rooms.map((r) => r.id), recorder: rec, clients });
    t.diagnostic(summary(report));
    assertClean(report, 'Redis kill -9 and AOF restart');
    assert.equal(report.stored, TOTAL);
});

function countBy(list) {
    const m = {};
    for (const x of list) {
        m[x] = (m[x] || 0) + 1;
    }
    return m;
}
