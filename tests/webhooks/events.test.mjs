// Every event type of PROTOCOL.md §4 arrives at the webhook with the right data, whether the
// change came from a client (WebSocket) or from the admin API:
//   message.sent            the message as stored, plus "offline"
//   room.created/updated/deleted   the room (deleted: as it was)
//   member.joined/left      {"room","members":[ids]}
//   client.created          the client
// and message.sent's "offline" names exactly the members with no open connection.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    useWebhookCluster, uid, flush, roomOnly, waitOffline, aboutRoom, assertKeys, ROOM_KEYS, CLIENT_KEYS,
    MESSAGE_KEYS, DELIVERY_MS,
} from './lib/hooks.mjs';

const { cluster, receiver } = await useWebhookCluster({ gateways: 2 });

const ofType = (type, pred = () => true) => (e) => e.type === type && pred(e.data);
const one = (type, pred, what) => receiver.waitEvent(ofType(type, pred), DELIVERY_MS, what || type);

function checkRoom(data, expected, what) {
    assertKeys(data, ROOM_KEYS, what);
    assert.deepEqual(Object.keys(data).sort(), [...ROOM_KEYS].sort(), `${what}: exactly the room's fields`);
    assert.deepEqual(data, expected, what);
}

test('client.created: admin PUT of a new client, first JWT auth, a member that never connected; not on updates', async () => {
    // Admin PUT.
    const put = uid('put');
    const res = await cluster.admin('PUT', `/v1/clients/${put}`, { name: 'Put Person', avatar: 'https://example.com/a.png', meta: { plan: 'pro' } });
    assert.equal(res.status, 200, res.text);
    const e1 = await one('client.created', (d) => d.id === put, `client.created of ${put}`);
    assert.deepEqual(Object.keys(e1.data).sort(), [...CLIENT_KEYS].sort(), 'exactly the client fields');
    assert.deepEqual(e1.data, { id: put, name: 'Put Person', avatar: 'https://example.com/a.png', meta: { plan: 'pro' } });
    assert.deepEqual(e1.data, res.body, 'the client as the PUT answered it');

    // First auth with a JWT carrying name and avatar creates the client.
    const jid = uid('jwt');
    const c = await cluster.login(1, jid, { name: 'Jay', avatar: 'https://example.com/j.png' });
    const e2 = await one('client.created', (d) => d.id === jid, `client.created of ${jid}`);
    assert.deepEqual(e2.data, { id: jid, name: 'Jay', avatar: 'https://example.com/j.png', meta: null });

    // A member named before it ever connected gets a profile named by its id, before the room.
    const ghost = uid('ghost');
    const room = (await c.call('room.create', { type: 'direct', members: [ghost] })).id;
    const e3 = await one('client.created', (d) => d.id === ghost, `client.created of ${ghost}`);
    assert.deepEqual(e3.data, { id: ghost, name: ghost, avatar: null, meta: null });
    const created = await one('room.created', (d) => d.id === room, `room.created of ${room}`);
    const order = receiver.unique().map((e) => e.id);
    assert.ok(order.indexOf(e3.id) < order.indexOf(created.id), 'client.created of a new member comes before room.created');

    // Updates, a second login, naming an existing client: no new client.created.
    assert.equal((await cluster.admin('PUT', `/v1/clients/${put}`, { name: 'Renamed' })).status, 200);
    await cluster.login(0, jid, { name: 'Jay again' });
    await c.call('me.update', { name: 'Jay 3' });
    await c.call('room.create', { type: 'group', members: [put, ghost] });
    await flush(cluster, receiver);
    for (const id of [put, jid, ghost]) {
        assert.equal(receiver.events(ofType('client.created', (d) => d.id === id)).length, 1, `one client.created for ${id}`);
    }
});

test('room.created, room.updated, room.deleted carry the room (deleted: as it was), from clients and the admin API', async () => {
    const owner = await cluster.login(0, uid('owner'));
    const m1 = uid('m1');

    // Client creates a group.
    const ans = await owner.call('room.create', { type: 'group', members: [m1], name: 'Bikes', cover: 'https://example.com/c.png', meta: { topic: 'bikes' } });
    const created = await one('room.created', (d) => d.id === ans.id, `room.created of ${ans.id}`);
    checkRoom(created.data, roomOnly(ans), 'room.created (client)');
    assert.equal(created.data.owner, owner.clientId);
    assert.equal(created.data.members_count, 2);
    assert.equal(created.data.last_seq, 0);

    // Client updates it.
    const upd = await owner.call('room.update', { room: ans.id, name: 'Bicycles', meta: { topic: 'bicycles' } });
    const updated = await one('room.updated', (d) => d.id === ans.id, `room.updated of ${ans.id}`);
    checkRoom(updated.data, upd, 'room.updated (client)');
    assert.equal(updated.data.name, 'Bicycles');

    // Admin creates, patches (clearing a field), deletes.
    const rid = uid('adm-room');
    const post = await cluster.admin('POST', '/v1/rooms', { type: 'group', id: rid, members: [owner.clientId, m1], owner: owner.clientId, name: 'Admin room' });
    assert.equal(post.status, 201, post.text);
    const aCreated = await one('room.created', (d) => d.id === rid, `room.created of ${rid}`);
    checkRoom(aCreated.data, roomOnly(post.body), 'room.created (admin)');

    const patch = await cluster.admin('PATCH', `/v1/rooms/${rid}`, { name: null, cover: 'https://example.com/x.png' });
    assert.equal(patch.status, 200, patch.text);
    const aUpdated = await one('room.updated', (d) => d.id === rid, `room.updated of ${rid}`);
    checkRoom(aUpdated.data, roomOnly(patch.body), 'room.updated (admin PATCH)');
    assert.equal(aUpdated.data.name, null);

    await owner.call('msg.send', { room: rid, cid: 'x1', type: 'text', text: 'before the end' });
    const asItWas = await cluster.admin('GET', `/v1/rooms/${rid}`);
    assert.equal(asItWas.status, 200, asItWas.text);
    const del = await cluster.admin('DELETE', `/v1/rooms/${rid}`);
    assert.equal(del.status, 204, del.text);
    const deleted = await one('room.deleted', (d) => d.id === rid, `room.deleted of ${rid}`);
    checkRoom(deleted.data, roomOnly(asItWas.body), 'room.deleted: the room as it was');
    assert.equal(deleted.data.last_seq, 1);

    // A direct room: no owner.
    const peer = uid('peer');
    const d = await owner.call('room.create', { type: 'direct', members: [peer] });
    const dCreated = await one('room.created', (x) => x.id === d.id, `room.created of direct ${d.id}`);
    checkRoom(dCreated.data, roomOnly(d), 'room.created (direct)');
    assert.equal(dCreated.data.owner, null);
    assert.equal(dCreated.data.type, 'direct');
    // The same pair again is not a creation.
    assert.equal((await owner.call('room.create', { type: 'direct', members: [peer] })).created, false);
    await flush(cluster, receiver);
    assert.equal(receiver.events(ofType('room.created', (x) => x.id === d.id)).length, 1, 'one room.created for a direct pair');
});

test('member.joined and member.left carry {room, members}; one entry per change; leave by the owner also gives room.updated', async () => {
    const owner = await cluster.login(0, uid('owner'));
    const [a, b, c, dd] = [uid('a'), uid('b'), uid('c'), uid('d')];
    const room = (await owner.call('room.create', { type: 'group', members: [a] })).id;

    await owner.call('room.members.add', { room, members: [b, c] });
    const j1 = await one('member.joined', (d) => d.room === room, `member.joined of ${room}`);
    assert.deepEqual(j1.data, { room, members: [b, c] });

    const add = await cluster.admin('POST', `/v1/rooms/${room}/members`, { members: [dd, b] }); // b is in already
    assert.equal(add.status, 200, add.text);
    await receiver.waitEvents(ofType('member.joined', (d) => d.room === room), 2, DELIVERY_MS, `2 member.joined of ${room}`);
    const j2 = receiver.events(ofType('member.joined', (d) => d.room === room))[1];
    assert.deepEqual(j2.data, { room, members: [dd] }, 'only the new member');

    await owner.call('room.members.remove', { room, members: [b, c] });
    const l1 = await one('member.left', (d) => d.room === room, `member.left of ${room}`);
    assert.deepEqual(l1.data, { room, members: [b, c] }, 'a removal of two members is one member.left listing both');

    const del = await cluster.admin('DELETE', `/v1/rooms/${room}/members/${dd}`);
    assert.equal(del.status, 204, del.text);
    await receiver.waitEvents(ofType('member.left', (d) => d.room === room), 2, DELIVERY_MS, `2 member.left of ${room}`);
    assert.deepEqual(receiver.events(ofType('member.left', (d) => d.room === room))[1].data, { room, members: [dd] });

    // The owner leaves: member.left, then room.updated naming the heir (a, longest standing).
    await owner.call('room.leave', { room });
    await receiver.waitEvents(ofType('member.left', (d) => d.room === room), 3, DELIVERY_MS, `3 member.left of ${room}`);
    const l3 = receiver.events(ofType('member.left', (d) => d.room === room))[2];
    assert.deepEqual(l3.data, { room, members: [owner.clientId] });
    const up = await one('room.updated', (d) => d.id === room, `room.updated (new owner) of ${room}`);
    assert.equal(up.data.owner, a, 'the longest-standing member is the new owner');
    assert.equal(up.data.members_count, 1);
    assert.equal(cmpIdx(l3, up), -1, 'member.left comes before room.updated');

    // No member.joined on creation, nothing for an add that adds nobody.
    await owner.call('room.create', { type: 'group', members: [a, b], id: `${room}-2` });
    await flush(cluster, receiver);
    assert.equal(receiver.events(ofType('member.joined', (d) => d.room === `${room}-2`)).length, 0, 'creation is not a join');
    assert.equal(receiver.events(ofType('member.joined', (d) => d.room === room)).length, 2);
});

function cmpIdx(e1, e2) {
    const ids = receiver.unique().map((e) => e.id);
    return Math.sign(ids.indexOf(e1.id) - ids.indexOf(e2.id));
}

test('message.sent carries the message as stored (text, payload, reply_to, mentions; client and admin senders)', async () => {
    const a = await cluster.login(0, uid('a'));
    const b = uid('b');
    const room = (await a.call('room.create', { type: 'group', members: [b] })).id;
    const s1 = await a.call('msg.send', { room, cid: 'm1', type: 'text', text: 'Is it still available?', mentions: [b] });
    const s2 = await a.call('msg.send', { room, cid: 'm2', type: 'image', payload: { url: 'https://example.com/i.jpg', width: 640, height: 480 }, reply_to: 1 });
    const s3 = await cluster.admin('POST', `/v1/rooms/${room}/messages`, { from: b, type: 'text', text: 'from the admin', cid: 'adm-1' });
    assert.equal(s3.status, 201, s3.text);
    const evs = await receiver.waitEvents(ofType('message.sent', (d) => d.room === room), 3, DELIVERY_MS, `3 message.sent of ${room}`);
    const history = (await a.call('msg.history', { room })).messages;
    assert.equal(history.length, 3);
    for (let i = 0; i < 3; i++) {
        const { offline, ...msg } = evs[i].data;
        assertKeys(msg, MESSAGE_KEYS, `message.sent ${i + 1}`);
        assert.deepEqual(msg, history[i], `message.sent ${i + 1} is the message as history holds it`);
        assert.ok(Array.isArray(offline), `offline is an array: ${JSON.stringify(evs[i].data)}`);
        assert.equal(evs[i].ts, msg.ts, 'the event ts is the message ts');
    }
    assert.deepEqual([evs[0].data.seq, evs[0].data.ts, evs[0].data.cid], [s1.seq, s1.ts, 'm1']);
    assert.deepEqual(evs[0].data.mentions, [b]);
    assert.deepEqual([evs[1].data.seq, evs[1].data.ts, evs[1].data.reply_to], [s2.seq, s2.ts, 1]);
    assert.deepEqual(evs[1].data.payload, { url: 'https://example.com/i.jpg', width: 640, height: 480 });
    assert.deepEqual([evs[2].data.from, evs[2].data.seq, evs[2].data.text], [b, 3, 'from the admin']);

    // An idempotent resend stores nothing and sends no second event.
    await a.call('msg.send', { room, cid: 'm1', type: 'text', text: 'Is it still available?' });
    await flush(cluster, receiver);
    assert.equal(receiver.events(ofType('message.sent', (d) => d.room === room)).length, 3, 'a resend (same cid) is no new message.sent');
});

test('offline: a member never connected and one that disconnected are listed; connected members (any gateway) are not', async () => {
    const sender = await cluster.login(0, uid('sender'));
    const here1 = await cluster.login(1, uid('online-gw2')); // connected to the other gateway
    const never = uid('never');
    const gone = uid('gone');
    const goneConn = await cluster.login(0, gone);
    const room = (await sender.call('room.create', { type: 'group', members: [here1.clientId, never, gone] })).id;
    goneConn.close();
    await goneConn.waitClose();
    await waitOffline(cluster, gone);

    const sorted = (xs) => [...xs].sort();
    await sender.call('msg.send', { room, cid: 'o1', type: 'text', text: 'anyone?' });
    const e1 = await one('message.sent', (d) => d.room === room && d.seq === 1, 'message.sent seq 1');
    assert.deepEqual(sorted(e1.data.offline), sorted([never, gone]),
        `offline should be the never-connected and the disconnected member; sender ${sender.clientId} and ${here1.clientId} are connected`);

    // gone comes back (a second gateway), never still away.
    const back = await cluster.login(1, gone);
    await sender.call('msg.send', { room, cid: 'o2', type: 'text', text: 'welcome back' });
    const e2 = await one('message.sent', (d) => d.room === room && d.seq === 2, 'message.sent seq 2');
    assert.deepEqual(e2.data.offline, [never]);

    // Everyone connected: empty list, not absent.
    await cluster.login(0, never);
    await here1.call('msg.send', { room, cid: 'o3', type: 'text', text: 'all here' });
    const e3 = await one('message.sent', (d) => d.room === room && d.seq === 3, 'message.sent seq 3');
    assert.deepEqual(e3.data.offline, []);

    // The sender itself offline (admin API message from a client with no connection).
    sender.close();
    await sender.waitClose();
    await waitOffline(cluster, sender.clientId);
    const r = await cluster.admin('POST', `/v1/rooms/${room}/messages`, { from: sender.clientId, type: 'text', text: 'sent by the site' });
    assert.equal(r.status, 201, r.text);
    const e4 = await one('message.sent', (d) => d.room === room && d.seq === 4, 'message.sent seq 4');
    assert.deepEqual(e4.data.offline, [sender.clientId]);
    back.close();
});

test('the events of one room arrive in the order of the changes', async () => {
    const owner = await cluster.login(0, uid('owner'));
    const x = uid('x');
    const y = uid('y');
    const room = (await owner.call('room.create', { type: 'group', members: [x], name: 'order' })).id;
    await owner.call('msg.send', { room, cid: 'a', type: 'text', text: '1' });
    await owner.call('room.members.add', { room, members: [y] });
    await owner.call('msg.send', { room, cid: 'b', type: 'text', text: '2' });
    await owner.call('room.update', { room, name: 'order 2' });
    await owner.call('room.members.remove', { room, members: [x] });
    await owner.call('msg.send', { room, cid: 'c', type: 'text', text: '3' });
    assert.equal((await cluster.admin('DELETE', `/v1/rooms/${room}`)).status, 204);
    const want = ['room.created', 'message.sent', 'member.joined', 'message.sent', 'room.updated', 'member.left', 'message.sent', 'room.deleted'];
    const got = await receiver.waitEvents(aboutRoom(room), want.length, DELIVERY_MS, `${want.length} events of ${room}`);
    assert.deepEqual(got.map((e) => e.type), want);
    assert.deepEqual(got.filter((e) => e.type === 'message.sent').map((e) => e.data.seq), [1, 2, 3]);
});

test('deleting a client: member.left in each of its rooms, room.updated where it owned, member.left then room.deleted where it was alone; PUT again creates it again', async () => {
    const gone = uid('gone');
    const other = uid('other');
    assert.equal((await cluster.admin('PUT', `/v1/clients/${gone}`, { name: 'Gone' })).status, 200);
    const owned = (await cluster.admin('POST', '/v1/rooms', { type: 'group', members: [gone, other], owner: gone })).body.id;
    const joined = (await cluster.admin('POST', '/v1/rooms', { type: 'group', members: [other, gone], owner: other })).body.id;
    const alone = (await cluster.admin('POST', '/v1/rooms', { type: 'group', members: [gone] })).body.id;
    await receiver.waitEvent(ofType('room.created', (d) => d.id === alone), DELIVERY_MS, `room.created of ${alone}`);

    const del = await cluster.admin('DELETE', `/v1/clients/${gone}`);
    assert.equal(del.status, 204, del.text);
    for (const rid of [owned, joined, alone]) {
        const l = await one('member.left', (d) => d.room === rid, `member.left of ${rid}`);
        assert.deepEqual(l.data, { room: rid, members: [gone] });
    }
    const up = await one('room.updated', (d) => d.id === owned, `room.updated (new owner) of ${owned}`);
    assert.equal(up.data.owner, other);
    const rd = await one('room.deleted', (d) => d.id === alone, `room.deleted of ${alone}`);
    assert.equal(rd.data.members_count, 0, 'the room as it was left: no member');
    const evAlone = receiver.events(aboutRoom(alone)).map((e) => e.type);
    assert.deepEqual(evAlone, ['room.created', 'member.left', 'room.deleted']);

    const again = await cluster.admin('PUT', `/v1/clients/${gone}`, { name: 'Back' });
    assert.equal(again.status, 200, again.text);
    await receiver.waitEvents(ofType('client.created', (d) => d.id === gone), 2, DELIVERY_MS, `a second client.created of ${gone}`);
    assert.equal(receiver.events(ofType('client.created', (d) => d.id === gone))[1].data.name, 'Back');
});

test('changes outside §4 send nothing: reads, edits, recalls, reactions, typing, profile updates, tokens', async () => {
    const a = await cluster.login(0, uid('a'));
    const b = await cluster.login(1, uid('b'));
    const room = (await a.call('room.create', { type: 'group', members: [b.clientId] })).id;
    await a.call('msg.send', { room, cid: 'q1', type: 'text', text: 'first' });
    await a.call('msg.send', { room, cid: 'q2', type: 'text', text: 'second' });
    await receiver.waitEvents(ofType('message.sent', (d) => d.room === room), 2, DELIVERY_MS, `2 message.sent of ${room}`);
    const before = receiver.requests.length;

    await b.call('room.read', { room, seq: 2 });
    await a.call('msg.edit', { room, seq: 1, text: 'first, edited' });
    await b.call('msg.react', { room, seq: 1, emoji: '👍', on: true });
    await a.call('msg.recall', { room, seq: 2 });
    a.notifyOp('typing', { room });
    await a.call('me.update', { name: 'A2', meta: { x: 1 } });
    assert.equal((await cluster.admin('PUT', `/v1/clients/${b.clientId}`, { name: 'B2' })).status, 200);
    assert.equal((await cluster.admin('POST', `/v1/clients/${b.clientId}/tokens`, { ttl: 60 })).status, 201);
    await flush(cluster, receiver);
    const extra = receiver.requests.slice(before).map((r) => r.event).filter((e) => !(e.type === 'client.created' && e.data.id.startsWith('flush-')));
    assert.deepEqual(extra.map((e) => `${e.type} ${JSON.stringify(e.data).slice(0, 80)}`), [], 'no event for changes §4 does not list');
});
