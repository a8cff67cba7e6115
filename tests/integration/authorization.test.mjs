// Authorization: a client acts for itself only; a non-member gets forbidden on every room
// operation, a missing room not_found; nothing leaks to non-members.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uid, assertError, sleep } from './lib/cluster.mjs';

const cluster = useCluster({ gateways: 2, workers: 1 });

const A = uid('owner');
const B = uid('member');
const C = uid('outsider');
let a;
let b;
let c; // C on the same gateway as A: a subscription leak would show there
let group;
let direct;

cluster.setup(async () => {
    a = await cluster.login(0, A);
    b = await cluster.login(1, B);
    c = await cluster.login(0, C);
    group = await a.call('room.create', { type: 'group', members: [B], name: 'private' });
    direct = await a.call('room.create', { type: 'direct', members: [B] });
    await a.call('msg.send', { room: group.id, cid: 'g-1', type: 'text', text: 'secret' });
    await a.call('msg.send', { room: direct.id, cid: 'd-1', type: 'text', text: 'secret too' });
});

const ops = (room) => [
    ['msg.send', { room, cid: uid('x'), type: 'text', text: 'intrusion' }],
    ['msg.history', { room }],
    ['room.get', { room }],
    ['room.read', { room, seq: 1 }],
];

for (const kind of ['group', 'direct']) {
    test(`a non-member gets forbidden on msg.send, msg.history, room.get, room.read (${kind} room)`, async () => {
        const room = kind === 'group' ? group.id : direct.id;
        for (const [op, data] of ops(room)) {
            assertError(await c.request(op, data), 'forbidden', null, `${op} by a non-member`);
        }
        const info = await a.call('room.get', { room });
        assert.equal(info.last_seq, 1, 'the refused msg.send stored a message');
        assert.equal(info.members_count, 2);
        assert.deepEqual(info.members.map((m) => m.id).sort(), [A, B].sort());
    });
}

test('a missing room is not_found for the same operations', async () => {
    const missing = uid('no-such-room');
    for (const [op, data] of ops(missing)) {
        assertError(await c.request(op, data), 'not_found', null, `${op} on a missing room`);
    }
    const r = await a.call('room.get', { room: group.id });
    assert.equal(r.id, group.id);
});

test('a non-member receives no event of the room, even on a gateway that delivers it to a member', async () => {
    const ack = await a.call('msg.send', { room: group.id, cid: 'g-2', type: 'text', text: 'members only' });
    await b.waitEvent('message', (m) => m.room === group.id && m.seq === ack.seq);
    await a.waitEvent('message', (m) => m.room === group.id && m.seq === ack.seq);
    await b.call('room.read', { room: group.id, seq: ack.seq });
    await a.waitEvent('read', (d) => d.room === group.id && d.client === B);
    await sleep(300);
    const leaked = c.eventsList.filter((e) => e.frame.data && (e.frame.data.room === group.id || e.frame.data.id === group.id || e.frame.data.room === direct.id || e.frame.data.id === direct.id));
    assert.deepEqual(leaked.map((e) => e.frame), [], 'events of a room reached a non-member');
});

test('room.list shows only the client\'s own rooms', async () => {
    const list = await c.call('room.list', {});
    assert.deepEqual(list.rooms, []);
    assert.equal(list.unread_total, 0);
    const listB = await b.call('room.list', {});
    assert.deepEqual(listB.rooms.map((r) => r.id).sort(), [group.id, direct.id].sort());
});
