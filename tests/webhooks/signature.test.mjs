// The request a receiver gets (docs/WEBHOOKS.md "The request", "Verifying the signature";
// PROTOCOL.md §4): POST, JSON {"id","type","ts","data"}, X-IMKit-Event-Id = the body's id,
// X-IMKit-Signature = sha256=<hex HMAC-SHA256 of the raw body>, verifiable with the Node
// recipe of the docs as written, and refused by it with any other secret or another body.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
    useWebhookCluster, documentedVerifier, newSecret, uid, assertTs, parseId, cmpId, DELIVERY_MS,
} from './lib/hooks.mjs';

const { cluster, receiver, secret } = await useWebhookCluster();
const verified = documentedVerifier();

let alice;
let bob;
let room;
cluster.setup(async () => {
    alice = await cluster.login(0, uid('alice'), { name: 'Alice' });
    bob = uid('bob');
    room = (await alice.call('room.create', { type: 'group', members: [bob], name: 'signed' })).id;
    for (let i = 1; i <= 3; i++) {
        await alice.call('msg.send', { room, cid: `c${i}`, type: 'text', text: `héllo ${i} ✓ "quoted" \\ back` });
    }
});

async function someRequests() {
    await receiver.waitEvents((e) => e.type === 'message.sent' && e.data.room === room, 3, DELIVERY_MS, `3 message.sent of room ${room}`);
    return receiver.accepted();
}

test('each event is a POST of JSON {id,type,ts,data} with X-IMKit-Event-Id equal to the body id', async () => {
    const reqs = await someRequests();
    assert.ok(reqs.length >= 6, `expected at least client.created ×2, room.created, message.sent ×3, got ${reqs.length}`);
    for (const r of reqs) {
        assert.equal(r.method, 'POST');
        assert.equal(r.url, '/imkit/hook', 'the path of webhook.url is kept');
        assert.match(r.headers['content-type'] || '', /^application\/json\b/, 'content-type');
        assert.ok(r.event, `the body is JSON: ${r.raw.toString()}`);
        assert.deepEqual(Object.keys(r.event).sort(), ['data', 'id', 'ts', 'type'], `body keys: ${r.raw.toString()}`);
        assert.equal(typeof r.event.id, 'string');
        parseId(r.event.id);
        assert.equal(r.headers['x-imkit-event-id'], r.event.id, 'X-IMKit-Event-Id equals the body id');
        assert.equal(typeof r.event.type, 'string');
        assertTs(r.event.ts, `${r.event.type} ts`);
        assert.ok(r.event.data && typeof r.event.data === 'object', `data is an object: ${r.raw.toString()}`);
    }
    // One deliverer, in order: the ids of first deliveries increase.
    const ids = receiver.unique().map((e) => e.id);
    for (let i = 1; i < ids.length; i++) {
        assert.equal(cmpId(ids[i - 1], ids[i]), -1, `event ids increase in delivery order: ${ids[i - 1]} then ${ids[i]}`);
    }
    // Non-ASCII text arrives as sent (raw UTF-8 JSON, signed as such).
    const m = receiver.events((e) => e.type === 'message.sent' && e.data.room === room && e.data.seq === 1)[0];
    assert.equal(m.data.text, 'héllo 1 ✓ "quoted" \\ back');
});

test('the signature verifies with the Node recipe of docs/WEBHOOKS.md and the configured secret', async () => {
    const reqs = await someRequests();
    for (const r of reqs) {
        const header = r.headers['x-imkit-signature'];
        assert.ok(header, `X-IMKit-Signature present on ${r.event?.type}`);
        assert.match(header, /^sha256=[0-9a-f]{64}$/, 'one secret: one sha256=<64 hex>');
        const want = createHmac('sha256', secret).update(r.raw).digest('hex');
        assert.equal(header, `sha256=${want}`, 'hex HMAC-SHA256 of the raw body');
        assert.equal(verified(r.raw, header, secret), true, `the documented recipe accepts ${r.event?.type} ${r.event?.id}`);
    }
});

test('the recipe refuses another secret, a changed body, and a missing signature', async () => {
    const reqs = await someRequests();
    const other = newSecret('other');
    for (const r of reqs) {
        const header = r.headers['x-imkit-signature'];
        assert.equal(verified(r.raw, header, other), false, 'another secret');
        assert.equal(verified(r.raw, header, secret.slice(0, -1)), false, 'a prefix of the secret');
        const tampered = Buffer.from(r.raw.toString('utf8').replace('"ts":', '"ts":1'));
        assert.notDeepEqual(tampered, r.raw);
        assert.equal(verified(tampered, header, secret), false, 'a changed body');
        assert.equal(verified(r.raw, '', secret), false, 'no header');
    }
    // The signature of one event does not fit another.
    assert.equal(verified(reqs[0].raw, reqs[1].headers['x-imkit-signature'], secret), false, 'a signature moved to another event');
});
