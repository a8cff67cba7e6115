// msg.edit, msg.recall, msg.react and typing: success, authorization failures (not sender,
// not owner, non-member: forbidden; missing room or message: not_found), validation errors,
// and each event's recipients across two gateways.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    useCluster, uid, user, group, send, expectDelivery, expectSilence, assertNone, expectError,
    assertKeys, MESSAGE_KEYS, jsonOfSize, sleep, waitFor, conns,
} from './lib/proto.mjs';

const cluster = useCluster({ gateways: 2, workers: 2 });

// The cast of most tests: o (owner, tabs on both gateways), s (sender, tabs on both
// gateways), m (member), x (outsider, tabs on both gateways: it would see a leak anywhere).
async function cast() {
    const o = await user(cluster, [0, 1], { prefix: 'owner' });
    const s = await user(cluster, [1, 0], { prefix: 'sender' });
    const m = await user(cluster, [1], { prefix: 'member' });
    const x = await user(cluster, [0, 1], { prefix: 'outsider' });
    const r = await group(o, [s, m]);
    return { o, s, m, x, r };
}

// ---------------------------------------------------------------------------------------
// msg.edit

test('msg.edit by the sender: the new version answered, message.edited to every tab of every member (the sender\'s other tab included), none to outsiders; history and the room summary show it', async () => {
    const { o, s, m, x, r } = await cast();
    const ack = await send(s, r.id, 'first draft', { mentions: [m.id] });
    const ed = await s.tabs[0].call('msg.edit', { room: r.id, seq: ack.seq, text: 'final text' });
    assertKeys(ed, [...MESSAGE_KEYS, 'edited_at'], 'msg.edit answer');
    assert.equal(ed.room, r.id);
    assert.equal(ed.seq, ack.seq);
    assert.equal(ed.ts, ack.ts, 'ts kept');
    assert.equal(ed.from, s.id);
    assert.equal(ed.cid, ack.cid);
    assert.equal(ed.type, 'text');
    assert.equal(ed.text, 'final text');
    assert.deepEqual(ed.mentions, [m.id], 'the other fields are kept');
    assert.ok(Number.isInteger(ed.edited_at) && ed.edited_at >= ack.ts);

    const got = await expectDelivery('message.edited', (d) => d.room === r.id && d.seq === ack.seq, [o, s, m], [x], { what: 'message.edited' });
    for (const d of got) {
        assert.deepEqual(d, ed, 'message.edited carries the new version');
    }
    const h = await m.call('msg.history', { room: r.id });
    assert.deepEqual(h.messages.find((e) => e.seq === ack.seq), ed, 'history shows the current version');
    const list = await o.call('room.list', {});
    assert.deepEqual(list.rooms.find((e) => e.id === r.id).last_message, ed, 'the summary\'s last_message is the current version');
});

test('msg.edit of a payload message: payload replaced, the type kept', async () => {
    const { o, s, m, x, r } = await cast();
    const ack = await s.call('msg.send', { room: r.id, cid: uid('c'), type: 'image', payload: { url: 'https://img/1.png', w: 10 } });
    const ed = await s.call('msg.edit', { room: r.id, seq: ack.seq, payload: { url: 'https://img/2.png', w: 20 } });
    assert.equal(ed.type, 'image');
    assert.deepEqual(ed.payload, { url: 'https://img/2.png', w: 20 });
    await expectDelivery('message.edited', (d) => d.room === r.id && d.seq === ack.seq, [o, s, m], [x]);
});

test('msg.edit refused: another member (the owner included) and a non-member forbidden, a missing room or message not_found, a recalled message conflict; nothing changes, no event', async () => {
    const { o, s, m, x, r } = await cast();
    const ack = await send(s, r.id, 'mine');
    await expectError(m, 'msg.edit', { room: r.id, seq: ack.seq, text: 'not yours' }, 'forbidden', null, 'edit by another member');
    await expectError(o, 'msg.edit', { room: r.id, seq: ack.seq, text: 'not yours' }, 'forbidden', null, 'edit by the owner');
    await expectError(x, 'msg.edit', { room: r.id, seq: ack.seq, text: 'not yours' }, 'forbidden', null, 'edit by a non-member');
    await expectError(s, 'msg.edit', { room: uid('missing'), seq: 1, text: 'x' }, 'not_found', null, 'edit in a missing room');
    await expectError(s, 'msg.edit', { room: r.id, seq: ack.seq + 1, text: 'x' }, 'not_found', null, 'edit of a seq not sent yet');
    const ack2 = await send(s, r.id, 'to recall');
    await s.call('msg.recall', { room: r.id, seq: ack2.seq });
    await expectError(s, 'msg.edit', { room: r.id, seq: ack2.seq, text: 'revive' }, 'conflict', null, 'edit of a recalled message');
    await expectSilence('message.edited', (d) => d.room === r.id, [o, s, m, x], 'refused edits');
    const h = await s.call('msg.history', { room: r.id });
    assert.equal(h.messages.find((e) => e.seq === ack.seq).text, 'mine');
    assert.equal(h.messages.find((e) => e.seq === ack2.seq).type, 'recalled');
});

test('msg.edit validation: bad_request naming the field, too_large for text over 16 KiB and payload over 8 KiB', async () => {
    const { s, r } = await cast();
    const ack = await send(s, r.id, 'text');
    const img = await s.call('msg.send', { room: r.id, cid: uid('c'), type: 'image', payload: { url: 'u' } });
    await expectError(s, 'msg.edit', { seq: ack.seq, text: 'x' }, 'bad_request', 'room');
    await expectError(s, 'msg.edit', { room: r.id, text: 'x' }, 'bad_request', 'seq');
    await expectError(s, 'msg.edit', { room: r.id, seq: 0, text: 'x' }, 'bad_request', 'seq');
    await expectError(s, 'msg.edit', { room: r.id, seq: '1', text: 'x' }, 'bad_request', 'seq');
    await expectError(s, 'msg.edit', { room: r.id, seq: 1.5, text: 'x' }, 'bad_request', 'seq');
    await expectError(s, 'msg.edit', { room: r.id, seq: ack.seq }, 'bad_request', 'text');
    await expectError(s, 'msg.edit', { room: r.id, seq: ack.seq, text: 12 }, 'bad_request', 'text');
    await expectError(s, 'msg.edit', { room: r.id, seq: ack.seq, payload: 'x' }, 'bad_request', 'payload');
    await expectError(s, 'msg.edit', { room: r.id, seq: ack.seq, payload: { a: 1 } }, 'bad_request', 'text', 'a text message keeps a text');
    await expectError(s, 'msg.edit', { room: r.id, seq: ack.seq, text: 'x'.repeat(16385) }, 'too_large', 'text');
    await expectError(s, 'msg.edit', { room: r.id, seq: img.seq, payload: jsonOfSize(8193) }, 'too_large', 'payload');
    const big = await s.call('msg.edit', { room: r.id, seq: ack.seq, text: 'y'.repeat(16384) });
    assert.equal(big.text.length, 16384);
    const bigp = await s.call('msg.edit', { room: r.id, seq: img.seq, payload: jsonOfSize(8192) });
    assert.deepEqual(bigp.payload, jsonOfSize(8192));
});

// A change a moment after a join. A tab's events may start after the first changes: its
// gateway may subscribe the room's channel only after they were published (its catch-up then
// reads the messages after the join point, in their current version), and on a cluster a
// tab's room.joined (its client's shard) can come after the room's first events (the room's
// shard) on a gateway that already follows the room. The protocol's rule closes the gap: a
// tab that sees seq jump reads msg.history after the last seq it holds. So every tab ends up
// with every change, as its event, inside a caught-up message, or from that history read.
// Each tab's view is folded from its events in the order they arrived.
function viewOf(c, rid) {
    const view = new Map(); // seq -> message as this tab knows it
    for (const { frame: { ev, data: d } } of c.eventsList) {
        if (d?.room !== rid) {
            continue;
        }
        if (ev === 'message' || ev === 'message.edited') {
            view.set(d.seq, d);
        } else if (ev === 'message.recalled' && view.has(d.seq)) {
            view.set(d.seq, { ...view.get(d.seq), type: 'recalled', text: null, payload: null });
        } else if (ev === 'message.reacted' && view.has(d.seq)) {
            view.set(d.seq, { ...view.get(d.seq), reactions: d.reactions });
        }
    }
    return view;
}

test('edit, recall and reaction a moment after the room is created: every tab of every member ends up with each change (events, the join\'s catch-up, msg.history after a seq jump)', async () => {
    const o = await user(cluster, [0, 1], { prefix: 'owner' });
    const s = await user(cluster, [1, 0], { prefix: 'sender' });
    const m = await user(cluster, [1], { prefix: 'member' });
    // No wait for the gateways to follow the room (group() would): the race is the point.
    const r = await o.call('room.create', { type: 'group', members: [s.id, m.id] });
    const a = await send(s, r.id, 'draft');
    const b = await send(s, r.id, 'oops');
    const c = await send(s, r.id, 'nice');
    const ed = await s.call('msg.edit', { room: r.id, seq: a.seq, text: 'final' });
    await s.call('msg.recall', { room: r.id, seq: b.seq });
    const re = await m.call('msg.react', { room: r.id, seq: c.seq, emoji: '👍', on: true });
    // Each tab's last event may still be on its way: it gets the usual bound.
    for (const t of conns(o, s, m)) {
        await waitFor(async () => {
            const v = viewOf(t, r.id);
            let held = 0;
            while (v.has(held + 1)) {
                held++;
            }
            if (held < c.seq) {
                if (![...v.keys()].some((q) => q > held)) {
                    throw new Error(`it holds seq 1 to ${held} and no later one, so it sees no jump`);
                }
                const h = await t.call('msg.history', { room: r.id, after: held });
                for (const e of h.messages) {
                    if (!v.has(e.seq)) {
                        v.set(e.seq, e);
                    }
                }
            }
            const seen = [a, b, c].map((x) => v.get(x.seq));
            if (seen[0]?.text !== ed.text || seen[1]?.type !== 'recalled'
                || JSON.stringify(seen[2]?.reactions) !== JSON.stringify(re.reactions)) {
                throw new Error(`it holds ${JSON.stringify(seen)}`);
            }
            return true;
        }, 5000, `${t.label} to see the edit, the recall and the reaction`);
    }
});

// ---------------------------------------------------------------------------------------
// msg.recall

test('msg.recall by the sender: {} answered, message.recalled {room, seq} to every tab of every member, none to outsiders; the message keeps seq, from and ts and becomes "recalled" in history', async () => {
    const { o, s, m, x, r } = await cast();
    const ack = await s.call('msg.send', { room: r.id, cid: uid('c'), type: 'image', payload: { url: 'https://img/x.png' } });
    const res = await s.tabs[1].call('msg.recall', { room: r.id, seq: ack.seq });
    assert.deepEqual(res, {});
    const got = await expectDelivery('message.recalled', (d) => d.room === r.id && d.seq === ack.seq, [o, s, m], [x], { what: 'message.recalled' });
    assert.deepEqual(got[0], { room: r.id, seq: ack.seq });
    const h = await m.call('msg.history', { room: r.id });
    const rec = h.messages.find((e) => e.seq === ack.seq);
    assert.equal(rec.type, 'recalled');
    assert.equal(rec.text, null);
    assert.equal(rec.payload, null);
    assert.equal(rec.from, s.id);
    assert.equal(rec.ts, ack.ts);
    const list = await m.call('room.list', {});
    assert.equal(list.rooms.find((e) => e.id === r.id).last_message.type, 'recalled', 'the summary shows the recall');

    // Recalling again: a success with no new event (documented choice).
    assert.deepEqual(await s.call('msg.recall', { room: r.id, seq: ack.seq }), {});
    await sleep(300);
    for (const c of [...o.tabs, ...s.tabs, ...m.tabs]) {
        assert.equal(c.events('message.recalled').length, 1, `${c.label}: one message.recalled`);
    }
});

test('msg.recall by the room\'s owner of another member\'s message is allowed', async () => {
    const { o, s, m, x, r } = await cast();
    const ack = await send(s, r.id, 'moderate me');
    assert.deepEqual(await o.call('msg.recall', { room: r.id, seq: ack.seq }), {});
    await expectDelivery('message.recalled', (d) => d.room === r.id && d.seq === ack.seq, [o, s, m], [x]);
});

test('msg.recall refused: neither sender nor owner forbidden, a non-member forbidden, a missing room or message not_found; validation names the field', async () => {
    const { o, s, m, x, r } = await cast();
    const ack = await send(o, r.id, 'owner says');
    await expectError(m, 'msg.recall', { room: r.id, seq: ack.seq }, 'forbidden', null, 'recall by a plain member');
    await expectError(s, 'msg.recall', { room: r.id, seq: ack.seq }, 'forbidden', null, 'recall by another sender');
    await expectError(x, 'msg.recall', { room: r.id, seq: ack.seq }, 'forbidden', null, 'recall by a non-member');
    await expectError(o, 'msg.recall', { room: uid('missing'), seq: 1 }, 'not_found');
    await expectError(o, 'msg.recall', { room: r.id, seq: 99 }, 'not_found');
    await expectError(o, 'msg.recall', { seq: 1 }, 'bad_request', 'room');
    await expectError(o, 'msg.recall', { room: r.id }, 'bad_request', 'seq');
    await expectError(o, 'msg.recall', { room: r.id, seq: -3 }, 'bad_request', 'seq');
    await expectError(o, 'msg.recall', { room: r.id, seq: 'one' }, 'bad_request', 'seq');
    await expectSilence('message.recalled', () => true, [o, s, m, x], 'refused recalls');
    const h = await o.call('msg.history', { room: r.id });
    assert.equal(h.messages.find((e) => e.seq === ack.seq).type, 'text');
});

// ---------------------------------------------------------------------------------------
// msg.react

test('msg.react: reactions answered, message.reacted to every tab of every member, none to outsiders; ids in reaction order; off removes; no event when nothing changes; history shows them', async () => {
    const { o, s, m, x, r } = await cast();
    const ack = await send(s, r.id, 'react to me');
    const r1 = await m.call('msg.react', { room: r.id, seq: ack.seq, emoji: '👍', on: true });
    assert.deepEqual(r1, { room: r.id, seq: ack.seq, reactions: { '👍': [m.id] } });
    const got = await expectDelivery('message.reacted', (d) => d.room === r.id && d.seq === ack.seq, [o, s, m], [x], { what: 'message.reacted' });
    assert.deepEqual(got[0], r1);

    const r2 = await s.tabs[1].call('msg.react', { room: r.id, seq: ack.seq, emoji: '👍', on: true });
    assert.deepEqual(r2.reactions, { '👍': [m.id, s.id] });
    const r3 = await o.call('msg.react', { room: r.id, seq: ack.seq, emoji: ':party:', on: true });
    assert.deepEqual(r3.reactions, { '👍': [m.id, s.id], ':party:': [o.id] });
    await expectDelivery('message.reacted', (d) => d.room === r.id && d.reactions[':party:'], [o, s, m], [x]);

    // Reacting again with the same emoji, or taking back one never given: no change, no event.
    const again = await m.call('msg.react', { room: r.id, seq: ack.seq, emoji: '👍', on: true });
    assert.deepEqual(again.reactions, r3.reactions);
    const never = await m.call('msg.react', { room: r.id, seq: ack.seq, emoji: ':party:', on: false });
    assert.deepEqual(never.reactions, r3.reactions);
    await sleep(300);
    for (const c of [...o.tabs, ...s.tabs, ...m.tabs]) {
        assert.equal(c.events('message.reacted').length, 3, `${c.label}: exactly three message.reacted`);
    }

    const off = await m.call('msg.react', { room: r.id, seq: ack.seq, emoji: '👍', on: false });
    assert.deepEqual(off.reactions, { '👍': [s.id], ':party:': [o.id] });
    await o.call('msg.react', { room: r.id, seq: ack.seq, emoji: ':party:', on: false });
    const last = await expectDelivery('message.reacted', (d) => d.room === r.id && !d.reactions[':party:'] && !(d.reactions['👍'] || []).includes(m.id), [o, s, m], [x]);
    assert.deepEqual(last[0].reactions, { '👍': [s.id] }, 'an emoji nobody is left on is left out');

    const h = await x.request('msg.history', { room: r.id });
    assert.equal(h.error?.code, 'forbidden');
    const hist = await o.call('msg.history', { room: r.id });
    const msg = hist.messages.find((e) => e.seq === ack.seq);
    assert.deepEqual(msg.reactions, { '👍': [s.id] });
    assert.equal(msg.text, 'react to me');
});

test('msg.react refused: a non-member forbidden, a missing room or message not_found, a recalled message conflict; validation names the field (emoji 1-32 bytes)', async () => {
    const { o, s, m, x, r } = await cast();
    const ack = await send(s, r.id, 'x');
    await expectError(x, 'msg.react', { room: r.id, seq: ack.seq, emoji: '👍', on: true }, 'forbidden');
    await expectError(m, 'msg.react', { room: uid('missing'), seq: 1, emoji: '👍', on: true }, 'not_found');
    await expectError(m, 'msg.react', { room: r.id, seq: 42, emoji: '👍', on: true }, 'not_found');
    await expectError(m, 'msg.react', { seq: ack.seq, emoji: '👍', on: true }, 'bad_request', 'room');
    await expectError(m, 'msg.react', { room: r.id, emoji: '👍', on: true }, 'bad_request', 'seq');
    await expectError(m, 'msg.react', { room: r.id, seq: ack.seq, on: true }, 'bad_request', 'emoji');
    await expectError(m, 'msg.react', { room: r.id, seq: ack.seq, emoji: '', on: true }, 'bad_request', 'emoji');
    await expectError(m, 'msg.react', { room: r.id, seq: ack.seq, emoji: 5, on: true }, 'bad_request', 'emoji');
    const long = await m.request('msg.react', { room: r.id, seq: ack.seq, emoji: 'e'.repeat(33), on: true });
    assert.equal(long.ok, false, 'a 33-byte emoji is refused');
    assert.ok(['bad_request', 'too_large'].includes(long.error.code) && long.error.message.includes('emoji'), JSON.stringify(long));
    const ok32 = await m.call('msg.react', { room: r.id, seq: ack.seq, emoji: 'e'.repeat(32), on: true });
    assert.deepEqual(ok32.reactions, { ['e'.repeat(32)]: [m.id] });
    await expectError(m, 'msg.react', { room: r.id, seq: ack.seq, emoji: '👍' }, 'bad_request', 'on');
    await expectError(m, 'msg.react', { room: r.id, seq: ack.seq, emoji: '👍', on: 'yes' }, 'bad_request', 'on');
    await expectError(m, 'msg.react', { room: r.id, seq: ack.seq, emoji: '👍', on: 1 }, 'bad_request', 'on');
    await s.call('msg.recall', { room: r.id, seq: ack.seq });
    await expectError(m, 'msg.react', { room: r.id, seq: ack.seq, emoji: '👍', on: true }, 'conflict', null, 'react to a recalled message');
    await sleep(300);
    for (const c of [...o.tabs, ...s.tabs, ...m.tabs]) {
        assert.equal(c.events('message.reacted').length, 1, `${c.label}: only the one accepted reaction was announced`);
    }
    assertNone('message.reacted', () => true, [x], 'refused reactions');
});

// ---------------------------------------------------------------------------------------
// typing

// typing is not stored: it reaches the gateways that subscribe the room's channel when it is
// published, and a join's catch-up brings back messages only; cast() returns once both
// gateways follow the room (group() in lib/proto.mjs).
test('typing: to every tab of the other members, not to the typer\'s own tabs (on either gateway), not to outsiders; not stored', async () => {
    const { o, s, m, x, r } = await cast();
    s.tabs[0].notifyOp('typing', { room: r.id }); // no id: no answer
    const got = await expectDelivery('typing', (d) => d.room === r.id, [o, m], [s, x], { what: 'typing' });
    assert.deepEqual(got[0], { room: r.id, client: s.id });
    assert.equal(s.tabs[0].orphans.length, 0, 'a typing without id got an answer');
    assert.equal((await o.call('room.get', { room: r.id })).last_seq, 0, 'typing stored a message');
    const h = await o.call('msg.history', { room: r.id });
    assert.deepEqual(h.messages, []);
});

test('typing is throttled per connection: a burst gives one event, a later one (after 1 s) another; each tab has its own throttle', async () => {
    const { o, s, m, r } = await cast();
    for (let i = 0; i < 5; i++) {
        s.tabs[0].notifyOp('typing', { room: r.id });
    }
    await expectDelivery('typing', (d) => d.room === r.id, [o, m], [s], { what: 'burst of 5' });
    // the other tab is another connection: its first typing goes out too
    s.tabs[1].notifyOp('typing', { room: r.id });
    await expectDelivery('typing', (d) => d.room === r.id, [o, m], [s], { count: 2, what: 'other tab' });
    await sleep(1100);
    s.tabs[0].notifyOp('typing', { room: r.id });
    s.tabs[0].notifyOp('typing', { room: r.id });
    await expectDelivery('typing', (d) => d.room === r.id, [o, m], [s], { count: 3, what: 'after 1 s' });
});

test('typing with an id is answered {}; a non-member forbidden, a missing room not_found, room bad_request naming it', async () => {
    const { o, s, m, x, r } = await cast();
    assert.deepEqual(await m.call('typing', { room: r.id }), {});
    await expectDelivery('typing', (d) => d.room === r.id, [o, s], [m, x]);
    await expectError(x, 'typing', { room: r.id }, 'forbidden', null, 'typing by a non-member');
    await expectError(m, 'typing', {}, 'bad_request', 'room');
    await expectError(m, 'typing', { room: 'b a d' }, 'bad_request', 'room');
    await expectSilence('typing', (d) => d.client === x.id, [o, s, m], 'typing by a non-member');
    await expectError(m, 'typing', { room: uid('missing') }, 'not_found', null, 'typing in a room that does not exist');
});
