// me.update and presence: profiles changed by their owner only; online / last_seen across
// both gateways (a client with two tabs is online until both close); presence events to the
// connections watching that client only; presence.watch replacing the watched set.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    useCluster, uid, user, tab, expectDelivery, expectError, assertKeys, assertTs,
    CLIENT_KEYS, jsonOfSize, ids, sleep, waitFor,
} from './lib/proto.mjs';

const cluster = useCluster({ gateways: 2, workers: 2 });

// ---------------------------------------------------------------------------------------
// me.update

test('me.update: the profile answered, seen by others on the other gateway and by the admin API; only named fields change, null clears', async () => {
    const a = await user(cluster, [0, 1], { prefix: 'me' });
    const b = await user(cluster, [1], { prefix: 'other' });
    const c1 = await a.call('me.update', { name: 'Alice', avatar: 'https://img.example/a.png', meta: { vip: true, n: 12345678901234 } });
    assertKeys(c1, CLIENT_KEYS, 'me.update answer');
    assert.deepEqual(c1, { id: a.id, name: 'Alice', avatar: 'https://img.example/a.png', meta: { vip: true, n: 12345678901234 } });
    const seen = await b.call('client.get', { ids: [a.id] });
    assert.equal(seen.clients.length, 1);
    assert.equal(seen.clients[0].name, 'Alice');
    assert.deepEqual(seen.clients[0].meta, { vip: true, n: 12345678901234 });
    assert.equal(seen.clients[0].online, true);

    const c2 = await a.tabs[1].call('me.update', { avatar: null });
    assert.deepEqual(c2, { id: a.id, name: 'Alice', avatar: null, meta: { vip: true, n: 12345678901234 } });
    const c3 = await a.call('me.update', { name: 'Alicia', meta: null });
    assert.deepEqual(c3, { id: a.id, name: 'Alicia', avatar: null, meta: null });
    const adm = await cluster.admin('GET', `/v1/clients/${a.id}`, undefined, { gateway: 1 });
    assert.equal(adm.status, 200);
    assert.equal(adm.body.name, 'Alicia');
    assert.equal(adm.body.avatar, null);
    // A client with no name is named by its id (documented choice for name: null).
    const c4 = await a.call('me.update', { name: null });
    assert.equal(c4.name, a.id);
    // Nothing given: the profile unchanged.
    assert.deepEqual(await a.call('me.update', {}), c4);
});

test('me.update acts for the caller only: an id in data does not reach another client; before auth it is unauthenticated', async () => {
    const a = await user(cluster, [0], { prefix: 'me' });
    const victim = await user(cluster, [1], { prefix: 'victim' });
    await victim.call('me.update', { name: 'Victim' });
    const res = await a.request('me.update', { id: victim.id, name: 'pwned' });
    if (res.ok) {
        assert.equal(res.data.id, a.id, 'me.update answered another client');
    }
    const { clients } = await a.call('client.get', { ids: [victim.id] });
    assert.equal(clients[0].name, 'Victim', 'me.update changed another client');
    const anon = await cluster.connect(1);
    await expectError(anon, 'me.update', { name: 'nobody' }, 'unauthenticated');
    anon.close();
});

test('me.update validation: bad_request naming the field, too_large for meta over 8 KiB (8 KiB accepted)', async () => {
    const a = await user(cluster, [1], { prefix: 'me' });
    await expectError(a, 'me.update', { name: 5 }, 'bad_request', 'name');
    await expectError(a, 'me.update', { name: ['x'] }, 'bad_request', 'name');
    await expectError(a, 'me.update', { avatar: 1 }, 'bad_request', 'avatar');
    await expectError(a, 'me.update', { meta: 'x' }, 'bad_request', 'meta');
    await expectError(a, 'me.update', { meta: [1] }, 'bad_request', 'meta');
    await expectError(a, 'me.update', { meta: jsonOfSize(8193) }, 'too_large', 'meta');
    const ok = await a.call('me.update', { meta: jsonOfSize(8192) });
    assert.deepEqual(ok.meta, jsonOfSize(8192));
    assert.equal(ok.name, a.id);
});

// ---------------------------------------------------------------------------------------
// presence

test('presence across gateways: online from the first tab on, still online with one of two tabs closed, offline with last_seen when both closed; presence events to the watching connections only', async () => {
    const pid = uid('p');
    const w1 = await user(cluster, [0, 1], { prefix: 'watcher1' }); // only its first tab watches
    const w2 = await user(cluster, [1], { prefix: 'watcher2' });
    const n = await user(cluster, [0, 1], { prefix: 'nosy' }); // watches someone else
    const before = await w1.tabs[0].call('presence.watch', { ids: [pid] });
    assert.deepEqual(before, { clients: [{ id: pid, online: false, last_seen: null }] });
    await w2.call('presence.watch', { ids: [pid, uid('nobody')] });
    await n.call('presence.watch', { ids: [uid('q')] });

    // First tab (gateway 2): online.
    const p = { id: pid, tabs: [] };
    p.tabs.push(await tab(cluster, p, 1));
    const on = await expectDelivery('presence', (d) => d.client === pid && d.online === true, [w1.tabs[0], w2], [w1.tabs[1], n, p], { what: 'online' });
    assertKeys(on[0], ['client', 'online', 'last_seen'], 'presence event');
    // Second tab (gateway 1): already online, no event.
    p.tabs.push(await tab(cluster, p, 0));
    await sleep(400);
    for (const c of [w1.tabs[0], w2.tabs[0]]) {
        assert.equal(c.events('presence').filter((d) => d.client === pid).length, 1, `${c.label}: no presence event for a second tab`);
    }
    const view = async (via) => (await via.call('client.get', { ids: [pid] })).clients[0];
    assert.equal((await view(n.tabs[0])).online, true, 'online as seen from gateway 1');
    assert.equal((await view(n.tabs[1])).online, true, 'online as seen from gateway 2');
    const adm = await cluster.admin('GET', `/v1/clients/${pid}`);
    assert.equal(adm.body.online, true, 'online in the admin API');

    // Close the first tab: still online, no event.
    p.tabs[0].close();
    await p.tabs[0].waitClose(3000);
    await sleep(400);
    for (const c of [w1.tabs[0], w2.tabs[0]]) {
        assert.equal(c.events('presence').filter((d) => d.client === pid).length, 1, `${c.label}: no presence event while one tab is still open`);
    }
    assert.equal((await view(n.tabs[0])).online, true, 'online while one tab is open');
    const again = await w2.call('presence.watch', { ids: [pid] });
    assert.equal(again.clients[0].online, true);

    // Close the second tab (dropped without a close frame): offline, last_seen now.
    const t0 = Date.now();
    p.tabs[1].terminate();
    const off = await expectDelivery('presence', (d) => d.client === pid && d.online === false, [w1.tabs[0], w2], [w1.tabs[1], n], { what: 'offline' });
    assertTs(off[0].last_seen, 'last_seen');
    assert.ok(off[0].last_seen >= t0 - 1000 && off[0].last_seen <= Date.now() + 1000, `last_seen ${off[0].last_seen} not the close time ${t0}`);
    assert.equal(off[1].last_seen, off[0].last_seen, 'both gateways tell the same last_seen');
    const after = await view(n.tabs[1]);
    assert.equal(after.online, false);
    assert.equal(after.last_seen, off[0].last_seen);

    // Back online: the online event carries the previous last_seen (or null), online true.
    p.tabs.push(await tab(cluster, p, 0));
    const back = await expectDelivery('presence', (d) => d.client === pid && d.online === true, [w1.tabs[0], w2], [w1.tabs[1], n], { count: 2, what: 'back online' });
    assert.equal(back[0].online, true);
});

test('presence.watch replaces the watched set; [] watches nobody; each connection has its own set', async () => {
    const w = await user(cluster, [0, 1], { prefix: 'w' });
    const pA = uid('pa');
    const pB = uid('pb');
    await w.tabs[0].call('presence.watch', { ids: [pA] });
    await w.tabs[1].call('presence.watch', { ids: [pA, pB] });
    const ans = await w.tabs[0].call('presence.watch', { ids: [pB] });
    assert.deepEqual(ans.clients.map((c) => c.id), [pB]);

    const a = await user(cluster, [1], { id: pA });
    await expectDelivery('presence', (d) => d.client === pA, [w.tabs[1]], [w.tabs[0]], { what: 'pA after the set was replaced' });
    const b = await user(cluster, [0], { id: pB });
    await expectDelivery('presence', (d) => d.client === pB, [w.tabs[0], w.tabs[1]], [], { what: 'pB' });

    assert.deepEqual(await w.tabs[0].call('presence.watch', { ids: [] }), { clients: [] });
    b.tabs[0].close();
    await expectDelivery('presence', (d) => d.client === pB && !d.online, [w.tabs[1]], [w.tabs[0]], { what: 'pB offline, tab 1 watches nobody' });
    a.tabs[0].close();
    await expectDelivery('presence', (d) => d.client === pA && !d.online, [w.tabs[1]], [w.tabs[0]]);
});

test('presence.watch validation: bad_request naming ids, too_large over 100 ids (100 accepted); before auth unauthenticated; a refused call keeps the watched set', async () => {
    const w = await user(cluster, [1], { prefix: 'w' });
    const target = uid('t');
    await w.call('presence.watch', { ids: [target] });
    await expectError(w, 'presence.watch', {}, 'bad_request', 'ids');
    await expectError(w, 'presence.watch', { ids: 'x' }, 'bad_request', 'ids');
    await expectError(w, 'presence.watch', { ids: ['not valid'] }, 'bad_request', 'ids');
    await expectError(w, 'presence.watch', { ids: [1] }, 'bad_request', 'ids');
    await expectError(w, 'presence.watch', { ids: ['a', 'a'] }, 'bad_request', 'ids');
    await expectError(w, 'presence.watch', { ids: ids(101) }, 'too_large', 'ids');
    // The refused calls left the watched set as it was.
    await user(cluster, [0], { id: target });
    await expectDelivery('presence', (d) => d.client === target, [w], [], { what: 'watched set kept after refused calls' });
    const hundred = await w.call('presence.watch', { ids: [target, ...ids(99)] });
    assert.equal(hundred.clients.length, 100);
    assert.deepEqual(hundred.clients[0], { id: target, online: true, last_seen: null });
    assert.ok(hundred.clients.slice(1).every((c) => c.online === false && c.last_seen === null));
    const anon = await cluster.connect(0);
    await expectError(anon, 'presence.watch', { ids: [target] }, 'unauthenticated');
    anon.close();
});

test('a client deleted while online goes offline for its watchers', async () => {
    const w = await user(cluster, [0], { prefix: 'w' });
    const p = await user(cluster, [0, 1], { prefix: 'doomed' });
    await w.call('presence.watch', { ids: [p.id] });
    const res = await cluster.admin('DELETE', `/v1/clients/${p.id}`, undefined, { gateway: 1 });
    assert.equal(res.status, 204);
    await Promise.all(p.tabs.map((c) => c.waitClose(5000)));
    await expectDelivery('presence', (d) => d.client === p.id && d.online === false, [w], []);
    await waitFor(async () => (await w.call('presence.watch', { ids: [p.id] })).clients[0].online === false, 3000, 'offline');
});
