// The seed's whole flow through the public protocol, across two gateways: log in, open a
// direct room, send, receive live on the other gateway, room list with last message and
// unread, read receipts; direct-room dedup; group creation with roles.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    useCluster, uid, assertOk, assertError, assertKeys, assertTs, sleep,
    CLIENT_KEYS, ROOM_KEYS, SUMMARY_KEYS, MESSAGE_KEYS,
} from './lib/cluster.mjs';

const cluster = useCluster({ gateways: 2, workers: 2 });

const A = uid('ann');
const B = uid('ben');
let a; // A on gateway 0
let b; // B on gateway 1
let direct; // the direct room A–B

cluster.setup(async () => {
    a = await cluster.login(0, A, { name: 'Ann', avatar: 'https://example.com/ann.png' });
    b = await cluster.login(1, B, { name: 'Ben' });
});

test('A creates a direct room with B: created, no owner, both members; both get room.joined', async () => {
    const res = await a.request('room.create', { type: 'direct', members: [B] });
    assertOk(res, 'room.create direct');
    direct = res.data;
    assertKeys(direct, [...ROOM_KEYS, 'created'], 'room.create answer');
    assert.equal(direct.created, true);
    assert.equal(direct.type, 'direct');
    assert.equal(direct.owner, null, 'a direct room has no owner');
    assert.equal(direct.members_count, 2);
    assert.equal(direct.last_seq, 0);
    assert.equal(typeof direct.id, 'string');
    assert.match(direct.id, /^[A-Za-z0-9_.@:-]{1,64}$/);
    assertTs(direct.created_at, 'created_at');
    assertTs(direct.updated_at, 'updated_at');

    const joinedB = await b.waitEvent('room.joined', (d) => d.id === direct.id);
    assertKeys(joinedB, SUMMARY_KEYS, 'room.joined (B)');
    assert.equal(joinedB.type, 'direct');
    assert.equal(joinedB.last_message, null);
    assert.equal(joinedB.unread, 0);
    assertKeys(joinedB.peer, CLIENT_KEYS, 'room.joined peer (B sees A)');
    assert.equal(joinedB.peer.id, A);
    assert.equal(joinedB.peer.name, 'Ann');

    const joinedA = await a.waitEvent('room.joined', (d) => d.id === direct.id);
    assert.equal(joinedA.peer.id, B, 'A sees B as the peer');
    assert.equal(joinedA.peer.name, 'Ben');

    const got = await b.call('room.get', { room: direct.id });
    assertKeys(got, [...ROOM_KEYS, 'members'], 'room.get');
    const roles = Object.fromEntries(got.members.map((m) => [m.id, m.role]));
    assert.deepEqual(roles, { [A]: 'member', [B]: 'member' });
    for (const m of got.members) {
        assertKeys(m, ['id', 'role', 'joined_at'], 'room.get member');
        assertTs(m.joined_at, 'joined_at');
    }
});

test('A sends; B receives the message live on the other gateway, A on its own connection', async () => {
    assert.ok(direct, 'depends on the previous test');
    const before = Date.now();
    const ack = await a.call('msg.send', { room: direct.id, cid: 'c-1', type: 'text', text: 'hello Ben' });
    assertKeys(ack, ['room', 'seq', 'ts', 'cid'], 'msg.send answer');
    assert.equal(ack.room, direct.id);
    assert.equal(ack.seq, 1);
    assert.equal(ack.cid, 'c-1');
    assertTs(ack.ts, 'ack ts');
    assert.ok(ack.ts >= before - 1000);

    const mb = await b.waitEvent('message', (m) => m.room === direct.id && m.seq === 1);
    assertKeys(mb, MESSAGE_KEYS, 'message event (B)');
    assert.equal(mb.from, A);
    assert.equal(mb.type, 'text');
    assert.equal(mb.text, 'hello Ben');
    assert.equal(mb.cid, 'c-1');
    assert.equal(mb.ts, ack.ts);

    const ma = await a.waitEvent('message', (m) => m.room === direct.id && m.seq === 1);
    assert.equal(ma.text, 'hello Ben', 'the sending connection gets the message event too');

    const hist = await b.call('msg.history', { room: direct.id });
    assertKeys(hist, ['messages', 'has_more'], 'msg.history');
    assert.equal(hist.has_more, false);
    assert.equal(hist.messages.length, 1);
    assert.deepEqual(hist.messages[0], mb, 'history holds the same message as the event');
});

test('B\'s room.list shows the room with last_message and unread 1; A\'s shows unread 0', async () => {
    assert.ok(direct, 'depends on the previous tests');
    const list = await b.call('room.list', {});
    assertKeys(list, ['rooms', 'next', 'unread_total'], 'room.list');
    assert.equal(list.next, null);
    assert.equal(list.unread_total, 1);
    assert.equal(list.rooms.length, 1);
    const s = list.rooms[0];
    assertKeys(s, [...SUMMARY_KEYS, 'peer'], 'room summary');
    assert.equal(s.id, direct.id);
    assert.equal(s.unread, 1);
    assert.equal(s.last_seq, 1);
    assert.equal(s.peer.id, A);
    assert.equal(s.peer.name, 'Ann', 'the peer with its profile');
    assert.equal(s.peer.avatar, 'https://example.com/ann.png');
    assertKeys(s.last_message, MESSAGE_KEYS, 'last_message');
    assert.equal(s.last_message.seq, 1);
    assert.equal(s.last_message.text, 'hello Ben');
    assert.equal(s.last_message.from, A);

    const listA = await a.call('room.list', {});
    assert.equal(listA.unread_total, 0, 'sending marks one\'s own room read');
    assert.equal(listA.rooms[0].unread, 0);
});

test('B reads: answer unread 0, A gets the read event on the other gateway, the list shows unread 0', async () => {
    assert.ok(direct, 'depends on the previous tests');
    const r = await b.call('room.read', { room: direct.id, seq: 1 });
    assert.deepEqual(r, { room: direct.id, seq: 1, unread: 0 });
    const ev = await a.waitEvent('read', (d) => d.room === direct.id && d.client === B);
    assert.deepEqual(ev, { room: direct.id, client: B, seq: 1 });
    const list = await b.call('room.list', {});
    assert.equal(list.unread_total, 0);
    assert.equal(list.rooms[0].unread, 0);

    // Reading the same seq again does not move the mark: no second read event.
    const again = await b.call('room.read', { room: direct.id, seq: 1 });
    assert.equal(again.unread, 0);
    await sleep(300);
    assert.equal(a.events('read').filter((d) => d.room === direct.id).length, 1, 'a read event was sent although the mark did not move');
});

test('the direct room is deduplicated: created:false with the same id, from either side', async () => {
    assert.ok(direct, 'depends on the first test');
    const again = await a.call('room.create', { type: 'direct', members: [B] });
    assert.equal(again.created, false);
    assert.equal(again.id, direct.id);
    const fromB = await b.call('room.create', { type: 'direct', members: [A] });
    assert.equal(fromB.created, false);
    assert.equal(fromB.id, direct.id);
    assert.equal(fromB.type, 'direct');
    const list = await a.call('room.list', {});
    assert.equal(list.rooms.filter((r) => r.id === direct.id).length, 1);
    assert.equal(list.rooms.length, 1, 'no second direct room was made');
});

test('concurrent direct-room creations for a new pair all get the same room', async () => {
    const C = uid('cid');
    const c = await cluster.login(1, C);
    const results = await Promise.all([
        a.call('room.create', { type: 'direct', members: [C] }),
        c.call('room.create', { type: 'direct', members: [A] }),
        a.call('room.create', { type: 'direct', members: [C] }),
        c.call('room.create', { type: 'direct', members: [A] }),
    ]);
    const ids = new Set(results.map((r) => r.id));
    assert.equal(ids.size, 1, `several rooms for one pair: ${[...ids]}`);
    assert.equal(results.filter((r) => r.created === true).length, 1, `exactly one creation expected: ${JSON.stringify(results.map((r) => r.created))}`);
    c.close();
});

test('a direct room takes exactly one other member', async () => {
    const C = uid('c');
    const D = uid('d');
    assertError(await a.request('room.create', { type: 'direct', members: [C, D] }), 'bad_request', 'members', 'direct with two others');
    assertError(await a.request('room.create', { type: 'direct', members: [] }), 'bad_request', 'members', 'direct with nobody');
});

test('group creation: the creator is owner, others are members, each gets room.joined; room.get lists roles', async () => {
    const C = uid('cat');
    const ghost = uid('ghost'); // never connected
    const c = await cluster.login(1, C, { name: 'Cat' });
    const res = await a.call('room.create', { type: 'group', members: [B, C, ghost], name: 'Team', meta: { topic: 'tests' } });
    assertKeys(res, [...ROOM_KEYS, 'created'], 'room.create group');
    assert.equal(res.created, true);
    assert.equal(res.type, 'group');
    assert.equal(res.owner, A);
    assert.equal(res.name, 'Team');
    assert.deepEqual(res.meta, { topic: 'tests' });
    assert.equal(res.members_count, 4);
    assert.equal(res.last_seq, 0);

    for (const [who, conn] of [['A', a], ['B', b], ['C', c]]) {
        const j = await conn.waitEvent('room.joined', (d) => d.id === res.id);
        assertKeys(j, SUMMARY_KEYS, `room.joined (${who})`);
        assert.equal(j.owner, A);
        assert.equal(j.name, 'Team');
    }
    await sleep(200);
    assert.equal(b.events('member.joined').filter((d) => d.room === res.id).length, 0, 'member.joined is not sent on creation');

    const empty = await c.call('msg.history', { room: res.id });
    assert.deepEqual(empty, { messages: [], has_more: false });

    const got = await c.call('room.get', { room: res.id });
    assert.equal(got.id, res.id);
    assert.equal(got.members_count, 4);
    const roles = Object.fromEntries(got.members.map((m) => [m.id, m.role]));
    assert.deepEqual(roles, { [A]: 'owner', [B]: 'member', [C]: 'member', [ghost]: 'member' });

    // An id that never connected got a profile named by its id.
    const prof = await a.call('client.get', { ids: [ghost] });
    assert.equal(prof.clients.length, 1);
    assert.equal(prof.clients[0].id, ghost);
    assert.equal(prof.clients[0].name, ghost);
    assert.equal(prof.clients[0].online, false);

    // A message in the group reaches every online member, across both gateways.
    const ack = await b.call('msg.send', { room: res.id, cid: 'g1', type: 'text', text: 'hi team' });
    for (const conn of [a, b, c]) {
        const m = await conn.waitEvent('message', (d) => d.room === res.id && d.seq === ack.seq);
        assert.equal(m.from, B);
    }
    c.close();
});

test('a group with a given id: created; the same id again is a conflict', async () => {
    const rid = uid('room');
    const res = await a.call('room.create', { type: 'group', id: rid, members: [B] });
    assert.equal(res.id, rid);
    assert.equal(res.created, true);
    assertError(await b.request('room.create', { type: 'group', id: rid, members: [A] }), 'conflict', null, 'existing id');
    assertError(await a.request('room.create', { type: 'group', id: 'bad id!', members: [B] }), 'bad_request', 'id', 'id outside the alphabet');
    assertError(await a.request('room.create', { type: 'channel', members: [B] }), 'bad_request', 'type', 'unknown room type');
});

test('a server-made room id is random: two groups get different ids of at least 16 characters', async () => {
    const r1 = await a.call('room.create', { type: 'group', members: [B] });
    const r2 = await a.call('room.create', { type: 'group', members: [B] });
    assert.notEqual(r1.id, r2.id);
    // 96 bits need at least 16 characters in a 64-symbol alphabet.
    assert.ok(r1.id.length >= 16, `room id ${r1.id} is too short to hold 96 random bits`);
});
