// kill -STOP a worker past the claim time, then -CONT it: no double effects.
//
// 1. Under load (2 workers, 4 000 messages at 300/s in bursts of 100): twice, a worker is
//    stopped while it holds a batch, kept stopped 3 s (3 x worker.claim_idle_ms), its batch must be
//    claimed by the other worker meanwhile, then it is continued and applies its stale batch
//    again. Pass: the checker finds 0 lost, 0 duplicated, 0 gaps, every view equal to history.
// 2. One job of each kind held by a stopped worker (deterministic; msg.send, msg.edit,
//    msg.react, room.update, room.members.remove/add, msg.recall, room.read): the worker is stopped,
//    the job is sent and handed to it, a second worker claims and applies it, a later
//    request changes the same thing again, then the stopped worker is continued and applies
//    its stale copy. "A job applied twice changes nothing the second time": the
//    final state must be the one of the later request.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFaultCluster, sleep, waitFor } from './lib/fault-cluster.mjs';
import { Recorder, setupChat, runLoad } from './lib/chat.mjs';
import { checkRun, summary, assertClean } from './lib/checker.mjs';
import { claimedJobs, assertSettled } from './lib/util.mjs';

const CLAIM_IDLE_MS = 1000;
const STOPPED_MS = 3 * CLAIM_IDLE_MS;

const fc = useFaultCluster({
    gateways: 2,
    workers: 2,
    gatewaySet: { 'limits.rate': 100000, 'limits.burst': 100000 },
    workerSet: { 'worker.claim_idle_ms': CLAIM_IDLE_MS },
});

test('under load, a worker stopped past the claim time and continued applies nothing twice', { timeout: 90000 }, async (t) => {
    const rec = new Recorder();
    const { clients, rooms } = await setupChat(fc, { nClients: 6, nRooms: 3, roomsPerClient: 2, recorder: rec });
    let done = false;
    const held = [];
    const claimedBefore = [];
    const stopper = (async () => {
        for (let k = 0; k < 2 && !done; k++) {
            await sleep(1500);
            const { i, held: n } = await fc.freezeHolding([k % 2, (k + 1) % 2]);
            held.push(n);
            const consumer = fc.consumerName(i);
            await sleep(STOPPED_MS);
            // Past the claim time: the other worker must have claimed the whole batch.
            claimedBefore.push(await fc.pendingOf(consumer));
            fc.signalWorker(i, 'SIGCONT');
        }
    })();
    const load = await runLoad(clients, { total: 4000, window: 20, rate: 300, burst: 100, deadline: Date.now() + 60000 }).finally(() => {
        done = true;
    });
    await stopper;
    t.diagnostic(`load: ${JSON.stringify(load)}; jobs held by the stopped workers: ${held.join(',')}; still pending on them after ${STOPPED_MS} ms: ${claimedBefore.join(',')}`);
    assert.equal(held.length, 2, 'two stops happened');
    assert.ok(held.every((n) => n > 0), `a stopped worker held no job: ${held.join(',')}`);
    assert.deepEqual(claimedBefore, [0, 0], 'jobs of a stopped worker were not claimed within 3x worker.claim_idle_ms');
    assert.equal(load.acked, 4000, `unacknowledged sends: ${JSON.stringify(rec.errors.slice(0, 3))}`);

    await assertSettled(fc, t);
    t.diagnostic(`jobs claimed (XAUTOCLAIM): ${claimedJobs(fc)}`);
    await Promise.all(clients.map((c) => c.catchUp(Date.now() + 30000)));
    const report = await checkRun(fc, { roomIds: rooms.map((r) => r.id), recorder: rec, clients });
    t.diagnostic(summary(report));
    assertClean(report, 'STOP/CONT under load');
    assert.equal(report.stored, 4000);
});

test('a stale job replayed by a continued worker changes nothing: one case per job kind', { timeout: 120000 }, async (t) => {
    // Only worker 0 runs from here: the held job can only go to it.
    const exit = await fc.stopWorker(1);
    assert.equal(exit.code, 0);
    const A = 0;
    const [P, Q, X, Y] = ['p', 'q', 'x', 'y'].map((s) => `${s}-${Math.random().toString(36).slice(2, 8)}`);
    const p = await fc.login(0, P);
    const room = await p.call('room.create', { type: 'group', members: [Q, X], name: 'start' });
    const m1 = await p.call('msg.send', { room: room.id, cid: 'm1', type: 'text', text: 'original' });

    /**
     * held(): sends the request that worker A will hold, returns the response promise.
     * later(): the request that changes the same thing afterwards (applied by worker B).
     */
    async function replay(held, later) {
        for (let attempt = 0; attempt < 10; attempt++) {
            await sleep(300);
            fc.signalWorker(A, 'SIGSTOP');
            const heldRes = held(attempt);
            const consumer = fc.consumerName(A);
            let got = 0;
            const until = Date.now() + 800;
            while (Date.now() < until && got === 0) {
                got = await fc.pendingOf(consumer);
                await sleep(20);
            }
            if (got === 0) {
                // A was between two reads: the job stays in the stream. Let A apply it, try again.
                fc.signalWorker(A, 'SIGCONT');
                await heldRes;
                continue;
            }
            const b = fc.addWorker();
            const res = await heldRes; // answered by B once it claimed the job
            assert.equal(res.ok, true, `held request: ${JSON.stringify(res)}`);
            if (later) {
                await later();
            }
            await waitFor(async () => (await fc.pendingOf(consumer)) === 0, 5000, 'the held job claimed');
            fc.signalWorker(A, 'SIGCONT'); // A now applies its stale copy
            await sleep(1500);
            const exitB = await fc.stopWorker(b);
            assert.equal(exitB.code, 0);
            return res;
        }
        throw new Error('could not make the stopped worker hold the job');
    }

    const roomState = async () => (await fc.admin('GET', `/v1/rooms/${encodeURIComponent(room.id)}`)).body;
    const message = async (seq) => (await fc.admin('GET', `/v1/rooms/${encodeURIComponent(room.id)}/messages?after=${seq - 1}&limit=1`)).body.messages[0];

    await t.test('msg.send: stored once', async () => {
        await replay((k) => p.request('msg.send', { room: room.id, cid: `held-send-${k}`, type: 'text', text: 'held' }));
        const h = (await fc.admin('GET', `/v1/rooms/${encodeURIComponent(room.id)}/messages?limit=100`)).body.messages;
        const cids = h.map((m) => m.cid);
        assert.equal(new Set(cids).size, cids.length, `a cid stored twice: ${cids.join(',')}`);
        assert.deepEqual(h.map((m) => m.seq), h.map((_, i) => i + 1));
    });

    await t.test('msg.edit: a later edit is not undone by the replayed older one', async () => {
        await replay((k) => p.request('msg.edit', { room: room.id, seq: m1.seq, text: `held edit ${k}` }),
            () => p.call('msg.edit', { room: room.id, seq: m1.seq, text: 'later edit' }));
        const m = await message(m1.seq);
        assert.equal(m.text, 'later edit', `message ${m1.seq} after the replay: ${JSON.stringify(m)}`);
    });

    await t.test('msg.react: a reaction taken back is not put back by the replayed one', async () => {
        await replay(() => p.request('msg.react', { room: room.id, seq: m1.seq, emoji: 'ok', on: true }),
            () => p.call('msg.react', { room: room.id, seq: m1.seq, emoji: 'ok', on: false }));
        const m = await message(m1.seq);
        const who = (m.reactions && m.reactions.ok) || [];
        assert.deepEqual(who, [], `reactions after the replay: ${JSON.stringify(m.reactions)}`);
    });

    await t.test('room.update: a later name is not undone by the replayed older one', async () => {
        await replay((k) => p.request('room.update', { room: room.id, name: `held name ${k}` }),
            () => p.call('room.update', { room: room.id, name: 'later name' }));
        const r = await roomState();
        assert.equal(r.name, 'later name', `room after the replay: ${JSON.stringify({ name: r.name })}`);
    });

    await t.test('room.members.remove: a member added back is not removed again by the replay', async () => {
        await replay(() => p.request('room.members.remove', { room: room.id, members: [X] }),
            () => p.call('room.members.add', { room: room.id, members: [X] }));
        const r = await roomState();
        assert.ok(r.members.some((m) => m.id === X), `members after the replay: ${r.members.map((m) => m.id).join(',')}`);
    });

    await t.test('room.members.add: a member removed afterwards is not added again by the replay', async () => {
        await replay(() => p.request('room.members.add', { room: room.id, members: [Y] }),
            () => p.call('room.members.remove', { room: room.id, members: [Y] }));
        const r = await roomState();
        assert.ok(!r.members.some((m) => m.id === Y), `members after the replay: ${r.members.map((m) => m.id).join(',')}`);
    });

    await t.test('msg.recall: a replayed recall is harmless', async () => {
        const m2 = await p.call('msg.send', { room: room.id, cid: 'm2', type: 'text', text: 'to recall' });
        await replay(() => p.request('msg.recall', { room: room.id, seq: m2.seq }));
        const m = await message(m2.seq);
        assert.equal(m.type, 'recalled');
        assert.equal(m.cid, 'm2');
    });

    await t.test('room.read: a replayed older read mark does not move the mark back', async () => {
        const q = await fc.login(1, Q);
        const a1 = await p.call('msg.send', { room: room.id, cid: 'r1', type: 'text', text: 'read me' });
        const a2 = await p.call('msg.send', { room: room.id, cid: 'r2', type: 'text', text: 'and me' });
        await replay(() => q.request('room.read', { room: room.id, seq: a1.seq }),
            () => q.call('room.read', { room: room.id, seq: a2.seq }));
        const mark = await fc.redis('HGET', `${fc.prefix}r:{${room.id}}:read`, Q);
        assert.equal(Number(mark), a2.seq, `read mark of ${Q} after the replay`);
    });

    await assertSettled(fc, t);
});
