// sync: the one round trip after a reconnect. Its answer shape and rules, its validation,
// that it never leaks a room the client is not in, and the reconnect test of the issue: a
// client disconnects, others send 200 messages in 3 rooms, add it to a 4th and remove it
// from a 5th; it reconnects (on the other gateway) and ONE sync gives it all of it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    useCluster, uid, user, group, send, expectDelivery, expectError, assertKeys, pool,
    SUMMARY_KEYS, MESSAGE_KEYS,
} from './lib/proto.mjs';

const cluster = useCluster({ gateways: 2, workers: 2 });

const SYNC_KEYS = ['rooms', 'left', 'messages', 'has_more'];

test('sync with known {} (or no data): every room\'s summary in room.list order, no messages, nothing left', async () => {
    const c = await user(cluster, [0], { prefix: 'c' });
    const p = await user(cluster, [1], { prefix: 'peer' });
    const g = await group(p, [c], { name: 'g' });
    const d = await c.call('room.create', { type: 'direct', members: [p.id] });
    await send(p, g.id, 'one');
    await send(p, d.id, 'two');
    const res = await c.call('sync', { known: {} });
    assertKeys(res, SYNC_KEYS, 'sync answer');
    const list = await c.call('room.list', {});
    assert.deepEqual(res.rooms.map((r) => r.id), list.rooms.map((r) => r.id), 'rooms in room.list order');
    assert.deepEqual(res.rooms.map((r) => r.id).sort(), [g.id, d.id].sort());
    for (const s of res.rooms) {
        assertKeys(s, SUMMARY_KEYS, 'sync summary');
        assert.equal(s.unread, 1);
        assert.equal(s.last_message.room, s.id);
    }
    assert.equal(res.rooms.find((r) => r.id === d.id).peer.id, p.id, 'a direct room\'s summary names the peer');
    assert.deepEqual(res.left, []);
    assert.deepEqual(res.messages, {});
    assert.deepEqual(res.has_more, {});
    assert.deepEqual(await c.call('sync'), res, 'sync without data is sync with known {}');
});

test('sync never leaks a room the client is not in: a foreign room named in known is reported left, with no messages', async () => {
    const c = await user(cluster, [0], { prefix: 'c' });
    const o = await user(cluster, [1], { prefix: 'o' });
    const secret = await group(o, [], { name: 'secret' });
    await send(o, secret.id, 'classified');
    const res = await c.call('sync', { known: { [secret.id]: 0 } });
    assert.deepEqual(res.rooms, []);
    assert.deepEqual(res.messages, {});
    assert.deepEqual(res.has_more, {});
    assert.deepEqual(res.left, [secret.id]);
});

test('sync: a room held up to date (or beyond) gets no messages; a room not in known only its summary', async () => {
    const c = await user(cluster, [0], { prefix: 'c' });
    const o = await user(cluster, [1], { prefix: 'o' });
    const r1 = await group(o, [c]);
    const r2 = await group(o, [c]);
    for (let i = 0; i < 3; i++) {
        await send(o, r1.id, `r1-${i}`);
        await send(o, r2.id, `r2-${i}`);
    }
    const res = await c.call('sync', { known: { [r1.id]: 3 } });
    assert.deepEqual(res.messages, {});
    assert.deepEqual(res.has_more, {});
    assert.equal(res.rooms.length, 2);
    const res2 = await c.call('sync', { known: { [r1.id]: 7, [r2.id]: 1 } });
    assert.deepEqual(Object.keys(res2.messages), [r2.id]);
    assert.deepEqual(res2.messages[r2.id].map((m) => m.text), ['r2-1', 'r2-2']);
    assert.deepEqual(res2.has_more, { [r2.id]: false });
    assert.deepEqual(res2.left, []);
});

test('sync validation: bad_request naming known; before auth unauthenticated', async () => {
    const c = await user(cluster, [1], { prefix: 'c' });
    await expectError(c, 'sync', { known: 'x' }, 'bad_request', 'known');
    await expectError(c, 'sync', { known: [1, 2] }, 'bad_request', 'known');
    await expectError(c, 'sync', { known: { r1: 'x' } }, 'bad_request', 'known');
    await expectError(c, 'sync', { known: { r1: 1.5 } }, 'bad_request', 'known');
    await expectError(c, 'sync', { known: { r1: -1 } }, 'bad_request', 'known');
    await expectError(c, 'sync', { known: { 'not a room id': 1 } }, 'bad_request', 'known');
    const anon = await cluster.connect(0);
    await expectError(anon, 'sync', { known: {} }, 'unauthenticated');
    anon.close();
});

test('reconnect: a client away while 200 messages go to 3 of its rooms, it is added to a 4th and removed from a 5th, gets all of it from ONE sync', async () => {
    const me = await user(cluster, [0, 1], { prefix: 'roamer' });
    // Senders with 3 tabs each, used in turn: one connection alone may not send 200 requests at
    // once (burst 100, then 50/s).
    const s1 = await user(cluster, [0, 1, 0], { prefix: 's1' });
    const s2 = await user(cluster, [1, 0, 1], { prefix: 's2' });
    const A = (await group(s1, [me, s2], { name: 'A' })).id;
    const B = (await group(s2, [me, s1], { name: 'B' })).id;
    const C = (await group(s1, [me], { name: 'C' })).id;
    const D = (await group(s1, [me, s2], { name: 'D (removed from)' })).id;
    const E = (await group(s2, [s1], { name: 'E (added to)' })).id;

    // What the client holds before it goes away.
    await send(s1, A, 'a-pre-1');
    await send(s2, A, 'a-pre-2');
    await send(me, A, 'a-pre-3 (mine)');
    await send(s1, C, 'c-pre-1');
    await send(s2, D, 'd-pre-1');
    await send(s2, E, 'e-pre-1');
    await send(s1, E, 'e-pre-2');
    const before = await me.call('sync', { known: {} });
    const known = Object.fromEntries(before.rooms.map((r) => [r.id, r.last_seq]));
    assert.deepEqual(known, { [A]: 3, [B]: 0, [C]: 1, [D]: 1 });

    for (const t of me.tabs) {
        t.close();
    }
    await Promise.all(me.tabs.map((t) => t.waitClose(3000)));

    // 200 messages from both gateways, concurrently: 130 in A (over one sync page), 45 in B, 25 in C.
    const plan = [
        ...Array.from({ length: 130 }, (_, i) => [A, i % 2 ? s2 : s1]),
        ...Array.from({ length: 45 }, (_, i) => [B, i % 2 ? s1 : s2]),
        ...Array.from({ length: 25 }, () => [C, s1]),
    ];
    const sent = new Map(); // room -> Map(seq -> {text, from, cid})
    await pool(plan.length, 8, async (i) => {
        const [room, who] = plan[i];
        const text = `missed #${i} in ${room}`;
        const ack = await who.tabs[i % 3].call('msg.send', { room, cid: uid('c'), type: 'text', text });
        if (!sent.has(room)) {
            sent.set(room, new Map());
        }
        sent.get(room).set(ack.seq, { text, from: who.id, cid: ack.cid });
    });
    assert.equal([...sent.values()].reduce((n, m) => n + m.size, 0), 200);
    // Changes to missed messages while away: sync gives their current versions.
    const [editSeq, editMsg] = [...sent.get(A)].find(([, m]) => m.from === s1.id);
    const edited = await s1.call('msg.edit', { room: A, seq: editSeq, text: 'edited while away' });
    editMsg.text = 'edited while away';
    const [recallSeq, recallMsg] = [...sent.get(A)].find(([seq, m]) => m.from === s2.id && seq !== editSeq);
    await s1.call('msg.recall', { room: A, seq: recallSeq });
    recallMsg.text = null;
    await s2.call('room.members.add', { room: E, members: [me.id] });
    await s1.call('room.members.remove', { room: D, members: [me.id] });
    await send(s2, D, 'd-after-removal');

    // Back, on the other gateway first: ONE sync.
    const back = await user(cluster, [1, 0], { id: me.id });
    const res = await back.tabs[0].request('sync', { known });
    assert.equal(res.ok, true, JSON.stringify(res).slice(0, 300));
    const d = res.data;
    assertKeys(d, SYNC_KEYS, 'sync answer');

    // Rooms: the 3 rooms and the 4th, not the one it was removed from.
    assert.deepEqual(d.rooms.map((r) => r.id).sort(), [A, B, C, E].sort());
    for (const s of d.rooms) {
        assertKeys(s, SUMMARY_KEYS, `summary of ${s.id}`);
    }
    const sum = Object.fromEntries(d.rooms.map((r) => [r.id, r]));
    assert.equal(sum[A].last_seq, 133);
    assert.equal(sum[A].unread, 130, 'A: the 130 missed messages from others are unread');
    assert.equal(sum[B].last_seq, 45);
    assert.equal(sum[B].unread, 45);
    assert.equal(sum[C].last_seq, 26);
    assert.equal(sum[C].unread, 26);
    assert.equal(sum[E].last_seq, 2);
    assert.equal(sum[E].members_count, 3);
    assert.equal(sum[E].last_message.text, 'e-pre-2', 'the 4th room\'s summary carries its last message');
    assert.equal(sum[E].unread, 0, 'what was sent before joining counts as read');
    assert.deepEqual(d.left, [D], 'left: the room it was removed from');

    // Messages: the 3 rooms' missed messages, each once, oldest first; none for E (not in known).
    assert.deepEqual(Object.keys(d.messages).sort(), [A, B, C].sort());
    assert.deepEqual(d.has_more, { [A]: true, [B]: false, [C]: false });
    const expectRange = (room, from, to) => {
        const msgs = d.messages[room];
        assert.deepEqual(msgs.map((m) => m.seq), Array.from({ length: to - from + 1 }, (_, i) => from + i), `${room}: seqs ${from}..${to} in order, each once`);
        for (const m of msgs) {
            assertKeys(m, MESSAGE_KEYS, 'synced message');
            assert.equal(m.room, room);
            const want = sent.get(room).get(m.seq);
            assert.equal(m.text, want.text, `${room} seq ${m.seq}`);
            assert.equal(m.from, want.from);
            assert.equal(m.cid, want.cid);
        }
    };
    expectRange(A, 4, 103);
    expectRange(B, 1, 45);
    expectRange(C, 2, 26);
    assert.deepEqual(d.messages[A].find((m) => m.seq === editSeq), edited, 'an edit made while away is in the synced message');
    assert.equal(d.messages[A].find((m) => m.seq === recallSeq).type, 'recalled');

    // has_more: msg.history after= continues where sync stopped.
    const rest = await back.tabs[1].call('msg.history', { room: A, after: 103, limit: 100 });
    assert.deepEqual(rest.messages.map((m) => m.seq), Array.from({ length: 30 }, (_, i) => 104 + i));
    assert.equal(rest.has_more, false);
    for (const m of rest.messages) {
        assert.equal(m.text, sent.get(A).get(m.seq).text);
    }
    const total = d.messages[A].length + rest.messages.length + d.messages[B].length + d.messages[C].length;
    assert.equal(total, 200, 'all 200 missed messages, each once');

    // And it is live again in the 4th room on both tabs, and not in the 5th.
    const ack = await send(s1, E, 'welcome back');
    await expectDelivery('message', (m) => m.room === E && m.seq === ack.seq, [back, s1, s2], []);
    const ackD = await send(s1, D, 'not for you');
    await expectDelivery('message', (m) => m.room === D && m.seq === ackD.seq, [s1, s2], [back]);
});
