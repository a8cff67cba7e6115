// imkit-cluster's routing client (cluster/src/client.c) against a real Redis Cluster, through
// the cluster_probe program (tests/cluster/cluster_probe.c): a pipelined write spread over the
// masters, then a probe loop that must read back every value it wrote while a slot migrates
// (ASK, then MOVED) and while a replica takes over its master (CLUSTER FAILOVER).
// Tests run in order and build on each other (one cluster for the file).

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BUILD_DIR, sleep } from '../integration/lib/cluster.mjs';
import { useRedisCluster } from './lib/redis-cluster.mjs';

const PROBE = path.join(BUILD_DIR, 'tests', 'cluster_probe');
const LOOP_MS = 8000;

const h = useRedisCluster(); // 3 masters, 1 replica each

before(() => {
    assert.ok(fs.existsSync(PROBE), `${PROBE} is missing: build the cluster_probe target`);
});

/** Runs cluster_probe; resolves with the JSON line it prints. */
function probe(seeds, mode, arg, timeoutMs = 60000) {
    return new Promise((resolve, reject) => {
        execFile(PROBE, [seeds, mode, String(arg)], { timeout: timeoutMs }, (err, stdout, stderr) => {
            if (err) {
                reject(new Error(`cluster_probe ${mode} ${arg}: ${err.message}\n${stderr}`));
                return;
            }
            try {
                resolve(JSON.parse(stdout.trim().split('\n').pop()));
            } catch (e) {
                reject(new Error(`cluster_probe ${mode} ${arg} printed ${JSON.stringify(stdout)}: ${e.message}`));
            }
        });
    });
}

/** INFO errorstats / commandstats counter of one node: `errorstat_MOVED`, `cmdstat_asking`. */
async function stat(rc, port, section, name) {
    const text = await rc.redis(port, 'INFO', section);
    const m = text.match(new RegExp(`^${name}:(?:count|calls)=(\\d+)`, 'm'));
    return m ? Number(m[1]) : 0;
}

test('write 2000: every key pipelined through the client reads back, spread over the 3 masters', { timeout: 60000 }, async (t) => {
    const rc = h.cluster;
    const result = await probe(rc.seeds, 'write', 2000);
    t.diagnostic(`probe: ${JSON.stringify(result)}`);
    assert.deepEqual(result, { mode: 'write', n: 2000, ok: 2000, wrong: 0, errors: 0, nulls: 0 });

    const owners = new Set();
    for (let i = 0; i < 30; i++) {
        const port = await rc.masterOfKey(`k${i}`);
        owners.add(port);
        assert.equal(await rc.redis(port, 'GET', `k${i}`), `v${i}`, `k${i} on its master ${port}`);
    }
    assert.equal(owners.size, 3, `30 keys on the masters ${[...owners].join(', ')}`);
});

test('a slot migrating during the loop (ASK, then MOVED): no wrong value', { timeout: 60000 }, async (t) => {
    const rc = h.cluster;
    const key = 'l0'; // the probe's loop sets and reads l0 .. l999 over and over
    const slot = Number(await rc.redis(rc.nodes[0].port, 'CLUSTER', 'KEYSLOT', key));
    const masters = await rc.masters();
    const src = masters.find((m) => m.slots.some(([lo, hi]) => slot >= lo && slot <= hi));
    const dst = masters.find((m) => m !== src);
    const asking0 = await stat(rc, dst.port, 'commandstats', 'cmdstat_asking');
    const moved0 = await stat(rc, src.port, 'errorstats', 'errorstat_MOVED');

    const run = probe(rc.seeds, 'loop', LOOP_MS);
    await sleep(1000);
    await rc.redis(dst.port, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', src.id);
    await rc.redis(src.port, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', dst.id);
    await sleep(1000); // keys still on src: served there
    for (;;) {
        const keys = (await rc.redis(src.port, 'CLUSTER', 'GETKEYSINSLOT', slot, 100)).split('\n').filter(Boolean);
        if (keys.length === 0) {
            break;
        }
        await rc.redis(src.port, 'MIGRATE', '127.0.0.1', dst.port, '', 0, 5000, 'KEYS', ...keys);
    }
    await sleep(1500); // keys on dst, slot still src's: ASK
    for (const m of [dst, src, ...masters.filter((x) => x !== src && x !== dst)]) {
        await rc.redis(m.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', dst.id);
    }
    const result = await run; // the rest of the loop: MOVED from src, then dst directly
    t.diagnostic(`probe: ${JSON.stringify(result)}`);

    const asking = (await stat(rc, dst.port, 'commandstats', 'cmdstat_asking')) - asking0;
    const moved = (await stat(rc, src.port, 'errorstats', 'errorstat_MOVED')) - moved0;
    t.diagnostic(`slot ${slot} from ${src.port} to ${dst.port}: ASKING ${asking} on ${dst.port}, MOVED ${moved} from ${src.port}`);
    assert.equal(result.wrong, 0);
    assert.equal(result.errors + result.nulls, 0);
    assert.ok(result.ok > 1000, `only ${result.ok} values read back`);
    assert.ok(asking > 0, 'the loop never followed an ASK redirect');
    assert.ok(moved > 0, 'the loop never got a MOVED redirect');
    await rc.waitOk();
    assert.equal(await rc.masterOfKey(key), dst.port);
    assert.equal(await rc.redis(dst.port, 'EXISTS', key), '1');
});

test('a replica taking over during the loop (CLUSTER FAILOVER): no wrong value, few errors', { timeout: 90000 }, async (t) => {
    const rc = h.cluster;
    const masterPort = await rc.masterOfKey('l1');
    const master = (await rc.masters()).find((m) => m.port === masterPort);
    const replica = (await rc.replicas()).find((r) => r.masterId === master.id);
    assert.ok(replica, `master ${masterPort} has no replica`);

    const run = probe(rc.seeds, 'loop', LOOP_MS);
    await sleep(1500);
    await rc.failover(replica.port);
    const result = await run;
    t.diagnostic(`probe: ${JSON.stringify(result)}; failover of ${masterPort} to ${replica.port}`);

    assert.equal(result.wrong, 0);
    assert.ok(result.errors + result.nulls <= 20, `${result.errors} errors and ${result.nulls} NULL replies`);
    assert.ok(result.ok > 1000, `only ${result.ok} values read back`);
    assert.equal(await rc.masterOfKey('l1'), replica.port);
});
