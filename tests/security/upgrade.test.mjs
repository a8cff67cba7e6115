// The HTTP upgrade on the public listener (RFC 6455 §4, PROTOCOL.md §2): version 13 only
// (426 otherwise, naming it), a well-formed key (400 otherwise), gateway.allowed_origins
// (403 for another Origin, none needed from non-browsers), no extension ever negotiated,
// the imkit.v1 subprotocol echoed only when offered. Every answer is read raw from the socket.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { useCluster, RawWs, OP, frame, upgradeRequest, rawHttp, wsKey, wsAccept, assertHealthy, assertClose, withTimeout, connectSocket, parseHead, sleep } from './lib/sec.mjs';

const ALLOWED = ['https://shop.example', 'https://www.shop.example'];
const cluster = useCluster({ gatewaySet: { 'gateway.allowed_origins': ALLOWED.join(',') } });
const port = () => cluster.gateways[0].publicPort;

const upgrade = (opts) => rawHttp(port(), upgradeRequest(opts), { timeoutMs: 4000 });

test('a wrong Sec-WebSocket-Version gets 426 with Sec-WebSocket-Version: 13', async () => {
    for (const version of ['8', '12', '14', '7', '13.0', 'thirteen']) {
        const r = await upgrade({ version });
        assert.equal(r.status, 426, `version ${version}: ${r.statusLine}`);
        assert.equal(r.headers['sec-websocket-version'], '13', `version ${version}: 426 must name the supported version: ${r.raw}`);
        assert.ok(!('sec-websocket-accept' in r.headers), `version ${version}: no accept on a refusal`);
    }
    // Without the header the request is not a version-13 upgrade either: refused, never 101.
    const r = await upgrade({ version: null });
    assert.ok(r.status === 426 || r.status === 400, `no version: expected 426 or 400, got ${r.statusLine}`);
    await assertHealthy(cluster);
});

test('a missing or malformed Sec-WebSocket-Key gets 400', async () => {
    const keys = {
        missing: null,
        empty: '',
        'not base64': '!!!!!!!!!!!!!!!!!!!!!A==',
        'base64 of 15 bytes': Buffer.alloc(15, 7).toString('base64'),
        'base64 of 17 bytes': Buffer.alloc(17, 7).toString('base64'),
        'base64 of 32 bytes': Buffer.alloc(32, 7).toString('base64'),
        'base64url instead of base64': 'abcdefghijklmnopqrst-_==',
        'padding in the middle': 'abcdefghij==klmnopqrstuv',
        'a very long key': 'A'.repeat(1000),
    };
    for (const [what, key] of Object.entries(keys)) {
        const r = await upgrade({ key });
        assert.equal(r.status, 400, `key ${what}: ${r.statusLine}`);
    }
    await assertHealthy(cluster);
});

test('a request that is not a WebSocket upgrade gets 400 on /ws', async () => {
    const cases = {
        'no Upgrade header': { upgrade: null },
        'Upgrade: h2c': { upgrade: 'h2c' },
        'no Connection: Upgrade': { connection: 'keep-alive' },
        'POST instead of GET': { method: 'POST' },
    };
    for (const [what, opts] of Object.entries(cases)) {
        const r = await upgrade(opts);
        assert.equal(r.status, 400, `${what}: ${r.statusLine}`);
    }
    await assertHealthy(cluster);
});

test('gateway.allowed_origins: another Origin gets 403; a listed one upgrades; no Origin (not a browser) upgrades', async () => {
    for (const origin of ['https://evil.example', 'https://shop.example.evil.example', 'https://shop.exampl', 'http://shop.example',
        'https://shop.example:8443', 'null', '', 'https://SHOP.example.', 'https://shop.example,https://evil.example']) {
        const r = await upgrade({ origin });
        assert.equal(r.status, 403, `Origin ${JSON.stringify(origin)}: expected 403, got ${r.statusLine}`);
        assert.ok(!('sec-websocket-accept' in r.headers), `Origin ${origin}: no accept on a refusal`);
    }
    for (const origin of ALLOWED) {
        const ws = await RawWs.open(port(), { request: { origin } }); // asserts 101 and the accept value
        const res = await ws.request('auth', { token: cluster.token('origin-ok') });
        assert.equal(res.ok, true, JSON.stringify(res));
        ws.close();
    }
    const ws = await RawWs.open(port(), { request: {} });
    assert.equal(ws.head.status, 101, 'no Origin: upgraded');
    ws.close();
    await assertHealthy(cluster);
});

test('no extension is ever negotiated, even when permessage-deflate is offered', async () => {
    for (const extensions of ['permessage-deflate', 'permessage-deflate; client_max_window_bits', 'x-webkit-deflate-frame', 'permessage-deflate, foo']) {
        const key = wsKey();
        const r = await rawHttp(port(), upgradeRequest({ key, extensions }), { timeoutMs: 300 });
        assert.equal(r.status, 101, `${extensions}: ${r.statusLine}`);
        assert.equal(r.headers['sec-websocket-accept'], wsAccept(key));
        assert.ok(!('sec-websocket-extensions' in r.headers), `offered "${extensions}", answered with Sec-WebSocket-Extensions: ${r.headers['sec-websocket-extensions']}`);
    }
    // The `ws` library offering deflate ends up with none.
    const ws = new WebSocket(`ws://127.0.0.1:${port()}/ws`, { perMessageDeflate: true, handshakeTimeout: 5000 });
    await withTimeout(new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
    }), 6000, 'ws open');
    assert.equal(ws.extensions, '', `negotiated extensions: ${ws.extensions}`);
    ws.terminate();
    // And a "compressed" frame (RSV1) is then a protocol error.
    const raw = await RawWs.open(port(), { request: { extensions: 'permessage-deflate' } });
    raw.write(frame(OP.TEXT, Buffer.from([0xaa, 0x56, 0xca, 0x4c, 0x51, 0xb2, 0x32, 0xd4, 0x51, 0xca, 0x2f]), { rsv: 4 }));
    assertClose(await raw.waitClose(4000), 1002, 'RSV1 after offering permessage-deflate');
    await assertHealthy(cluster);
});

test('imkit.v1 is echoed only when offered', async () => {
    const cases = [
        ['imkit.v1', 'imkit.v1'],
        ['chat, imkit.v1', 'imkit.v1'],
        ['imkit.v1,chat', 'imkit.v1'],
        ['chat', undefined],
        ['imkit.v2', undefined],
        ['imkit.v1x', undefined],
        ['IMKIT.V1', undefined],
        [null, undefined],
    ];
    for (const [offered, answered] of cases) {
        const r = await rawHttp(port(), upgradeRequest({ protocol: offered }), { timeoutMs: 300 });
        assert.equal(r.status, 101, `offered ${offered}: ${r.statusLine}`);
        assert.equal(r.headers['sec-websocket-protocol'], answered, `offered ${JSON.stringify(offered)}: answered ${JSON.stringify(r.headers['sec-websocket-protocol'])}`);
    }
    await assertHealthy(cluster);
});

test('a request head over 8 KiB gets 431, however it arrives', async () => {
    const big = upgradeRequest({ extra: [`X-Pad: ${'a'.repeat(9000)}`] });
    // In two writes 200 ms apart: the first 8.5 KiB are not a complete head yet.
    const sock = await connectSocket(port());
    const got = [];
    sock.on('data', (d) => got.push(d));
    sock.on('error', () => {});
    sock.write(big.slice(0, 8700));
    await sleep(200);
    sock.write(big.slice(8700));
    await sleep(500);
    sock.destroy();
    const split = parseHead(Buffer.concat(got).toString('latin1').split('\r\n\r\n')[0]);
    assert.equal(split.status, 431, `a 9 KB head in two writes: ${split.statusLine}`);
    // In one write: the whole head is parsed in one go.
    const r = await rawHttp(port(), big, { timeoutMs: 1000 });
    assert.equal(r.status, 431, `a 9 KB head in one write: ${r.statusLine}`);
    await assertHealthy(cluster);
});

test('a request URL over 2 KiB gets 431', async () => {
    const r = await rawHttp(port(), `GET /ws?${'a'.repeat(3000)} HTTP/1.1\r\nHost: x\r\n\r\n`, { timeoutMs: 4000 });
    assert.equal(r.status, 431, `a 3 KB URL: ${r.statusLine}`);
    await assertHealthy(cluster);
});

test('malformed request heads never upgrade, and the gateway stays up', async () => {
    for (const bad of ['GARBAGE\r\n\r\n', 'GET /ws HTTP/9.9\r\n\r\n', 'GET /ws HTTP/1.1\r\nHost x\r\n\r\n', '\x00\x01\x02\x03\r\n\r\n',
        'GET /ws HTTP/1.1\r\nContent-Length: -1\r\n\r\n', 'GET /ws HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n']) {
        const r = await rawHttp(port(), bad, { timeoutMs: 4000 });
        assert.ok(r.status === 400 || r.status === 431, `${JSON.stringify(bad)}: expected 400, got ${r.statusLine || '(no answer)'}`);
    }
    await assertHealthy(cluster);
});
