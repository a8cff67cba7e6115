// Retries (docs/WEBHOOKS.md "The request", "Guarantees"): a non-2xx answer, or none within
// webhook.timeout_ms, is a failure; the same event is sent again after 1 s, 2 s, 4 s, …;
// an event that keeps failing holds back the ones after it, so nothing overtakes it and
// every room's events stay in order. Chatting is not slowed meanwhile.

import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { useWebhookCluster, uid, flush, cmpId, send, DELIVERY_MS } from './lib/hooks.mjs';

const TIMEOUT_MS = 500;
const { cluster, receiver } = await useWebhookCluster({ workerSet: { 'webhook.timeout_ms': TIMEOUT_MS } });

beforeEach(() => {
    receiver.behave = () => ({ status: 200 });
});

const msgOf = (room, seq) => (e) => e?.type === 'message.sent' && e.data.room === room && (seq === undefined || e.data.seq === seq);

/** Nothing for a later event id reached the receiver before `id` was accepted. */
function assertNotOvertaken(id) {
    const acceptedAt = receiver.attemptsOf(id).find((r) => r.status >= 200 && r.status < 300 && !r.late).answeredAt;
    const early = receiver.requests.filter((r) => r.id !== null && cmpId(r.id, id) > 0 && r.at < acceptedAt);
    assert.deepEqual(early.map((r) => `${r.event.type} ${r.id}`), [], `events after ${id} were sent before it was accepted`);
}

async function stream(room, client, from, to) {
    const acks = [];
    for (let i = from; i <= to; i++) {
        const t0 = Date.now();
        await send(client, room, `m${i}`);
        acks.push(Date.now() - t0);
    }
    return acks;
}

test('500, 500, then 200: delivered on the third attempt after 1 s and 2 s, nothing overtakes it, in order', { timeout: 40000 }, async () => {
    await flush(cluster, receiver);
    const a = await cluster.login(0, uid('a'));
    const room = (await a.call('room.create', { type: 'group', members: [uid('b')] })).id;
    receiver.behave = (r) => (msgOf(room, 1)(r.event) && r.attempt < 2 ? { status: 500 } : { status: 200 });

    const acks = await stream(room, a, 1, 6);
    const other = (await a.call('room.create', { type: 'group', members: [uid('c')] })).id; // another room, later

    const evs = await receiver.waitEvents(msgOf(room), 6, DELIVERY_MS + 5000, `6 message.sent of ${room}`);
    assert.deepEqual(evs.map((e) => e.data.seq), [1, 2, 3, 4, 5, 6], 'the room\'s events in seq order');
    const id = evs[0].id;
    const tries = receiver.attemptsOf(id);
    assert.deepEqual(tries.map((r) => r.status), [500, 500, 200], 'three attempts: 500, 500, 200');
    const gap1 = tries[1].at - tries[0].at;
    const gap2 = tries[2].at - tries[1].at;
    assert.ok(gap1 >= 900 && gap1 < 2500, `first retry after ~1 s, was ${gap1} ms`);
    assert.ok(gap2 >= 1900 && gap2 < 4000, `second retry after ~2 s (doubling), was ${gap2} ms`);
    for (const r of tries) {
        assert.equal(r.raw.toString(), tries[0].raw.toString(), 'the same body every attempt');
        assert.equal(r.headers['x-imkit-signature'], tries[0].headers['x-imkit-signature']);
        assert.equal(r.headers['x-imkit-event-id'], id);
    }
    assertNotOvertaken(id);
    await receiver.waitEvent((e) => e.type === 'room.created' && e.data.id === other, DELIVERY_MS, `room.created of ${other}`);
    const order = receiver.unique().map((e) => e.id);
    for (let i = 1; i < order.length; i++) {
        assert.equal(cmpId(order[i - 1], order[i]), -1, `delivery order follows event ids: ${order[i - 1]} then ${order[i]}`);
    }
    // Chat went on at normal speed while the webhook was failing.
    assert.ok(Math.max(...acks) < 1000, `msg.send acknowledged in under 1 s each while retrying: ${acks.join(', ')} ms`);
});

test('any non-2xx is a failure (404, then 302); any 2xx (204) is accepted', { timeout: 30000 }, async () => {
    await flush(cluster, receiver);
    const a = await cluster.login(0, uid('a'));
    const room = (await a.call('room.create', { type: 'direct', members: [uid('b')] })).id;
    receiver.behave = (r) => {
        if (!msgOf(room, 1)(r.event)) {
            return { status: 200 };
        }
        return { status: [404, 302, 204][Math.min(r.attempt, 2)] };
    };
    await send(a, room, 'x1');
    await send(a, room, 'x2');
    const evs = await receiver.waitEvents(msgOf(room), 2, DELIVERY_MS + 5000, `2 message.sent of ${room}`);
    assert.deepEqual(evs.map((e) => e.data.seq), [1, 2]);
    assert.deepEqual(receiver.attemptsOf(evs[0].id).map((r) => r.status), [404, 302, 204]);
    assert.equal(receiver.attemptsOf(evs[1].id).length, 1, 'the next event once, after the first was accepted');
    assertNotOvertaken(evs[0].id);
});

test(`no answer within webhook.timeout_ms (${TIMEOUT_MS} ms) is a failure: the connection is dropped, the event sent again after 1 s`, { timeout: 30000 }, async () => {
    await flush(cluster, receiver);
    const a = await cluster.login(0, uid('a'));
    const room = (await a.call('room.create', { type: 'group', members: [uid('b')] })).id;
    // The first attempt is held 3 s (then answered 200, too late); later attempts at once.
    receiver.behave = (r) => (msgOf(room, 1)(r.event) && r.attempt === 0 ? { status: 200, delayMs: 3000 } : { status: 200 });

    const acks = await stream(room, a, 1, 4);
    const evs = await receiver.waitEvents(msgOf(room), 4, DELIVERY_MS + 5000, `4 message.sent of ${room}`);
    assert.deepEqual(evs.map((e) => e.data.seq), [1, 2, 3, 4]);
    const tries = receiver.attemptsOf(evs[0].id);
    assert.equal(tries.length, 2, `two attempts (held, then accepted): ${tries.map((r) => r.status).join(', ')}`);
    const held = tries[0];
    assert.ok(held.closedAt !== null, 'the held request was closed');
    const heldFor = held.closedAt - held.at;
    assert.ok(heldFor >= TIMEOUT_MS - 100 && heldFor < TIMEOUT_MS + 1000,
        `the worker gave up on the held request after ~${TIMEOUT_MS} ms (closed its connection after ${heldFor} ms)`);
    const gap = tries[1].at - held.at;
    assert.ok(gap >= TIMEOUT_MS + 900 && gap < TIMEOUT_MS + 2500, `resent ~1 s after the timeout: ${gap} ms after the first attempt`);
    assertNotOvertaken(evs[0].id);
    assert.ok(Math.max(...acks) < 1000, `msg.send acknowledged in under 1 s each meanwhile: ${acks.join(', ')} ms`);
});
