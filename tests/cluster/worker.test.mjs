// Workers in cluster mode (redis.cluster) behind a clustered gateway, against a real cluster
// of 3 masters and 3 replicas: the workers load the Functions on every master, read each job
// stream on its own master, run each job's Function on the master of its room or client,
// and publish its events and answer on sharded channels. Then the run the cluster runbook
// promises: a message run during a CLUSTER FAILOVER of the room's master and of the master
// of its job stream loses no acknowledged message, and a client that retries what went
// unanswered (same cid) ends with each message stored exactly once.
//
// The message runs use rooms written with redis-cli, one on each master; rooms created,
// changed and deleted through the gateway have a test of their own: their members' room
// indexes and profiles live in other slots, written after the room's own call.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BUILD_DIR, Proc, WsClient, jwt, nowSec, freePorts, waitFor, sleep } from '../integration/lib/cluster.mjs';
import { useRedisCluster } from './lib/redis-cluster.mjs';

const SECRET = 'cluster-worker-secret';
const P = 'imkit:';
const PARTITIONS = 6; // jobs.partitions: two job streams per master, by their names' tags

const h = useRedisCluster();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imkit-cwk-'));
const procs = [];
const clients = [];
let publicPort = 0;
let adminPort = 0;

after(async () => {
    for (const c of clients) {
        c.terminate();
    }
    for (const p of procs) {
        await p.stop();
    }
    if (process.env.IMKIT_KEEP_TMP) {
        console.log(`# logs kept in ${dir}`);
    } else {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}, { timeout: 30000 });

function start(name, bin, set) {
    const args = Object.entries({ 'log.level': 'debug', ...set }).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
    const p = new Proc(name, path.join(BUILD_DIR, bin), args, path.join(dir, `${name}.log`));
    procs.push(p);
    return p;
}

function startWorker(name, seed) {
    return start(name, 'imkit-worker', {
        'redis.cluster': seed, 'worker.block_ms': 500, 'worker.claim_idle_ms': 2000,
        'jobs.partitions': PARTITIONS,
    });
}

async function healthz() {
    try {
        const r = await fetch(`http://127.0.0.1:${adminPort}/healthz`, { signal: AbortSignal.timeout(1000) });
        return r.status;
    } catch {
        return 0;
    }
}

let streams = []; // the job streams' names by partition, as the servers made them

/** The job streams' names, <P>jobs:<p>:{<tag>}, found on the masters, by partition. */
async function jobStreams(rc) {
    const names = (await rc.keys(`${P}jobs:*`)).filter((k) => /^imkit:jobs:\d+:\{j\d+\}$/.test(k));
    return names.sort((a, b) => Number(a.split(':')[2]) - Number(b.split(':')[2]));
}

/** The job stream of a home id: FNV-1a of the id, mod the partitions (the gateway's choice). */
function streamOf(id) {
    let x = 2166136261;
    for (const b of Buffer.from(id)) {
        x = Math.imul(x ^ b, 16777619) >>> 0;
    }
    return streams[x % PARTITIONS];
}

/** A group room written by hand, alice (owner) and bob members, in both room indexes. */
async function makeRoom(rc, rid) {
    await rc.command('HSET', `${P}r:{${rid}}`, 'type', 'group', 'name', rid, 'owner', 'alice',
        'members_count', '2', 'created_at', '1', 'updated_at', '1', 'last_seq', '0', 'last_ts', '0');
    await rc.command('HSET', `${P}r:{${rid}}:m`, 'alice', 'owner|1', 'bob', 'member|1');
    await rc.command('HSET', `${P}r:{${rid}}:read`, 'alice', '0', 'bob', '0');
    for (const id of ['alice', 'bob']) {
        await rc.command('ZADD', `${P}u:{${id}}:rooms`, '1', rid);
    }
}

/** One room id per master: rooms[i] lives on masters[i]. */
async function roomPerMaster(rc, masters) {
    const rooms = [];
    for (const m of masters) {
        for (let i = 0; i < 500; i++) {
            const rid = `wr${i}`;
            if (!rooms.includes(rid) && (await rc.masterOfKey(`{${rid}}`)) === m.port) {
                rooms.push(rid);
                break;
            }
        }
    }
    assert.equal(rooms.length, masters.length, 'a room on every master');
    return rooms;
}

async function connect(id) {
    const c = new WsClient(`ws://127.0.0.1:${publicPort}/ws`);
    clients.push(c);
    await c.opened();
    const res = await c.request('auth', { token: jwt(SECRET, { sub: id, iat: nowSec() - 5, exp: nowSec() + 3600 }) });
    assert.equal(res.ok, true, JSON.stringify(res));
    return c;
}

/** Every message of a room's log, ascending, through msg.history pages. */
async function history(client, room) {
    const all = [];
    let after = 0;
    for (;;) {
        const res = await client.request('msg.history', { room, after, limit: 100 });
        assert.equal(res.ok, true, JSON.stringify(res));
        all.push(...res.data.messages);
        if (!res.data.has_more) {
            return all;
        }
        after = all[all.length - 1].seq;
    }
}

let rooms = [];
let alice = null;
let bob = null;

test('workers on a cluster load the Functions on every master and read every stream on its own', { timeout: 60000 }, async () => {
    const rc = h.cluster;
    const masters = await rc.masters();
    rooms = await roomPerMaster(rc, masters);
    for (const rid of rooms) {
        await makeRoom(rc, rid);
    }
    [publicPort, adminPort] = await freePorts(2);
    const replica = (await rc.replicas())[0];
    start('cgw', 'imkit-gateway', {
        'redis.cluster': `127.0.0.1:${replica.port}`,
        'gateway.processes': 1,
        'gateway.id': 'cgw',
        'gateway.public_listen': `127.0.0.1:${publicPort}`,
        'gateway.admin_listen': `127.0.0.1:${adminPort}`,
        'auth.jwt_secrets': SECRET,
        'admin.api_keys': 'k',
        'gateway.heartbeat_ms': 500, // a dead gateway is found within seconds
        'jobs.partitions': PARTITIONS,
        // The message runs and the history reads after them go as fast as they can.
        'limits.rate': 5000,
        'limits.rate_abuse': 100000,
    });
    // One worker seeded with a master, one with a replica: both learn the whole map.
    const w1 = startWorker('w1', `127.0.0.1:${masters[0].port}`);
    const w2 = startWorker('w2', `127.0.0.1:${replica.port}`);
    for (const w of [w1, w2]) {
        await waitFor(() => /redis_ready.*streams=6 masters=3/.test(fs.readFileSync(w.logFile, 'utf8')), 15000, `${w.name} ready`);
    }
    for (const m of masters) {
        assert.match(await rc.redis(m.port, 'FUNCTION', 'LIST', 'LIBRARYNAME', 'imkit'), /imkit_msg_send/,
            `the Functions on master ${m.port}`);
    }
    streams = await jobStreams(rc);
    assert.equal(streams.length, PARTITIONS, `the job streams: ${streams.join(', ')}`);
    for (let p = 0; p < PARTITIONS; p++) {
        assert.match(await rc.command('XINFO', 'GROUPS', streams[p]), /workers/, `the group of stream ${p}`);
    }
    // Placed by their names: each master holds its share of the streams.
    const held = new Map(masters.map((m) => [m.port, 0]));
    for (const s of streams) {
        const port = await rc.masterOfKey(s);
        held.set(port, held.get(port) + 1);
    }
    assert.deepEqual([...held.values()], [2, 2, 2], 'job streams per master');
    await waitFor(async () => (await healthz()) === 200, 15000, 'gateway healthy');
});

test('a new client\'s auth and messages in rooms on every master: answered, stored in the room\'s slot, delivered', { timeout: 60000 }, async () => {
    const rc = h.cluster;
    // Neither has a profile yet: auth is a job, run on the master of the client's slot.
    alice = await connect('alice');
    bob = await connect('bob');
    assert.equal(await rc.command('HGET', `${P}u:{alice}`, 'name'), 'alice');
    const sent = [];
    for (let i = 0; i < 30; i++) {
        const room = rooms[i % rooms.length];
        const res = await alice.request('msg.send', { room, cid: `m${i}`, type: 'text', text: `hello ${i}` });
        assert.equal(res.ok, true, JSON.stringify(res));
        sent.push({ room, seq: res.data.seq, cid: `m${i}` });
    }
    await bob.waitUntil(() => bob.events('message').length >= sent.length ? true : undefined, 10000, 'every message delivered to bob');
    for (const s of sent) {
        assert.ok(bob.events('message').some((m) => m.room === s.room && m.seq === s.seq && m.cid === s.cid), JSON.stringify(s));
    }
    for (const room of rooms) {
        assert.equal(await rc.command('XLEN', `${P}r:{${room}}:log`), '10', `the log of ${room}`);
    }
    // A job of an unknown room is answered with the Function's own error, not retried.
    const bad = await alice.request('msg.send', { room: 'nosuchroom', cid: 'x', type: 'text', text: 'x' });
    assert.equal(bad.ok, false);
    assert.equal(bad.error.code, 'not_found', JSON.stringify(bad));
});

/** The admin API of the gateway. */
async function admin(method, p, body) {
    const r = await fetch(`http://127.0.0.1:${adminPort}${p}`, {
        method,
        headers: { authorization: 'Bearer k', 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(9000),
    });
    return { status: r.status, body: await r.json().catch(() => null) };
}

/** The rooms in a client's room index (its own slot), in order. */
async function indexOf(rc, id) {
    const out = await rc.command('ZRANGE', `${P}u:{${id}}:rooms`, '0', '-1');
    return out === '' ? [] : out.split('\n');
}

test('the room list on a cluster: assembled from the rooms\' masters, ordered, paged and counted as on one Redis', { timeout: 60000 }, async () => {
    const rc = h.cluster;
    // Expected: last activity first, ties by id bytes; bob has read nothing (10 each).
    const rows = [];
    for (const rid of rooms) {
        rows.push({ rid, ts: Number(await rc.command('HGET', `${P}r:{${rid}}`, 'last_ts')) });
    }
    rows.sort((a, b) => (b.ts - a.ts) || (Buffer.compare(Buffer.from(a.rid), Buffer.from(b.rid))));
    const expected = rows.map((r) => r.rid);
    const all = await bob.request('room.list', { limit: 100 });
    assert.equal(all.ok, true, JSON.stringify(all));
    assert.deepEqual(all.data.rooms.map((r) => r.id), expected);
    assert.equal(all.data.next, null);
    assert.equal(all.data.unread_total, 30);
    for (const r of all.data.rooms) {
        assert.equal(r.unread, 10, r.id);
        assert.equal(r.last_message.seq, 10, r.id);
        assert.equal(r.members_count, 2);
    }
    // Pages of one: the cursor of each page leads to the next, the last says null.
    const paged = [];
    let before;
    for (let i = 0; i < 5; i++) {
        const page = await bob.request('room.list', before ? { limit: 1, before } : { limit: 1 });
        assert.equal(page.ok, true, JSON.stringify(page));
        paged.push(...page.data.rooms.map((r) => r.id));
        before = page.data.next;
        if (before === null) {
            break;
        }
        assert.match(before, /^\d+:wr\d+$/);
    }
    assert.deepEqual(paged, expected);
    const bad = await bob.request('room.list', { before: 'garbage' });
    assert.equal(bad.ok, false);
    assert.deepEqual([bad.error.code, bad.error.message], ['bad_request', 'before: bad cursor']);
    // A read mark moves the counts; the admin API lists the same rooms.
    const read = await bob.request('room.read', { room: expected[0], seq: 10 });
    assert.equal(read.ok, true, JSON.stringify(read));
    const after = await bob.request('room.list', {});
    assert.equal(after.data.unread_total, 20);
    assert.equal(after.data.rooms.find((r) => r.id === expected[0]).unread, 0);
    const viaAdmin = await admin('GET', '/v1/clients/bob/rooms?limit=100');
    assert.equal(viaAdmin.status, 200, JSON.stringify(viaAdmin.body));
    assert.deepEqual(viaAdmin.body.rooms.map((r) => r.id), expected);
    // A client in no room: an empty list.
    const carl = await connect('carl');
    const none = await carl.request('room.list', {});
    assert.deepEqual(none.data, { rooms: [], next: null, unread_total: 0 });
});

test('sync on a cluster: every room, the rooms left, the messages after what the client holds', { timeout: 60000 }, async () => {
    const listed = await bob.request('room.list', { limit: 100 });
    const order = listed.data.rooms.map((r) => r.id);
    const [a, b] = rooms;
    const res = await bob.request('sync', { known: { [a]: 5, [b]: 10, gone: 3 } });
    assert.equal(res.ok, true, JSON.stringify(res));
    assert.deepEqual(Object.keys(res.data), ['rooms', 'left', 'messages', 'has_more']);
    assert.deepEqual(res.data.rooms.map((r) => r.id), order, 'every room, in room list order');
    assert.deepEqual(res.data.left, ['gone']);
    assert.deepEqual(Object.keys(res.data.messages), [a], 'messages only for the room behind');
    assert.deepEqual(res.data.messages[a].map((m) => m.seq), [6, 7, 8, 9, 10]);
    assert.equal(res.data.messages[a][0].room, a);
    assert.deepEqual(res.data.has_more, { [a]: false });
    const fresh = await bob.request('sync', {});
    assert.deepEqual([fresh.data.rooms.length, fresh.data.left, fresh.data.messages], [rooms.length, [], {}]);
});

test('client.get and presence.watch on a cluster: each client read on its own master, in the order asked', { timeout: 30000 }, async () => {
    const rc = h.cluster;
    const ids = ['bob', 'carl', 'nosuch', 'alice'];
    assert.ok(new Set(await Promise.all(ids.map((id) => rc.masterOfKey(`{${id}}`)))).size >= 2, 'clients on several masters');
    const got = await alice.request('client.get', { ids });
    assert.equal(got.ok, true, JSON.stringify(got));
    assert.deepEqual(got.data.clients.map((c) => c.id), ['bob', 'carl', 'alice'], 'unknown ids left out');
    assert.equal(got.data.clients[0].name, 'bob');
    const watched = await alice.request('presence.watch', { ids: ['bob', 'nosuch'] });
    assert.equal(watched.ok, true, JSON.stringify(watched));
    assert.deepEqual(watched.data.clients.map((c) => c.id), ['bob', 'nosuch']);
    const cleared = await alice.request('presence.watch', { ids: [] });
    assert.deepEqual([cleared.ok, cleared.data], [true, { clients: [] }], JSON.stringify(cleared));
    const one = await admin('GET', '/v1/clients/carl');
    assert.equal(one.status, 200, JSON.stringify(one.body));
    assert.equal(one.body.id, 'carl');
    assert.equal((await admin('GET', '/v1/clients/nosuch')).status, 404);
});

test('presence on a cluster: counted in each client\'s slot, published sharded, cleaned after a dead gateway', { timeout: 60000 }, async () => {
    const rc = h.cluster;
    const set = `${P}gwc:cgw`;
    const pat = await connect('pat');
    await waitFor(async () => (await rc.command('HGET', `${P}online:{pat}`, 'cgw')) === '1', 5000, 'pat counted');
    assert.match(await rc.command('SMEMBERS', set), /\bpat\b/, 'the gateway keeps its clients in its own set');
    const watched = await alice.request('presence.watch', { ids: ['pat'] });
    assert.equal(watched.ok, true, JSON.stringify(watched));
    assert.equal(watched.data.clients[0].online, true);
    pat.close();
    const offline = await alice.waitEvent('presence', (d) => d.client === 'pat' && d.online === false, 10000);
    assert.ok(offline.last_seen > 0);
    await waitFor(async () => !/\bpat\b/.test(await rc.command('SMEMBERS', set)), 5000, 'pat out of the set');

    // A second gateway dies with a client on it: the first finds it and drops the count.
    const [pub2, adm2] = await freePorts(2);
    const gw2 = start('cgw2', 'imkit-gateway', {
        'redis.cluster': `127.0.0.1:${(await rc.masters())[0].port}`,
        'gateway.processes': 1, 'gateway.id': 'cgw2', 'gateway.heartbeat_ms': 500,
        'gateway.public_listen': `127.0.0.1:${pub2}`, 'gateway.admin_listen': `127.0.0.1:${adm2}`,
        'auth.jwt_secrets': SECRET, 'admin.api_keys': 'k', 'jobs.partitions': PARTITIONS,
    });
    await waitFor(async () => {
        try {
            return (await fetch(`http://127.0.0.1:${adm2}/healthz`)).status === 200;
        } catch {
            return false;
        }
    }, 15000, 'the second gateway healthy');
    const pet = new WsClient(`ws://127.0.0.1:${pub2}/ws`);
    clients.push(pet);
    await pet.opened();
    const auth = await pet.request('auth', { token: jwt(SECRET, { sub: 'pet', iat: nowSec() - 5, exp: nowSec() + 3600 }) });
    assert.equal(auth.ok, true, JSON.stringify(auth));
    await waitFor(async () => (await rc.command('HGET', `${P}online:{pet}`, 'cgw2')) === '1', 5000, 'pet counted');
    await alice.request('presence.watch', { ids: ['pet'] });
    await waitFor(async () => /\bcgw2\b/.test(await rc.command('SMEMBERS', `${P}gateways`)), 5000, 'cgw2 announced');
    gw2.child.kill('SIGKILL');
    const gone = await alice.waitEvent('presence', (d) => d.client === 'pet' && d.online === false, 20000);
    assert.ok(gone.last_seen > 0);
    assert.equal(await rc.command('EXISTS', `${P}gwc:cgw2`), '0', 'the dead gateway\'s set is gone');
    assert.equal(await rc.command('HEXISTS', `${P}online:{pet}`, 'cgw2'), '0');
    procs.splice(procs.indexOf(gw2), 1);
    pet.terminate();
});

test('rooms and members on a cluster: each member\'s room index and profile are written on its own master', { timeout: 90000 }, async (t) => {
    const rc = h.cluster;
    // carol and dave never connected: their profiles are made in their own slots.
    const created = await alice.request('room.create', { type: 'group', members: ['bob', 'carol'], name: 'g' });
    assert.equal(created.ok, true, JSON.stringify(created));
    const rid = created.data.id;
    const members = ['alice', 'bob', 'carol'];
    const masters = new Set([await rc.masterOfKey(`{${rid}}`)]);
    for (const id of members) {
        masters.add(await rc.masterOfKey(`{${id}}`));
        assert.ok((await indexOf(rc, id)).includes(rid), `${rid} in ${id}'s room index`);
    }
    assert.ok(masters.size >= 2, 'the room and its members span masters');
    assert.equal(await rc.command('HGET', `${P}u:{carol}`, 'name'), 'carol', 'carol\'s profile, made on her master');
    const joined = await bob.waitEvent('room.joined', (d) => d.id === rid);
    assert.equal(joined.unread, 0);
    // The room's channel is subscribed for bob's session: a message reaches him.
    const sent = await alice.request('msg.send', { room: rid, cid: 'g1', type: 'text', text: 'hi' });
    assert.equal(sent.ok, true, JSON.stringify(sent));
    await bob.waitEvent('message', (d) => d.room === rid && d.seq === 1);

    const added = await alice.request('room.members.add', { room: rid, members: ['dave'] });
    assert.equal(added.ok, true, JSON.stringify(added));
    assert.ok((await indexOf(rc, 'dave')).includes(rid), 'dave\'s index');
    assert.equal(await rc.command('HGET', `${P}u:{dave}`, 'name'), 'dave');
    const removed = await alice.request('room.members.remove', { room: rid, members: ['carol'] });
    assert.equal(removed.ok, true, JSON.stringify(removed));
    assert.ok(!(await indexOf(rc, 'carol')).includes(rid), 'carol\'s index no longer has the room');

    // A client deleted: it leaves every room, each on the room's own master.
    const other = await alice.request('room.create', { type: 'group', members: ['dave'], name: 'h' });
    assert.equal(other.ok, true, JSON.stringify(other));
    assert.equal((await admin('DELETE', '/v1/clients/dave')).status, 204);
    for (const room of [rid, other.data.id]) {
        assert.equal(await rc.command('HEXISTS', `${P}r:{${room}}:m`, 'dave'), '0', `dave left ${room}`);
    }
    assert.equal(await rc.command('HGET', `${P}r:{${rid}}`, 'members_count'), '2');
    assert.deepEqual(await indexOf(rc, 'dave'), []);

    // A room deleted: out of every remaining member's index.
    assert.equal((await admin('DELETE', `/v1/rooms/${rid}`)).status, 204);
    for (const id of ['alice', 'bob']) {
        assert.ok(!(await indexOf(rc, id)).includes(rid), `${rid} out of ${id}'s index`);
    }
    await bob.waitEvent('room.left', (d) => d.room === rid);

    // A direct room: its job runs in the pair's slot (direct:{alice|bob}), the room is
    // written in its own, and that write's reply answers.
    const pairKey = `${P}direct:{alice|bob}`;
    const direct = await alice.request('room.create', { type: 'direct', members: ['bob'] });
    assert.equal(direct.ok, true, JSON.stringify(direct));
    assert.equal(direct.data.type, 'direct');
    assert.equal(direct.data.created, true);
    const did = direct.data.id;
    assert.equal(await rc.command('GET', pairKey), did);
    const pairMasters = new Set([await rc.masterOfKey(pairKey), await rc.masterOfKey(`{${did}}`)]);
    for (const id of ['alice', 'bob']) {
        assert.ok((await indexOf(rc, id)).includes(did), `${did} in ${id}'s room index`);
        pairMasters.add(await rc.masterOfKey(`{${id}}`));
    }
    t.diagnostic(`the pair, its room and its two clients on ${pairMasters.size} masters`);
    const joined2 = await bob.waitEvent('room.joined', (d) => d.id === did);
    assert.equal(joined2.peer.id, 'alice');
    const again = await bob.request('room.create', { type: 'direct', members: ['alice'] });
    assert.equal(again.ok, true, JSON.stringify(again));
    assert.deepEqual([again.data.id, again.data.created], [did, false], 'the pair has one room');
    const dm = await alice.request('msg.send', { room: did, cid: 'd1', type: 'text', text: 'hello seller' });
    assert.equal(dm.ok, true, JSON.stringify(dm));
    await bob.waitEvent('message', (d) => d.room === did && d.seq === 1);
    // Deleted, the pair's key goes too (a write in the pair's slot): the next is a new room.
    assert.equal((await admin('DELETE', `/v1/rooms/${did}`)).status, 204);
    assert.equal(await rc.command('EXISTS', pairKey), '0');
    const fresh = await alice.request('room.create', { type: 'direct', members: ['bob'] });
    assert.equal(fresh.ok, true, JSON.stringify(fresh));
    assert.notEqual(fresh.data.id, did);
    assert.equal(fresh.data.created, true);
});

test('a failover of the room\'s master and of its job stream\'s master during a message run loses no acknowledged message', { timeout: 180000 }, async (t) => {
    const rc = h.cluster;
    const room = rooms[0];
    const targets = [`{${room}}`, streamOf(room)];
    let stop = false;
    const acked = new Map(); // cid -> seq
    const unanswered = [];
    const sender = (async () => {
        for (let i = 0; !stop || unanswered.length > 0; i++) {
            // What went unanswered is sent again with its cid, as the SDK does.
            const cid = unanswered.length > 0 && i % 2 === 0 ? unanswered.shift() : `f${i}`;
            let res;
            try {
                res = await alice.request('msg.send', { room, cid, type: 'text', text: cid }, { timeoutMs: 9000 });
            } catch {
                res = { ok: false };
            }
            if (res.ok) {
                assert.ok(!acked.has(cid) || acked.get(cid) === res.data.seq, `a retried cid keeps its seq: ${cid}`);
                acked.set(cid, res.data.seq);
            } else if (!acked.has(cid)) {
                unanswered.push(cid);
                await sleep(100);
            }
            if (stop && unanswered.length === 0) {
                break;
            }
        }
    })();
    const failovers = [];
    for (const key of targets) {
        await waitFor(() => acked.size >= 20 * (failovers.length + 1), 60000, 'messages acknowledged before the failover');
        const port = await rc.masterOfKey(key);
        const master = (await rc.masters()).find((m) => m.port === port);
        const replica = (await rc.replicas()).find((r) => r.masterId === master.id);
        const before = acked.size;
        const t0 = Date.now();
        await rc.failover(replica.port);
        await waitFor(() => acked.size >= before + 10, 60000, `messages acknowledged after the failover of ${key}'s master`);
        failovers.push({ key, port, promoted: replica.port, ms: Date.now() - t0 });
    }
    stop = true;
    await sender;
    t.diagnostic(`failovers: ${JSON.stringify(failovers)}; ${acked.size} messages acknowledged`);

    const log = await history(alice, room);
    const stored = new Map();
    for (const m of log.filter((m) => m.cid.startsWith('f'))) {
        assert.ok(!stored.has(m.cid), `stored once: ${m.cid}`);
        stored.set(m.cid, m.seq);
    }
    for (const [cid, seq] of acked) {
        assert.equal(stored.get(cid), seq, `acknowledged ${cid} stored with its seq`);
    }
    assert.equal(stored.size, acked.size, 'nothing stored that was not acknowledged in the end');
    const seqs = log.map((m) => m.seq);
    assert.deepEqual(seqs, seqs.map((_, i) => i + 1), 'the log\'s seqs have no gap');
});

test('workers and the gateway stop cleanly on SIGTERM, leaving nothing pending', { timeout: 60000 }, async () => {
    const rc = h.cluster;
    for (const c of clients.splice(0)) {
        c.terminate();
    }
    const exits = []; // every process is stopped before any is judged
    for (const p of procs.splice(0)) {
        exits.push([p, await p.stop()]);
    }
    for (const [p, exit] of exits) {
        assert.deepEqual(exit, { code: 0, signal: null }, `${p.name} exit: ${JSON.stringify(exit)}\n${p.tail()}`);
    }
    for (let s = 0; s < PARTITIONS; s++) {
        const pending = await rc.command('XPENDING', streams[s], 'workers');
        assert.match(pending, /^0\b/, `nothing pending on stream ${s}: ${pending}`);
    }
});
