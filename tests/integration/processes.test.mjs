// gateway.processes (README "Configuration", OPERATIONS.md "Gateways"): one supervisor
// forks N gateway processes sharing the public port with SO_REUSEPORT, each with its own
// admin port (admin_listen's port + index); a process that dies is replaced; SIGTERM to the
// supervisor stops them all cleanly; a killed supervisor leaves no process behind.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
    useCluster, Cluster, Proc, WsClient, uid, waitFor, withTimeout, freePorts, assertOk, sleep,
} from './lib/cluster.mjs';

const PROCESSES = 2;
const CLIENTS = 24;
const cluster = useCluster({ gateways: 0, workers: 1 });

let publicPort;
let adminPort; // process i listens on adminPort + i
let supervisor;
const supervisors = []; // every one started, so that none outlives the file when a test fails

function listenable(port) {
    return new Promise((resolve) => {
        const srv = net.createServer();
        srv.once('error', () => resolve(false));
        srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
}

/** A free port p such that p .. p+n-1 are all free. */
async function freeRun(n) {
    for (let attempt = 0; attempt < 50; attempt++) {
        const [p] = await freePorts(1);
        let ok = p + n - 1 < 65536;
        for (let i = 1; ok && i < n; i++) {
            ok = await listenable(p + i);
        }
        if (ok) return p;
    }
    throw new Error(`no run of ${n} free ports`);
}

function childrenOf(pid) {
    try {
        return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
        return [];
    }
}

function alive(pid) {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
}

async function httpStatus(port, p) {
    try {
        const r = await fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(2000) });
        return r.status;
    } catch {
        return 0;
    }
}

async function authenticatedSessions(port) {
    const r = await fetch(`http://127.0.0.1:${port}/metrics`, {
        headers: { authorization: `Bearer ${cluster.apiKey}` },
        signal: AbortSignal.timeout(2000),
    });
    const text = await r.text();
    const m = text.match(/^imkit_gateway_sessions_authenticated\{[^}]*\} (\d+)/m);
    assert.ok(m, `no imkit_gateway_sessions_authenticated in /metrics:\n${text.slice(0, 500)}`);
    return Number(m[1]);
}

function startSupervisor(name) {
    const set = {
        ...cluster.commonSet(),
        'gateway.processes': PROCESSES,
        'gateway.public_listen': `127.0.0.1:${publicPort}`,
        'gateway.admin_listen': `127.0.0.1:${adminPort}`,
        'auth.jwt_secrets': cluster.jwtSecrets,
        'admin.api_keys': cluster.apiKeys,
        'gateway.static_dir': cluster.staticDir,
    };
    const s = cluster.track(new Proc(name, cluster.gatewayBin, Cluster.setArgs(set), path.join(cluster.dir, `${name}.log`)));
    supervisors.push(s);
    return s;
}

async function waitServing(what) {
    for (let i = 0; i < PROCESSES; i++) {
        await waitFor(async () => (await httpStatus(adminPort + i, '/healthz')) === 200, 15000, `${what}: admin port of process ${i}`);
    }
    await waitFor(async () => (await httpStatus(publicPort, '/healthz')) === 200, 15000, `${what}: public port`);
}

async function login(id) {
    const c = cluster.adopt(new WsClient(`ws://127.0.0.1:${publicPort}/ws`));
    await c.opened();
    const res = await c.request('auth', { token: cluster.token(id) });
    assertOk(res, 'auth');
    return c;
}

// Picked once Redis listens (a second top-level before() would run beside the cluster's
// start, and a Redis node could then be handed one of these ports or their bus ports).
cluster.setup(async () => {
    publicPort = (await freePorts(1))[0];
    adminPort = await freeRun(PROCESSES);
});

after(async () => {
    for (const s of supervisors) {
        if (s.alive) {
            s.child.kill('SIGKILL');
        }
    }
});

test('N processes share the public port, each with its own admin port, and connections spread over them', async () => {
    supervisor = startSupervisor('supervised');
    await waitServing('start');
    await waitFor(() => childrenOf(supervisor.child.pid).length === PROCESSES, 5000, `${PROCESSES} children`);

    const ids = Array.from({ length: CLIENTS }, (_, i) => uid(`p${i}`));
    const clients = [];
    for (const id of ids) clients.push(await login(id));
    const counts = [];
    for (let i = 0; i < PROCESSES; i++) counts.push(await authenticatedSessions(adminPort + i));
    assert.equal(counts.reduce((a, b) => a + b, 0), CLIENTS, `sessions per process ${counts}`);
    assert.ok(counts.every((n) => n > 0), `the kernel spread ${CLIENTS} connections over every process: ${counts}`);

    // Chat across processes: a room of all, one message, everyone gets it once.
    const room = await clients[0].call('room.create', { type: 'group', members: ids.slice(1) });
    const sent = await clients[0].call('msg.send', { room: room.id, cid: 'c1', type: 'text', text: 'hello all' });
    for (const c of clients) {
        await c.waitEvent('message', (d) => d.room === room.id && d.seq === sent.seq);
    }
    for (const c of clients) c.close();
});

test('a killed process is replaced; the others keep their connections', async () => {
    const before = childrenOf(supervisor.child.pid);
    assert.equal(before.length, PROCESSES);
    // The kernel spreads connections by a hash of their addresses, so a few may all land on
    // the process about to die: connect until every process holds some (64 at most).
    const sessions = async () => Promise.all(before.map((_, i) => authenticatedSessions(adminPort + i)));
    await waitFor(async () => (await sessions()).every((n) => n === 0), 5000, 'the last test\'s sessions gone');
    const survivors = [];
    while (survivors.length < 8 || (survivors.length < 64 && !(await sessions()).every((n) => n > 0))) {
        survivors.push(await login(uid('s')));
    }
    process.kill(before[0], 'SIGKILL');
    await waitFor(() => {
        const now = childrenOf(supervisor.child.pid);
        return now.length === PROCESSES && !now.includes(before[0]);
    }, 10000, 'a new process in place of the killed one');
    await waitServing('after a kill');
    // Connections on the other process are still open and served.
    const open = survivors.filter((c) => c.isOpen);
    assert.ok(open.length > 0, `none of ${survivors.length} connections, spread over every process, survived the kill of one`);
    for (const c of open) {
        const res = await c.request('ping', {});
        assertOk(res, 'ping on a surviving connection');
    }
    for (const c of survivors) c.close();
});

test('SIGTERM to the supervisor stops every process and exits 0', async () => {
    const kids = childrenOf(supervisor.child.pid);
    assert.equal(kids.length, PROCESSES);
    const c = await login(uid('t'));
    supervisor.child.kill('SIGTERM');
    const closed = await c.waitClose(10000);
    assert.equal(closed.code, 1001, 'sessions closed with 1001 (going away)');
    const exit = await withTimeout(supervisor.exited, 20000, 'the supervisor exits');
    assert.equal(exit.code, 0, `supervisor exit ${JSON.stringify(exit)}`);
    for (const pid of kids) assert.ok(!alive(pid), `process ${pid} outlived the supervisor`);
});

test('a malformed admin address, or one whose ports would pass 65535, stops the supervisor at once with status 2, forking nothing', async () => {
    const bad = new Proc('bad-admin', cluster.gatewayBin, Cluster.setArgs({
        ...cluster.commonSet(),
        'gateway.processes': PROCESSES,
        'gateway.public_listen': `127.0.0.1:${publicPort}`,
        'gateway.admin_listen': 'no-port-here',
    }), path.join(cluster.dir, 'bad-admin.log'));
    const exit = await withTimeout(bad.exited, 5000, 'the supervisor exits');
    assert.deepEqual(exit, { code: 2, signal: null });
    assert.match(bad.tail(), /gateway\.admin_listen is malformed/);

    // A well-formed address whose last process would need a port above 65535: the same.
    const high = new Proc('high-admin', cluster.gatewayBin, Cluster.setArgs({
        ...cluster.commonSet(),
        'gateway.processes': PROCESSES,
        'gateway.public_listen': `127.0.0.1:${publicPort}`,
        'gateway.admin_listen': `127.0.0.1:${65536 - PROCESSES + 1}`,
    }), path.join(cluster.dir, 'high-admin.log'));
    assert.deepEqual(await withTimeout(high.exited, 5000, 'the supervisor exits'), { code: 2, signal: null });
    assert.match(high.tail(), /above 65535/);
});

test('a killed supervisor leaves no gateway process behind', async () => {
    supervisor = startSupervisor('killed');
    await waitServing('restart');
    await waitFor(() => childrenOf(supervisor.child.pid).length === PROCESSES, 5000, `${PROCESSES} children`);
    const kids = childrenOf(supervisor.child.pid);
    supervisor.child.kill('SIGKILL');
    await waitFor(() => kids.every((pid) => !alive(pid)), 5000, 'children gone with the supervisor');
    await sleep(200);
    assert.equal(await httpStatus(publicPort, '/healthz'), 0, 'nothing listens on the public port any more');
});
