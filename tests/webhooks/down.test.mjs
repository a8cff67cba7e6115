// "A webhook receiver that is down or slow changes nothing for chatting users"
// (docs/WEBHOOKS.md "Never in the way of chatting"). Messages are acknowledged as fast while
// the receiver refuses connections, and while it accepts them but never answers, as while it
// is healthy; once it is back, every event of the outage arrives, in order.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useWebhookCluster, uid, send, sleep, median, percentile, cmpId } from './lib/hooks.mjs';

const TIMEOUT_MS = 1000;
const { cluster, receiver } = await useWebhookCluster({ workerSet: { 'webhook.timeout_ms': TIMEOUT_MS } });

const PER_PHASE = 40;
const SPACING_MS = 50;

async function phase(client, room, label, first) {
    const acks = [];
    for (let i = 0; i < PER_PHASE; i++) {
        const t0 = performance.now();
        await send(client, room, `${label}-${first + i}`);
        acks.push(performance.now() - t0);
        await sleep(SPACING_MS);
    }
    return acks;
}

const fmt = (xs) => `median ${median(xs).toFixed(1)} ms, p95 ${percentile(xs, 95).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms`;

test('chat speed is the same with the receiver healthy, refusing connections, and not answering; nothing of the outage is lost', { timeout: 60000 }, async () => {
    const a = await cluster.login(0, uid('a'));
    const b = await cluster.login(0, uid('b'));
    const room = (await a.call('room.create', { type: 'group', members: [b.clientId] })).id;
    await send(a, room, 'warm-up');

    const up = await phase(a, room, 'up', 1);

    await receiver.close(); // connection refused from now on
    const closedAt = Date.now();
    const down = await phase(a, room, 'down', 1);

    await receiver.listen(); // same port; accepts, but holds every request past the timeout
    receiver.behave = () => ({ status: 200, delayMs: 10 * TIMEOUT_MS });
    const slowFrom = receiver.requests.length;
    const slow = await phase(a, room, 'slow', 1);
    const heldDuringSlow = receiver.requests.slice(slowFrom).length;

    receiver.behave = () => ({ status: 200 });
    const healthyAgainAt = Date.now();
    process.stderr.write(`acks: healthy ${fmt(up)}; refused ${fmt(down)}; not answering ${fmt(slow)}\n`);

    // Chat: as fast as when healthy (generous margins for a loaded machine), and b got it all live.
    for (const [label, xs] of [['refusing connections', down], ['not answering', slow]]) {
        assert.ok(median(xs) <= 3 * median(up) + 20, `median ack with the receiver ${label} (${fmt(xs)}) vs healthy (${fmt(up)})`);
        assert.ok(percentile(xs, 95) < 500, `p95 ack with the receiver ${label}: ${fmt(xs)}`);
    }
    const total = 1 + 3 * PER_PHASE;
    await b.waitEvents('message', total, (m) => m.room === room, 5000);

    // The outage was real: nothing was accepted while refusing, the slow receiver timed out.
    assert.equal(receiver.accepted().filter((r) => r.answeredAt > closedAt && r.answeredAt < healthyAgainAt).length, 0,
        'no event accepted during the outage');
    assert.ok(heldDuringSlow >= 1, 'the worker tried the slow receiver');

    // Afterwards every message of every phase arrives once the receiver answers again, in order.
    const evs = await receiver.waitEvents((e) => e.type === 'message.sent' && e.data.room === room, total, 30000, `${total} message.sent of ${room}`);
    assert.deepEqual(evs.map((e) => e.data.seq), Array.from({ length: total }, (_, i) => i + 1));
    const order = receiver.unique().map((e) => e.id);
    for (let i = 1; i < order.length; i++) {
        assert.equal(cmpId(order[i - 1], order[i]), -1, 'delivery order follows event ids');
    }
});
