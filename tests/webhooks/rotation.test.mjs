// Secret rotation (docs/WEBHOOKS.md "Verifying the signature"): with webhook.secret=new,old
// every request carries one sha256=<hex> per secret, comma-separated; each is the HMAC of the
// raw body with its secret, so a receiver holding either secret accepts the request with the
// documented recipe, and one holding neither refuses it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { useWebhookCluster, documentedVerifier, newSecret, uid, DELIVERY_MS } from './lib/hooks.mjs';

const NEW = newSecret('new');
const OLD = newSecret('old');
const { cluster, receiver } = await useWebhookCluster({ secret: `${NEW},${OLD}` });
const verified = documentedVerifier();
const hmac = (secret, raw) => createHmac('sha256', secret).update(raw).digest('hex');

let room;
cluster.setup(async () => {
    const a = await cluster.login(0, uid('a'));
    room = (await a.call('room.create', { type: 'direct', members: [uid('b')] })).id;
    await a.call('msg.send', { room, cid: 'c1', type: 'text', text: 'rotating' });
});

test('two secrets give two signatures, one per secret, each verifiable on its own', async () => {
    await receiver.waitEvent((e) => e.type === 'message.sent' && e.data.room === room, DELIVERY_MS, `message.sent of ${room}`);
    const reqs = receiver.accepted();
    assert.ok(reqs.length >= 4, `client.created ×2, room.created, message.sent: got ${reqs.length}`);
    for (const r of reqs) {
        const header = r.headers['x-imkit-signature'] || '';
        const parts = header.split(',').map((p) => p.trim());
        assert.equal(parts.length, 2, `two signatures in ${JSON.stringify(header)}`);
        for (const p of parts) {
            assert.match(p, /^sha256=[0-9a-f]{64}$/, `each part is sha256=<hex>: ${JSON.stringify(header)}`);
        }
        const got = parts.map((p) => p.slice('sha256='.length)).sort();
        assert.deepEqual(got, [hmac(NEW, r.raw), hmac(OLD, r.raw)].sort(), 'one HMAC per configured secret');
        // Each signature alone, with its own secret:
        assert.equal(verified(r.raw, `sha256=${hmac(NEW, r.raw)}`, NEW), true);
        assert.ok(parts.includes(`sha256=${hmac(NEW, r.raw)}`) && parts.includes(`sha256=${hmac(OLD, r.raw)}`));
        // The whole header, as a receiver gets it:
        assert.equal(verified(r.raw, header, NEW), true, 'a receiver holding only the new secret accepts');
        assert.equal(verified(r.raw, header, OLD), true, 'a receiver holding only the old secret accepts');
        assert.equal(verified(r.raw, header, newSecret('third')), false, 'a receiver holding neither refuses');
        assert.equal(verified(r.raw, header, `${NEW},${OLD}`), false, 'the comma-joined setting is not itself a secret');
        assert.equal(r.headers['x-imkit-event-id'], r.event.id);
    }
});
