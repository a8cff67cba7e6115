// kill -9 a worker every 2 s during a run of 20 000 messages (8 clients on 2 gateways, 4
// rooms, 800 messages/s released 200 at a time, so the run lasts ~25 s, sees ~10 kills and
// the workers are often in the middle of a batch). The killed
// worker is started again 200 ms later, so one always runs. Every other kill first freezes a
// worker while it holds jobs (SIGSTOP, retried until one holds at least 2), so that it surely
// dies holding jobs (a plain kill -9 may find a worker between batches). Jobs a killed worker left pending
// are claimed by the others after worker.claim_idle_ms (1 s here) and applied again;
// idempotence makes that harmless. Pass: 0 lost, 0 duplicated, 0 gaps, every
// member's view equal to history, no job left pending or dead, every process healthy.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFaultCluster, sleep } from './lib/fault-cluster.mjs';
import { Recorder, setupChat, runLoad } from './lib/chat.mjs';
import { checkRun, summary, assertClean } from './lib/checker.mjs';
import { claimedJobs, assertSettled } from './lib/util.mjs';

const TOTAL = Number(process.env.IMKIT_FAULT_MESSAGES || 20000);
const RATE = Number(process.env.IMKIT_FAULT_RATE || 800);
const KILL_EVERY_MS = 2000;
const CLAIM_IDLE_MS = 1000;

const fc = useFaultCluster({
    gateways: 2,
    workers: 2,
    gatewaySet: { 'limits.rate': 100000, 'limits.burst': 100000 },
    workerSet: { 'worker.claim_idle_ms': CLAIM_IDLE_MS, 'worker.batch': 64 },
});

test(`kill -9 a worker every ${KILL_EVERY_MS / 1000} s during ${TOTAL} messages: pending jobs are claimed, nothing lost or doubled`, { timeout: 170000 }, async (t) => {
    const rec = new Recorder();
    const { clients, rooms } = await setupChat(fc, { nClients: 8, nRooms: 4, roomsPerClient: 2, recorder: rec });
    const t0 = Date.now();
    let done = false;
    const orphaned = []; // jobs each killed worker left pending
    const killer = (async () => {
        let k = 0;
        let next = Date.now() + KILL_EVERY_MS;
        while (!done) {
            await sleep(Math.max(0, next - Date.now()));
            next += KILL_EVERY_MS;
            if (done) {
                break;
            }
            let i = k % fc.workers.length;
            if (k % 2 === 0) {
                // Frozen while it holds jobs (mid-batch, or handed one while blocked), then
                // killed: it surely dies holding jobs.
                i = (await fc.freezeHolding([i, ...fc.workers.map((_, j) => j).filter((j) => j !== i)])).i;
            }
            k++;
            const other = fc.workers.filter((_, j) => j !== i);
            assert.ok(other.some((w) => w.proc.alive), 'no other worker running at kill time');
            const consumer = fc.consumerName(i);
            await fc.killWorker(i);
            orphaned.push(await fc.pendingOf(consumer).catch(() => -1));
            await sleep(200);
            fc.respawnWorker(i);
        }
        return k;
    })();
    const load = await runLoad(clients, { total: TOTAL, window: 25, rate: RATE, burst: 200, deadline: Date.now() + 120000 }).finally(() => {
        done = true;
    });
    const kills = await killer;
    const ms = Date.now() - t0;
    t.diagnostic(`load: ${JSON.stringify(load)}; ${kills} workers killed in ${(ms / 1000).toFixed(1)} s; jobs left pending by killed workers: ${orphaned.join(',')}`);
    assert.ok(kills >= 5, `only ${kills} kills happened: the run was too short to prove anything`);
    assert.ok(orphaned.filter((n) => n > 0).length >= 2, `killed workers left no job pending (${orphaned.join(',')}): claiming was not exercised`);
    assert.equal(load.acked, TOTAL, `${TOTAL - load.acked} sends were never acknowledged (errors: ${JSON.stringify(rec.errors.slice(0, 3))})`);

    await assertSettled(fc, t);
    t.diagnostic(`jobs claimed by workers (XAUTOCLAIM): ${claimedJobs(fc)}`);
    const cu = Date.now() + 60000;
    await Promise.all(clients.map((c) => c.catchUp(cu)));
    const report = await checkRun(fc, { roomIds: rooms.map((r) => r.id), recorder: rec, clients });
    t.diagnostic(summary(report));
    assertClean(report, 'worker kill -9 run');
    assert.equal(report.stored, TOTAL, 'every message stored exactly once');
});
