// redis.cluster at start-up, with no Redis at all: a malformed seed list or too many seeds
// stop the gateway and the worker at once with status 2 (the gateway before any process is
// forked), and so does a redis.prefix holding '{' or '}', which would break the hash tags.

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

test('the worker refuses a malformed redis.cluster or too many seeds with status 2', () => {
    const seeds = (n) => Array.from({ length: n }, (_, i) => `127.0.0.1:${7000 + i}`).join(',');
    for (const bad of ['nohost', '127.0.0.1:0', '127.0.0.1:7000,,127.0.0.1:7001', seeds(33)]) {
        const r = run('imkit-worker', bad);
        assert.deepEqual([r.status, r.signal], [2, null], `${bad}: ${r.stderr}`);
        assert.match(r.stderr, /redis\.cluster: expected host:port,host:port,\.\.\. \(at most 32\)/, bad);
    }
});

test('both refuse a redis.prefix with a brace on a cluster with status 2', () => {
    for (const bin of ['imkit-gateway', 'imkit-worker']) {
        for (const prefix of ['app{1}:', 'app}:']) {
            const r = run(bin, '127.0.0.1:7000', ['--set', `redis.prefix=${prefix}`]);
            assert.deepEqual([r.status, r.signal], [2, null], `${bin} ${prefix}: ${r.stderr}`);
            assert.match(r.stderr, /redis\.prefix: no '\{' or '\}' on a Redis Cluster/, `${bin} ${prefix}`);
        }
    }
});
