// SIGTERM a worker during a run: it finishes and acknowledges the batch it holds (no job left
// pending by it), and exits 0 within worker.block_ms (+ slack). Four times, a worker is first
// frozen (SIGSTOP) while it holds jobs (the load comes in bursts, so batches are big), then
// sent SIGTERM and continued, so that the signal surely arrives while it holds a batch; a
// replacement is started after each exit.
// worker.claim_idle_ms stays at 5 s, so no other worker can have claimed the batch before the
// check. The group forgets the stopped consumers (worker.dead_consumer_ms = 2 s here, checked
// at the next trim, every 10 s). Pass also: the checker finds nothing lost, doubled or missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFaultCluster, sleep, waitFor } from './lib/fault-cluster.mjs';
import { Recorder, setupChat, runLoad } from './lib/chat.mjs';
import { checkRun, summary, assertClean } from './lib/checker.mjs';
import { assertSettled } from './lib/util.mjs';

const TOTAL = 6000;
const RATE = 400;
const BLOCK_MS = 1000;

const fc = useFaultCluster({
    gateways: 2,
    workers: 2,
    gatewaySet: { 'limits.rate': 100000, 'limits.burst': 100000 },
    workerSet: { 'worker.block_ms': BLOCK_MS, 'worker.dead_consumer_ms': 2000 },
});

test(`SIGTERM a worker holding a batch during ${TOTAL} messages: it acks its batch and exits 0`, { timeout: 90000 }, async (t) => {
    const rec = new Recorder();
    const { clients, rooms } = await setupChat(fc, { nClients: 6, nRooms: 3, roomsPerClient: 2, recorder: rec });
    let done = false;
    const stops = []; // {consumer, held, exit, ms, leftPending}
    const gone = [];
    const stopper = (async () => {
        for (let k = 0; k < 4 && !done; k++) {
            await sleep(1500);
            if (done) {
                break;
            }
            // Sought again until a worker is caught holding jobs: between two bursts both
            // may hold none, and a SIGTERM then tests nothing.
            let frozen = await fc.freezeHolding([k % 2, (k + 1) % 2]);
            while (frozen.held === 0 && !done) {
                fc.signalWorker(frozen.i, 'SIGCONT');
                await sleep(50);
                frozen = await fc.freezeHolding([k % 2, (k + 1) % 2]);
            }
            const { i, held } = frozen;
            if (held === 0) {
                // The load ended while a busy worker was sought: nothing left to hold.
                fc.signalWorker(i, 'SIGCONT');
                break;
            }
            const consumer = fc.consumerName(i);
            const proc = fc.workers[i].proc;
            const t0 = Date.now();
            proc.expectedStop = true; // stop() semantics: exit 0 is required, checked below
            proc.child.kill('SIGTERM');
            fc.signalWorker(i, 'SIGCONT');
            fc.note(`SIGTERM ${proc.name} holding ${held} jobs`);
            const exit = await Promise.race([proc.exited, sleep(BLOCK_MS + 4000).then(() => null)]);
            const ms = Date.now() - t0;
            const leftPending = await fc.pendingOf(consumer);
            stops.push({ consumer, held, exit, ms, leftPending });
            gone.push(consumer);
            if (!exit) {
                proc.child.kill('SIGKILL');
                await proc.exited;
                proc.neededKill = true;
            }
            fc.respawnWorker(i);
        }
    })();
    const load = await runLoad(clients, { total: TOTAL, window: 30, rate: RATE, burst: 150, deadline: Date.now() + 60000 }).finally(() => {
        done = true;
    });
    await stopper;
    t.diagnostic(`load: ${JSON.stringify(load)}; SIGTERMs: ${JSON.stringify(stops.map((s) => ({ held: s.held, exit: s.exit, ms: s.ms, leftPending: s.leftPending })))}`);
    assert.ok(stops.length >= 3, `only ${stops.length} SIGTERMs during the run`);
    for (const s of stops) {
        assert.ok(s.held > 0, 'the worker held a batch when it got SIGTERM');
        assert.deepEqual(s.exit, { code: 0, signal: null }, `exit after SIGTERM: ${JSON.stringify(s.exit)}`);
        assert.ok(s.ms <= BLOCK_MS + 2000, `exit took ${s.ms} ms (worker.block_ms=${BLOCK_MS})`);
        assert.equal(s.leftPending, 0, `the stopped worker left ${s.leftPending} jobs pending`);
    }
    assert.equal(load.acked, TOTAL, `unacknowledged: ${JSON.stringify(rec.errors.slice(0, 3))}`);

    // Stopped consumers leave the group (at once on a clean stop with nothing pending).
    const t0 = Date.now();
    await waitFor(async () => {
        for (let p = 0; p < fc.partitions; p++) {
            const list = await fc.redis('XINFO', 'CONSUMERS', `${fc.prefix}jobs:${p}`, 'workers');
            const names = (list || []).map((c) => (Array.isArray(c) ? c[c.indexOf('name') + 1] : c.name));
            if (names.some((n) => gone.includes(n))) {
                return false;
            }
        }
        return true;
    }, 25000, 'the stopped consumers removed from the group', 500);
    t.diagnostic(`stopped consumers removed from the group ${Date.now() - t0} ms after the run`);

    await assertSettled(fc, t);
    await Promise.all(clients.map((c) => c.catchUp(Date.now() + 30000)));
    const report = await checkRun(fc, { roomIds: rooms.map((r) => r.id), recorder: rec, clients });
    t.diagnostic(summary(report));
    assertClean(report, 'worker SIGTERM');
    assert.equal(report.stored, TOTAL);
});
