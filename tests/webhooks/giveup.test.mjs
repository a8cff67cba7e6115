// Giving up, and sending again (docs/WEBHOOKS.md "The request", "Operating it"): an event
// that still fails once webhook.retry_for_s has passed since it happened is recorded in the
// Redis stream imkit:events:dead (with the URL) and the next event goes; moving
// imkit:webhook:cursor back has everything after that point sent again.
//
// retry_for_s is at least an hour, so the "old" event is planted in the stream with an id
// from 1970 (ids are the event's time) before anything else happened in this cluster.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useWebhookCluster, flush, uid, sleep, DELIVERY_MS } from './lib/hooks.mjs';

const { cluster, receiver } = await useWebhookCluster();
const OLD = '1000-0';

test('an event failing after webhook.retry_for_s is given up at once, recorded in imkit:events:dead, and the next one goes', async () => {
    receiver.behave = (r) => (r.id === OLD ? { status: 500 } : { status: 200 });
    assert.equal(await cluster.redis('XLEN', 'imkit:events'), 0, 'nothing happened yet in this cluster');
    const id = await cluster.redis('XADD', 'imkit:events', OLD, 'type', 'client.created', 'ts', '1000',
        'data', '{"id":"ancient","name":"ancient","avatar":null,"meta":null}');
    assert.equal(id, OLD);
    await flush(cluster, receiver); // a real event after it is delivered
    await sleep(300);
    const tries = receiver.attemptsOf(OLD);
    assert.equal(tries.length, 1, `one attempt, then given up (retry_for_s passed long ago): ${tries.length}`);
    assert.deepEqual(tries[0].event, { id: OLD, type: 'client.created', ts: 1000, data: { id: 'ancient', name: 'ancient', avatar: null, meta: null } });
    const dead = await cluster.redis('XRANGE', 'imkit:events:dead', '-', '+');
    assert.equal(dead.length, 1, `one entry in imkit:events:dead: ${JSON.stringify(dead)}`);
    const fields = {};
    for (let i = 0; i < dead[0][1].length; i += 2) {
        fields[dead[0][1][i]] = dead[0][1][i + 1];
    }
    assert.deepEqual(fields, { event: OLD, url: receiver.url() });
});

test('moving imkit:webhook:cursor back sends every later event again, same ids and bodies', async () => {
    const room = (await cluster.admin('POST', '/v1/rooms', { type: 'group', members: [uid('x'), uid('y')] })).body.id;
    await receiver.waitEvent((e) => e.type === 'room.created' && e.data.id === room, DELIVERY_MS, `room.created of ${room}`);
    const all = (await cluster.admin('GET', '/v1/events?limit=1000')).body.events;
    const back = all[all.length - 4].id; // the last 3 events go again
    const from = receiver.requests.length;
    await cluster.redis('SET', 'imkit:webhook:cursor', back);
    await receiver.waitUntil(() => receiver.requests.length - from >= 3, DELIVERY_MS, '3 events sent again');
    const again = receiver.requests.slice(from, from + 3);
    assert.deepEqual(again.map((r) => r.id), all.slice(-3).map((e) => e.id), 'the events after the cursor, in order');
    for (const r of again) {
        const first = receiver.requests.find((q) => q.id === r.id);
        assert.equal(r.raw.toString(), first.raw.toString(), `${r.id}: the same body`);
    }
});
