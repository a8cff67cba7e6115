// No loss across a worker crash (docs/WEBHOOKS.md "Guarantees": at least once; a worker that
// dies mid-delivery leaves the cursor where it was and another worker sends the event again).
// Two workers; the one holding the lease imkit:webhook:lease is killed with SIGKILL while
// messages stream in and the receiver works through a backlog. Every event still arrives
// (repeats allowed: the receiver drops them by id), and the room's events stay in seq order.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useWebhookCluster, documentedVerifier, uid, send, sleep, waitFor } from './lib/hooks.mjs';

const N = 60;
const KILL_AT = 10; // the holder dies while delivering this message's event
const LEASE_MS = 15000; // webhook.c LEASE_MS: the survivor takes over once it expires

const verified = documentedVerifier();
const { cluster, receiver, secret } = await useWebhookCluster({
    workers: 2,
    // The killed worker's pending jobs are claimed after 1 s, so sends do not wait long.
    workerSet: { 'worker.claim_idle_ms': 1000 },
    // One worker is SIGKILLed on purpose; the last test checks every other process instead.
    allowUncleanExit: true,
});

test('SIGKILL of the worker holding the lease during a stream of messages: every event still arrives, in order', { timeout: 90000 }, async () => {
    const a = await cluster.login(0, uid('a'));
    const room = (await a.call('room.create', { type: 'group', members: [uid('b')] })).id;

    const lease = await waitFor(async () => {
        const v = await cluster.redis('GET', 'imkit:webhook:lease');
        return typeof v === 'string' && v ? v : null;
    }, 5000, 'the lease imkit:webhook:lease to be held');
    const pid = Number(lease.split('-').pop());
    const holder = cluster.workers.find((w) => w.proc.child.pid === pid);
    assert.ok(holder, `the lease "${lease}" names a worker of this cluster (pids ${cluster.workers.map((w) => w.proc.child.pid).join(', ')})`);
    const survivor = cluster.workers.find((w) => w !== holder);

    // The holder is killed while it has a request for message seq KILL_AT open at the receiver
    // (its answer is never read: the cursor stays before it), with messages still streaming.
    let killedAt = null;
    let deliveredBeforeKill = 0;
    receiver.behave = (r) => {
        if (killedAt === null && r.event?.type === 'message.sent' && r.event.data.room === room && r.event.data.seq === KILL_AT) {
            deliveredBeforeKill = receiver.events((e) => e.type === 'message.sent' && e.data.room === room).length;
            holder.proc.expectedStop = true;
            holder.proc.child.kill('SIGKILL');
            killedAt = Date.now();
        }
        return { status: 200, delayMs: 40 };
    };
    const acks = [];
    for (let i = 1; i <= N; i++) {
        acks.push(await send(a, room, `m${i}`, `message ${i}`));
        await sleep(25);
    }
    assert.ok(killedAt !== null, `the lease holder was killed during the stream (at the delivery of seq ${KILL_AT})`);
    const sentAfterKill = acks.filter((r) => r.ts > killedAt).length;
    await holder.proc.exited;
    const seqs = acks.map((r) => r.seq).sort((x, y) => x - y);
    assert.deepEqual(seqs, Array.from({ length: N }, (_, i) => i + 1), 'every message stored once, seq 1..N');

    const evs = await receiver.waitEvents((e) => e.type === 'message.sent' && e.data.room === room, N, LEASE_MS + 20000, `${N} message.sent of ${room}`);
    assert.deepEqual(evs.map((e) => e.data.seq), seqs, 'first deliveries in seq order, none missing');
    const killed = receiver.attemptsOf(evs[KILL_AT - 1].id);
    assert.ok(killed.length >= 2 && killed[0].late, `seq ${KILL_AT}: the attempt cut by the kill, then sent again by the survivor (${killed.length} attempt(s))`);

    const attempts = receiver.requests.filter((r) => r.event?.type === 'message.sent' && r.event.data.room === room);
    const repeats = attempts.length - N;
    const survivorName = await cluster.redis('GET', 'imkit:webhook:lease');
    assert.equal(Number(String(survivorName).split('-').pop()), survivor.proc.child.pid, 'the survivor holds the lease now');
    const firstAfter = Math.min(...receiver.requests.filter((r) => r.at > killedAt).map((r) => r.at));
    process.stderr.write(`crash: ${deliveredBeforeKill}/${N} delivered before the kill, ${sentAfterKill} sent after it, ${repeats} repeat(s), ` +
        `delivery resumed ${firstAfter - killedAt} ms after the kill\n`);
    assert.ok(firstAfter - killedAt < LEASE_MS + 3000, `the survivor resumed within the lease time (+3 s): ${firstAfter - killedAt} ms`);
    // Every request, repeats included, is a correctly signed, complete event.
    for (const r of attempts) {
        assert.equal(r.headers['x-imkit-event-id'], r.event.id);
        assert.equal(verified(r.raw, r.headers['x-imkit-signature'] || '', secret), true, `signature of ${r.event.id}`);
    }
});

test('the other processes lived through it', async () => {
    await sleep(100);
    const dead = cluster.serverProcs.filter((p) => !p.alive && !p.expectedStop).map((p) => `${p.name} ${p.describeExit()}`);
    assert.deepEqual(dead, []);
    assert.ok(cluster.redisAlive());
});
