// One deliverer at a time (docs/WEBHOOKS.md "Guarantees": "One worker at a time delivers (it
// holds the lease imkit:webhook:lease), one event at a time, in the order the changes
// happened"). With two workers and a slow but healthy receiver (each answer takes 600 ms,
// well within webhook.timeout_ms), a backlog of ~35 events takes longer than the 15 s lease
// to work through: the receiver must still never see two requests at once, a repeat, or an
// event before an earlier one.

import { test } from 'node:test';
import fs from 'node:fs';
import assert from 'node:assert/strict';
import { useWebhookCluster, uid, send, pool, cmpId, flush } from './lib/hooks.mjs';

const N = 34;
const DELAY_MS = 600;
const { cluster, receiver } = await useWebhookCluster({ workers: 2 });

test(`a slow receiver (${DELAY_MS} ms an answer) with two workers: one request at a time, no repeats, in order`, { timeout: 90000 }, async () => {
    await flush(cluster, receiver);
    const a = await cluster.login(0, uid('a'));
    const room = (await a.call('room.create', { type: 'group', members: [uid('b')] })).id;
    await flush(cluster, receiver);
    const from = receiver.requests.length;
    receiver.maxInFlight = receiver.inFlight;
    receiver.behave = () => ({ status: 200, delayMs: DELAY_MS });

    const t0 = Date.now();
    const acks = await pool(N, 8, (i) => send(a, room, `m${i + 1}`));
    const sendMs = Date.now() - t0;
    const evs = await receiver.waitEvents((e) => e.type === 'message.sent' && e.data.room === room, N, N * DELAY_MS + 20000, `${N} message.sent of ${room}`);
    assert.deepEqual(evs.map((e) => e.data.seq), acks.map((r) => r.seq).sort((x, y) => x - y));

    const reqs = receiver.requests.slice(from);
    const ids = reqs.map((r) => r.id);
    const repeats = ids.filter((id, i) => ids.indexOf(id) !== i);
    const backwards = [];
    for (let i = 1; i < ids.length; i++) {
        if (cmpId(ids[i - 1], ids[i]) > 0) {
            backwards.push(`${ids[i - 1]} (seq ${reqs[i - 1].event.data.seq}) then ${ids[i]} (seq ${reqs[i].event.data.seq}) at +${reqs[i].at - t0} ms`);
        }
    }
    let overlaps = 0;
    for (let i = 1; i < reqs.length; i++) {
        if (reqs[i].at < reqs[i - 1].closedAt) {
            overlaps++;
        }
    }
    // Who posted: each worker logs webhook_post (debug level) in its own log.
    const posts = cluster.workers.map((w) => {
        try {
            return (fs.readFileSync(w.proc.logFile, 'utf8').match(/event=webhook_post /g) || []).length;
        } catch {
            return '?';
        }
    });
    process.stderr.write(`lease: ${N} messages stored in ${sendMs} ms, ${reqs.length} requests for them, ` +
        `max ${receiver.maxInFlight} in flight, ${overlaps} overlapping, ${repeats.length} repeat(s), ${backwards.length} going back; ` +
        `webhook_post lines per worker log: ${posts.join(' / ')}\n`);
    const problems = [];
    if (receiver.maxInFlight !== 1) {
        problems.push(`${receiver.maxInFlight} requests in flight at once (${overlaps} began while another was open): two deliverers`);
    }
    if (repeats.length) {
        problems.push(`${repeats.length} event(s) sent again with no failure and no crash: ${repeats.slice(0, 5).join(', ')}`);
    }
    if (backwards.length) {
        problems.push(`${backwards.length} request(s) for an earlier event after a later one: ${backwards.slice(0, 3).join('; ')}`);
    }
    assert.deepEqual(problems, [], 'one deliverer at a time, one event at a time, in order');
});
