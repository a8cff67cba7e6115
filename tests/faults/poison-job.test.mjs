// Poison jobs: garbage written into the job streams with `redis-cli XADD`, and valid
// envelopes whose function fails. Each lands in imkit:jobs:dead (garbage at once, a failing
// function after worker.max_attempts = 3 tries), the requester waiting on a failing job gets
// an error, and the stream is never blocked: jobs behind the poison, in the same partition,
// are applied meanwhile.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFaultCluster, waitFor, sleep, redisCliStdin } from './lib/fault-cluster.mjs';
import { Recorder, setupChat, runLoad } from './lib/chat.mjs';
import { checkRun, summary, assertClean } from './lib/checker.mjs';
import { assertSettled, partitionOf, jobEnvelope, msgpack, countLogLines } from './lib/util.mjs';

const MAX_ATTEMPTS = 3;
const CLAIM_IDLE_MS = 1000;

const fc = useFaultCluster({
    gateways: 1,
    workers: 2,
    gatewaySet: { 'limits.rate': 100000, 'limits.burst': 100000 },
    workerSet: { 'worker.claim_idle_ms': CLAIM_IDLE_MS, 'worker.max_attempts': MAX_ATTEMPTS },
});

const rec = new Recorder();
let chat;

test('garbage written with redis-cli XADD is dead-lettered at once and blocks nothing', { timeout: 60000 }, async (t) => {
    chat = await setupChat(fc, { nClients: 4, nRooms: 4, roomsPerClient: 2, recorder: rec });
    const poison = [];
    for (let p = 0; p < fc.partitions; p++) {
        const stream = `${fc.prefix}jobs:${p}`;
        poison.push({ stream, id: await fc.redisRaw(['XADD', stream, '*', 'j', `garbage ${p}: not msgpack at all`]), what: 'garbage' });
    }
    const s0 = `${fc.prefix}jobs:0`;
    poison.push({ stream: s0, id: await fc.redisRaw(['XADD', s0, '*', 'x', 'no j field']), what: 'no j field' });
    poison.push({ stream: s0, id: await redisCliStdin(fc.redisPort, ['XADD', s0, '*', 'j'], msgpack({ v: 1, kind: 'imkit_msg_send' })), what: 'envelope missing fields' });
    poison.push({ stream: s0, id: await redisCliStdin(fc.redisPort, ['XADD', s0, '*', 'j'], jobEnvelope({ kind: 'imkit_no_such_kind', from: 'x', args: {} })), what: 'unknown kind' });
    poison.push({ stream: s0, id: await redisCliStdin(fc.redisPort, ['XADD', s0, '*', 'j'], jobEnvelope({ kind: 'imkit_msg_send_ro', from: 'x', args: {} })), what: 'kind not a command' });
    fc.note(`${poison.length} poison jobs written`);

    const dead = await waitFor(async () => {
        const d = await fc.deadJobs();
        return d.length >= poison.length ? d : null;
    }, 10000, `${poison.length} dead jobs`);
    for (const p of poison) {
        const d = dead.find((x) => x.fields.id === p.id);
        assert.ok(d, `${p.what} (${p.stream} ${p.id}) is not in the dead-letter stream: ${JSON.stringify(dead.map((x) => x.fields))}`);
        assert.equal(d.fields.stream, p.stream);
        assert.ok(d.fields.error && d.fields.error.length > 0, 'a dead job carries its error');
    }
    t.diagnostic(`${poison.length} poison jobs dead-lettered: ${[...new Set(dead.map((d) => d.fields.error))].join(' | ')}`);

    const load = await runLoad(chat.clients, { total: 800, window: 4, deadline: Date.now() + 30000, tag: 'after-poison-' });
    assert.equal(load.acked, 800, 'jobs behind the poison are applied');
    await assertSettled(fc, t, { allowDead: poison.length });
});

test(`a job whose function fails is tried ${MAX_ATTEMPTS} times, dead-lettered, its requester gets an error, and the jobs behind it go on`, { timeout: 60000 }, async (t) => {
    const [c] = chat.clients;
    // A room whose cid hash is broken (a string where a hash is expected): every msg.send to it
    // fails inside the function with WRONGTYPE, a Lua runtime error, not a bad_request.
    const doomedRoom = chat.rooms.find((r) => r.members.includes(c.id));
    const part = partitionOf(doomedRoom.id, fc.partitions);
    const cidKey = `${fc.prefix}r:{${doomedRoom.id}}:cid`;
    const backup = `${cidKey}:backup`;
    await fc.redisRaw(['RENAME', cidKey, backup]); // the room had messages: it has a cid hash
    await fc.redisRaw(['SET', cidKey, 'not a hash']);
    fc.note(`room ${doomedRoom.id} (partition ${part}) broken`);
    const deadBefore = (await fc.deadJobs()).length;
    // A healthy room on the same partition: its jobs queue behind the failing one.
    let besideId;
    do {
        besideId = `beside-${Math.random().toString(36).slice(2, 10)}`;
    } while (partitionOf(besideId, fc.partitions) !== part);
    const other = chat.clients.find((x) => x !== c);
    await c.call('room.create', { type: 'group', id: besideId, members: [other.id], name: 'same partition' }, Date.now() + 10000);
    await waitFor(() => c.rooms.has(besideId) && other.rooms.has(besideId), 10000, 'room.joined of the same-partition room');
    chat.rooms.push({ id: besideId, members: [c.id, other.id] });

    // Background load on the other rooms meanwhile, among them on the same partition or not.
    const t0 = Date.now();
    const loadP = runLoad(chat.clients, {
        total: 600, window: 2, rate: 150, deadline: Date.now() + 40000, tag: 'beside-doomed-', roomFilter: (r) => r !== doomedRoom.id,
    });

    // A requester waiting on the failing job.
    await sleep(300);
    rec.attempt(doomedRoom.id, c.id, 'doomed');
    const sentAt = Date.now();
    const res = await c.conn.request('msg.send', { room: doomedRoom.id, cid: 'doomed', type: 'text', text: 'never stored' }, 9000);
    const answeredMs = Date.now() - sentAt;
    // A job written by hand with a valid envelope, for the same broken room, nobody waiting.
    const craftedId = await redisCliStdin(fc.redisPort, ['XADD', `${fc.prefix}jobs:${part}`, '*', 'j'],
        jobEnvelope({ kind: 'imkit_msg_send', from: c.id, args: { room: doomedRoom.id, cid: 'crafted', type: 'text', text: 'x' } }));
    rec.attempt(doomedRoom.id, c.id, 'crafted');
    const dead = await waitFor(async () => {
        const d = await fc.deadJobs();
        return d.length >= deadBefore + 2 ? d.slice(deadBefore) : null;
    }, 15000, 'the two failing jobs in the dead-letter stream');
    const deadAt = Date.now();
    const deadAtMs = deadAt - sentAt;
    const load = await loadP;

    t.diagnostic(`requester answered after ${answeredMs} ms: ${JSON.stringify(res.error || res.data)}; both dead after ${deadAtMs} ms; ` +
        `failed tries logged: ${countLogLines(fc.workers[0].proc.logFile, 'job_failed') + countLogLines(fc.workers[1].proc.logFile, 'job_failed')}; ` +
        `beside it: ${JSON.stringify(load)} in ${Date.now() - t0} ms`);
    assert.equal(res.ok, false, `the requester of a failing job got ${JSON.stringify(res)}`);
    assert.equal(res.error.code, 'internal', `expected the dead-letter answer "internal" (got ${res.error.code} after ${answeredMs} ms)`);
    for (const d of dead) {
        assert.match(d.fields.error, /WRONGTYPE/, `dead job error: ${d.fields.error}`);
        assert.equal(d.fields.stream, `${fc.prefix}jobs:${part}`);
    }
    assert.ok(dead.some((d) => d.fields.id === craftedId), 'the crafted job is dead-lettered');
    const failedTries = countLogLines(fc.workers[0].proc.logFile, 'job_failed') + countLogLines(fc.workers[1].proc.logFile, 'job_failed');
    assert.equal(failedTries, 2 * (MAX_ATTEMPTS - 1), `each failing job is retried ${MAX_ATTEMPTS - 1} times before the dead letter`);
    assert.equal(load.acked, 600, 'jobs beside the failing one were applied');
    const samePartition = rec.acks.filter((a) => a.room === besideId && a.at > sentAt && a.at < deadAt).length;
    t.diagnostic(`acknowledged on the same partition while the failing jobs were retried: ${samePartition}`);
    assert.ok(samePartition > 0, 'no job of the same partition was applied while the failing job was pending: the stream is blocked');

    // Repaired, the same cid goes through: nothing of the failed tries was stored.
    await fc.redisRaw(['DEL', cidKey]);
    await fc.redisRaw(['RENAME', backup, cidKey]);
    fc.note('cid hash restored');
    const ok = await c.send(doomedRoom.id, 'doomed', 'stored now', Date.now() + 10000);
    assert.ok(ok, 'the same cid is accepted once the room is repaired');

    await assertSettled(fc, t, { allowDead: deadBefore + 2 });
    await Promise.all(chat.clients.map((x) => x.catchUp(Date.now() + 30000)));
    const report = await checkRun(fc, { roomIds: chat.rooms.map((r) => r.id), recorder: rec, clients: chat.clients });
    t.diagnostic(summary(report));
    assertClean(report, 'poison jobs');
});
