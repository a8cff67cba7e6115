// The gateway in cluster mode (redis.cluster) against a real cluster of 3 masters and 3
// replicas: it reads the slot map from its seeds, routes each command to the master of its
// key's slot, subscribes sharded channels (SSUBSCRIBE) on the master that owns each, and
// keeps all of that true across a failover. No worker runs here: the Functions library is
// loaded by hand and the data a returning client needs is written with redis-cli, so that
// what is tested is the gateway's routing alone (auth of a returning client, its rooms'
// channels, admin queries on rooms, the XADD of a job, the heartbeat).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import { BUILD_DIR, Proc, WsClient, jwt, nowSec, freePorts, waitFor, sleep } from '../integration/lib/cluster.mjs';
import { useRedisCluster } from './lib/redis-cluster.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const LUA = path.join(here, '..', '..', 'worker', 'lua', 'imkit.lua');
const SECRET = 'cluster-test-secret';
const API_KEY = 'cluster-test-key';
const P = 'imkit:';

const h = useRedisCluster();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imkit-cgw-'));
let gw = null; // {proc, publicPort, adminPort}
let alice = null; // a WsClient

// Never throws: a failing after() hook would skip the one that stops the Redis cluster.
after(async () => {
    if (alice) {
        alice.terminate();
    }
    if (gw) {
        await gw.proc.stop();
    }
    fs.rmSync(dir, { recursive: true, force: true });
}, { timeout: 15000 });

async function admin(method, p) {
    const r = await fetch(`http://127.0.0.1:${gw.adminPort}${p}`, {
        method, headers: { authorization: `Bearer ${API_KEY}` }, signal: AbortSignal.timeout(8000),
    });
    return { status: r.status, body: await r.json().catch(() => null) };
}

async function healthz() {
    try {
        const r = await fetch(`http://127.0.0.1:${gw.adminPort}/healthz`, { signal: AbortSignal.timeout(1000) });
        return r.status;
    } catch {
        return 0;
    }
}

/** A group room written by hand: its hash and members, alice a member. */
async function makeRoom(rc, rid) {
    await rc.command('HSET', `${P}r:{${rid}}`, 'type', 'group', 'name', rid, 'owner', 'alice',
        'members_count', '1', 'created_at', '1', 'updated_at', '1', 'last_seq', '0', 'last_ts', '0');
    await rc.command('HSET', `${P}r:{${rid}}:m`, 'alice', 'owner|1');
}

/** Two room ids whose slots live on masters other than alice's and than each other's. */
async function roomsOnOtherMasters(rc) {
    const taken = new Set([await rc.masterOfKey(`${P}u:{alice}`)]);
    const rooms = [];
    for (let i = 0; rooms.length < 2 && i < 200; i++) {
        const port = await rc.masterOfKey(`{room${i}}`);
        if (!taken.has(port)) {
            taken.add(port);
            rooms.push(`room${i}`);
        }
    }
    assert.equal(rooms.length, 2, 'rooms on two other masters');
    return rooms;
}

let roomA, roomB;

test('a gateway started with redis.cluster reads the slot map and becomes healthy', { timeout: 60000 }, async () => {
    const rc = h.cluster;
    const lua = fs.readFileSync(LUA);
    for (const m of await rc.masters()) {
        execFileSync('redis-cli', ['-p', String(m.port), '-x', 'FUNCTION', 'LOAD', 'REPLACE'], { input: lua });
    }
    // alice has connected before: a profile and her room index, in her slot.
    [roomA, roomB] = await roomsOnOtherMasters(rc);
    await rc.command('HSET', `${P}u:{alice}`, 'name', 'alice', 'created_at', '1');
    await rc.command('ZADD', `${P}u:{alice}:rooms`, '1', roomA);
    await makeRoom(rc, roomA);
    await makeRoom(rc, roomB);

    const [publicPort, adminPort] = await freePorts(2);
    // Only one seed, and a replica at that: the rest is learned from CLUSTER SLOTS.
    const replica = (await rc.replicas())[0];
    const args = Object.entries({
        'redis.cluster': `127.0.0.1:${replica.port}`,
        'log.level': 'debug',
        'gateway.processes': 1,
        'gateway.id': 'cgw1',
        'gateway.public_listen': `127.0.0.1:${publicPort}`,
        'gateway.admin_listen': `127.0.0.1:${adminPort}`,
        'auth.jwt_secrets': SECRET,
        'admin.api_keys': API_KEY,
        'gateway.heartbeat_ms': 500,
    }).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
    gw = {
        publicPort, adminPort,
        proc: new Proc('cgw1', path.join(BUILD_DIR, 'imkit-gateway'), args, path.join(dir, 'cgw1.log')),
    };
    await waitFor(async () => (await healthz()) === 200, 15000, 'gateway /healthz 200');
    // The heartbeat and the announcement went to the masters of their keys.
    await waitFor(async () => (await rc.command('EXISTS', `${P}gw:cgw1`)) === '1', 5000, 'heartbeat key');
    assert.match(await rc.command('SMEMBERS', `${P}gateways`), /cgw1/);
});

test('a returning client authenticates through its own slot and gets its rooms\' sharded events', { timeout: 30000 }, async () => {
    const rc = h.cluster;
    alice = new WsClient(`ws://127.0.0.1:${gw.publicPort}/ws`);
    await alice.opened();
    const res = await alice.request('auth', { token: jwt(SECRET, { sub: 'alice', iat: nowSec() - 5, exp: nowSec() + 3600 }) });
    assert.equal(res.ok, true, JSON.stringify(res));
    assert.equal(res.data.client.id, 'alice');

    // Her room's channel is subscribed on the room's master: an SPUBLISH there reaches her.
    const ev = { ev: 'message', data: { room: roomA, seq: 1, ts: 1, from: 'bob', type: 'text', text: 'hi', cid: 'c1' } };
    await waitFor(async () => {
        await rc.command('SPUBLISH', `${P}ch:r:{${roomA}}`, JSON.stringify(ev));
        return alice.events('message').some((d) => d.room === roomA && d.seq === 1);
    }, 5000, 'the sharded room event', 200);

    // A personal event: room.joined subscribes the room's channel on its own master.
    await rc.command('SPUBLISH', `${P}ch:u:{alice}`, JSON.stringify({
        ev: 'room.joined', data: { id: roomB, type: 'group', last_seq: 0 },
    }));
    await alice.waitEvent('room.joined', (d) => d.id === roomB);
    const ev2 = { ev: 'message', data: { ...ev.data, room: roomB, seq: 1 } };
    await waitFor(async () => {
        await rc.command('SPUBLISH', `${P}ch:r:{${roomB}}`, JSON.stringify(ev2));
        return alice.events('message').some((d) => d.room === roomB);
    }, 5000, 'an event of the room joined', 200);
});

test('admin queries and jobs go to the masters of their keys', { timeout: 30000 }, async () => {
    const rc = h.cluster;
    for (const rid of [roomA, roomB]) {
        const r = await admin('GET', `/v1/rooms/${rid}`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.equal(r.body.id, rid);
    }
    assert.equal((await admin('GET', '/v1/rooms/nosuchroom')).status, 404);

    // No worker runs: the send is answered unavailable in time, but its job was queued.
    const res = await alice.request('msg.send', { room: roomA, cid: 'q1', type: 'text', text: 'x' }, { timeoutMs: 9000 });
    assert.equal(res.ok, false);
    let queued = 0;
    for (const stream of (await rc.keys(`${P}jobs:*`)).filter((k) => k !== `${P}jobs:dead`)) {
        queued += Number(await rc.command('XLEN', stream));
    }
    assert.equal(queued, 1, 'one job in the job streams');
});

test('a failover of a room\'s master: its channel moves to the new master, queries follow', { timeout: 60000 }, async (t) => {
    const rc = h.cluster;
    const oldPort = await rc.masterOfKey(`{${roomA}}`);
    const master = (await rc.masters()).find((m) => m.port === oldPort);
    const replica = (await rc.replicas()).find((r) => r.masterId === master.id);
    await rc.failover(replica.port);
    assert.equal(await rc.masterOfKey(`{${roomA}}`), replica.port);

    const t0 = Date.now();
    let seq = 10;
    await waitFor(async () => {
        seq++;
        const ev = { ev: 'message', data: { room: roomA, seq, ts: 1, from: 'bob', type: 'text', text: 'after', cid: `a${seq}` } };
        await rc.command('SPUBLISH', `${P}ch:r:{${roomA}}`, JSON.stringify(ev));
        await sleep(100);
        return alice.events('message').some((d) => d.room === roomA && d.seq >= 11);
    }, 20000, 'a room event published on the new master', 300);
    const moved = Date.now() - t0;

    await waitFor(async () => (await admin('GET', `/v1/rooms/${roomA}`)).status === 200, 10000, 'the room query after the failover');
    await waitFor(async () => (await healthz()) === 200, 10000, 'healthy after the failover');
    assert.equal(alice.isOpen, true, 'the client stayed connected');
    t.diagnostic(`events of the room flowed again ${moved} ms after the failover`);
});

test('a room\'s master frozen (SIGSTOP): the gateway drops it, follows its replica, events flow again', { timeout: 90000 }, async (t) => {
    const rc = h.cluster;
    const oldPort = await rc.masterOfKey(`{${roomA}}`);
    const master = (await rc.masters()).find((m) => m.port === oldPort);
    const replica = (await rc.replicas()).find((r) => r.masterId === master.id);
    const node = rc.nodes.find((n) => n.port === oldPort);
    const t0 = Date.now();
    node.proc.child.kill('SIGSTOP');
    try {
        // A query waits on the frozen master: answered unavailable, the gateway stays up.
        const stuck = await admin('GET', `/v1/rooms/${roomA}`);
        assert.equal(stuck.status, 503, JSON.stringify(stuck.body));
        await waitFor(async () => /^role:master\r?$/m.test(await rc.redis(replica.port, 'INFO', 'replication')),
            30000, 'the replica promoted by the cluster');
        const promoted = Date.now() - t0;
        let seq = 100;
        await waitFor(async () => {
            seq++;
            const ev = { ev: 'message', data: { room: roomA, seq, ts: 1, from: 'bob', type: 'text', text: 'frozen', cid: `f${seq}` } };
            await rc.redis(replica.port, 'SPUBLISH', `${P}ch:r:{${roomA}}`, JSON.stringify(ev));
            await sleep(100);
            return alice.events('message').some((d) => d.room === roomA && d.seq > 100);
        }, 30000, 'a room event published on the promoted replica', 300);
        const flowing = Date.now() - t0;
        await waitFor(async () => (await admin('GET', `/v1/rooms/${roomA}`)).status === 200, 15000, 'the room query on the new master');
        assert.equal(alice.isOpen, true, 'the client stayed connected');
        t.diagnostic(`replica promoted ${promoted} ms after the freeze, events flowing again after ${flowing} ms`);
    } finally {
        node.proc.child.kill('SIGCONT');
    }
    await rc.waitOk(30000);
    await waitFor(async () => (await healthz()) === 200, 15000, 'healthy once the old master is back as a replica');
});

test('the gateway stops cleanly on SIGTERM', { timeout: 15000 }, async () => {
    alice.terminate();
    alice = null;
    const exit = await gw.proc.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, `gateway exit: ${JSON.stringify(exit)}\n${gw.proc.tail()}`);
    assert.equal(gw.proc.problem(), null);
});
