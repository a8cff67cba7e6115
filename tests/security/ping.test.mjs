// Server pings (limits.ping_interval_ms small here, limits.ping_misses 2): a peer that sends
// nothing back — a raw socket that ignores ping frames — is closed 1001 after ping_misses
// intervals; the `ws` client, which answers pings, stays open; so does a raw client that
// answers them itself. Memory stays bounded under many silent connections.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, RawWs, uid, assertHealthy, assertClose, rssKb, gatewayPid, inParallel, sleep, assertMemory } from './lib/sec.mjs';

const INTERVAL = 600;
const MISSES = 2;
const cluster = useCluster({ gatewaySet: { 'limits.ping_interval_ms': INTERVAL, 'limits.ping_misses': MISSES } });
const port = () => cluster.gateways[0].publicPort;
const DEADLINE = INTERVAL * MISSES;

test(`an authenticated raw client that ignores pings and sends nothing is closed 1001 after ${MISSES} × ${INTERVAL} ms`, async () => {
    const ws = await RawWs.open(port());
    const res = await ws.request('auth', { token: cluster.token(uid('silent')) });
    assert.equal(res.ok, true, JSON.stringify(res));
    const lastSent = Date.now();
    const c = await ws.waitClose(DEADLINE + 3000);
    assertClose(c, 1001, 'silent peer');
    const ms = (ws.closeFrameAt || ws.tcpClosedAt) - lastSent;
    assert.ok(ms >= DEADLINE - 200 && ms <= DEADLINE + INTERVAL, `closed ${ms} ms after the last frame it sent, expected about ${DEADLINE}`);
    assert.ok(ws.pings >= 1, `it was pinged first (${ws.pings} pings received)`);
    await assertHealthy(cluster);
});

test('an unauthenticated silent raw client is closed 1001 the same way', async () => {
    const ws = await RawWs.open(port());
    assertClose(await ws.waitClose(DEADLINE + 3000), 1001, 'silent unauthenticated peer', { minMs: DEADLINE - 200, maxMs: DEADLINE + INTERVAL });
    await assertHealthy(cluster);
});

test('the ws client (it answers pings) stays open across many intervals and still works', async () => {
    const c = await cluster.login(0, uid('answers'));
    await sleep(DEADLINE * 2);
    assert.ok(c.isOpen, `closed: ${JSON.stringify(c.closeInfo)}`);
    assert.equal((await c.request('ping')).ok, true);
    c.close();
});

test('a raw client that answers each ping with a pong stays open (a pong counts as life)', async () => {
    const ws = await RawWs.open(port(), { autoPong: true });
    const res = await ws.request('auth', { token: cluster.token(uid('ponger')) });
    assert.equal(res.ok, true);
    await sleep(DEADLINE * 2);
    assert.equal(ws.closeCode, null, `closed ${ws.closeCode}`);
    assert.ok(ws.pings >= 2, `${ws.pings} pings answered`);
    assert.equal((await ws.request('ping')).ok, true);
    ws.close();
});

test('100 silent connections: all closed 1001; gateway memory bounded and back to the same level on a second round', async (t) => {
    const pid = gatewayPid(cluster);
    const round = async () => {
        const conns = await inParallel(100, 50, () => RawWs.open(port()));
        const rss = rssKb(pid);
        const closes = await Promise.all(conns.map((ws) => ws.waitClose(DEADLINE + 4000).catch(() => ({ code: null }))));
        conns.forEach((ws) => ws.destroy());
        const wrong = closes.filter((c) => c.code !== 1001);
        assert.equal(wrong.length, 0, `${wrong.length} of 100 not closed 1001: ${JSON.stringify(wrong.slice(0, 3))}`);
        return rss;
    };
    const before = rssKb(pid);
    const during1 = await round();
    const after1 = rssKb(pid);
    await round();
    const after2 = rssKb(pid);
    t.diagnostic(`gateway VmRSS KiB: before ${before}, with 100 open ${during1}, after ${after1}, after a second round ${after2}`);
    assertMemory(during1 - before < 4 * 1024, `100 silent connections grew the gateway by ${during1 - before} KiB`);
    assertMemory(after2 - after1 < 2 * 1024, `a second round grew the gateway by ${after2 - after1} KiB more`);
    await assertHealthy(cluster);
});
