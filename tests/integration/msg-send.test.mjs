// msg.send: sequencing under concurrency (4 clients, 2 gateways, 2 workers), history paging,
// idempotent resends, validation of every field, malformed frames, unknown ops.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    useCluster, uid, assertOk, assertError, assertKeys, sleep, MESSAGE_KEYS,
} from './lib/cluster.mjs';

const cluster = useCluster({ gateways: 2, workers: 2 });

const TOTAL = 1000;
const SENDERS = 4;
const users = [uid('s1'), uid('s2'), uid('s3'), uid('s4')];
let conns = []; // users[i] on gateway i % 2
let room;

cluster.setup(async () => {
    conns = await Promise.all(users.map((u, i) => cluster.login(i % 2, u)));
    room = await conns[0].call('room.create', { type: 'group', members: users.slice(1), name: 'load' });
    for (const c of conns) {
        await c.waitEvent('room.joined', (d) => d.id === room.id);
    }
});

/**
 * Sends `count` requests on one connection without waiting for answers, paced under the
 * contract's rate limit (burst 100, 50/s sustained): 90 at once, then 45 a second.
 */
async function pacedSends(conn, count, makeData) {
    const start = Date.now();
    const promises = [];
    for (let i = 0; i < count; i++) {
        const due = start + (i < 90 ? 0 : ((i - 90 + 1) * 1000) / 45);
        const wait = due - Date.now();
        if (wait > 0) {
            await sleep(wait);
        }
        promises.push(conn.request('msg.send', makeData(i), { timeoutMs: 15000 }).then((res) => ({ res, data: makeData(i) })));
    }
    return Promise.all(promises);
}

const sent = new Map(); // seq -> {from, cid, text}
let acksOk = false;

test(`${TOTAL} messages sent concurrently by ${SENDERS} clients on 2 gateways get unique seqs 1..${TOTAL}`, { timeout: 60000 }, async () => {
    const per = TOTAL / SENDERS;
    const results = await Promise.all(conns.map((c, k) => pacedSends(c, per, (i) => ({
        room: room.id, cid: `load-${k}-${i}`, type: 'text', text: `message ${i} from ${users[k]}`,
    }))));
    const errors = [];
    const seqs = [];
    results.forEach((rs, k) => {
        for (const { res, data } of rs) {
            if (!res.ok) {
                errors.push(`${users[k]} ${data.cid}: ${JSON.stringify(res.error)}`);
                continue;
            }
            assert.equal(res.data.room, room.id);
            assert.equal(res.data.cid, data.cid);
            seqs.push(res.data.seq);
            assert.ok(!sent.has(res.data.seq), `seq ${res.data.seq} acknowledged twice`);
            sent.set(res.data.seq, { from: users[k], cid: data.cid, text: data.text, ts: res.data.ts });
        }
    });
    assert.deepEqual(errors.slice(0, 10), [], `${errors.length} sends failed, first ones:\n${errors.slice(0, 10).join('\n')}`);
    assert.equal(new Set(seqs).size, TOTAL, 'every ack seq unique');
    seqs.sort((x, y) => x - y);
    assert.equal(seqs[0], 1);
    assert.equal(seqs[TOTAL - 1], TOTAL);
    const got = await conns[2].call('room.get', { room: room.id });
    assert.equal(got.last_seq, TOTAL);
    acksOk = true;
});

function checkPage(page, from, to, what) {
    assertKeys(page, ['messages', 'has_more'], what);
    const got = page.messages.map((m) => m.seq);
    const want = [];
    for (let s = from; s <= to; s++) {
        want.push(s);
    }
    assert.deepEqual(got, want, `${what}: seqs`);
    for (const m of page.messages) {
        assertKeys(m, MESSAGE_KEYS, `${what}: message ${m.seq}`);
        const s = sent.get(m.seq);
        assert.ok(s, `${what}: seq ${m.seq} was never acknowledged`);
        assert.equal(m.room, room.id);
        assert.equal(m.from, s.from, `${what}: seq ${m.seq} from`);
        assert.equal(m.cid, s.cid, `${what}: seq ${m.seq} cid`);
        assert.equal(m.text, s.text, `${what}: seq ${m.seq} text`);
        assert.equal(m.ts, s.ts, `${what}: seq ${m.seq} ts equals the ack's`);
        assert.equal(m.type, 'text');
    }
}

test('msg.history paged backwards with before holds seq 1..1000 exactly once each', async () => {
    assert.ok(acksOk, 'depends on the load test');
    const c = conns[3];
    const newest = await c.call('msg.history', { room: room.id, limit: 100 });
    checkPage(newest, 901, 1000, 'newest page');
    assert.equal(newest.has_more, true);
    const seen = new Set(newest.messages.map((m) => m.seq));
    let before = newest.messages[0].seq;
    let pages = 1;
    for (;;) {
        const page = await c.call('msg.history', { room: room.id, before, limit: 100 });
        pages++;
        checkPage(page, before - 100, before - 1, `page before=${before}`);
        for (const m of page.messages) {
            assert.ok(!seen.has(m.seq), `seq ${m.seq} returned twice`);
            seen.add(m.seq);
        }
        before = page.messages[0].seq;
        if (before === 1) {
            assert.equal(page.has_more, false, 'has_more on the oldest page');
            break;
        }
        assert.equal(page.has_more, true, `has_more before=${before}`);
        assert.ok(pages < 20, 'paging does not end');
    }
    assert.equal(seen.size, TOTAL);
});

test('msg.history paged forwards with after, limit clamping, defaults, both bounds', async () => {
    assert.ok(acksOk, 'depends on the load test');
    const c = conns[1];
    let after = 0;
    const seen = new Set();
    for (let i = 0; i < 20 && after < TOTAL; i++) {
        const page = await c.call('msg.history', { room: room.id, after, limit: 100 });
        checkPage(page, after + 1, after + 100, `page after=${after}`);
        page.messages.forEach((m) => seen.add(m.seq));
        after = page.messages[page.messages.length - 1].seq;
        assert.equal(page.has_more, after < TOTAL, `has_more after a page ending at ${after}`);
    }
    assert.equal(seen.size, TOTAL);

    const clamped = await c.call('msg.history', { room: room.id, limit: 1000 });
    checkPage(clamped, 901, 1000, 'limit 1000 (clamped to 100)');
    const dflt = await c.call('msg.history', { room: room.id });
    checkPage(dflt, 951, 1000, 'default limit (50)');
    assert.equal(dflt.has_more, true);
    const small = await c.call('msg.history', { room: room.id, before: 11, limit: 5 });
    checkPage(small, 6, 10, 'before=11 limit=5');
    assert.equal(small.has_more, true);
    const tail = await c.call('msg.history', { room: room.id, after: 995, limit: 10 });
    checkPage(tail, 996, 1000, 'after=995');
    assert.equal(tail.has_more, false);
    const none = await c.call('msg.history', { room: room.id, after: TOTAL });
    checkPage(none, 1, 0, 'after=last');
    assert.equal(none.has_more, false);
    assertError(await c.request('msg.history', { room: room.id, before: 10, after: 5 }), 'bad_request', null, 'both before and after');
});

test('every member received every message as a live event (across both gateways)', { timeout: 30000 }, async () => {
    assert.ok(acksOk, 'depends on the load test');
    for (let k = 0; k < conns.length; k++) {
        const got = await conns[k].waitEvents('message', TOTAL, (m) => m.room === room.id, 15000);
        const seqs = new Set(got.map((m) => m.seq));
        assert.equal(seqs.size, TOTAL, `${users[k]} (gateway ${k % 2}) got ${seqs.size} distinct seqs of ${TOTAL}`);
    }
});

test('a resend with the same cid returns the same seq and ts and stores nothing new', async () => {
    const [c0, c1] = conns;
    const data = { room: room.id, cid: 'idem-1', type: 'text', text: 'once' };
    const first = await c0.call('msg.send', data);
    const again = await c0.call('msg.send', data);
    assert.deepEqual(again, first);
    const third = await c0.call('msg.send', { ...data });
    assert.deepEqual(third, first);
    const info = await c1.call('room.get', { room: room.id });
    assert.equal(info.last_seq, first.seq, 'a resend took a seq');
    const hist = await c1.call('msg.history', { room: room.id, after: first.seq - 1 });
    assert.equal(hist.messages.length, 1);
    assert.equal(hist.messages[0].cid, 'idem-1');

    // Concurrent duplicates are deduplicated too.
    const dup = { room: room.id, cid: 'idem-2', type: 'text', text: 'racing' };
    const racing = await Promise.all([0, 1, 2, 3, 4].map(() => c0.call('msg.send', dup)));
    for (const r of racing) {
        assert.deepEqual(r, racing[0], 'concurrent resends answered differently');
    }
    assert.equal(racing[0].seq, first.seq + 1, 'no seq is skipped by duplicates');

    // (room, sender, cid): the same cid from another sender is another message.
    const other = await c1.call('msg.send', dup);
    assert.equal(other.seq, first.seq + 2);
    const next = await c0.call('msg.send', { room: room.id, cid: 'idem-3', type: 'text', text: 'after' });
    assert.equal(next.seq, first.seq + 3, 'seqs have no gaps');
});

test('validation: each bad field is bad_request naming it', async () => {
    const c = conns[0];
    const ok = { room: room.id, cid: uid('v'), type: 'text', text: 'x' };
    const lastBefore = (await c.call('room.get', { room: room.id })).last_seq;
    const cases = [
        ['missing cid', { room: room.id, type: 'text', text: 'x' }, 'cid'],
        ['empty cid', { ...ok, cid: '' }, 'cid'],
        ['cid of 65 bytes', { ...ok, cid: 'c'.repeat(65) }, 'cid'],
        ['cid outside the alphabet', { ...ok, cid: 'a b' }, 'cid'],
        ['cid not a string', { ...ok, cid: 12 }, 'cid'],
        ['missing room', { cid: uid('v'), type: 'text', text: 'x' }, 'room'],
        ['missing type', { room: room.id, cid: uid('v'), text: 'x' }, 'type'],
        ['unknown type', { ...ok, type: 'video' }, 'type'],
        ['type not a string', { ...ok, type: 1 }, 'type'],
        ['text missing for a text message', { room: room.id, cid: uid('v'), type: 'text' }, 'text'],
        ['text not a string', { ...ok, text: 42 }, 'text'],
        ['payload missing for an image', { room: room.id, cid: uid('v'), type: 'image' }, 'payload'],
        ['payload not an object', { room: room.id, cid: uid('v'), type: 'image', payload: 'http://x' }, 'payload'],
        ['reply_to a seq that does not exist', { ...ok, reply_to: 999999 }, 'reply_to'],
        ['reply_to not an integer', { ...ok, reply_to: 'one' }, 'reply_to'],
        ['mentions not an array', { ...ok, mentions: 'someone' }, 'mentions'],
    ];
    const failures = [];
    for (const [what, data, field] of cases) {
        const res = await c.request('msg.send', data);
        if (res.ok !== false || res.error?.code !== 'bad_request' || !String(res.error?.message).includes(field)) {
            failures.push(`${what}: expected bad_request naming "${field}", got ${JSON.stringify(res)}`);
        }
    }
    assert.deepEqual(failures, [], failures.join('\n'));
    const lastAfter = (await c.call('room.get', { room: room.id })).last_seq;
    assert.equal(lastAfter, lastBefore, 'a refused send stored a message');
});

test('text size: exactly 16384 bytes is accepted, 16385 is too_large (bytes, not characters)', async () => {
    const c = conns[1];
    const exact = 'a'.repeat(16384);
    const r1 = await c.call('msg.send', { room: room.id, cid: uid('big'), type: 'text', text: exact });
    const exactUtf8 = 'é'.repeat(8192); // 2 bytes each: 16384 bytes, 8192 characters
    const r2 = await c.call('msg.send', { room: room.id, cid: uid('big'), type: 'text', text: exactUtf8 });
    assert.equal(r2.seq, r1.seq + 1);
    assertError(await c.request('msg.send', { room: room.id, cid: uid('big'), type: 'text', text: 'a'.repeat(16385) }), 'too_large', null, '16385 ASCII bytes');
    assertError(await c.request('msg.send', { room: room.id, cid: uid('big'), type: 'text', text: 'é'.repeat(8192) + 'a' }), 'too_large', null, '16385 bytes in 8193 characters');
    const hist = await c.call('msg.history', { room: room.id, after: r1.seq - 1 });
    assert.equal(hist.messages.length, 2);
    assert.equal(hist.messages[0].text, exact);
    assert.equal(hist.messages[1].text, exactUtf8);
});

test('a reply to an existing seq, mentions and a payload are stored as sent', async () => {
    const c = conns[2];
    const target = await c.call('msg.send', { room: room.id, cid: uid('t'), type: 'text', text: 'question' });
    const reply = await c.call('msg.send', { room: room.id, cid: uid('t'), type: 'text', text: 'answer', reply_to: target.seq, mentions: [users[0]] });
    const img = await c.call('msg.send', { room: room.id, cid: uid('t'), type: 'image', payload: { url: 'https://x/y.png', width: 640, height: 480 } });
    const hist = await c.call('msg.history', { room: room.id, after: target.seq });
    const bySeq = Object.fromEntries(hist.messages.map((m) => [m.seq, m]));
    assert.equal(bySeq[reply.seq].reply_to, target.seq);
    assert.deepEqual(bySeq[reply.seq].mentions, [users[0]]);
    assert.equal(bySeq[img.seq].type, 'image');
    assert.deepEqual(bySeq[img.seq].payload, { url: 'https://x/y.png', width: 640, height: 480 });
});

test('a malformed JSON frame gets bad_request with id null and the connection stays open', async () => {
    const c = conns[3];
    const before = c.orphans.length;
    c.sendRaw('{"id": 5, "op": "ping", ');
    const res = await c.waitOrphan((f) => c.orphans.indexOf(f) >= before);
    assert.equal(res.id, null);
    assert.equal(res.ok, false);
    assert.equal(res.error.code, 'bad_request');
    assert.ok(Object.hasOwn(res, 'id'), '"id": null must be present');
    assert.ok(c.isOpen, 'the connection was closed');

    c.sendRaw('[1, 2, 3]');
    const res2 = await c.waitOrphan((f) => c.orphans.indexOf(f) >= before + 1);
    assert.equal(res2.id, null);
    assert.equal(res2.error.code, 'bad_request');

    const pong = await c.call('ping');
    assert.ok(Number.isInteger(pong.ts), 'ping still works after malformed frames');
});

test('a frame with a readable id but bad shape answers bad_request with that id', async () => {
    const c = conns[3];
    const res = await c.request('msg.send', 'not an object');
    assertError(res, 'bad_request', null, 'data not an object');
    const res2 = await c.request('msg.send', [room.id]);
    assertError(res2, 'bad_request', null, 'data an array');
    assert.ok(c.isOpen);
});

test('an unknown op is bad_request', async () => {
    const c = conns[0];
    assertError(await c.request('msg.explode', { room: room.id }), 'bad_request', null, 'unknown op');
    assert.ok(c.isOpen);
    assertOk(await c.request('ping'), 'ping after an unknown op');
});
