// room.list and unread counts: order by last activity newest first (ties by room id),
// cursor paging that returns every room exactly once, unread_total over all rooms,
// limit default and clamp.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    useCluster, uid, assertHttp, assertKeys, sleep, pool, SUMMARY_KEYS,
} from './lib/cluster.mjs';

const cluster = useCluster({ gateways: 2, workers: 2 });

const U = uid('lister');
const X = uid('other');
const N_GROUPS = 105;
const tag = uid('lr');
const groupIds = [];
for (let i = 0; i < N_GROUPS; i++) {
    groupIds.push(`${tag}-${String(i).padStart(3, '0')}`);
}
let directId;
let u; // U on gateway 0
let x; // X on gateway 1

cluster.setup(async () => {
    u = await cluster.login(0, U, { name: 'Lister' });
    x = await cluster.login(1, X, { name: 'Other' });
    // Created concurrently so that many rooms share a created_at millisecond (ties).
    await pool(N_GROUPS, 16, async (i) => {
        const r = await cluster.admin('POST', '/v1/rooms', { type: 'group', id: groupIds[i], members: [X, U], owner: X, name: `g${i}` }, { gateway: i % 2 });
        assertHttp(r, 201, null, `POST /v1/rooms ${groupIds[i]}`);
    });
    const d = await cluster.admin('POST', '/v1/rooms', { type: 'direct', members: [U, X] });
    assertHttp(d, 201, null, 'POST /v1/rooms direct');
    directId = d.body.id;
});

const activity = (s) => (s.last_message ? s.last_message.ts : s.created_at);

/** Asserts the list is ordered newest activity first, ties by room id ascending. */
function assertOrdered(rooms, what) {
    for (let i = 1; i < rooms.length; i++) {
        const p = rooms[i - 1];
        const q = rooms[i];
        const ok = activity(p) > activity(q) || (activity(p) === activity(q) && p.id < q.id);
        assert.ok(ok, `${what}: ${p.id} (activity ${activity(p)}) is listed before ${q.id} (activity ${activity(q)})`);
    }
}

async function listAll(conn, limit) {
    const all = [];
    const totals = new Set();
    let cursor;
    for (let page = 0; page < 200; page++) {
        const data = cursor === undefined ? { limit } : { limit, before: cursor };
        const res = await conn.call('room.list', data);
        assertKeys(res, ['rooms', 'next', 'unread_total'], 'room.list');
        assert.ok(res.rooms.length <= limit, `page of ${res.rooms.length} rooms for limit ${limit}`);
        totals.add(res.unread_total);
        all.push(...res.rooms);
        if (res.next === null) {
            return { all, totals: [...totals] };
        }
        assert.ok(res.rooms.length > 0, 'an empty page with a next cursor');
        cursor = res.next;
    }
    assert.fail('room.list paging does not end');
}

test('limit: default 20, larger values clamped to 100', async () => {
    const dflt = await u.call('room.list', {});
    assert.equal(dflt.rooms.length, 20);
    assert.notEqual(dflt.next, null);
    const big = await u.call('room.list', { limit: 1000 });
    assert.equal(big.rooms.length, 100);
    assert.notEqual(big.next, null);
    const exact = await u.call('room.list', { limit: 100 });
    assert.deepEqual(exact.rooms.map((r) => r.id), big.rooms.map((r) => r.id));
    for (const s of big.rooms) {
        assertKeys(s, SUMMARY_KEYS, `summary ${s.id}`);
    }
});

test('paging with next returns every room exactly once, in order (ties by room id)', async () => {
    const { all } = await listAll(u, 7);
    const ids = all.map((r) => r.id);
    assert.equal(new Set(ids).size, ids.length, 'a room was returned twice');
    assert.deepEqual([...ids].sort(), [...groupIds, directId].sort(), 'the pages do not hold exactly the client\'s rooms');
    assertOrdered(all, 'rooms paged by 7');
    const ties = all.filter((r, i) => i > 0 && activity(all[i - 1]) === activity(r)).length;
    process.stderr.write(`[room-list] ${ties} adjacent ties in created_at among ${all.length} rooms\n`);
    const direct = all.find((r) => r.id === directId);
    assert.equal(direct.type, 'direct');
    assertKeys(direct.peer, ['id', 'name', 'avatar', 'meta'], 'direct summary peer');
    assert.equal(direct.peer.id, X);
    assert.equal(direct.peer.name, 'Other', 'the peer with its profile, on whichever page');
    for (const s of all) {
        assert.equal(s.last_message, null);
        assert.equal(s.unread, 0);
    }
});

test('a message moves its room to the front; unread counts others\' messages above the read mark; unread_total spans all pages', async () => {
    const g = (i) => groupIds[i];
    const send = async (conn, room, text) => {
        const ack = await conn.call('msg.send', { room, cid: uid('c'), type: 'text', text });
        await sleep(5); // distinct ts, so that the order below does not depend on ties
        return ack;
    };
    await send(x, g(50), 'one');
    await send(x, g(50), 'two');
    await send(x, g(10), 'three');
    await send(x, directId, 'four');
    await send(u, g(20), 'mine');

    const first = await u.call('room.list', { limit: 4 });
    assert.deepEqual(first.rooms.map((r) => r.id), [g(20), directId, g(10), g(50)]);
    const by = Object.fromEntries(first.rooms.map((r) => [r.id, r]));
    assert.equal(by[g(50)].unread, 2);
    assert.equal(by[g(10)].unread, 1);
    assert.equal(by[directId].unread, 1);
    assert.equal(by[g(20)].unread, 0, 'one\'s own messages are not unread');
    assert.equal(by[g(50)].last_message.text, 'two');
    assert.equal(by[g(50)].last_seq, 2);
    assert.equal(first.unread_total, 4);

    const small = await u.call('room.list', { limit: 2 });
    assert.equal(small.unread_total, 4, 'unread_total counts all rooms, not only the page');
    const { all, totals } = await listAll(u, 9);
    assert.deepEqual(totals, [4], 'unread_total differs between pages');
    assertOrdered(all, 'rooms after messages');
    assert.equal(all.length, N_GROUPS + 1);

    const r = await u.call('room.read', { room: g(50), seq: 1 });
    assert.deepEqual(r, { room: g(50), seq: 1, unread: 1 });
    const after = await u.call('room.list', { limit: 2 });
    assert.equal(after.unread_total, 3);

    // A read mark never moves back: reading seq 1 after seq 2 leaves it at 2.
    const r2 = await u.call('room.read', { room: g(50), seq: 2 });
    assert.equal(r2.unread, 0);
    const back = await u.call('room.read', { room: g(50), seq: 1 });
    assert.equal(back.seq, 2, 'the answer shows the mark, which did not move back');
    assert.equal(back.unread, 0);
    assert.equal((await u.call('room.list', { limit: 1 })).unread_total, 2);

    // X's view: U's message is unread for X.
    const xl = await x.call('room.list', { limit: 1 });
    assert.equal(xl.rooms[0].id, g(20));
    assert.equal(xl.rooms[0].unread, 1);
});

test('sending marks one\'s own room read up to the sent message', async () => {
    const room = groupIds[30];
    await x.call('msg.send', { room, cid: uid('c'), type: 'text', text: 'a' });
    await x.call('msg.send', { room, cid: uid('c'), type: 'text', text: 'b' });
    let top = (await u.call('room.list', { limit: 1 })).rooms[0];
    assert.equal(top.id, room);
    assert.equal(top.unread, 2);
    await u.call('msg.send', { room, cid: uid('c'), type: 'text', text: 'c' });
    top = (await u.call('room.list', { limit: 1 })).rooms[0];
    assert.equal(top.unread, 0);
    const xl = (await x.call('room.list', { limit: 1 })).rooms[0];
    assert.equal(xl.unread, 1, 'X has one unread message from U');
});
