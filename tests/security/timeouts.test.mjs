// Time limits on the public listener, with small values so that the tests are quick:
// limits.head_timeout_ms (slowloris: the whole request head within it), limits.auth_timeout_ms
// (close 4401), limits.message_timeout_ms (a message begun must be complete: close 1008).
// Each also checks that the gateway's resident memory stays bounded under a few hundred such
// connections and comes back to the same level on a second round (nothing kept per attacker).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, RawWs, OP, frame, connectSocket, rawHttp, assertHealthy, assertClose, rssKb, gatewayPid, inParallel, sleep, uid, assertMemory } from './lib/sec.mjs';

const HEAD_MS = 1500;
const AUTH_MS = 1200;
const MESSAGE_MS = 1200;
const cluster = useCluster({
    gatewaySet: {
        'limits.head_timeout_ms': HEAD_MS,
        'limits.auth_timeout_ms': AUTH_MS,
        'limits.message_timeout_ms': MESSAGE_MS,
    },
});
const port = () => cluster.gateways[0].publicPort;

/** A plain TCP connection that records when the server ends it. */
async function tcp() {
    const sock = await connectSocket(port());
    const c = { sock, at: Date.now(), closedAt: null, data: [] };
    c.closed = new Promise((resolve) => {
        sock.on('close', () => {
            c.closedAt = Date.now();
            resolve();
        });
    });
    sock.on('data', (d) => c.data.push(d));
    sock.on('error', () => {});
    return c;
}

async function closedWithin(c, ms) {
    await Promise.race([c.closed, sleep(ms)]);
    return c.closedAt !== null;
}

const HEAD = 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n';

test(`a connection that sends nothing is closed after limits.head_timeout_ms (${HEAD_MS} ms)`, async () => {
    const c = await tcp();
    assert.ok(await closedWithin(c, HEAD_MS + 2500), `still open ${HEAD_MS + 2500} ms after connecting`);
    const ms = c.closedAt - c.at;
    assert.ok(ms >= HEAD_MS - 300 && ms <= HEAD_MS + 1500, `closed after ${ms} ms, expected about ${HEAD_MS}`);
    await assertHealthy(cluster);
});

test(`slowloris: a head sent one byte a second is closed after limits.head_timeout_ms (${HEAD_MS} ms) in all`, async () => {
    const c = await tcp();
    let sent = 0;
    const timer = setInterval(() => {
        if (!c.sock.destroyed) {
            c.sock.write(HEAD[sent++ % HEAD.length]);
        }
    }, 1000);
    c.sock.write(HEAD[sent++]);
    try {
        const limit = HEAD_MS + 2500;
        const closed = await closedWithin(c, limit);
        assert.ok(closed, `a head trickled one byte a second (${sent} bytes so far) is still open ${limit} ms after the connection: ` +
            'the head timeout must bound the whole head, not the silence between two bytes');
        const ms = c.closedAt - c.at;
        assert.ok(ms <= HEAD_MS + 1500, `closed after ${ms} ms, expected about ${HEAD_MS}`);
    } finally {
        clearInterval(timer);
        c.sock.destroy();
    }
    await assertHealthy(cluster);
});

test('200 slowloris connections: all closed at the head timeout; gateway memory bounded and back to the same level on a second round', async (t) => {
    const pid = gatewayPid(cluster);
    const round = async () => {
        const conns = await inParallel(200, 50, async () => {
            const c = await tcp();
            c.sock.write(HEAD); // a head that never ends
            return c;
        });
        await sleep(200);
        const rss = rssKb(pid);
        const all = await Promise.race([Promise.all(conns.map((c) => c.closed)).then(() => true), sleep(HEAD_MS + 3000).then(() => false)]);
        const open = conns.filter((c) => c.closedAt === null).length;
        conns.forEach((c) => c.sock.destroy());
        assert.ok(all, `${open} of 200 partial heads still open ${HEAD_MS + 3000} ms after they were sent`);
        return rss;
    };
    const before = rssKb(pid);
    const during1 = await round();
    const after1 = rssKb(pid);
    const during2 = await round();
    const after2 = rssKb(pid);
    const info = `VmRSS KiB: before ${before}, with 200 open ${during1}, after ${after1}, second round ${during2}, after ${after2}`;
    t.diagnostic(info);
    assertMemory(during1 - before < 6 * 1024, `200 partial heads grew the gateway by ${during1 - before} KiB (${info})`);
    assertMemory(after2 - after1 < 2 * 1024, `a second round grew the gateway by ${after2 - after1} KiB more: something is kept per connection (${info})`);
    await assertHealthy(cluster);
});

test(`an upgraded connection that never sends auth is closed 4401 after limits.auth_timeout_ms (${AUTH_MS} ms)`, async () => {
    const ws = await RawWs.open(port());
    assertClose(await ws.waitClose(AUTH_MS + 3000), 4401, 'no auth', { minMs: AUTH_MS - 300, maxMs: AUTH_MS + 1500 });
    await assertHealthy(cluster);
});

test('requests before auth, and failed auths, do not extend the auth deadline: still 4401 on time', async () => {
    const ws = await RawWs.open(port());
    const res = await ws.request('auth', { token: 'not-a-token' });
    assert.equal(res.error?.code, 'unauthenticated', JSON.stringify(res));
    const timer = setInterval(() => ws.closeCode === null && ws.sendText('{"id":99,"op":"ping"}'), 250);
    try {
        assertClose(await ws.waitClose(AUTH_MS + 3000), 4401, 'busy but unauthenticated', { minMs: AUTH_MS - 300, maxMs: AUTH_MS + 1500 });
    } finally {
        clearInterval(timer);
    }
    assert.ok(ws.frames.some((f) => f.id === 99 && f.error?.code === 'unauthenticated'), 'requests before auth answer unauthenticated');
    await assertHealthy(cluster);
});

test('an authenticated connection is not closed at the auth deadline (control)', async () => {
    const c = await cluster.login(0, uid('authed'));
    await sleep(AUTH_MS + 700);
    assert.ok(c.isOpen, `closed: ${JSON.stringify(c.closeInfo)}`);
    assert.equal((await c.request('ping')).ok, true);
    c.close();
});

test('200 connections that never authenticate: all closed 4401; gateway memory bounded and back to the same level on a second round', async (t) => {
    const pid = gatewayPid(cluster);
    const round = async () => {
        const conns = await inParallel(200, 50, () => RawWs.open(port()));
        const rss = rssKb(pid);
        const closes = await Promise.all(conns.map((ws) => ws.waitClose(AUTH_MS + 4000).catch((e) => ({ code: null, error: e.message }))));
        conns.forEach((ws) => ws.destroy());
        const wrong = closes.filter((c) => c.code !== 4401);
        assert.equal(wrong.length, 0, `${wrong.length} of 200 not closed 4401: ${JSON.stringify(wrong.slice(0, 3))}`);
        return rss;
    };
    const before = rssKb(pid);
    const during1 = await round();
    const after1 = rssKb(pid);
    const during2 = await round();
    const after2 = rssKb(pid);
    const info = `VmRSS KiB: before ${before}, with 200 open ${during1}, after ${after1}, second round ${during2}, after ${after2}`;
    t.diagnostic(info);
    assertMemory(during1 - before < 8 * 1024, `200 unauthenticated connections grew the gateway by ${during1 - before} KiB (${info})`);
    assertMemory(after2 - after1 < 2 * 1024, `a second round grew the gateway by ${after2 - after1} KiB more (${info})`);
    await assertHealthy(cluster);
});

/** A raw connection that authenticated (so that the auth deadline is out of the way). */
async function authedRaw() {
    const ws = await RawWs.open(port());
    const res = await ws.request('auth', { token: cluster.token(uid('trickler')) });
    assert.equal(res.ok, true, JSON.stringify(res));
    return ws;
}

/** Writes bytes one at a time every `everyMs` until the server closes; returns a stop function. */
function trickle(ws, bytes, everyMs) {
    let i = 0;
    const timer = setInterval(() => {
        if (i < bytes.length && !ws.tcpClosedAt && ws.closeCode === null) {
            ws.write(bytes.subarray(i, i + 1));
            i++;
        }
    }, everyMs);
    return () => clearInterval(timer);
}

test(`a frame whose payload trickles is closed 1008 after limits.message_timeout_ms (${MESSAGE_MS} ms)`, async () => {
    const ws = await authedRaw();
    const f = frame(OP.TEXT, Buffer.from(`{"id":1,"op":"ping","x":"${'a'.repeat(100)}"}`));
    ws.write(f.subarray(0, 7)); // header, mask key and the first payload byte: the message has begun
    const start = Date.now();
    const stop = trickle(ws, f.subarray(7), 200);
    try {
        const c = await ws.waitClose(MESSAGE_MS + 3000);
        assertClose(c, 1008, 'trickled payload');
        const ms = (ws.closeFrameAt || ws.tcpClosedAt) - start;
        assert.ok(ms >= MESSAGE_MS - 300 && ms <= MESSAGE_MS + 1000, `closed ${ms} ms after the message began, expected about ${MESSAGE_MS}`);
    } finally {
        stop();
        ws.destroy();
    }
    await assertHealthy(cluster);
});

test(`a frame whose header trickles is closed 1008 within limits.message_timeout_ms (${MESSAGE_MS} ms) of its first byte`, async () => {
    const ws = await authedRaw();
    const f = frame(OP.TEXT, Buffer.from(`{"id":1,"op":"ping","x":"${'a'.repeat(200)}"}`)); // 16-bit length: 8 header bytes
    const start = Date.now();
    ws.write(f.subarray(0, 1));
    const stop = trickle(ws, f.subarray(1), 300);
    try {
        const closed = await ws.closedWithin(MESSAGE_MS + 1500);
        assert.ok(closed, `a frame begun ${Date.now() - start} ms ago (header sent one byte every 300 ms) is still open: ` +
            `the message deadline must start at the frame's first byte, not once its header is parsed`);
        assertClose(await ws.waitClose(100), 1008, 'trickled header');
    } finally {
        stop();
        ws.destroy();
    }
    await assertHealthy(cluster);
});

test('a fragmented message whose fragments each arrive in time but never complete is closed 1008', async () => {
    const ws = await authedRaw();
    const start = Date.now();
    ws.write(frame(OP.TEXT, '{"id":1,"op":"ping","x":"', { fin: false }));
    const timer = setInterval(() => {
        if (ws.closeCode !== null) {
            return;
        }
        ws.write(frame(OP.CONT, 'aaaaaaaaaa', { fin: false }));
        ws.write(frame(OP.PING, 'alive')); // control frames between fragments do not restart the clock
    }, 300);
    try {
        const c = await ws.waitClose(MESSAGE_MS + 3000);
        assertClose(c, 1008, 'never-ending fragmented message');
        const ms = (ws.closeFrameAt || ws.tcpClosedAt) - start;
        assert.ok(ms <= MESSAGE_MS + 1000, `closed ${ms} ms after the message began`);
    } finally {
        clearInterval(timer);
        ws.destroy();
    }
    await assertHealthy(cluster);
});

test('a message completed in time is answered (control), even when sent slowly in fragments', async () => {
    const ws = await RawWs.open(port());
    ws.write(frame(OP.TEXT, '{"id":1,', { fin: false }));
    await sleep(400);
    ws.write(frame(OP.CONT, '"op":', { fin: false }));
    await sleep(400);
    ws.write(frame(OP.CONT, '"ping"}'));
    const res = await ws.waitUntil(() => ws.frames.find((f) => f.id === 1), 3000, 'the answer');
    assert.equal(res.error?.code, 'unauthenticated');
    assert.equal(ws.closeCode, null);
    ws.close();
});

test('50 connections each holding a large frame begun: all closed 1008; gateway memory bounded', async (t) => {
    const pid = gatewayPid(cluster);
    const before = rssKb(pid);
    const conns = await inParallel(50, 25, async () => {
        const ws = await authedRaw();
        ws.write(frame(OP.TEXT, Buffer.alloc(60000, 0x20)).subarray(0, 9)); // announces 60000 bytes, sends 1
        return ws;
    });
    await sleep(300);
    const during = rssKb(pid);
    const closes = await Promise.all(conns.map((ws) => ws.waitClose(MESSAGE_MS + 4000).catch(() => ({ code: null }))));
    conns.forEach((ws) => ws.destroy());
    const wrong = closes.filter((c) => c.code !== 1008);
    assert.equal(wrong.length, 0, `${wrong.length} of 50 not closed 1008: ${JSON.stringify(wrong.slice(0, 3))}`);
    t.diagnostic(`gateway VmRSS ${before} → ${during} KiB with 50 frames of 60 kB begun`);
    // Each may hold its announced message (under limits.ws_message), nothing more.
    assertMemory(during - before < 50 * 64 + 4096, `50 begun frames grew the gateway by ${during - before} KiB`);
    await assertHealthy(cluster);
});

test('an idle gateway stays healthy: /healthz 200 on both listeners at every probe over 5.5 s without client traffic', async () => {
    // Every attack above ends with the gateway idle; "healthy afterwards" must not depend on
    // when it last talked to Redis. 5.5 s covers a whole heartbeat period (gateway.heartbeat_ms,
    // 5 s), the gateway's only Redis traffic while idle.
    await assertHealthy(cluster);
    const bad = [];
    const start = Date.now();
    while (Date.now() - start < 5500) {
        const pub = await rawHttp(port(), 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 3000 });
        const admin = await cluster.admin('GET', '/healthz', undefined, { key: null });
        if (pub.status !== 200 || admin.status !== 200) {
            bad.push(`+${Date.now() - start} ms: public ${pub.status} ${pub.body.trim()}, admin ${admin.status} ${admin.text.trim()}`);
        }
        await sleep(250);
    }
    assert.ok(bad.length === 0, `${bad.length} probes of an idle gateway were not 200:\n  ${bad.slice(0, 5).join('\n  ')}`);
});
