// Helpers of the security suite: raw WebSocket clients on plain `net` (or `tls`) sockets
// that write the upgrade request and every frame byte by byte, raw HTTP requests, the
// "gateway still healthy" check, the gateway's resident memory, a throw-away certificate.
//
// The cluster itself (redis-server, workers, gateways) comes from the integration harness,
// tests/integration/lib/cluster.mjs, which this suite imports and never changes.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

export * from '../../integration/lib/cluster.mjs';
import { uid, sleep, withTimeout } from '../../integration/lib/cluster.mjs';

// ---------------------------------------------------------------------------------------------
// Frames

export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa };

/**
 * One client frame. opts: fin (default true), mask (default true), rsv (the three RSV bits as
 * 0..7), len64 (force the 8-byte length form), rawLen (a BigInt written as the 8-byte length
 * whatever the payload: a lie about the size), maskKey (4 bytes).
 */
export function frame(opcode, payload = Buffer.alloc(0), opts = {}) {
    const { fin = true, mask = true, rsv = 0 } = opts;
    const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
    const b0 = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
    const m = mask ? 0x80 : 0;
    let header;
    if (opts.rawLen !== undefined) {
        header = Buffer.alloc(10);
        header[0] = b0;
        header[1] = m | 127;
        header.writeBigUInt64BE(BigInt(opts.rawLen), 2);
    } else if (p.length < 126 && !opts.len64) {
        header = Buffer.from([b0, m | p.length]);
    } else if (p.length < 65536 && !opts.len64) {
        header = Buffer.from([b0, m | 126, p.length >> 8, p.length & 0xff]);
    } else {
        header = Buffer.alloc(10);
        header[0] = b0;
        header[1] = m | 127;
        header.writeBigUInt64BE(BigInt(p.length), 2);
    }
    if (!mask) {
        return Buffer.concat([header, p]);
    }
    const key = opts.maskKey || randomBytes(4);
    const body = Buffer.alloc(p.length);
    for (let i = 0; i < p.length; i++) {
        body[i] = p[i] ^ key[i % 4];
    }
    return Buffer.concat([header, key, body]);
}

/** A close frame's payload: the 2-byte code, then the reason bytes. */
export function closePayload(code, reason = Buffer.alloc(0)) {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(code);
    return Buffer.concat([b, Buffer.isBuffer(reason) ? reason : Buffer.from(reason)]);
}

export const wsKey = () => randomBytes(16).toString('base64');

/** The RFC 6455 answer to `key`. */
export function wsAccept(key) {
    return createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
}

/**
 * An upgrade request head. opts: path, host, key (null: no header), version (null: no header),
 * origin, protocol, extensions, method, upgrade / connection (header values; null: left out),
 * extra (array of raw header lines).
 */
export function upgradeRequest(opts = {}) {
    const lines = [`${opts.method || 'GET'} ${opts.path || '/ws'} HTTP/1.1`, `Host: ${opts.host || '127.0.0.1'}`];
    const add = (name, v, dflt) => {
        const value = v === undefined ? dflt : v;
        if (value !== null && value !== undefined) {
            lines.push(`${name}: ${value}`);
        }
    };
    add('Upgrade', opts.upgrade, 'websocket');
    add('Connection', opts.connection, 'Upgrade');
    add('Sec-WebSocket-Key', opts.key, wsKey());
    add('Sec-WebSocket-Version', opts.version, '13');
    add('Origin', opts.origin, undefined);
    add('Sec-WebSocket-Protocol', opts.protocol, undefined);
    add('Sec-WebSocket-Extensions', opts.extensions, undefined);
    for (const l of opts.extra || []) {
        lines.push(l);
    }
    return lines.join('\r\n') + '\r\n\r\n';
}

/** Parses "HTTP/1.1 101 …\r\nName: value…" into {status, headers (lower-case names)}. */
export function parseHead(text) {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] || '');
    const headers = {};
    for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) {
            const name = l.slice(0, i).trim().toLowerCase();
            const value = l.slice(i + 1).trim();
            headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
        }
    }
    return { status: m ? Number(m[1]) : null, headers, statusLine: lines[0] || '' };
}

// ---------------------------------------------------------------------------------------------
// Sockets

/**
 * Opens a TCP (or TLS, with opts.tls = tls.connect options) connection; resolves with the
 * socket once connected (and the TLS handshake done). opts.localAddress picks the source
 * address (any of 127.0.0.0/8 works on Linux).
 */
export function connectSocket(port, opts = {}) {
    const host = opts.host || '127.0.0.1';
    return withTimeout(new Promise((resolve, reject) => {
        let sock;
        if (opts.tls) {
            sock = tls.connect({ port, host, localAddress: opts.localAddress, ...opts.tls }, () => resolve(sock));
        } else {
            sock = net.connect({ port, host, localAddress: opts.localAddress }, () => resolve(sock));
        }
        sock.once('error', reject);
    }), opts.timeoutMs || 5000, `connect to ${host}:${port}`);
}

/**
 * Sends raw bytes as an HTTP request and collects the answer until the server closes (or
 * timeoutMs passes). Returns {status, headers, raw, closed, error}.
 */
export async function rawHttp(port, request, opts = {}) {
    const sock = await connectSocket(port, opts);
    const chunks = [];
    let closed = false;
    let error = null;
    const done = new Promise((resolve) => {
        sock.on('data', (d) => chunks.push(d));
        sock.on('error', (e) => {
            error = e;
        });
        sock.on('close', () => {
            closed = true;
            resolve();
        });
    });
    sock.write(request);
    await Promise.race([done, sleep(opts.timeoutMs || 5000)]);
    sock.destroy();
    const raw = Buffer.concat(chunks).toString('latin1');
    const end = raw.indexOf('\r\n\r\n');
    const head = parseHead(end >= 0 ? raw.slice(0, end) : raw);
    return { ...head, raw, body: end >= 0 ? raw.slice(end + 4) : '', closed, error };
}

// ---------------------------------------------------------------------------------------------
// A raw WebSocket client

/**
 * A WebSocket client that does everything by hand on a socket: the upgrade, masking (or
 * not), fragmentation. It records what the server sends: the response head, text frames
 * (parsed as JSON when they are), pings, the close frame's code and reason, and when the TCP
 * connection ended. It never answers pings unless `autoPong` is set; it answers the server's
 * close frame with its own unless `echoClose` is false.
 */
export class RawWs {
    constructor(sock, opts = {}) {
        this.sock = sock;
        this.autoPong = !!opts.autoPong;
        this.echoClose = opts.echoClose !== false;
        this.sentClose = false;
        this.buf = Buffer.alloc(0);
        this.head = null; // {status, headers} of the upgrade answer
        this.texts = [];
        this.frames = []; // parsed JSON text frames
        this.pings = 0;
        this.binary = 0;
        this.serverMasked = false;
        this.closeCode = null; // from the close frame; 1005 when it had no code
        this.closeReason = null;
        this.closeFrameAt = null;
        this.tcpClosedAt = null;
        this.bytesIn = 0;
        this.openedAt = Date.now();
        this.nextId = 1;
        this.waiters = new Set();
        sock.on('data', (d) => this.onData(d));
        sock.on('error', (e) => {
            this.error = e;
        });
        sock.on('close', () => {
            this.tcpClosedAt = Date.now();
            this.notify();
        });
    }

    /**
     * Connects and upgrades. opts: localAddress, tls (tls.connect options), request (upgrade
     * request options, see upgradeRequest), autoPong, expectStatus (default 101: asserts it),
     * after (bytes sent in the same write as the head).
     */
    static async open(port, opts = {}) {
        const sock = await connectSocket(port, opts);
        const ws = new RawWs(sock, opts);
        const key = opts.request?.key === undefined ? wsKey() : opts.request.key;
        ws.key = key;
        const req = Buffer.from(upgradeRequest({ ...(opts.request || {}), key }), 'latin1');
        sock.write(opts.after ? Buffer.concat([req, opts.after]) : req);
        await ws.waitUntil(() => ws.head || ws.tcpClosedAt, opts.timeoutMs || 5000, 'the upgrade answer');
        const expect = opts.expectStatus === undefined ? 101 : opts.expectStatus;
        if (expect !== null) {
            assert.ok(ws.head, `no upgrade answer (connection closed after ${ws.bytesIn} bytes)`);
            assert.equal(ws.head.status, expect, `upgrade: expected HTTP ${expect}, got ${ws.head.statusLine}`);
            if (expect === 101) {
                assert.equal(ws.head.headers['sec-websocket-accept'], wsAccept(key), 'Sec-WebSocket-Accept');
            }
        }
        return ws;
    }

    notify() {
        for (const w of [...this.waiters]) {
            w();
        }
    }

    onData(d) {
        this.bytesIn += d.length;
        this.buf = Buffer.concat([this.buf, d]);
        if (!this.head) {
            const end = this.buf.indexOf('\r\n\r\n');
            if (end < 0) {
                return;
            }
            this.head = parseHead(this.buf.subarray(0, end).toString('latin1'));
            this.buf = this.buf.subarray(end + 4);
            if (this.head.status !== 101) {
                this.body = this.buf.toString('latin1');
                this.buf = Buffer.alloc(0);
                this.notify();
                return;
            }
        }
        for (;;) {
            if (this.buf.length < 2) {
                break;
            }
            const op = this.buf[0] & 0x0f;
            const masked = (this.buf[1] & 0x80) !== 0;
            let len = this.buf[1] & 0x7f;
            let off = 2;
            if (len === 126) {
                if (this.buf.length < 4) {
                    break;
                }
                len = this.buf.readUInt16BE(2);
                off = 4;
            } else if (len === 127) {
                if (this.buf.length < 10) {
                    break;
                }
                len = Number(this.buf.readBigUInt64BE(2));
                off = 10;
            }
            if (masked) {
                this.serverMasked = true;
                off += 4;
            }
            if (this.buf.length < off + len) {
                break;
            }
            const payload = this.buf.subarray(off, off + len);
            this.buf = this.buf.subarray(off + len);
            if (op === OP.TEXT) {
                const text = payload.toString('utf8');
                this.texts.push(text);
                try {
                    this.frames.push(JSON.parse(text));
                } catch {
                    this.frames.push({ raw: text });
                }
            } else if (op === OP.BINARY) {
                this.binary++;
            } else if (op === OP.PING) {
                this.pings++;
                if (this.autoPong && !this.sock.destroyed) {
                    this.sock.write(frame(OP.PONG, Buffer.from(payload)));
                }
            } else if (op === OP.CLOSE && this.closeCode === null) {
                this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
                this.closeReason = payload.length > 2 ? payload.subarray(2).toString('utf8') : '';
                this.closeFrameAt = Date.now();
                // Complete the closing handshake as every client does (RFC 6455 §5.5.1): echo
                // the code, so that the server may close the TCP connection at once.
                if (this.echoClose && !this.sentClose && !this.sock.destroyed) {
                    this.sentClose = true;
                    this.sock.write(frame(OP.CLOSE, payload.length >= 2 ? payload.subarray(0, 2) : Buffer.alloc(0)));
                }
            }
        }
        this.notify();
    }

    /** Resolves with find()'s first truthy value; rejects after ms. */
    waitUntil(find, ms, what) {
        const v = find();
        if (v) {
            return Promise.resolve(v);
        }
        return new Promise((resolve, reject) => {
            const check = () => {
                const r = find();
                if (r) {
                    this.waiters.delete(check);
                    clearTimeout(timer);
                    resolve(r);
                }
            };
            const timer = setTimeout(() => {
                this.waiters.delete(check);
                reject(new Error(`timed out after ${ms} ms waiting for ${what} (close frame: ${this.closeCode}, tcp closed: ${!!this.tcpClosedAt}, bytes in: ${this.bytesIn})`));
            }, ms);
            this.waiters.add(check);
        });
    }

    write(bytes) {
        if (!this.sock.destroyed) {
            this.sock.write(bytes);
        }
    }

    sendText(text, opts = {}) {
        this.write(frame(OP.TEXT, Buffer.from(text), opts));
    }

    /** Sends {id, op, data} and resolves with the response frame of that id. */
    async request(op, data, timeoutMs = 8000) {
        const id = this.nextId++;
        this.sendText(JSON.stringify(data === undefined ? { id, op } : { id, op, data }));
        return this.waitUntil(() => this.frames.find((f) => f && f.id === id), timeoutMs, `the answer to ${op} (id ${id})`);
    }

    /**
     * Waits for the server to close: resolves with {code, reason, tcpClosed, ms} where code is
     * the close frame's (1006 when the TCP connection ended without one) and ms the time since
     * the upgrade. Rejects when nothing happened within ms.
     */
    async waitClose(ms = 5000) {
        await this.waitUntil(() => this.closeCode !== null || this.tcpClosedAt, ms, 'the server to close');
        if (!this.tcpClosedAt) {
            // After its close frame the server should end the TCP connection too.
            await this.waitUntil(() => this.tcpClosedAt, 2000, 'the TCP close after the close frame').catch(() => {});
        }
        return {
            code: this.closeCode === null ? 1006 : this.closeCode,
            reason: this.closeReason,
            tcpClosed: !!this.tcpClosedAt,
            error: this.error ? this.error.code || this.error.message : null,
            ms: (this.closeFrameAt || this.tcpClosedAt) - this.openedAt,
        };
    }

    /** Whether the server closed within ms (no assertion). */
    async closedWithin(ms) {
        try {
            await this.waitUntil(() => this.closeCode !== null || this.tcpClosedAt, ms, 'close');
            return true;
        } catch {
            return false;
        }
    }

    destroy() {
        this.sock.destroy();
    }

    /** Sends a normal close frame (when still possible) and drops the socket. */
    close() {
        if (!this.sock.destroyed && !this.tcpClosedAt && !this.sentClose) {
            try {
                this.sock.write(frame(OP.CLOSE, closePayload(1000)));
            } catch {
                // gone
            }
        }
        this.sock.destroy();
    }
}

// ---------------------------------------------------------------------------------------------
// Health

/**
 * The gateway is healthy: /healthz answers 200 on the public listener, and a new client
 * upgrades, authenticates and gets an answer to `ping`. opts: gateway index, localAddress
 * (source address of both checks), tls (tls.connect options, for a TLS gateway), port
 * (public port, default the cluster's), token.
 */
export async function assertHealthy(cluster, opts = {}) {
    const port = opts.port || cluster.gateways[opts.gateway || 0].publicPort;
    const ws = await RawWs.open(port, { localAddress: opts.localAddress, tls: opts.tls });
    try {
        const auth = await ws.request('auth', { token: opts.token || cluster.token(uid('healthy')) });
        assert.equal(auth.ok, true, `auth of a new client after the attack: ${JSON.stringify(auth)}`);
        const ping = await ws.request('ping');
        assert.equal(ping.ok, true, `ping of a new client after the attack: ${JSON.stringify(ping)}`);
    } finally {
        ws.close();
    }
    // After the client (whose auth talked to Redis): /healthz is then about this gateway, not
    // about how long it has been idle (see the idle-health test in timeouts.test.mjs).
    const h = await rawHttp(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { localAddress: opts.localAddress, tls: opts.tls, timeoutMs: 5000 });
    assert.equal(h.status, 200, `/healthz after the attack: expected 200, got ${h.statusLine || '(no answer)'} ${h.body}`);
}

// ---------------------------------------------------------------------------------------------
// Memory, processes, files

/**
 * A bound on the gateway's resident memory. Under AddressSanitizer (the suite's second pass,
 * IMKIT_SANITIZED=1) freed memory sits in ASan's quarantine, so RSS says nothing about what
 * the gateway keeps: the bound is reported, not asserted; the plain pass asserts it.
 */
export function assertMemory(ok, message) {
    if (process.env.IMKIT_SANITIZED === '1') {
        if (!ok) {
            console.log(`# memory bound not asserted under the sanitizers: ${message}`);
        }
        return;
    }
    assert.ok(ok, message);
}

/** Resident memory of a process in KiB (VmRSS of /proc/<pid>/status). */
export function rssKb(pid) {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    assert.ok(m, `no VmRSS in /proc/${pid}/status`);
    return Number(m[1]);
}

export const gatewayPid = (cluster, i = 0) => cluster.gateways[i].proc.child.pid;

/**
 * TCP connections held in the kernel between a local port (the gateway's) and a peer port,
 * from /proc/net/tcp: [{state}] with state as the kernel's hex code ('01' ESTABLISHED).
 */
export function tcpStates(localPort, peerPort) {
    const out = [];
    for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
        let text = '';
        try {
            text = fs.readFileSync(file, 'utf8');
        } catch {
            continue;
        }
        for (const line of text.split('\n').slice(1)) {
            const f = line.trim().split(/\s+/);
            if (f.length < 4) {
                continue;
            }
            const lp = parseInt(f[1].split(':')[1], 16);
            const rp = parseInt(f[2].split(':')[1], 16);
            if (lp === localPort && rp === peerPort) {
                out.push({ state: f[3], txQueue: parseInt(f[4].split(':')[0], 16) });
            }
        }
    }
    return out;
}

/** Makes a self-signed certificate for localhost in a new temporary folder: {dir, cert, key}. */
export function makeCert() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imkit-sec-tls-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'pipe', timeout: 30000 });
    return { dir, cert, key };
}

/**
 * The lines a server process wrote to its log, without the harness's own header line
 * ("# <time> <command line>", which holds the --set options and so the secrets).
 */
export function serverLogLines(proc) {
    const text = fs.readFileSync(proc.logFile, 'utf8');
    return text.split('\n').filter((l) => !/^# \d{4}-\d\d-\d\dT/.test(l));
}

/** Runs fn over n items with `limit` in flight; returns the results in order. */
export async function inParallel(n, limit, fn) {
    const results = new Array(n);
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(n, limit) }, async () => {
        for (;;) {
            const i = next++;
            if (i >= n) {
                return;
            }
            results[i] = await fn(i);
        }
    }));
    return results;
}

/** Asserts a close: code, and optionally the time since the upgrade within [minMs, maxMs]. */
export function assertClose(c, code, what, { minMs, maxMs } = {}) {
    assert.equal(c.code, code, `${what}: expected close ${code}, got ${c.code}${c.code === 1006 ? ` (the TCP connection ended without a close frame${c.error ? `: ${c.error}` : ''})` : ''}${c.reason ? ` "${c.reason}"` : ''}`);
    if (minMs !== undefined) {
        assert.ok(c.ms >= minMs, `${what}: closed after ${c.ms} ms, earlier than ${minMs} ms`);
    }
    if (maxMs !== undefined) {
        assert.ok(c.ms <= maxMs, `${what}: closed after ${c.ms} ms, later than ${maxMs} ms`);
    }
}
