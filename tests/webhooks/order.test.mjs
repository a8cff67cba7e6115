// Order per room (docs/WEBHOOKS.md "In order"): with two gateways, two workers and
// several senders per room writing concurrently, each room's events reach the webhook in
// the order the changes happened: room.created first, message.sent in seq order 1, 2, 3, …
// with no gap and no repeat, ts never going back; and deliveries as a whole follow event ids.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useWebhookCluster, uid, send, pool, cmpId, aboutRoom } from './lib/hooks.mjs';

const { cluster, receiver } = await useWebhookCluster({ gateways: 2, workers: 2 });

const ROOMS = 4;
const SENDERS = 3;
const EACH = 25;

test(`${ROOMS} rooms × ${SENDERS} concurrent senders × ${EACH} messages: every room's events in order`, { timeout: 60000 }, async () => {
    const rooms = [];
    for (let r = 0; r < ROOMS; r++) {
        const senders = [];
        for (let s = 0; s < SENDERS; s++) {
            senders.push(await cluster.login(s % 2, uid(`r${r}s${s}`)));
        }
        const id = (await senders[0].call('room.create', { type: 'group', members: senders.slice(1).map((c) => c.clientId) })).id;
        rooms.push({ id, senders });
    }
    const jobs = [];
    for (const room of rooms) {
        for (let s = 0; s < SENDERS; s++) {
            for (let i = 0; i < EACH; i++) {
                jobs.push({ room, s, i });
            }
        }
    }
    // Interleave rooms and senders, and rename each room now and then meanwhile.
    jobs.sort((x, y) => x.i - y.i || x.s - y.s);
    await pool(jobs.length, 16, async (k) => {
        const { room, s, i } = jobs[k];
        await send(room.senders[s], room.id, `s${s}-${i}`);
        if (s === 0 && i % 10 === 5) {
            await room.senders[0].call('room.update', { room: room.id, name: `name ${i}` });
        }
    });

    const total = SENDERS * EACH;
    for (const room of rooms) {
        const evs = await receiver.waitEvents((e) => e.type === 'message.sent' && e.data.room === room.id, total, 20000, `${total} message.sent of ${room.id}`);
        assert.deepEqual(evs.map((e) => e.data.seq), Array.from({ length: total }, (_, i) => i + 1), `room ${room.id}: seq order, no gap, no repeat`);
        for (let i = 1; i < evs.length; i++) {
            assert.ok(evs[i].data.ts >= evs[i - 1].data.ts, `room ${room.id}: ts never goes back (${evs[i - 1].data.ts} then ${evs[i].data.ts})`);
        }
        const all = receiver.events(aboutRoom(room.id));
        assert.equal(all[0].type, 'room.created', `room ${room.id}: room.created comes first`);
        const renames = all.filter((e) => e.type === 'room.updated').map((e) => e.data.updated_at);
        const wantRenames = Array.from({ length: EACH }, (_, i) => i).filter((i) => i % 10 === 5).length;
        assert.equal(renames.length, wantRenames, `room ${room.id}: ${wantRenames} room.updated`);
        assert.deepEqual(renames, [...renames].sort((x, y) => x - y), `room ${room.id}: room.updated in order`);
    }
    const ids = receiver.unique().map((e) => e.id);
    for (let i = 1; i < ids.length; i++) {
        assert.equal(cmpId(ids[i - 1], ids[i]), -1, `deliveries follow event ids: ${ids[i - 1]} then ${ids[i]}`);
    }
    const repeats = receiver.requests.length - new Set(receiver.requests.map((r) => r.id)).size;
    assert.equal(repeats, 0, 'no event sent twice with a healthy receiver');
});

test('one sender waiting for each answer: its messages and renames in the order it made them', { timeout: 60000 }, async () => {
    const a = await cluster.login(0, uid('seq'));
    const room = (await a.call('room.create', { type: 'group', members: [uid('peer')] })).id;
    for (let i = 1; i <= 20; i++) {
        await send(a, room, `m${i}`);
        if (i % 5 === 0) {
            await a.call('room.update', { room, name: `name ${i}` });
        }
    }
    const evs = await receiver.waitEvents(aboutRoom(room), 25, 20000, `25 events of ${room}`);
    const all = evs.map((e) => (e.type === 'message.sent' ? `m${e.data.seq}` : e.type === 'room.updated' ? e.data.name : e.type));
    const want = ['room.created'];
    for (let i = 1; i <= 20; i++) {
        want.push(`m${i}`);
        if (i % 5 === 0) {
            want.push(`name ${i}`);
        }
    }
    assert.deepEqual(all, want);
});
