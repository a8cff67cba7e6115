// RFC 6455 "must fail the connection" cases on the public listener, each on a fresh raw
// connection (no `auth` needed: framing is checked before anything else), each asserting the
// exact close code the RFC and PROTOCOL.md §2 name, then that the gateway is still healthy.
// limits.ws_message is 4096 here so that the size cases are small.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, RawWs, OP, frame, closePayload, assertHealthy, assertClose, rssKb, gatewayPid, assertMemory } from './lib/sec.mjs';

const MAX = 4096;
const cluster = useCluster({ gatewaySet: { 'limits.ws_message': MAX } });
const port = () => cluster.gateways[0].publicPort;

/** Opens a raw connection, sends `bytes` (a Buffer or a list of Buffers, written one by one), returns the close. */
async function closeAfter(bytes, timeoutMs = 4000) {
    const ws = await RawWs.open(port());
    for (const b of Array.isArray(bytes) ? bytes : [bytes]) {
        ws.write(b);
    }
    return ws.waitClose(timeoutMs);
}

/**
 * Runs every case ([what, bytes, expected code]) on its own connection and asserts once, listing
 * every case that closed otherwise: one failing case does not hide the others.
 */
async function expectCloses(cases) {
    const wrong = [];
    for (const [what, bytes, code] of cases) {
        const c = await closeAfter(bytes);
        if (c.code !== code) {
            wrong.push(`${what}: expected close ${code}, got ${c.code}${c.code === 1006 ? ' (TCP closed without a close frame)' : ''}`);
        }
    }
    assert.ok(wrong.length === 0, `${wrong.length} of ${cases.length} cases closed with the wrong code:\n  ${wrong.join('\n  ')}`);
}

/** A request frame's JSON padded with spaces to exactly `n` bytes. */
function paddedRequest(n) {
    const base = '{"id":1,"op":"ping"}';
    return base.slice(0, -1) + ' '.repeat(n - base.length) + '}';
}

test('an unmasked client frame closes 1002', async () => {
    await expectCloses([
        ['unmasked text frame', frame(OP.TEXT, '{"id":1,"op":"ping"}', { mask: false }), 1002],
        ['unmasked ping frame', frame(OP.PING, 'x', { mask: false }), 1002],
        ['unmasked continuation of a masked start', [frame(OP.TEXT, '{"id":1,', { fin: false }), frame(OP.CONT, '"op":"ping"}', { mask: false })], 1002],
    ]);
    await assertHealthy(cluster);
});

test('a frame with any reserved bit set closes 1002 (no extension was negotiated)', async () => {
    await expectCloses([
        ...[4, 2, 1].map((rsv) => [`RSV bits ${rsv.toString(2).padStart(3, '0')} on a text frame`, frame(OP.TEXT, '{"id":1,"op":"ping"}', { rsv }), 1002]),
        ['RSV1 on a ping', frame(OP.PING, '', { rsv: 4 }), 1002],
        ['RSV1 on a continuation', [frame(OP.TEXT, '{"id":1,', { fin: false }), frame(OP.CONT, '"op":"ping"}', { rsv: 4 })], 1002],
    ]);
    await assertHealthy(cluster);
});

test('every unknown opcode closes 1002 (0x3-0x7 data, 0xB-0xF control)', async () => {
    await expectCloses([
        ...[0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf].map((op) => [`opcode 0x${op.toString(16)}`, frame(op, 'x'), 1002]),
        ['opcode 0x3 inside a fragmented message', [frame(OP.TEXT, '{"id":1,', { fin: false }), frame(0x3, 'x')], 1002],
    ]);
    await assertHealthy(cluster);
});

test('a control frame with a payload over 125 bytes closes 1002', async () => {
    // 126 bytes: the length takes the 16-bit form, which a control frame may not use.
    await expectCloses([
        ['ping of 126 bytes', frame(OP.PING, Buffer.alloc(126, 0x61)), 1002],
        ['pong of 200 bytes', frame(OP.PONG, Buffer.alloc(200, 0x61)), 1002],
        ['close of 126 bytes', frame(OP.CLOSE, closePayload(1000, Buffer.alloc(124, 0x61))), 1002],
    ]);
    await assertHealthy(cluster);
});

test('a fragmented control frame closes 1002', async () => {
    await expectCloses([
        ['ping with FIN clear', frame(OP.PING, 'abc', { fin: false }), 1002],
        ['close with FIN clear', frame(OP.CLOSE, closePayload(1000), { fin: false }), 1002],
        ['ping with FIN clear inside a fragmented message', [frame(OP.TEXT, '{"id":1,', { fin: false }), frame(OP.PING, 'abc', { fin: false })], 1002],
    ]);
    await assertHealthy(cluster);
});

test('a continuation frame with no message started closes 1002', async () => {
    await expectCloses([
        ['continuation (FIN) first', frame(OP.CONT, '{"id":1,"op":"ping"}'), 1002],
        ['continuation (no FIN) first', frame(OP.CONT, '{"id":1,', { fin: false }), 1002],
        // A complete message, then a continuation: the message is over, nothing to continue.
        ['continuation after a complete message', [frame(OP.TEXT, '{"id":1,"op":"ping"}'), frame(OP.CONT, 'x')], 1002],
    ]);
    await assertHealthy(cluster);
});

test('a new data frame inside a fragmented message closes 1002', async () => {
    await expectCloses([
        ['text inside text', [frame(OP.TEXT, '{"id":1,', { fin: false }), frame(OP.TEXT, '{"id":2,"op":"ping"}')], 1002],
        ['binary inside text', [frame(OP.TEXT, '{"id":1,', { fin: false }), frame(OP.BINARY, 'x')], 1002],
        ['text (FIN clear) inside text', [frame(OP.TEXT, '{"id":1,', { fin: false }), frame(OP.TEXT, '{"id":2,', { fin: false })], 1002],
    ]);
    await assertHealthy(cluster);
});

test('a control frame between fragments is allowed and answered (control: the message still completes)', async () => {
    const ws = await RawWs.open(port());
    ws.write(frame(OP.TEXT, '{"id":1,', { fin: false }));
    ws.write(frame(OP.PING, 'p'));
    ws.write(frame(OP.CONT, '"op":"ping"}'));
    const res = await ws.waitUntil(() => ws.frames.find((f) => f.id === 1), 4000, 'the answer to the fragmented request');
    assert.equal(res.error?.code, 'unauthenticated', `a fragmented request is read whole: ${JSON.stringify(res)}`);
    assert.equal(ws.closeCode, null);
    ws.close();
});

test('invalid UTF-8 in a text message closes 1007, in one frame or split across fragments', async () => {
    const bad = {
        'a lone continuation byte': Buffer.from([0x80]),
        'an overlong "/"': Buffer.from([0xc0, 0xaf]),
        'a UTF-16 surrogate': Buffer.from([0xed, 0xa0, 0x80]),
        'a code point over U+10FFFF': Buffer.from([0xf4, 0x90, 0x80, 0x80]),
        'a truncated sequence at the end': Buffer.from([0xe2, 0x82]),
        'byte 0xFF': Buffer.from([0xff]),
    };
    const head = Buffer.from('{"id":1,"op":"ping","x":"');
    await expectCloses([
        ...Object.entries(bad).map(([what, bytes]) => [`one frame with ${what}`, frame(OP.TEXT, Buffer.concat([head, bytes, Buffer.from('"}')])), 1007]),
        // Each fragment alone is a valid prefix; together they are not: E2 82 then 28.
        ['a sequence broken across fragments', [
            frame(OP.TEXT, Buffer.concat([head, Buffer.from([0xe2, 0x82])]), { fin: false }),
            frame(OP.CONT, Buffer.from([0x28, 0x22, 0x7d])),
        ], 1007],
        // The message ends inside a sequence begun in an earlier fragment.
        ['a message ending inside a sequence', [
            frame(OP.TEXT, Buffer.concat([head, Buffer.from([0xf0, 0x9f])]), { fin: false }),
            frame(OP.CONT, Buffer.from([0x98])),
        ], 1007],
        // Invalid bytes in a first fragment whose message never completes: caught at once.
        ['invalid bytes in an unfinished message', frame(OP.TEXT, Buffer.concat([head, Buffer.from([0xff])]), { fin: false }), 1007],
    ]);
    await assertHealthy(cluster);
});

test('valid UTF-8 split across fragments is accepted (control)', async () => {
    const ws = await RawWs.open(port());
    const euro = Buffer.from('€'); // E2 82 AC
    ws.write(frame(OP.TEXT, Buffer.concat([Buffer.from('{"id":1,"op":"ping","x":"'), euro.subarray(0, 2)]), { fin: false }));
    ws.write(frame(OP.CONT, Buffer.concat([euro.subarray(2), Buffer.from('"}')])));
    const res = await ws.waitUntil(() => ws.frames.find((f) => f.id === 1), 4000, 'the answer');
    assert.equal(res.error?.code, 'unauthenticated', JSON.stringify(res));
    assert.equal(ws.closeCode, null);
    ws.close();
});

test('a binary frame closes 1003', async () => {
    await expectCloses([
        ['binary frame', frame(OP.BINARY, '{"id":1,"op":"ping"}'), 1003],
        ['fragmented binary message', [frame(OP.BINARY, '{"id":1,', { fin: false }), frame(OP.CONT, '"op":"ping"}')], 1003],
        ['empty binary frame', frame(OP.BINARY), 1003],
    ]);
    await assertHealthy(cluster);
});

test('a close frame with an invalid code closes 1002 (1005, 1006, 1015, 999, 5000, 0, 1004, 2999)', async () => {
    await expectCloses([1005, 1006, 1015, 999, 5000, 0, 1004, 2999].map((code) => [`close code ${code}`, frame(OP.CLOSE, closePayload(code)), 1002]));
    await assertHealthy(cluster);
});

test('a close frame with a 1-byte body closes 1002', async () => {
    assertClose(await closeAfter(frame(OP.CLOSE, Buffer.from([0x03]))), 1002, 'close with a 1-byte body');
    await assertHealthy(cluster);
});

test('a close frame whose reason is invalid UTF-8 closes 1007', async () => {
    assertClose(await closeAfter(frame(OP.CLOSE, closePayload(1000, Buffer.from([0xce, 0xba, 0xe1, 0xbd])))), 1007, 'close reason with invalid UTF-8');
    await assertHealthy(cluster);
});

test('a close frame with a valid code is answered with a close frame (control: 1000, 1001, 3000, 4999)', async () => {
    for (const code of [1000, 1001, 3000, 4999]) {
        const c = await closeAfter(frame(OP.CLOSE, closePayload(code, 'bye')));
        assert.equal(c.code, code, `close ${code} should be echoed, got ${c.code}`);
    }
    const c = await closeAfter(frame(OP.CLOSE));
    assert.equal(c.code, 1005, 'an empty close is answered with an empty close');
});

test(`a message over limits.ws_message (${MAX}) closes 1009, in one frame or in small fragments`, async () => {
    const big = Buffer.from(paddedRequest(MAX + 1));
    const parts = [];
    for (let off = 0; off < big.length; off += 256) {
        const last = off + 256 >= big.length;
        parts.push(frame(off === 0 ? OP.TEXT : OP.CONT, big.subarray(off, off + 256), { fin: last }));
    }
    await expectCloses([
        ['one frame of limit + 1 bytes', frame(OP.TEXT, big), 1009],
        ['17 fragments of 256 bytes, limit + 1 in all', parts, 1009],
        // Only the header (and one byte) of the fragment that crosses the limit: refused
        // without waiting for the rest of its payload.
        ['a fragment announcing more than what is left', [frame(OP.TEXT, Buffer.alloc(4000, 0x20), { fin: false }), frame(OP.CONT, Buffer.alloc(200)).subarray(0, 9)], 1009],
        // A binary message is measured the same way.
        ['binary over the limit', frame(OP.BINARY, Buffer.alloc(MAX + 1)), 1009],
    ]);
    await assertHealthy(cluster);
});

test('exactly limits.ws_message bytes are accepted (control), also in fragments', async () => {
    const ws = await RawWs.open(port());
    ws.write(frame(OP.TEXT, paddedRequest(MAX)));
    let res = await ws.waitUntil(() => ws.frames.find((f) => f.id === 1), 4000, 'the answer');
    assert.equal(res.error?.code, 'unauthenticated', JSON.stringify(res));
    const msg = Buffer.from(paddedRequest(MAX).replace('"id":1', '"id":2'));
    for (let off = 0; off < msg.length; off += 1024) {
        ws.write(frame(off === 0 ? OP.TEXT : OP.CONT, msg.subarray(off, off + 1024), { fin: off + 1024 >= msg.length }));
    }
    res = await ws.waitUntil(() => ws.frames.find((f) => f.id === 2), 4000, 'the answer');
    assert.equal(res.error?.code, 'unauthenticated', JSON.stringify(res));
    assert.equal(ws.closeCode, null);
    ws.close();
});

test('a frame that announces 2^40 bytes closes 1009 at once, before anything is allocated', async () => {
    const pid = gatewayPid(cluster);
    const before = rssKb(pid);
    const c = await closeAfter(Buffer.concat([frame(OP.TEXT, Buffer.alloc(0), { rawLen: 2n ** 40n }), Buffer.alloc(16)]), 3000);
    assertClose(c, 1009, 'a 1 TiB frame header');
    assertMemory(rssKb(pid) - before < 2048, `gateway RSS grew by ${rssKb(pid) - before} KiB`);
    await assertHealthy(cluster);
});

test('a 64-bit length with its most significant bit set closes 1002', async () => {
    assertClose(await closeAfter(frame(OP.TEXT, Buffer.alloc(0), { rawLen: 2n ** 63n + 5n })), 1002, '64-bit length with the MSB set');
    await assertHealthy(cluster);
});

test('frames that follow the upgrade request in the same packet are read (no bypass of the checks)', async () => {
    const ws = await RawWs.open(port(), { after: frame(OP.TEXT, '{"id":1,"op":"ping"}', { mask: false }) });
    assertClose(await ws.waitClose(4000), 1002, 'an unmasked frame sent with the upgrade request');
    await assertHealthy(cluster);
});
