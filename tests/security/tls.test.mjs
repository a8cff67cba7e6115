// TLS on both listeners (tls.cert / tls.key), with a self-signed certificate made here by
// openssl: wss:// and https:// work (health, upgrade, auth, an admin call), TLS 1.1 and older
// are refused (checked against a local server that does accept them, so the client really
// offered them), plain HTTP to a TLS port gets no answer, and the WebSocket checks and the
// head timeout apply under TLS too.
//
// The harness starts redis and a worker (no gateway: it probes gateways over plain HTTP);
// this file starts the TLS gateway itself with the same options the harness would give.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import WebSocket from 'ws';
import { useCluster, Cluster, RawWs, OP, frame, makeCert, freePorts, rawHttp, connectSocket, assertHealthy, assertClose, uid, sleep, waitFor, withTimeout } from './lib/sec.mjs';

const HEAD_MS = 1500;
const gw = {};

// Registered before useCluster's own hooks: the gateway stops before redis does.
after(async () => {
    if (gw.child && gw.exit === undefined) {
        gw.child.kill('SIGKILL');
    }
    if (gw.cert) {
        fs.rmSync(gw.cert.dir, { recursive: true, force: true });
    }
});

const cluster = useCluster({ gateways: 0 });

/** An https request; resolves {status, body, text}. */
function httpsRequest(port, method, p, { headers = {}, body, tlsOpts = gw.tlsOpts } = {}) {
    return withTimeout(new Promise((resolve, reject) => {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const req = https.request({
            host: '127.0.0.1', port, method, path: p, ...tlsOpts, agent: false,
            headers: { ...headers, ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
        }, (res) => {
            const chunks = [];
            res.on('data', (d) => chunks.push(d));
            res.on('end', () => {
                const text = Buffer.concat(chunks).toString();
                let parsed = null;
                try {
                    parsed = JSON.parse(text);
                } catch {
                    parsed = null;
                }
                resolve({ status: res.statusCode, body: parsed, text, headers: res.headers });
            });
        });
        req.on('error', reject);
        if (payload) {
            req.write(payload);
        }
        req.end();
    }), 8000, `https ${method} ${p}`);
}

cluster.setup(async () => {
    gw.cert = makeCert();
    const ca = fs.readFileSync(gw.cert.cert);
    gw.tlsOpts = { ca, servername: 'localhost' };
    [gw.publicPort, gw.adminPort] = await freePorts(2);
    gw.log = path.join(cluster.dir, 'gwtls.log');
    const set = {
        ...cluster.redisSet(),
        'log.level': 'debug',
        'gateway.id': 'gwtls',
        'gateway.processes': 1,
        'gateway.public_listen': `127.0.0.1:${gw.publicPort}`,
        'gateway.admin_listen': `127.0.0.1:${gw.adminPort}`,
        'auth.jwt_secrets': cluster.secret,
        'admin.api_keys': cluster.apiKey,
        'gateway.static_dir': cluster.staticDir,
        'tls.cert': gw.cert.cert,
        'tls.key': gw.cert.key,
        'limits.head_timeout_ms': HEAD_MS,
    };
    const fd = fs.openSync(gw.log, 'a');
    gw.child = spawn(cluster.gatewayBin, Cluster.setArgs(set), { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    gw.child.unref();
    process.on('exit', () => gw.exit === undefined && gw.child.kill('SIGKILL'));
    gw.exited = new Promise((resolve) => gw.child.on('exit', (code, signal) => {
        gw.exit = { code, signal };
        resolve(gw.exit);
    }));
    await waitFor(async () => {
        if (gw.exit) {
            throw new Error(`the TLS gateway exited: ${JSON.stringify(gw.exit)}\n${fs.readFileSync(gw.log, 'utf8')}`);
        }
        const a = await httpsRequest(gw.publicPort, 'GET', '/healthz');
        const b = await httpsRequest(gw.adminPort, 'GET', '/healthz');
        return a.status === 200 && b.status === 200;
    }, 15000, 'the TLS gateway to answer https /healthz 200 on both listeners', 100);
});

const healthy = () => assertHealthy(cluster, { port: gw.publicPort, tls: gw.tlsOpts });

test('https:// works on both listeners: /healthz, an admin call with the key (and 401 without), a static file', async () => {
    const id = uid('tls');
    const put = await httpsRequest(gw.adminPort, 'PUT', `/v1/clients/${id}`, { headers: { authorization: `Bearer ${cluster.apiKey}` }, body: { name: 'Over TLS' } });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.body.name, 'Over TLS');
    const get = await httpsRequest(gw.adminPort, 'GET', `/v1/clients/${id}`, { headers: { authorization: `Bearer ${cluster.apiKey}` } });
    assert.equal(get.status, 200, get.text);
    const noKey = await httpsRequest(gw.adminPort, 'GET', `/v1/clients/${id}`);
    assert.equal(noKey.status, 401, noKey.text);
    for (const port of [gw.publicPort, gw.adminPort]) {
        const h = await httpsRequest(port, 'GET', '/healthz');
        assert.equal(h.status, 200, `https /healthz on ${port === gw.publicPort ? 'public' : 'admin'}: ${h.status} ${h.text}`);
    }
    const file = await httpsRequest(gw.publicPort, 'GET', '/sdk/hello.txt');
    assert.equal(file.status, 200);
    assert.match(file.text, /hello from the integration tests/);
});

test('wss:// works: upgrade (imkit.v1), auth with a JWT and with an opaque token issued over https, requests, events', async () => {
    const open = (protocols) => {
        const ws = new WebSocket(`wss://127.0.0.1:${gw.publicPort}/ws`, protocols, { ca: gw.tlsOpts.ca, handshakeTimeout: 5000 });
        const frames = [];
        ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
        ws.on('error', () => {});
        const opened = withTimeout(new Promise((resolve, reject) => {
            ws.once('open', resolve);
            ws.once('error', reject);
        }), 6000, 'wss open');
        const request = (id, op, data) => {
            ws.send(JSON.stringify({ id, op, data }));
            return waitFor(() => frames.find((f) => f.id === id), 8000, `answer to ${op}`);
        };
        return { ws, frames, opened, request };
    };
    const a = open(['imkit.v1']);
    await a.opened;
    assert.equal(a.ws.protocol, 'imkit.v1');
    const alice = uid('alice');
    const authA = await a.request(1, 'auth', { token: cluster.token(alice) });
    assert.equal(authA.ok, true, JSON.stringify(authA));
    const bob = uid('bob');
    const tok = await httpsRequest(gw.adminPort, 'POST', `/v1/clients/${bob}/tokens`, { headers: { authorization: `Bearer ${cluster.apiKey}` }, body: {} });
    assert.equal(tok.status, 201, tok.text);
    const b = open([]);
    await b.opened;
    const authB = await b.request(1, 'auth', { token: tok.body.token });
    assert.equal(authB.ok, true, JSON.stringify(authB));
    assert.equal(authB.data.client.id, bob);
    const room = await a.request(2, 'room.create', { type: 'direct', members: [bob] });
    assert.equal(room.ok, true, JSON.stringify(room));
    const sent = await a.request(3, 'msg.send', { room: room.data.id, cid: 'c1', type: 'text', text: 'over TLS' });
    assert.equal(sent.ok, true, JSON.stringify(sent));
    const ev = await waitFor(() => b.frames.find((f) => f.ev === 'message'), 5000, 'the message event over wss');
    assert.equal(ev.data.text, 'over TLS');
    a.ws.terminate();
    b.ws.terminate();
    await healthy();
});

/** Tries a TLS handshake with the given tls.connect options; resolves {ok, protocol, error}. */
function handshake(port, opts) {
    return new Promise((resolve) => {
        const sock = tls.connect({ host: '127.0.0.1', port, ...gw.tlsOpts, ...opts });
        const timer = setTimeout(() => {
            sock.destroy();
            resolve({ ok: false, error: 'timeout' });
        }, 5000);
        sock.once('secureConnect', () => {
            clearTimeout(timer);
            const protocol = sock.getProtocol();
            sock.destroy();
            resolve({ ok: true, protocol });
        });
        sock.once('error', (e) => {
            clearTimeout(timer);
            resolve({ ok: false, error: e.code || e.message });
        });
    });
}

const OLD = {
    'TLS 1.1': { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' },
    'TLS 1.0': { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' },
};

test('TLS 1.1 and 1.0 are refused on both listeners (the same client reaches a server that allows them)', async (t) => {
    // Control: a local server that accepts TLS 1.0 and 1.1, so that the client is known to offer them.
    const server = tls.createServer({
        key: fs.readFileSync(gw.cert.key), cert: fs.readFileSync(gw.cert.cert), minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0',
    }, (s) => s.end());
    server.on('tlsClientError', () => {});
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const controls = {};
    try {
        for (const [name, opts] of Object.entries(OLD)) {
            controls[name] = await handshake(server.address().port, opts);
        }
    } finally {
        server.close();
    }
    const usable = Object.entries(controls).filter(([, r]) => r.ok).map(([n]) => n);
    t.diagnostic(`control server: ${JSON.stringify(controls)}`);
    assert.ok(usable.length > 0, `this Node/OpenSSL cannot speak TLS 1.0 or 1.1 even to a server that allows it (${JSON.stringify(controls)}): the refusal cannot be shown`);
    const accepted = [];
    for (const name of usable) {
        for (const [label, port] of [['public', gw.publicPort], ['admin', gw.adminPort]]) {
            const r = await handshake(port, OLD[name]);
            if (r.ok) {
                accepted.push(`${name} on the ${label} listener (negotiated ${r.protocol})`);
            }
        }
    }
    assert.deepEqual(accepted, [], `old TLS accepted: ${accepted.join(', ')}`);
    await healthy();
});

test('TLS 1.2 and TLS 1.3 are accepted on both listeners', async () => {
    for (const [name, v] of [['TLS 1.2', 'TLSv1.2'], ['TLS 1.3', 'TLSv1.3']]) {
        for (const [label, port] of [['public', gw.publicPort], ['admin', gw.adminPort]]) {
            const r = await handshake(port, { minVersion: v, maxVersion: v });
            assert.ok(r.ok, `${name} on the ${label} listener: ${r.error}`);
            assert.equal(r.protocol, v);
        }
    }
});

test('plain HTTP (and a plain ws:// upgrade) to a TLS port fails: no HTTP answer, the connection is closed', async () => {
    for (const [label, port] of [['public', gw.publicPort], ['admin', gw.adminPort]]) {
        const r = await rawHttp(port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { timeoutMs: 4000 });
        assert.ok(!/^HTTP\/1\.[01] 2/.test(r.raw), `plain HTTP to the ${label} TLS port was answered: ${r.raw.slice(0, 80)}`);
        assert.ok(r.closed || r.error, `plain HTTP to the ${label} TLS port: the connection is still open after 4 s`);
    }
    const ws = await RawWs.open(gw.publicPort, { expectStatus: null, timeoutMs: 4000 }).catch((e) => ({ error: e.message }));
    assert.ok(ws.error || !ws.head || ws.head.status !== 101, 'a plain ws:// upgrade to the TLS port was upgraded');
    if (ws.destroy) {
        ws.destroy();
    }
    await healthy();
});

test('the WebSocket checks hold under TLS: an unmasked frame closes 1002, a binary frame 1003', async () => {
    let ws = await RawWs.open(gw.publicPort, { tls: gw.tlsOpts });
    ws.write(frame(OP.TEXT, '{"id":1,"op":"ping"}', { mask: false }));
    assertClose(await ws.waitClose(4000), 1002, 'unmasked frame over TLS');
    ws = await RawWs.open(gw.publicPort, { tls: gw.tlsOpts });
    ws.write(frame(OP.BINARY, 'x'));
    assertClose(await ws.waitClose(4000), 1003, 'binary frame over TLS');
    await healthy();
});

test(`the head timeout holds under TLS: no ClientHello, or a handshake and no head, closed after ${HEAD_MS} ms`, async () => {
    const raw = await connectSocket(gw.publicPort);
    const rawClosed = new Promise((resolve) => raw.on('close', resolve));
    raw.on('error', () => {});
    const t0 = Date.now();
    const secure = await connectSocket(gw.publicPort, { tls: gw.tlsOpts });
    const secureClosed = new Promise((resolve) => secure.on('close', resolve));
    secure.on('error', () => {});
    const ok = await Promise.race([Promise.all([rawClosed, secureClosed]).then(() => true), sleep(HEAD_MS + 3000).then(() => false)]);
    raw.destroy();
    secure.destroy();
    assert.ok(ok, `still open ${HEAD_MS + 3000} ms later`);
    assert.ok(Date.now() - t0 >= HEAD_MS - 300, `closed after ${Date.now() - t0} ms`);
    await healthy();
});

test('the TLS gateway stops cleanly on SIGTERM (exit 0), even when clients in the middle of their request head leave during the drain', async () => {
    // Two connections still sending their head (one TCP only, one after the TLS handshake):
    // they go away while the gateway drains after SIGTERM.
    const raw = await connectSocket(gw.publicPort);
    const secure = await connectSocket(gw.publicPort, { tls: gw.tlsOpts });
    raw.on('error', () => {});
    secure.on('error', () => {});
    raw.write('GET /ws HTTP/1.1\r\n');
    secure.write('GET /ws HTTP/1.1\r\n');
    await sleep(100);
    gw.child.kill('SIGTERM');
    await sleep(300);
    raw.destroy();
    secure.destroy();
    const exit = await Promise.race([gw.exited, sleep(5000).then(() => null)]);
    assert.ok(exit, 'still running 5 s after SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, `exit after SIGTERM: ${JSON.stringify(exit)}\n${fs.readFileSync(gw.log, 'utf8').split('\n').slice(-8).join('\n')}`);
});
