// The Redis Cluster harness itself (lib/redis-cluster.mjs): the cluster it starts has the
// promised shape, keys go through it, and a manual failover, a master killed with SIGKILL
// and a node restarted from its own folder end the way the later cluster tests expect.
// Tests run in order and build on each other (one cluster for the file).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useRedisCluster, SLOTS } from './lib/redis-cluster.mjs';

const h = useRedisCluster(); // 3 masters, 1 replica each, appendonly
const KEY = 'k{a}';

/** The master and replica owning `key`'s slot: {master: {id, port}, replica: {id, port}}. */
async function ownerPair(rc, key) {
    const port = await rc.masterOfKey(key);
    const master = (await rc.masters()).find((m) => m.port === port);
    const replica = (await rc.replicas()).find((r) => r.masterId === master.id);
    assert.ok(replica, `the master ${port} of ${key} has no replica`);
    return { master, replica };
}

test('3 masters and 3 replicas, each replica on its own master, every slot owned once', { timeout: 20000 }, async () => {
    const rc = h.cluster;
    assert.equal(rc.nodes.length, 6);
    const masters = await rc.masters();
    const replicas = await rc.replicas();
    assert.equal(masters.length, 3, JSON.stringify(masters));
    assert.equal(replicas.length, 3, JSON.stringify(replicas));
    assert.deepEqual([...masters, ...replicas].map((n) => n.port).sort(), rc.nodes.map((n) => n.port).sort());
    assert.deepEqual(rc.seeds.split(',').sort(), masters.map((m) => `127.0.0.1:${m.port}`).sort());

    const masterIds = masters.map((m) => m.id);
    assert.equal(new Set(replicas.map((r) => r.masterId)).size, 3, `replicas share a master: ${JSON.stringify(replicas)}`);
    for (const r of replicas) {
        assert.ok(masterIds.includes(r.masterId), `replica ${r.port} follows ${r.masterId}, not a master`);
        const info = await rc.redis(r.port, 'INFO', 'replication');
        const master = masters.find((m) => m.id === r.masterId);
        assert.match(info, /^role:slave\r?$/m);
        assert.match(info, new RegExp(`^master_port:${master.port}\\r?$`, 'm'));
        assert.match(info, /^master_link_status:up\r?$/m);
    }

    const owners = new Uint8Array(SLOTS);
    for (const m of masters) {
        assert.ok(m.slots.length > 0, `master ${m.port} owns no slot`);
        for (const [lo, hi] of m.slots) {
            for (let s = lo; s <= hi; s++) {
                owners[s]++;
            }
        }
    }
    assert.ok(owners.every((c) => c === 1), 'every slot owned by exactly one master');
    for (const n of rc.nodes) {
        assert.match(await rc.redis(n.port, 'CLUSTER', 'INFO'), /^cluster_state:ok\r?$/m);
    }
});

test('a key written through the cluster reads back, and lives on masterOfKey', { timeout: 20000 }, async () => {
    const rc = h.cluster;
    assert.equal(await rc.command('SET', KEY, 'v'), 'OK');
    assert.equal(await rc.command('GET', KEY), 'v');
    const owner = await rc.masterOfKey(KEY);
    assert.equal(await rc.redis(owner, 'GET', KEY), 'v');
    // Any other master redirects: .redis (no -c) rejects with the MOVED error.
    const other = (await rc.masters()).find((m) => m.port !== owner);
    await assert.rejects(rc.redis(other.port, 'GET', KEY), new RegExp(`MOVED \\d+ 127\\.0\\.0\\.1:${owner}`));
});

test('failover() of the replica owning the key makes it the owner; the old master follows it', { timeout: 30000 }, async () => {
    const rc = h.cluster;
    const { master, replica } = await ownerPair(rc, KEY);
    await rc.failover(replica.port);

    assert.equal(await rc.masterOfKey(KEY), replica.port);
    assert.equal(await rc.redis(replica.port, 'GET', KEY), 'v');
    assert.equal(await rc.command('GET', KEY), 'v');
    const info = await rc.redis(master.port, 'INFO', 'replication');
    assert.match(info, /^role:slave\r?$/m);
    assert.match(info, new RegExp(`^master_port:${replica.port}\\r?$`, 'm'));
    assert.deepEqual((await rc.replicas()).find((r) => r.port === master.port), { id: master.id, port: master.port, masterId: replica.id });
    assert.equal((await rc.masters()).length, 3);
});

test('a master killed with SIGKILL is replaced by its replica; restartNode() brings it back as a replica', { timeout: 40000 }, async () => {
    const rc = h.cluster;
    const { master, replica } = await ownerPair(rc, KEY);
    const exit = await rc.killNode(master.port);
    assert.equal(exit.signal, 'SIGKILL');
    await rc.waitOk(20000); // failure detection (node timeout 2 s) and the replica's election

    assert.equal(await rc.masterOfKey(KEY), replica.port);
    assert.equal(await rc.command('GET', KEY), 'v');
    assert.equal((await rc.masters()).length, 3);
    assert.equal((await rc.replicas()).length, 2);

    await rc.restartNode(master.port);
    const back = (await rc.replicas()).find((r) => r.port === master.port);
    assert.deepEqual(back, { id: master.id, port: master.port, masterId: replica.id }, 'same node id, now a replica of its old replica');
    assert.equal((await rc.replicas()).length, 3);
    assert.equal(await rc.masterOfKey(KEY), replica.port);
    assert.equal(await rc.command('GET', KEY), 'v');
});
