// Connection caps on the public listener: limits.connections_per_ip (3 here) and
// limits.connections (5 here). Over a cap a connection is closed at once, before anything is
// read or allocated; other source addresses (127.0.0.2, …: all of 127/8 is this machine) are
// unaffected by the per-address cap; a slot is given back whenever a connection ends, however
// it ends (close, protocol error, bad request, refused upgrade).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, RawWs, OP, frame, rawHttp, connectSocket, upgradeRequest, assertHealthy, rssKb, gatewayPid, inParallel, sleep, waitFor, assertMemory } from './lib/sec.mjs';

const PER_IP = 3;
const TOTAL = 5;
const cluster = useCluster({ gatewaySet: { 'limits.connections_per_ip': PER_IP, 'limits.connections': TOTAL } });
const port = () => cluster.gateways[0].publicPort;

/**
 * Opens a TCP connection from `localAddress` and sends an upgrade request: resolves with
 * {refused: true} when the server closes it without a byte, or {ws} once upgraded.
 */
async function attempt(localAddress, timeoutMs = 3000) {
    const sock = await connectSocket(port(), { localAddress });
    const ws = new RawWs(sock);
    ws.key = undefined;
    sock.write(upgradeRequest({}));
    await ws.waitUntil(() => ws.head || ws.tcpClosedAt, timeoutMs, `the answer to a connection from ${localAddress}`);
    if (!ws.head) {
        return { refused: true, bytes: ws.bytesIn, ms: ws.tcpClosedAt - ws.openedAt };
    }
    assert.equal(ws.head.status, 101, `from ${localAddress}: ${ws.head.statusLine}`);
    return { ws };
}

/** Waits until a new connection from `addr` is admitted (the gateway noticed earlier closes). */
async function admittedAgain(addr) {
    let last;
    await waitFor(async () => {
        last = await attempt(addr);
        return !last.refused;
    }, 5000, `a connection from ${addr} to be admitted again`, 100);
    return last.ws;
}

test(`limits.connections_per_ip=${PER_IP}: the 4th connection from one address is closed at once; another address still works`, async () => {
    const open = [];
    for (let i = 0; i < PER_IP; i++) {
        const r = await attempt('127.0.0.1');
        assert.ok(!r.refused, `connection ${i + 1} of ${PER_IP} from 127.0.0.1 refused`);
        open.push(r.ws);
    }
    const fourth = await attempt('127.0.0.1');
    assert.ok(fourth.refused, 'the 4th connection from 127.0.0.1 was upgraded');
    assert.equal(fourth.bytes, 0, 'refused without an answer (nothing read)');
    assert.ok(fourth.ms < 1000, `refused after ${fourth.ms} ms, expected at once`);
    // /healthz from the same address is a connection too: refused as well.
    const h = await rawHttp(port(), 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { localAddress: '127.0.0.1', timeoutMs: 2000 });
    assert.equal(h.status, null, `/healthz from a full address: ${h.statusLine}`);
    // Another source address is not affected.
    await assertHealthy(cluster, { localAddress: '127.0.0.2' });
    // The three that are open still work.
    for (const ws of open) {
        assert.equal((await ws.request('auth', { token: cluster.token('capped') })).ok, true);
    }
    // One closes: its slot comes back.
    open.pop().close();
    open.push(await admittedAgain('127.0.0.1'));
    open.forEach((ws) => ws.close());
    await sleep(200);
    await assertHealthy(cluster);
});

test(`limits.connections=${TOTAL}: with ${TOTAL} open from several addresses, the next from any address is closed at once`, async () => {
    const open = [];
    for (const addr of ['127.0.0.3', '127.0.0.3', '127.0.0.4', '127.0.0.4', '127.0.0.5']) {
        const r = await attempt(addr);
        assert.ok(!r.refused, `a connection from ${addr} was refused below the caps`);
        open.push(r.ws);
    }
    for (const addr of ['127.0.0.6', '127.0.0.7', '127.0.0.1']) {
        const r = await attempt(addr);
        assert.ok(r.refused, `connection ${TOTAL + 1} (from ${addr}) was upgraded`);
        assert.equal(r.bytes, 0);
    }
    // The admin listener is not the public one: it still answers.
    const admin = await cluster.admin('GET', '/healthz', undefined, { key: null });
    assert.equal(admin.status, 200);
    open.shift().close();
    open.push(await admittedAgain('127.0.0.6'));
    open.forEach((ws) => ws.close());
    await sleep(200);
    await assertHealthy(cluster);
});

test('every way a connection ends gives its slot back (protocol error, 400, refused upgrade, EOF mid-head, EOF upgraded)', async () => {
    const addr = '127.0.0.8';
    for (let round = 0; round < 3; round++) {
        // A protocol error (close 1002).
        const a = await attempt(addr);
        a.ws.write(frame(OP.TEXT, 'x', { mask: false }));
        await a.ws.waitClose(3000);
        // A malformed request (400).
        const b = await rawHttp(port(), 'GARBAGE\r\n\r\n', { localAddress: addr, timeoutMs: 2000 });
        assert.equal(b.status, 400);
        // A refused upgrade (426).
        const c = await rawHttp(port(), upgradeRequest({ version: '8' }), { localAddress: addr, timeoutMs: 2000 });
        assert.equal(c.status, 426);
        // A client that goes away in the middle of its head.
        const d = await connectSocket(port(), { localAddress: addr });
        d.write('GET /ws HTTP/1.1\r\n');
        d.destroy();
        // A client that goes away while upgraded.
        const e = await attempt(addr);
        e.ws.destroy();
    }
    await sleep(300);
    // All slots of this address are free again: PER_IP connections are admitted.
    const open = [];
    for (let i = 0; i < PER_IP; i++) {
        open.push(await admittedAgain(addr));
    }
    open.forEach((ws) => ws.close());
});

test('300 connections over the cap cost nothing: each closed at once, gateway memory unchanged', async (t) => {
    const pid = gatewayPid(cluster);
    const addr = '127.0.0.9';
    const open = [];
    for (let i = 0; i < PER_IP; i++) {
        open.push((await attempt(addr)).ws);
    }
    const before = rssKb(pid);
    const results = await inParallel(300, 50, () => attempt(addr).catch((e) => ({ error: e.message })));
    const after = rssKb(pid);
    const admitted = results.filter((r) => r.ws);
    admitted.forEach((r) => r.ws.destroy());
    assert.equal(admitted.length, 0, `${admitted.length} of 300 over-cap connections were upgraded`);
    t.diagnostic(`gateway VmRSS ${before} → ${after} KiB`);
    assertMemory(after - before < 1024, `300 refused connections grew the gateway by ${after - before} KiB`);
    open.forEach((ws) => ws.close());
    await sleep(200);
    await assertHealthy(cluster, { localAddress: '127.0.0.10' });
});
