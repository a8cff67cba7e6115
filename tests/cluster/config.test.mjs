// redis.cluster at start-up, with no Redis at all: a malformed seed list or too many seeds
// stop the gateway at once with status 2 (before any process is forked), and the worker
// refuses cluster mode with status 2 rather than run on redis.url beside clustered gateways.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { BUILD_DIR } from '../integration/lib/cluster.mjs';

function run(bin, cluster, extra = []) {
    const r = spawnSync(path.join(BUILD_DIR, bin), ['--set', `redis.cluster=${cluster}`, ...extra], {
        encoding: 'utf8', timeout: 10000,
    });
    return { status: r.status, signal: r.signal, stderr: r.stderr };
}

test('the gateway refuses a malformed redis.cluster with status 2', () => {
    for (const bad of ['nohost', '127.0.0.1:0', '127.0.0.1:70000', '127.0.0.1:7000,,127.0.0.1:7001', '[::1:7000']) {
        const r = run('imkit-gateway', bad, ['--set', 'gateway.processes=2']);
        assert.deepEqual([r.status, r.signal], [2, null], `${bad}: ${r.stderr}`);
        assert.match(r.stderr, /redis\.cluster: expected host:port,host:port,\.\.\. \(at most 32\)/, bad);
    }
});

test('the gateway takes at most 32 seeds', () => {
    const seeds = (n) => Array.from({ length: n }, (_, i) => `127.0.0.1:${7000 + i}`).join(',');
    const r = run('imkit-gateway', seeds(33));
    assert.deepEqual([r.status, r.signal], [2, null], r.stderr);
    assert.match(r.stderr, /at most 32/);
});

test('the worker refuses redis.cluster with status 2', () => {
    const r = run('imkit-worker', '127.0.0.1:7000');
    assert.deepEqual([r.status, r.signal], [2, null], r.stderr);
    assert.match(r.stderr, /does not run on a Redis Cluster yet/);
});
