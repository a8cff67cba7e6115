// The pull feed (PROTOCOL.md §4, docs/WEBHOOKS.md "The event feed"):
// GET /v1/events?after=<id>&limit= on the admin API answers {"events":[{id,type,ts,data}…]}
// in order; after is exclusive (absent or 0-0: from the oldest kept), limit 1..1000 (default
// 100). Paging through it gives exactly the events the webhook received, in the same order,
// with the same content, from any gateway.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useWebhookCluster, uid, flush, pool, cmpId, assertHttp } from './lib/hooks.mjs';

const { cluster, receiver } = await useWebhookCluster({ gateways: 2 });

const MESSAGES = 110; // more than one default page

let room;
cluster.setup(async () => {
    const a = await cluster.login(0, uid('a'), { name: 'A' });
    const b = await cluster.login(1, uid('b'));
    room = (await a.call('room.create', { type: 'group', members: [b.clientId, uid('c')], name: 'feed' })).id;
    await a.call('room.update', { room, name: 'feed 2' });
    await a.call('room.members.add', { room, members: [uid('d')] });
    await pool(MESSAGES, 10, async (i) => {
        const r = await cluster.admin('POST', `/v1/rooms/${room}/messages`, { from: a.clientId, type: 'text', text: `m${i}`, cid: `m${i}` });
        assert.equal(r.status, 201, r.text);
    });
    await b.call('room.leave', { room });
    await flush(cluster, receiver);
});

async function feed(query, gateway = 0) {
    const r = await cluster.admin('GET', `/v1/events${query}`, undefined, { gateway });
    assertHttp(r, 200, undefined, `GET /v1/events${query}`);
    assert.ok(r.body && Array.isArray(r.body.events), `{"events":[…]}: ${r.text.slice(0, 200)}`);
    return r.body.events;
}

/** Every event, paging with `limit` from the start. */
async function all(limit, gateway = 0) {
    const out = [];
    let after = null;
    for (let pages = 0; pages < 1000; pages++) {
        const page = await feed(`?limit=${limit}${after ? `&after=${after}` : ''}`, gateway);
        assert.ok(page.length <= limit, `a page holds at most limit=${limit} events, got ${page.length}`);
        if (page.length === 0) {
            return out;
        }
        out.push(...page);
        after = page[page.length - 1].id;
    }
    assert.fail('the feed did not end within 1000 pages');
}

test('paging through the feed gives exactly what the webhook received, in the same order, with the same content', async () => {
    const delivered = receiver.unique();
    const pulled = await all(7);
    assert.ok(delivered.length >= MESSAGES + 6, `the webhook got every event (${delivered.length})`);
    assert.equal(pulled.length, delivered.length, `as many events in the feed (${pulled.length}) as delivered (${delivered.length})`);
    assert.deepEqual(pulled.map((e) => e.id), delivered.map((e) => e.id), 'the same ids in the same order');
    assert.deepEqual(pulled, delivered, 'the same {id,type,ts,data}');
    for (let i = 1; i < pulled.length; i++) {
        assert.equal(cmpId(pulled[i - 1].id, pulled[i].id), -1, 'ids increase');
    }
    for (const e of pulled) {
        assert.deepEqual(Object.keys(e).sort(), ['data', 'id', 'ts', 'type']);
    }
    const mine = pulled.filter((e) => e.type === 'message.sent' && e.data.room === room).map((e) => e.data.seq);
    assert.deepEqual(mine, Array.from({ length: MESSAGES }, (_, i) => i + 1), 'the room\'s messages in seq order');
    const types = new Set(pulled.map((e) => e.type));
    for (const t of ['client.created', 'room.created', 'room.updated', 'member.joined', 'message.sent', 'member.left']) {
        assert.ok(types.has(t), `the feed holds ${t}`);
    }
});

test('after is exclusive; absent and 0-0 start at the oldest; the last id and later ids give nothing', async () => {
    const everything = await all(1000);
    const ids = everything.map((e) => e.id);
    assert.deepEqual((await feed('?limit=5')).map((e) => e.id), ids.slice(0, 5));
    assert.deepEqual((await feed('?limit=5&after=0-0')).map((e) => e.id), ids.slice(0, 5));
    for (const k of [0, 3, 57, ids.length - 2]) {
        assert.deepEqual((await feed(`?after=${ids[k]}&limit=3`)).map((e) => e.id), ids.slice(k + 1, k + 4), `after=${ids[k]} (index ${k})`);
    }
    assert.deepEqual(await feed(`?after=${ids[ids.length - 1]}`), [], 'after the last event: nothing');
    assert.deepEqual(await feed('?after=99999999999999-0'), [], 'after an id in the future: nothing');
    // A position that is no event's id works too: the events after it.
    const [ms, n] = ids[10].split('-');
    const pos = `${ms}-${BigInt(n) + 1000n}`;
    assert.deepEqual((await feed(`?after=${pos}&limit=3`)).map((e) => e.id), ids.filter((id) => cmpId(id, pos) > 0).slice(0, 3), `after=${pos}`);
});

test('limit: default 100, at most 1000 (larger is clamped), 0 / negative / not a number are refused', async () => {
    const everything = await all(1000);
    assert.ok(everything.length > 100, `more than 100 events kept (${everything.length})`);
    assert.equal((await feed('')).length, 100, 'default limit 100');
    assert.equal((await feed('?limit=1')).length, 1);
    assert.equal((await feed('?limit=1000')).length, Math.min(1000, everything.length));
    assert.equal((await feed('?limit=5000')).length, Math.min(1000, everything.length), 'a limit above 1000 is clamped');
    for (const q of ['?limit=0', '?limit=-1', '?limit=abc', '?after=abc', '?after=1-2-3', '?after=-5-0']) {
        const r = await cluster.admin('GET', `/v1/events${q}`);
        assertHttp(r, 400, 'bad_request', `GET /v1/events${q}`);
    }
});

test('the feed needs the API key, answers GET only, and is the same from every gateway', async () => {
    assertHttp(await cluster.admin('GET', '/v1/events', undefined, { key: null }), 401, 'unauthenticated', 'no key');
    assertHttp(await cluster.admin('GET', '/v1/events', undefined, { key: 'wrong' }), 401, 'unauthenticated', 'wrong key');
    assertHttp(await cluster.admin('POST', '/v1/events', {}), 405, undefined, 'POST');
    assertHttp(await cluster.admin('DELETE', '/v1/events'), 405, undefined, 'DELETE');
    assert.deepEqual(await all(50, 1), await all(50, 0), 'gateway 2 serves the same feed');
});
