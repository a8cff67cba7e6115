// WebSocket framing and per-connection limits on the public listener (PROTOCOL.md §1, §2):
// close codes for binary frames, invalid UTF-8, oversized messages and protocol violations;
// fragmented messages; the request rate limit; static files.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { useCluster, uid, assertError, withTimeout } from './lib/cluster.mjs';

const cluster = useCluster({ gateways: 1, workers: 1 });

/** Builds one client frame; `mask` false leaves it unmasked (a protocol violation). */
function frame(opcode, payload, { fin = true, mask = true, rsv = 0 } = {}) {
    const p = Buffer.from(payload);
    let header;
    if (p.length < 126) {
        header = Buffer.from([(fin ? 0x80 : 0) | rsv | opcode, (mask ? 0x80 : 0) | p.length]);
    } else if (p.length < 65536) {
        header = Buffer.from([(fin ? 0x80 : 0) | rsv | opcode, (mask ? 0x80 : 0) | 126, p.length >> 8, p.length & 0xff]);
    } else {
        header = Buffer.alloc(10);
        header[0] = (fin ? 0x80 : 0) | rsv | opcode;
        header[1] = (mask ? 0x80 : 0) | 127;
        header.writeBigUInt64BE(BigInt(p.length), 2);
    }
    if (!mask) {
        return Buffer.concat([header, p]);
    }
    const key = randomBytes(4);
    const body = Buffer.alloc(p.length);
    for (let i = 0; i < p.length; i++) {
        body[i] = p[i] ^ key[i % 4];
    }
    return Buffer.concat([header, key, body]);
}

/**
 * A raw WebSocket connection: upgrade by hand, then `send(bytes)`; collects the server's
 * frames (text payloads and the close code).
 */
async function rawConnect() {
    const sock = net.connect(cluster.gateways[0].publicPort, '127.0.0.1');
    await withTimeout(new Promise((resolve, reject) => {
        sock.once('connect', resolve);
        sock.once('error', reject);
    }), 5000, 'raw connect');
    const state = { buf: Buffer.alloc(0), upgraded: false, texts: [], close: null, ended: false, waiters: new Set() };
    const notify = () => state.waiters.forEach((w) => w());
    sock.on('data', (d) => {
        state.buf = Buffer.concat([state.buf, d]);
        if (!state.upgraded) {
            const end = state.buf.indexOf('\r\n\r\n');
            if (end < 0) {
                return;
            }
            state.head = state.buf.subarray(0, end).toString();
            state.buf = state.buf.subarray(end + 4);
            state.upgraded = true;
        }
        for (;;) {
            if (state.buf.length < 2) {
                break;
            }
            const op = state.buf[0] & 0x0f;
            let len = state.buf[1] & 0x7f;
            let off = 2;
            if (len === 126) {
                if (state.buf.length < 4) {
                    break;
                }
                len = state.buf.readUInt16BE(2);
                off = 4;
            } else if (len === 127) {
                if (state.buf.length < 10) {
                    break;
                }
                len = Number(state.buf.readBigUInt64BE(2));
                off = 10;
            }
            if (state.buf.length < off + len) {
                break;
            }
            const payload = state.buf.subarray(off, off + len);
            state.buf = state.buf.subarray(off + len);
            if (op === 0x1) {
                state.texts.push(JSON.parse(payload.toString()));
            } else if (op === 0x8) {
                state.close = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
            }
        }
        notify();
    });
    sock.on('close', () => {
        state.ended = true;
        notify();
    });
    sock.on('error', () => {});
    sock.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
        + `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    const until = (pred, ms, what) => withTimeout(new Promise((resolve) => {
        const check = () => {
            if (pred()) {
                state.waiters.delete(check);
                resolve();
            }
        };
        state.waiters.add(check);
        check();
    }), ms, what);
    await until(() => state.upgraded || state.ended, 5000, 'upgrade answer');
    assert.ok(state.head && state.head.startsWith('HTTP/1.1 101'), `upgrade refused: ${state.head}`);
    return {
        state,
        send: (bytes) => sock.write(bytes),
        waitClose: async (ms = 5000) => {
            await until(() => state.close !== null || state.ended, ms, 'close frame');
            return state.close;
        },
        waitText: (pred, ms = 5000) => until(() => state.texts.some(pred), ms, 'a text frame').then(() => state.texts.find(pred)),
        destroy: () => sock.destroy(),
    };
}

/** A GET with the path sent exactly as given (no URL normalization); the raw answer. */
function rawHttpGet(p) {
    return withTimeout(new Promise((resolve) => {
        const sock = net.connect(cluster.gateways[0].publicPort, '127.0.0.1');
        let out = '';
        sock.on('connect', () => sock.write(`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
        sock.on('data', (d) => {
            out += d.toString('latin1');
        });
        sock.on('close', () => resolve(out));
        sock.on('error', () => resolve(out));
    }), 5000, `GET ${p}`);
}

test('a binary frame closes 1003', async () => {
    const c = await cluster.connect(0);
    c.ws.send(Buffer.from('{"id":1,"op":"ping"}'), { binary: true });
    const { code } = await c.waitClose(5000);
    assert.equal(code, 1003);
});

test('invalid UTF-8 in a text frame closes 1007', async () => {
    const r = await rawConnect();
    r.send(frame(0x1, Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]))); // {"\xc3("}
    assert.equal(await r.waitClose(), 1007);
    r.destroy();
});

test('a message over 64 KiB closes 1009; a large one under it gets an error answer and the connection stays', async () => {
    const c = await cluster.login(0, uid('big'));
    const res = await c.request('msg.send', { room: uid('r'), cid: 'c', type: 'text', text: 'x'.repeat(60000) });
    assertError(res, 'too_large', null, 'a 60 000-byte text in a 60 KiB message');
    assert.ok(c.isOpen, 'a message under 64 KiB closed the connection');
    c.sendRaw(JSON.stringify({ id: 2, op: 'ping', data: { pad: 'z'.repeat(65536) } }));
    const { code } = await c.waitClose(5000);
    assert.equal(code, 1009);
});

test('an unmasked client frame closes 1002', async () => {
    const r = await rawConnect();
    r.send(frame(0x1, '{"id":1,"op":"ping"}', { mask: false }));
    assert.equal(await r.waitClose(), 1002);
    r.destroy();
});

test('a frame with a reserved bit set closes 1002', async () => {
    const r = await rawConnect();
    r.send(frame(0x1, '{"id":1,"op":"ping"}', { rsv: 0x40 }));
    assert.equal(await r.waitClose(), 1002);
    r.destroy();
});

test('a fragmented text message is reassembled and answered, even split byte by byte', async () => {
    const r = await rawConnect();
    const text = '{"id":7,"op":"ping"}';
    const bytes = Buffer.concat([
        frame(0x1, text.slice(0, 5), { fin: false }),
        frame(0x0, text.slice(5, 12), { fin: false }),
        frame(0x0, text.slice(12), { fin: true }),
    ]);
    for (const b of bytes) {
        r.send(Buffer.from([b]));
    }
    const res = await r.waitText((f) => f.id === 7);
    assert.equal(res.ok, false);
    assert.equal(res.error.code, 'unauthenticated', 'ping before auth');
    assert.equal(r.state.close, null);
    r.destroy();
});

test('requests over the rate limit (burst 100) get rate_limited, and the connection stays usable', async () => {
    const c = await cluster.login(0, uid('fast'));
    const results = await Promise.all(Array.from({ length: 140 }, () => c.request('ping').catch((e) => ({ rejected: e.message }))));
    const ok = results.filter((r) => r.ok === true).length;
    const limited = results.filter((r) => r.ok === false && r.error?.code === 'rate_limited').length;
    const other = results.filter((r) => !(r.ok === true || r.error?.code === 'rate_limited'));
    assert.deepEqual(other, [], 'answers other than ok and rate_limited');
    assert.ok(ok >= 99 && ok <= 110, `${ok} of 140 immediate requests accepted with a burst of 100 (auth counted or not)`);
    assert.equal(ok + limited, 140);
    const sample = results.find((r) => r.ok === false);
    assertError(sample, 'rate_limited', null, 'over the limit');
    assert.ok(c.isOpen, 'one burst over the limit closed the connection');
    await new Promise((r) => setTimeout(r, 1100));
    const later = await c.request('ping');
    assert.equal(later.ok, true, `still limited after a second: ${JSON.stringify(later)}`);
});

test('static files: /sdk/ and /demo/ are served from gateway.static_dir', async () => {
    const sdk = await cluster.publicGet('/sdk/hello.txt');
    assert.equal(sdk.status, 200);
    assert.equal(sdk.text, 'hello from the integration tests\n');
    const demo = await cluster.publicGet('/demo/index.html');
    assert.equal(demo.status, 200);
    assert.match(demo.text, /<title>demo<\/title>/);
    assert.match(demo.headers.get('content-type') || '', /text\/html/);
    const missing = await cluster.publicGet('/sdk/nope.js');
    assert.equal(missing.status, 404);
    for (const p of ['/sdk/../../../../../../etc/passwd', '/sdk/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd', '/demo/..%2f..%2f..%2f..%2fetc%2fpasswd']) {
        const raw = await rawHttpGet(p);
        assert.ok(!/root:.*:0:0:/.test(raw), `path traversal with ${p}: ${raw.slice(0, 200)}`);
        assert.ok(!raw.startsWith('HTTP/1.1 200'), `${p} answered 200`);
    }
});

test('a request without id gets no response', async () => {
    const c = await cluster.login(0, uid('noid'));
    c.notifyOp('ping');
    c.notifyOp('room.list', {});
    const res = await c.request('ping');
    assert.equal(res.ok, true);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(c.orphans, [], 'frames answered a request that had no id');
});

test('request size limits: more than 100 ids, payload or meta over 8 KiB are too_large', async () => {
    const me = uid('lim');
    const c = await cluster.login(0, me);
    const ids = (n) => Array.from({ length: n }, (_, i) => `id-${i}`);
    assert.equal((await c.request('client.get', { ids: ids(100) })).ok, true, '100 ids must be accepted');
    assertError(await c.request('client.get', { ids: ids(101) }), 'too_large', null, 'client.get with 101 ids');
    assertError(await c.request('room.create', { type: 'group', members: ids(101) }), 'too_large', null, 'room.create with 101 members');
    assertError(await c.request('room.create', { type: 'group', members: ['x1'], meta: { big: 'm'.repeat(8200) } }), 'too_large', null, 'meta over 8 KiB');
    const room = await c.call('room.create', { type: 'group', members: ['x1'], meta: { small: 'm'.repeat(8000) } });
    assertError(await c.request('msg.send', { room: room.id, cid: 'p1', type: 'custom', payload: { big: 'p'.repeat(8200) } }), 'too_large', null, 'payload over 8 KiB');
    const ok = await c.call('msg.send', { room: room.id, cid: 'p2', type: 'custom', payload: { small: 'p'.repeat(8000) } });
    assert.equal(ok.seq, 1, 'the refused send took a seq');
});
