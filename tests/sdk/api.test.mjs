// Every public method of the Web SDK (SDK.md, sdk/web/README.md) against the real server:
// 2 gateways, 2 workers, Redis. Ann is on gateway 0, Ben on gateway 1, Cat on gateway 0,
// so every event crosses gateways at least once. Each test makes its own rooms.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    useSdkCluster, sdkClient, connected, rejectsWithCode, op, uid, range, sleep, jwt, nowSec,
} from './lib/sdk-cluster.mjs';

const T = { timeout: 30000 };
const cluster = useSdkCluster({ gateways: 2, workers: 2 });

const A = uid('ann');
const B = uid('ben');
const C = uid('cat');
let a; // Ann, gateway 0
let b; // Ben, gateway 1
let c; // Cat, gateway 0

cluster.setup(async () => {
    a = await connected(cluster, A, 0, { name: 'Ann' });
    b = await connected(cluster, B, 1, { name: 'Ben' });
    c = await connected(cluster, C, 0, { name: 'Cat' });
});

const CLIENT_KEYS = ['id', 'name', 'avatar', 'meta'];
const ROOM_KEYS = ['id', 'type', 'name', 'cover', 'meta', 'owner', 'members_count', 'created_at', 'updated_at', 'last_seq'];

function hasKeys(obj, keys, what) {
    assert.ok(obj && typeof obj === 'object', `${what}: not an object: ${JSON.stringify(obj)}`);
    for (const k of keys) {
        assert.ok(Object.hasOwn(obj, k), `${what}: missing "${k}" in ${JSON.stringify(obj)}`);
    }
}

async function group(owner, members, extra = {}) {
    return op('createGroup', () => owner.im.createGroup({ members, name: 'G', ...extra }));
}

// --- connect ------------------------------------------------------------------------------

test('connect() with a string token: idle → connecting → open, resolves with the client', T, async () => {
    const id = uid('str');
    const x = sdkClient(cluster, { id, name: 'Stringy', gateway: 1 });
    assert.equal(x.state, 'idle');
    const p = x.im.connect();
    assert.equal(x.state, 'connecting');
    assert.equal(x.im.connect(), p, 'a second connect() while connecting returns the same promise');
    const me = await p;
    hasKeys(me, CLIENT_KEYS, 'connect() result');
    assert.equal(me.id, id);
    assert.equal(me.name, 'Stringy');
    assert.equal(x.state, 'open');
    assert.deepEqual(x.events('state'), ['connecting', 'open']);
    x.close();
    assert.equal(x.state, 'closed');
    assert.deepEqual(x.events('state'), ['connecting', 'open', 'closed']);
    await rejectsWithCode(x.im.getRoom('r'), 'closed', 'a request after close()');
});

test('connect() with a token function (async, answer padded with whitespace like r.text()) calls it once', T, async () => {
    const id = uid('fn');
    let calls = 0;
    const x = sdkClient(cluster, {
        gateway: 0,
        token: async () => {
            calls += 1;
            await sleep(20);
            return `  ${cluster.token(id, { name: 'Fun' })}\n`;
        },
    });
    const me = await x.im.connect();
    assert.equal(me.id, id);
    assert.equal(me.name, 'Fun');
    assert.equal(calls, 1);
    x.close();
});

test('connect() with a token from the admin API (opaque) and from /dev/token', T, async () => {
    const id = uid('opq');
    const put = await cluster.admin('PUT', `/v1/clients/${id}`, { name: 'Opaque' });
    assert.equal(put.status, 200, put.text);
    const issued = await cluster.admin('POST', `/v1/clients/${id}/tokens`, { ttl: 600 });
    assert.equal(issued.status, 201, issued.text);
    const x = sdkClient(cluster, { token: issued.body.token, gateway: 1 });
    assert.equal((await x.im.connect()).id, id);
    x.close();

    const demo = uid('demo');
    const r = await cluster.publicGet(`/dev/token?id=${demo}&name=Demo`, 0);
    assert.equal(r.status, 200, r.text);
    const y = sdkClient(cluster, { token: () => JSON.parse(r.text).token, gateway: 0 });
    const me = await y.im.connect();
    assert.equal(me.id, demo);
    assert.equal(me.name, 'Demo');
    y.close();
});

test('connect() with a refused token: token() is called twice, then closed with an unauthenticated error', T, async () => {
    let calls = 0;
    const x = sdkClient(cluster, {
        gateway: 1,
        token: () => {
            calls += 1;
            return jwt('not-the-secret', { sub: uid('bad'), exp: nowSec() + 60 });
        },
    });
    await rejectsWithCode(x.im.connect(), 'unauthenticated', 'connect() with a badly signed JWT');
    assert.equal(calls, 2, 'token() is called again once after the refusal');
    assert.equal(x.state, 'closed');
    const err = await x.waitEvent('error');
    assert.equal(err.code, 'unauthenticated');
});

test('a request made before connect() rejects with closed; one made while connecting waits and goes out', T, async () => {
    const x = sdkClient(cluster, { id: uid('early'), gateway: 0 });
    await rejectsWithCode(x.im.request('ping'), 'closed', 'request while idle');
    x.im.connect();
    const pong = await x.im.request('ping'); // made while "connecting"
    assert.equal(typeof pong.ts, 'number');
    x.close();
});

// --- rooms --------------------------------------------------------------------------------

test('createDirect is idempotent, from either side; the peer gets room.joined', T, async () => {
    const first = await op('createDirect', () => a.im.createDirect(B));
    hasKeys(first, [...ROOM_KEYS, 'created'], 'createDirect answer');
    assert.equal(first.type, 'direct');
    assert.equal(first.created, true);
    assert.equal(first.owner, null);
    assert.equal(first.members_count, 2);
    const again = await a.im.createDirect(B);
    assert.equal(again.id, first.id);
    assert.equal(again.created, false);
    const fromB = await b.im.createDirect(A);
    assert.equal(fromB.id, first.id);
    assert.equal(fromB.created, false);

    const joined = await b.waitEvent('room.joined', (r) => r.id === first.id);
    assert.equal(joined.peer?.id, A);
    assert.equal(joined.peer?.name, 'Ann');
    assert.equal(joined.unread, 0);
    assert.equal(b.events('room.joined', (r) => r.id === first.id).length, 1, 'room.joined only on creation');
});

test('createGroup: creator is owner, given id, name/cover/meta kept; a taken id is a conflict', T, async () => {
    const rid = uid('grp');
    const g = await group(a, [B, C], { id: rid, name: 'Team', cover: 'https://example.com/c.png', meta: { topic: 'x' } });
    hasKeys(g, [...ROOM_KEYS, 'created'], 'createGroup answer');
    assert.equal(g.id, rid);
    assert.equal(g.type, 'group');
    assert.equal(g.owner, A);
    assert.equal(g.name, 'Team');
    assert.equal(g.cover, 'https://example.com/c.png');
    assert.deepEqual(g.meta, { topic: 'x' });
    assert.equal(g.members_count, 3);
    assert.equal(g.created, true);
    await b.waitEvent('room.joined', (r) => r.id === rid);
    await c.waitEvent('room.joined', (r) => r.id === rid);
    await a.waitEvent('room.joined', (r) => r.id === rid);
    await rejectsWithCode(a.im.createGroup({ members: [B], id: rid }), 'conflict', 'createGroup with a taken id');

    const noId = await group(b, [A]);
    assert.match(noId.id, /^[A-Za-z0-9_.@:-]{1,64}$/);
    assert.notEqual(noId.id, rid);
});

test('getRoom: the room with its members and roles; not_found and forbidden as protocol codes', T, async () => {
    const g = await group(a, [B]);
    const got = await op('getRoom', () => b.im.getRoom(g.id));
    hasKeys(got, [...ROOM_KEYS, 'members'], 'getRoom');
    const roles = Object.fromEntries(got.members.map((m) => [m.id, m.role]));
    assert.deepEqual(roles, { [A]: 'owner', [B]: 'member' });
    await rejectsWithCode(a.im.getRoom(uid('nope')), 'not_found', 'getRoom of a missing room');
    await rejectsWithCode(c.im.getRoom(g.id), 'forbidden', 'getRoom by a non-member');
});

test('listRooms: paging with next returns every room once, newest activity first; unread_total spans all pages', T, async () => {
    const id = uid('lister');
    const me = await connected(cluster, id, 1);
    const peerIds = range(1, 5).map((i) => uid(`p${i}`));
    const rooms = [];
    for (const p of peerIds) {
        rooms.push(await me.im.createDirect(p));
        await sleep(5); // distinct created_at
    }
    // Messages from others: 2 in rooms[1], 1 in rooms[3]; posted through the admin API.
    for (const [r, from] of [[rooms[1], peerIds[1]], [rooms[1], peerIds[1]], [rooms[3], peerIds[3]]]) {
        const res = await cluster.admin('POST', `/v1/rooms/${r.id}/messages`, { from, type: 'text', text: 'hi' });
        assert.equal(res.status, 201, res.text);
        await sleep(5); // distinct ts: the order is by last activity
    }
    const seen = [];
    const totals = new Set();
    let before;
    for (let page = 0; page < 10; page++) {
        const res = await me.im.listRooms({ limit: 2, before });
        hasKeys(res, ['rooms', 'next', 'unread_total'], 'listRooms');
        assert.ok(res.rooms.length <= 2);
        seen.push(...res.rooms);
        totals.add(res.unread_total);
        if (res.next === null) {
            break;
        }
        before = res.next;
    }
    assert.deepEqual(seen.map((r) => r.id).sort(), rooms.map((r) => r.id).sort(), 'every room exactly once');
    assert.deepEqual([...totals], [3], 'unread_total = 3 on every page');
    assert.equal(seen[0].id, rooms[3].id, 'the room with the newest message comes first');
    assert.equal(seen[1].id, rooms[1].id);
    assert.equal(seen.find((r) => r.id === rooms[1].id).unread, 2);
    assert.equal(seen.find((r) => r.id === rooms[1].id).last_message?.text, 'hi');
    const dflt = await me.im.listRooms();
    assert.equal(dflt.rooms.length, 5);
    assert.equal(dflt.next, null);
    me.close();
});

// --- messages -----------------------------------------------------------------------------

test('send(room, text) resolves with the stored message (seq, ts, from, cid of 32 hex); both sides get one message event', T, async () => {
    const g = await group(a, [B]);
    const t0 = Date.now();
    const sent = await op('send', () => a.im.send(g.id, 'hello Ben'));
    hasKeys(sent, ['room', 'seq', 'ts', 'from', 'type', 'text', 'cid'], 'send() result');
    assert.equal(sent.room, g.id);
    assert.equal(sent.seq, 1);
    assert.equal(sent.from, A);
    assert.equal(sent.type, 'text');
    assert.equal(sent.text, 'hello Ben');
    assert.match(sent.cid, /^[0-9a-f]{32}$/);
    assert.ok(Number.isInteger(sent.ts) && Math.abs(sent.ts - t0) < 60000, `ts ${sent.ts}`);

    const atB = await b.waitEvent('message', (m) => m.room === g.id && m.seq === 1);
    const atA = await a.waitEvent('message', (m) => m.room === g.id && m.seq === 1);
    for (const m of [atA, atB]) {
        assert.equal(m.cid, sent.cid);
        assert.equal(m.ts, sent.ts);
        assert.equal(m.from, A);
        assert.equal(m.text, 'hello Ben');
    }
    await sleep(200);
    assert.equal(b.messages(g.id).length, 1, 'one message event at B');
    assert.equal(a.messages(g.id).length, 1, 'one message event at A (its own)');
});

test('send(room, {type, payload, reply_to, mentions, cid}) keeps every field; a resend with the same cid is the same message', T, async () => {
    const g = await group(a, [B]);
    const first = await a.im.send(g.id, 'first');
    const sent = await op('send object', () => b.im.send(g.id, {
        type: 'image', payload: { url: 'https://example.com/i.png', width: 4, height: 3 },
        reply_to: first.seq, mentions: [A], cid: 'my-cid-1',
    }));
    assert.equal(sent.seq, 2);
    assert.equal(sent.type, 'image');
    assert.equal(sent.from, B);
    assert.equal(sent.cid, 'my-cid-1');
    assert.deepEqual(sent.payload, { url: 'https://example.com/i.png', width: 4, height: 3 });
    assert.equal(sent.reply_to, 1);
    assert.deepEqual(sent.mentions, [A]);
    const ev = await a.waitEvent('message', (m) => m.room === g.id && m.seq === 2);
    assert.deepEqual(ev.payload, sent.payload);
    assert.equal(ev.reply_to, 1);
    assert.deepEqual(ev.mentions, [A]);

    const again = await b.im.send(g.id, { type: 'image', payload: { url: 'https://example.com/i.png', width: 4, height: 3 }, cid: 'my-cid-1' });
    assert.equal(again.seq, 2, 'same cid: the original seq');
    assert.equal(again.ts, sent.ts);
    const { messages } = await a.im.history(g.id);
    assert.deepEqual(messages.map((m) => m.seq), [1, 2], 'stored once');
});

test('send: protocol errors keep their code (bad_request, forbidden, too_large); over maxFrameBytes is refused locally', T, async () => {
    const g = await group(a, [B]);
    await rejectsWithCode(a.im.send(g.id, { type: 'image' }), 'bad_request', 'image without payload');
    await rejectsWithCode(c.im.send(g.id, 'not a member'), 'forbidden', 'send by a non-member');
    await rejectsWithCode(a.im.send(g.id, 'x'.repeat(16385)), 'too_large', 'text of 16 385 bytes');
    const exact = await a.im.send(g.id, 'y'.repeat(16384));
    assert.equal(exact.text.length, 16384);
    await rejectsWithCode(a.im.send(g.id, 'z'.repeat(70000)), 'too_large', 'a frame over 64 KiB');
    assert.equal(a.state, 'open', 'the connection survives');
    const { messages } = await a.im.history(g.id);
    assert.deepEqual(messages.map((m) => m.seq), [1]);
});

test('history: newest page, before and after (exclusive), limit and has_more, oldest first', T, async () => {
    const g = await group(a, [B]);
    for (let i = 1; i <= 12; i++) {
        await a.im.send(g.id, `m${i}`);
    }
    const newest = await op('history', () => b.im.history(g.id, { limit: 5 }));
    assert.deepEqual(newest.messages.map((m) => m.seq), [8, 9, 10, 11, 12]);
    assert.equal(newest.has_more, true);
    assert.equal(newest.messages[0].text, 'm8');
    const older = await b.im.history(g.id, { before: 8, limit: 5 });
    assert.deepEqual(older.messages.map((m) => m.seq), [3, 4, 5, 6, 7]);
    assert.equal(older.has_more, true);
    const oldest = await b.im.history(g.id, { before: 3, limit: 5 });
    assert.deepEqual(oldest.messages.map((m) => m.seq), [1, 2]);
    assert.equal(oldest.has_more, false);
    const after = await b.im.history(g.id, { after: 9 });
    assert.deepEqual(after.messages.map((m) => m.seq), [10, 11, 12]);
    assert.equal(after.has_more, false);
    const after2 = await b.im.history(g.id, { after: 2, limit: 3 });
    assert.deepEqual(after2.messages.map((m) => m.seq), [3, 4, 5]);
    assert.equal(after2.has_more, true);
    const all = await b.im.history(g.id);
    assert.equal(all.messages.length, 12);
    await rejectsWithCode(b.im.history(g.id, { before: 5, after: 2 }), 'bad_request', 'history with before and after');
});

test('markRead resolves {room, seq, unread}; every member gets a read event; unread and unread_total drop', T, async () => {
    const id = uid('reader');
    const r = await connected(cluster, id, 1);
    const g = await group(a, [id]);
    await r.waitEvent('room.joined', (x) => x.id === g.id);
    const m1 = await a.im.send(g.id, 'one');
    const m2 = await a.im.send(g.id, 'two');
    await r.waitEvent('message', (m) => m.room === g.id && m.seq === m2.seq);
    const list = await r.im.listRooms();
    assert.equal(list.rooms.find((x) => x.id === g.id).unread, 2);
    assert.equal(list.unread_total, 2);

    const res = await op('markRead', () => r.im.markRead(g.id, m1.seq));
    assert.deepEqual(res, { room: g.id, seq: m1.seq, unread: 1 });
    const ev = await a.waitEvent('read', (e) => e.room === g.id && e.client === id && e.seq === m1.seq);
    assert.deepEqual(ev, { room: g.id, client: id, seq: m1.seq });
    await r.waitEvent('read', (e) => e.room === g.id && e.client === id && e.seq === m1.seq);

    const res2 = await r.im.markRead(g.id, m2.seq);
    assert.equal(res2.unread, 0);
    await a.waitEvent('read', (e) => e.room === g.id && e.client === id && e.seq === m2.seq);
    assert.equal((await r.im.listRooms()).unread_total, 0);

    // A read mark never moves back, and no read event is sent when it does not move.
    const back = await r.im.markRead(g.id, m1.seq);
    assert.equal(back.seq, m2.seq);
    await sleep(300);
    assert.equal(a.events('read', (e) => e.room === g.id && e.client === id).length, 2);
    r.close();
});

test('typing(room) reaches the other members as a typing event, at most once per 2 s, and not the sender', T, async () => {
    const g = await group(a, [B]);
    await b.waitEvent('room.joined', (x) => x.id === g.id);
    // typing is not stored: it reaches the gateways subscribing the room when it is sent, and
    // Ben's gateway subscribes a moment after his room.joined.
    await cluster.roomFollowed(g.id, 2, 'both gateways subscribe the room');
    a.im.typing(g.id);
    a.im.typing(g.id); // throttled
    a.im.typing(g.id);
    const ev = await b.waitEvent('typing', (e) => e.room === g.id);
    assert.deepEqual(ev, { room: g.id, client: A });
    await sleep(500);
    assert.equal(b.events('typing', (e) => e.room === g.id).length, 1, 'the SDK sends one signal per 2 s');
    assert.equal(a.events('typing', (e) => e.room === g.id).length, 0, 'the sender does not get its own typing');
    await sleep(1700);
    a.im.typing(g.id);
    await b.waitEvents('typing', 2, (e) => e.room === g.id);
});

test('getClients: profiles with online and last_seen; unknown ids left out', T, async () => {
    const res = await op('getClients', () => a.im.getClients([B, uid('ghost'), A]));
    assert.equal(res.clients.length, 2);
    const ben = res.clients.find((x) => x.id === B);
    hasKeys(ben, [...CLIENT_KEYS, 'online', 'last_seen'], 'client.get entry');
    assert.equal(ben.name, 'Ben');
    assert.equal(ben.online, true);
});

test('request(op, data): any op raw; unknown op and bad fields reject with the protocol code', T, async () => {
    const pong = await a.im.request('ping');
    assert.equal(typeof pong.ts, 'number');
    const g = await group(a, [B]);
    const ack = await a.im.request('msg.send', { room: g.id, cid: 'raw-1', type: 'text', text: 'raw' });
    assert.deepEqual(Object.keys(ack).sort(), ['cid', 'room', 'seq', 'ts']);
    assert.equal(ack.cid, 'raw-1');
    const err = await rejectsWithCode(a.im.request('no.such.op', {}), 'bad_request', 'an unknown op');
    assert.equal(typeof err.message, 'string');
    await rejectsWithCode(a.im.request('msg.history', {}), 'bad_request', 'msg.history without room');
    assert.equal(a.state, 'open');
});

// --- the ops landing in the server now ------------------------------------------------------

test('updateMe changes the profile; others see it through getClients', T, async () => {
    const id = uid('upd');
    const u = await connected(cluster, id, 1, { name: 'Before' });
    const me = await op('updateMe', () => u.im.updateMe({ name: 'After', avatar: 'https://example.com/a.png', meta: { lang: 'fr' } }));
    hasKeys(me, CLIENT_KEYS, 'updateMe answer');
    assert.equal(me.name, 'After');
    assert.equal(me.avatar, 'https://example.com/a.png');
    assert.deepEqual(me.meta, { lang: 'fr' });
    const seen = (await a.im.getClients([id])).clients[0];
    assert.equal(seen.name, 'After');
    const cleared = await u.im.updateMe({ avatar: null });
    assert.equal(cleared.avatar, null, 'null clears a field');
    assert.equal(cleared.name, 'After', 'fields left out stay');
    u.close();
});

test('updateRoom: the owner renames a group; members get room.updated; a non-owner is forbidden', T, async () => {
    const g = await group(a, [B], { name: 'Old' });
    await b.waitEvent('room.joined', (x) => x.id === g.id);
    const room = await op('updateRoom', () => a.im.updateRoom(g.id, { name: 'New', meta: { k: 1 } }));
    hasKeys(room, ROOM_KEYS, 'updateRoom answer');
    assert.equal(room.name, 'New');
    assert.deepEqual(room.meta, { k: 1 });
    const ev = await b.waitEvent('room.updated', (x) => x.id === g.id);
    assert.equal(ev.name, 'New');
    await rejectsWithCode(b.im.updateRoom(g.id, { name: 'Mine' }), 'forbidden', 'updateRoom by a member');
    const cleared = await a.im.updateRoom(g.id, { meta: null });
    assert.equal(cleared.meta, null);
    assert.equal(cleared.name, 'New');
});

test('addMembers / removeMembers: room.joined to the added, member.joined / member.left to the others, room.left to the removed', T, async () => {
    const g = await group(a, [B]);
    await b.waitEvent('room.joined', (x) => x.id === g.id);
    const added = await op('addMembers', () => b.im.addMembers(g.id, [C]));
    assert.equal(added.members_count, 3);
    const joined = await c.waitEvent('room.joined', (x) => x.id === g.id);
    assert.equal(joined.unread, 0);
    const mj = await a.waitEvent('member.joined', (x) => x.room === g.id);
    assert.deepEqual(mj, { room: g.id, members: [C] });
    await b.waitEvent('member.joined', (x) => x.room === g.id);

    await rejectsWithCode(b.im.removeMembers(g.id, [C]), 'forbidden', 'removeMembers by a non-owner');
    const removed = await op('removeMembers', () => a.im.removeMembers(g.id, [C]));
    assert.equal(removed.members_count, 2);
    await c.waitEvent('room.left', (x) => x.room === g.id);
    const ml = await b.waitEvent('member.left', (x) => x.room === g.id);
    assert.deepEqual(ml, { room: g.id, member: C });
    await rejectsWithCode(c.im.getRoom(g.id), 'forbidden', 'getRoom after removal');

    const d = await a.im.createDirect(uid('solo'));
    await rejectsWithCode(a.im.addMembers(d.id, [C]), 'bad_request', 'addMembers on a direct room');
});

test('leave: {} ; room.left to the leaver, member.left to the rest; the owner leaving hands over ownership', T, async () => {
    const g = await group(a, [B, C]);
    await c.waitEvent('room.joined', (x) => x.id === g.id);
    const res = await op('leave', () => c.im.leave(g.id));
    assert.deepEqual(res, {});
    await c.waitEvent('room.left', (x) => x.room === g.id);
    assert.deepEqual(await a.waitEvent('member.left', (x) => x.room === g.id && x.member === C), { room: g.id, member: C });

    await a.im.leave(g.id);
    const upd = await b.waitEvent('room.updated', (x) => x.id === g.id && x.owner === B);
    assert.equal(upd.owner, B);
    const d = await a.im.createDirect(B);
    await rejectsWithCode(a.im.leave(d.id), 'bad_request', 'leaving a direct room');
});

test('edit: the sender edits; message.edited to members; edited_at in history; others are forbidden', T, async () => {
    const g = await group(a, [B]);
    const sent = await a.im.send(g.id, 'typo');
    const edited = await op('edit', () => a.im.edit(g.id, sent.seq, { text: 'fixed' }));
    assert.equal(edited.seq, sent.seq);
    assert.equal(edited.text, 'fixed');
    assert.equal(typeof edited.edited_at, 'number');
    const ev = await b.waitEvent('message.edited', (m) => m.room === g.id && m.seq === sent.seq);
    assert.equal(ev.text, 'fixed');
    const { messages } = await b.im.history(g.id);
    assert.equal(messages[0].text, 'fixed');
    assert.equal(messages[0].ts, sent.ts, 'ts is kept');
    await rejectsWithCode(b.im.edit(g.id, sent.seq, { text: 'mine' }), 'forbidden', 'edit by another member');
});

test('recall: {} ; message.recalled to members; history shows type recalled; edit and react after it are conflicts', T, async () => {
    const g = await group(a, [B]);
    const sent = await a.im.send(g.id, 'oops');
    const res = await op('recall', () => a.im.recall(g.id, sent.seq));
    assert.deepEqual(res, {});
    assert.deepEqual(await b.waitEvent('message.recalled', (x) => x.room === g.id), { room: g.id, seq: sent.seq });
    const { messages } = await b.im.history(g.id);
    assert.equal(messages[0].type, 'recalled');
    assert.equal(messages[0].text, null);
    assert.equal(messages[0].from, A);
    assert.equal(messages[0].ts, sent.ts);
    await rejectsWithCode(a.im.edit(g.id, sent.seq, { text: 'x' }), 'conflict', 'edit after recall');
    await rejectsWithCode(a.im.react(g.id, sent.seq, '👍'), 'conflict', 'react after recall');
});

test('react: {room, seq, reactions}; message.reacted to members; off removes', T, async () => {
    const g = await group(a, [B]);
    const sent = await a.im.send(g.id, 'like me');
    const on = await op('react', () => b.im.react(g.id, sent.seq, '👍'));
    assert.deepEqual(on, { room: g.id, seq: sent.seq, reactions: { '👍': [B] } });
    const ev = await a.waitEvent('message.reacted', (x) => x.room === g.id && x.seq === sent.seq);
    assert.deepEqual(ev.reactions, { '👍': [B] });
    const off = await b.im.react(g.id, sent.seq, '👍', false);
    assert.deepEqual(off.reactions['👍'] ?? [], []);
    await a.waitEvents('message.reacted', 2, (x) => x.room === g.id && x.seq === sent.seq);
});

test('watchPresence: current state in the answer, then presence events as the watched client comes and goes', T, async () => {
    const id = uid('pres');
    const res = await op('watchPresence', () => a.im.watchPresence([id, B]));
    const byId = Object.fromEntries(res.clients.map((x) => [x.id, x]));
    assert.equal(byId[B]?.online, true);
    assert.notEqual(byId[id]?.online, true);
    const p = await connected(cluster, id, 1);
    const up = await a.waitEvent('presence', (e) => e.client === id && e.online === true);
    hasKeys(up, ['client', 'online', 'last_seen'], 'presence event');
    p.close();
    await a.waitEvent('presence', (e) => e.client === id && e.online === false);
});

// --- events by name -----------------------------------------------------------------------

test('on/off by name: on() and off() return the client; a removed listener gets nothing', T, async () => {
    const g = await group(a, [B]);
    await b.waitEvent('room.joined', (x) => x.id === g.id);
    const got = [];
    const removed = [];
    const keep = (m) => m.room === g.id && got.push(m.seq);
    const gone = (m) => m.room === g.id && removed.push(m.seq);
    try {
        assert.equal(b.im.on('message', keep), b.im, 'on() returns the client');
        b.im.on('message', gone);
        assert.equal(b.im.off('message', gone), b.im, 'off() returns the client');
        await a.im.send(g.id, 'one');
        await b.waitEvent('message', (m) => m.room === g.id && m.seq === 1);
        await sleep(100);
        assert.deepEqual(got, [1]);
        assert.deepEqual(removed, []);
    } finally {
        b.im.off('message', keep);
    }
});
