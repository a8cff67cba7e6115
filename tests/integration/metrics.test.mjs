// GET /metrics on the admin listener, and the structured logs: a valid Prometheus
// exposition (each family typed once, histograms consistent); requests counted by operation
// and error code on the gateway; the workers' metrics, pushed to Redis every
// metrics.push_ms, served by every gateway; the job streams' lag and pending; a killed
// worker's series gone after the expiry; a prompt answer with imkit_redis_up 0 while Redis
// is paused; `?local=1`; request and job ids in the logs of both formats.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { useCluster, uid, assertError, waitFor, sleep } from './lib/cluster.mjs';

const PUSH_MS = 500; // the workers' push interval here; their hashes expire after 3x
const N = 30; // messages sent over WebSocket

const cluster = useCluster({
    gateways: 2,
    workers: 2,
    workerSet: { 'metrics.push_ms': PUSH_MS },
    // The second gateway logs JSON: the log test reads both formats.
    gatewaySet: (i) => (i === 1 ? { 'log.format': 'json' } : {}),
});

const A = uid('ma');
const B = uid('mb');
const C = uid('mc');
let a; // A on gateway 0
let b; // B on gateway 1
let c; // C on gateway 0, member of nothing
let room;

cluster.setup(async () => {
    a = await cluster.login(0, A);
    b = await cluster.login(1, B);
    c = await cluster.login(0, C);
    room = await a.call('room.create', { type: 'group', members: [B], name: 'metrics' });
});

// ---------------------------------------------------------------------------------------------
// Reading the exposition

/** GET /metrics on gateway i; resolves with {status, ms, type, text}. */
async function scrape(i = 0, query = '') {
    const t0 = Date.now();
    const r = await fetch(`http://127.0.0.1:${cluster.gateways[i].adminPort}/metrics${query}`, {
        signal: AbortSignal.timeout(10000),
    });
    const text = await r.text();
    return { status: r.status, ms: Date.now() - t0, type: r.headers.get('content-type') || '', text };
}

function parseLabels(s) {
    const labels = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/g;
    let m;
    let consumed = 0;
    while ((m = re.exec(s)) !== null) {
        labels[m[1]] = m[2].replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
        consumed = re.lastIndex;
    }
    assert.equal(consumed, s.length, `unparsable label set {${s}}`);
    return labels;
}

/**
 * Parses an exposition strictly: HELP/TYPE at most once per family, every sample after its
 * family's TYPE and in one block with the family's other samples, no series twice, values
 * numbers. Returns {types: Map(family → type), samples: [{name, family, labels, value}]}.
 */
function parse(text) {
    const types = new Map();
    const helps = new Set();
    const samples = [];
    const seen = new Set();
    const closed = new Set(); // families whose block of lines has ended
    let current = null;
    for (const line of text.split('\n')) {
        if (line === '') {
            continue;
        }
        let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
        if (m) {
            const [, what, fam, rest] = m;
            if (current !== fam) {
                if (current) {
                    closed.add(current);
                }
                assert.ok(!closed.has(fam), `family ${fam} appears in two places`);
                current = fam;
            }
            if (what === 'TYPE') {
                assert.ok(!types.has(fam), `two TYPE lines for ${fam}`);
                assert.match(rest, /^(counter|gauge|histogram|summary|untyped)$/, line);
                types.set(fam, rest);
            } else {
                assert.ok(!helps.has(fam), `two HELP lines for ${fam}`);
                helps.add(fam);
            }
            continue;
        }
        assert.ok(!line.startsWith('#'), `unexpected comment: ${line}`);
        m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
        assert.ok(m, `malformed sample line: ${line}`);
        const [, name, labelText, valueText] = m;
        const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
        assert.ok(valueText === 'NaN' || !Number.isNaN(value), `not a number: ${line}`);
        let family = name;
        if (!types.has(family)) {
            const base = name.replace(/_(bucket|sum|count)$/, '');
            family = types.get(base) === 'histogram' ? base : name;
        }
        assert.ok(types.has(family), `sample ${name} has no TYPE line before it`);
        assert.equal(current, family, `sample ${name} outside its family's block`);
        const key = `${name}{${labelText || ''}}`;
        assert.ok(!seen.has(key), `series twice: ${key}`);
        seen.add(key);
        samples.push({ name, family, labels: labelText ? parseLabels(labelText) : {}, value });
    }
    return { types, samples };
}

/** Samples called `name` whose labels include every pair of `where`. */
function find(parsed, name, where = {}) {
    return parsed.samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v));
}

function sum(parsed, name, where = {}) {
    return find(parsed, name, where).reduce((n, s) => n + s.value, 0);
}

function one(parsed, name, where = {}) {
    const found = find(parsed, name, where);
    assert.equal(found.length, 1, `${name} ${JSON.stringify(where)}: ${found.length} series`);
    return found[0].value;
}

/** Every histogram series: buckets cumulative and ascending in le, +Inf equal to _count. */
function assertHistograms(parsed) {
    for (const [fam, type] of parsed.types) {
        if (type !== 'histogram') {
            continue;
        }
        const series = new Map();
        for (const s of parsed.samples.filter((x) => x.family === fam)) {
            const { le, ...rest } = s.labels;
            const key = JSON.stringify(rest);
            if (!series.has(key)) {
                series.set(key, { buckets: [], count: null, sum: null });
            }
            const h = series.get(key);
            if (s.name === `${fam}_bucket`) {
                h.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value]);
            } else if (s.name === `${fam}_count`) {
                h.count = s.value;
            } else if (s.name === `${fam}_sum`) {
                h.sum = s.value;
            }
        }
        for (const [key, h] of series) {
            assert.ok(h.buckets.length >= 2 && h.count !== null && h.sum !== null, `${fam}${key}: incomplete`);
            for (let i = 1; i < h.buckets.length; i++) {
                assert.ok(h.buckets[i][0] > h.buckets[i - 1][0], `${fam}${key}: le not ascending`);
                assert.ok(h.buckets[i][1] >= h.buckets[i - 1][1], `${fam}${key}: buckets not cumulative`);
            }
            assert.equal(h.buckets.at(-1)[0], Infinity, `${fam}${key}: no +Inf bucket`);
            assert.equal(h.buckets.at(-1)[1], h.count, `${fam}${key}: +Inf bucket != _count`);
            assert.ok(h.sum >= 0, `${fam}${key}: negative sum`);
        }
    }
}

/** Names of the workers whose series the exposition holds. */
function workerNames(parsed) {
    return [...new Set(find(parsed, 'imkit_worker_batches_total').map((s) => s.labels.worker))].sort();
}

function consumerName(i) {
    return `${os.hostname().slice(0, 63)}-${cluster.workers[i].proc.child.pid}`;
}

async function settled(i = 0) {
    return waitFor(async () => {
        const p = parse((await scrape(i)).text);
        const lag = find(p, 'imkit_jobs_lag');
        const pending = find(p, 'imkit_jobs_pending');
        return lag.length === cluster.partitions && pending.length === cluster.partitions &&
            lag.every((s) => s.value === 0) && pending.every((s) => s.value === 0) ? p : null;
    }, 15000, 'imkit_jobs_lag and imkit_jobs_pending at 0 on every partition');
}

// ---------------------------------------------------------------------------------------------

test('GET /metrics: Prometheus text, every family typed once, histograms consistent, on both gateways', async () => {
    for (const i of [0, 1]) {
        const r = await scrape(i);
        assert.equal(r.status, 200);
        assert.match(r.type, /^text\/plain; version=0\.0\.4/);
        const p = parse(r.text);
        assertHistograms(p);
        const gw = cluster.gateways[i].id;
        assert.equal(one(p, 'imkit_redis_up', { gateway: gw }), 1);
        assert.equal(one(p, 'imkit_gateway_redis_up', { gateway: gw }), 1);
        assert.ok(one(p, 'process_resident_memory_bytes', { gateway: gw }) > 1024 * 1024);
        const start = one(p, 'process_start_time_seconds', { gateway: gw });
        assert.ok(Math.abs(start - Date.now() / 1000) < 600, `process_start_time_seconds ${start} is not about now`);
        assert.equal(one(p, 'imkit_gateway_sessions', { gateway: gw }), i === 0 ? 2 : 1);
        assert.equal(one(p, 'imkit_gateway_sessions_authenticated', { gateway: gw }), i === 0 ? 2 : 1);
        // Every gateway serves every worker's series, read from Redis.
        await waitFor(async () => workerNames(parse((await scrape(i)).text)).length === 2, 5000, 'both workers in the scrape');
    }
    const names = workerNames(parse((await scrape(0)).text));
    assert.deepEqual(names, [consumerName(0), consumerName(1)].sort());
    assert.equal(await cluster.redis('SCARD', `${cluster.prefix}metrics:workers`), 2);
    const ttl = await cluster.redis('PTTL', `${cluster.prefix}metrics:worker:${names[0]}`);
    assert.ok(ttl > 0 && ttl <= 3 * PUSH_MS, `the worker's hash expires within 3 pushes (PTTL ${ttl})`);
    assert.match(await cluster.redisRaw(['HGET', `${cluster.prefix}metrics:worker:${names[0]}`, 'text']), /^# HELP imkit_worker_jobs_total /);
});

test(`${N} messages over WebSocket: counted by op on the gateway, by kind and outcome on the workers`, async () => {
    const before = parse((await scrape(0)).text);
    const sentBefore = sum(before, 'imkit_gateway_requests_total', { op: 'msg.send' });
    const jobsBefore = sum(before, 'imkit_worker_jobs_total', { kind: 'imkit_msg_send', outcome: 'ok' });
    for (let i = 0; i < N; i++) {
        await a.call('msg.send', { room: room.id, cid: `m-${i}`, type: 'text', text: `hello ${i}` });
    }
    // Refused at once by the gateway (no text), and by the worker's function (not a member).
    assertError(await a.request('msg.send', { room: room.id, cid: 'bad', type: 'text' }), 'bad_request');
    assertError(await c.request('msg.send', { room: room.id, cid: 'x', type: 'text', text: 'x' }), 'forbidden');
    assertError(await a.request('no.such.op', {}), 'bad_request');
    await a.call('ping');

    const gw = cluster.gateways[0].id;
    const p = parse((await scrape(0)).text);
    assertHistograms(p);
    const sent = one(p, 'imkit_gateway_requests_total', { gateway: gw, op: 'msg.send' });
    assert.ok(sent - sentBefore >= N + 2, `requests_total{op="msg.send"} grew by ${sent - sentBefore}, expected >= ${N + 2}`);
    assert.equal(one(p, 'imkit_gateway_request_duration_seconds_count', { gateway: gw, op: 'msg.send' }), sent, 'one latency observation per request');
    assert.ok(one(p, 'imkit_gateway_request_duration_seconds_sum', { gateway: gw, op: 'msg.send' }) > 0);
    assert.ok(one(p, 'imkit_gateway_request_errors_total', { gateway: gw, op: 'msg.send', code: 'bad_request' }) >= 1);
    assert.ok(one(p, 'imkit_gateway_request_errors_total', { gateway: gw, op: 'msg.send', code: 'forbidden' }) >= 1);
    assert.ok(one(p, 'imkit_gateway_request_errors_total', { gateway: gw, op: 'invalid', code: 'bad_request' }) >= 1);
    assert.ok(one(p, 'imkit_gateway_requests_total', { gateway: gw, op: 'ping' }) >= 1);
    assert.ok(one(p, 'imkit_gateway_requests_total', { gateway: gw, op: 'auth' }) >= 2);
    assert.equal(find(p, 'imkit_gateway_request_errors_total', { op: 'ping' }).length, 0, 'no error for ping');
    // Errors never exceed requests, op by op.
    for (const s of find(p, 'imkit_gateway_requests_total', { gateway: gw })) {
        assert.ok(sum(p, 'imkit_gateway_request_errors_total', { gateway: gw, op: s.labels.op }) <= s.value, `errors > requests for ${s.labels.op}`);
    }
    assert.ok(one(p, 'imkit_gateway_redis_roundtrip_seconds_count', { gateway: gw }) >= N, 'each XADD timed');
    // B (gateway 1) received the N messages as events.
    await waitFor(async () => one(parse((await scrape(1)).text), 'imkit_gateway_deliveries_total', { gateway: cluster.gateways[1].id }) >= N, 5000, 'deliveries on gateway 1');

    // The workers' side arrives with their next push.
    const w = await waitFor(async () => {
        const q = parse((await scrape(1)).text);
        return sum(q, 'imkit_worker_jobs_total', { kind: 'imkit_msg_send', outcome: 'ok' }) - jobsBefore >= N ? q : null;
    }, 5000, `imkit_worker_jobs_total{kind="imkit_msg_send",outcome="ok"} to grow by ${N}`);
    assertHistograms(w);
    assert.ok(sum(w, 'imkit_worker_jobs_total', { kind: 'imkit_msg_send', outcome: 'error' }) >= 1, 'the forbidden send is an error reply');
    assert.ok(sum(w, 'imkit_worker_jobs_total', { kind: 'imkit_room_create', outcome: 'ok' }) >= 1);
    for (const name of workerNames(w)) {
        // Every acknowledged job (ok, error reply, dead) has its latency observed.
        const acked = ['ok', 'error', 'dead'].reduce((n, outcome) => n + sum(w, 'imkit_worker_jobs_total', { worker: name, outcome }), 0);
        assert.equal(one(w, 'imkit_worker_job_latency_seconds_count', { worker: name }), acked, `${name}: job latency count = acknowledged jobs`);
        assert.ok(one(w, 'imkit_worker_function_duration_seconds_count', { worker: name }) >= acked, `${name}: a Function call per job`);
        assert.ok(one(w, 'process_resident_memory_bytes', { worker: name }) > 1024 * 1024);
        assert.equal(one(w, 'imkit_worker_redis_errors_total', { worker: name }), 0);
    }
    assert.ok(sum(w, 'imkit_worker_job_latency_seconds_count') >= N + 1);
    assert.ok(sum(w, 'imkit_worker_batches_total') >= 1);
    assert.ok(sum(w, 'imkit_worker_events_published_total') >= N, 'a message event per send');
    assert.ok(sum(w, 'imkit_worker_answers_published_total') >= N + 1, 'an answer per job');
    await settled(1);
});

test('jobs lag grows while no worker runs, and comes back to 0 when one starts', async () => {
    await cluster.stopWorker(0);
    await cluster.stopWorker(1);
    const K = 5;
    // Unanswered while no worker runs (unavailable after 5 s): not awaited here.
    const sends = [];
    for (let i = 0; i < K; i++) {
        sends.push(a.request('msg.send', { room: room.id, cid: `lag-${i}`, type: 'text', text: `queued ${i}` }).catch((e) => e));
    }
    const p = await waitFor(async () => {
        const q = parse((await scrape(0)).text);
        return sum(q, 'imkit_jobs_lag') >= K ? q : null;
    }, 5000, `imkit_jobs_lag to reach ${K}`);
    assert.equal(sum(p, 'imkit_jobs_pending'), 0, 'nothing is pending: no worker read the jobs');
    assert.ok(one(p, 'imkit_gateway_pending_requests', { gateway: cluster.gateways[0].id }) >= K);
    // restartWorker() waits for every worker: start both, then wait.
    for (const i of [0, 1]) {
        cluster.workers[i] = cluster.startWorker(i, (cluster.workers[i].run || 1) + 1);
    }
    await cluster.waitWorkersReady();
    await settled(0);
    const answers = await Promise.all(sends);
    for (const res of answers) {
        assert.ok(res && (res.ok === true || res.error?.code === 'unavailable'), `send while no worker: ${JSON.stringify(res)}`);
    }
    // Applied once the workers came back, whatever the answer said.
    const history = await a.call('msg.history', { room: room.id, limit: 100 });
    for (let i = 0; i < K; i++) {
        assert.equal(history.messages.filter((m) => m.cid === `lag-${i}`).length, 1, `lag-${i} stored once`);
    }
});

test('a killed worker\'s metrics disappear once its hash expires; the others stay', async () => {
    await waitFor(async () => workerNames(parse((await scrape(0)).text)).length === 2, 5000, 'two workers in the scrape');
    const killed = consumerName(0);
    const kept = consumerName(1);
    await cluster.killWorker(0);
    const t0 = Date.now();
    await waitFor(async () => {
        const names = workerNames(parse((await scrape(0)).text));
        return !names.includes(killed) && names.includes(kept);
    }, 3 * PUSH_MS + 5000, `${killed}'s series to leave the scrape`);
    const ms = Date.now() - t0;
    assert.ok(ms <= 3 * PUSH_MS + 2000, `gone after ${ms} ms, the expiry is ${3 * PUSH_MS} ms`);
    assert.equal(await cluster.redis('EXISTS', `${cluster.prefix}metrics:worker:${killed}`), 0);
    const members = await cluster.redis('SMEMBERS', `${cluster.prefix}metrics:workers`);
    assert.ok(!members.includes(killed), `the scrape removed ${killed} from the set: ${JSON.stringify(members)}`);
    assert.ok(members.includes(kept));
    await waitFor(() => fs.readFileSync(cluster.gateways[0].proc.logFile, 'utf8').includes(`event=worker_metrics_expired worker=${killed}`), 2000, 'worker_metrics_expired in the log');
    await cluster.restartWorker(0);
    await waitFor(async () => workerNames(parse((await scrape(0)).text)).includes(consumerName(0)), 5000, 'the new worker in the scrape');
});

test('a worker exposition over 1 MiB is left out of the scrape, with a log line', async () => {
    const key = `${cluster.prefix}metrics:worker:huge`;
    await cluster.redis('EVAL', "redis.call('HSET', KEYS[1], 'text', '# HELP imkit_huge x\\n' .. string.rep('x', 1048576)) redis.call('PEXPIRE', KEYS[1], 60000)", 1, key);
    await cluster.redis('SADD', `${cluster.prefix}metrics:workers`, 'huge');
    try {
        const r = await scrape(0);
        assert.equal(r.status, 200);
        assert.ok(!r.text.includes('imkit_huge'), 'the oversized exposition is not served');
        assert.ok(workerNames(parse(r.text)).length >= 1, 'the real workers still are');
        await waitFor(() => fs.readFileSync(cluster.gateways[0].proc.logFile, 'utf8').includes('event=worker_metrics_skipped worker=huge'), 2000, 'worker_metrics_skipped in the log');
    } finally {
        await cluster.redis('DEL', key);
        await cluster.redis('SREM', `${cluster.prefix}metrics:workers`, 'huge');
    }
});

test('GET /metrics answers within a second or so with imkit_redis_up 0 while Redis is paused', async () => {
    cluster.pauseRedis();
    try {
        for (let round = 0; round < 2; round++) {
            const r = await scrape(0);
            assert.equal(r.status, 200);
            assert.ok(r.ms < 2500, `GET /metrics took ${r.ms} ms with Redis paused`);
            const p = parse(r.text);
            assert.equal(one(p, 'imkit_redis_up', { gateway: cluster.gateways[0].id }), 0);
            assert.equal(find(p, 'imkit_worker_batches_total').length, 0, 'no worker series without Redis');
            assert.equal(find(p, 'imkit_jobs_lag').length, 0, 'no stream series without Redis');
            assert.equal(one(p, 'imkit_gateway_sessions', { gateway: cluster.gateways[0].id }), 2, 'the gateway\'s own series are there');
            // /healthz is not held either.
            const h = await fetch(`http://127.0.0.1:${cluster.gateways[0].adminPort}/healthz`, { signal: AbortSignal.timeout(3000) });
            await h.text();
        }
    } finally {
        cluster.resumeRedis();
    }
    await waitFor(async () => one(parse((await scrape(0)).text), 'imkit_redis_up', { gateway: cluster.gateways[0].id }) === 1, 10000, 'imkit_redis_up back to 1');
    await waitFor(async () => workerNames(parse((await scrape(0)).text)).length === 2, 10000, 'both workers back in the scrape');
});

test('?local=1 serves this gateway\'s series only', async () => {
    const r = await scrape(0, '?local=1');
    assert.equal(r.status, 200);
    const p = parse(r.text);
    assert.ok(find(p, 'imkit_gateway_sessions').length === 1);
    assert.equal(find(p, 'imkit_redis_up').length, 0);
    assert.equal(p.samples.filter((s) => s.name.startsWith('imkit_worker_') || s.name.startsWith('imkit_jobs_')).length, 0);
});

test('logs: every line about a request names session and req, every line about a job names job and entry; text and JSON', async () => {
    await a.call('msg.send', { room: room.id, cid: 'log-1', type: 'text', text: 'log me' });
    await b.call('msg.send', { room: room.id, cid: 'log-2', type: 'text', text: 'log me too' });
    const gwText = fs.readFileSync(cluster.gateways[0].proc.logFile, 'utf8');
    const answers = [...gwText.matchAll(/event=answer session=(\d+) req=(\d+) op=msg\.send status=ok ms=[\d.]+/g)];
    assert.ok(answers.length >= N, `${answers.length} answer lines for msg.send on gateway 0 (log.level debug)`);

    // The job id is "<gateway>.<boot>.<req>": the worker's line leads back to the gateway's.
    const workerText = cluster.workers.map((w) => fs.readFileSync(w.proc.logFile, 'utf8')).join('\n');
    const jobLine = /event=job_done job=(gw1\.[A-Za-z0-9_-]+)\.(\d+) entry=\d+-\d+ stream=imkit:jobs:\S+ kind=imkit_msg_send outcome=ok ms=\d+/g;
    const jobs = [...workerText.matchAll(jobLine)];
    assert.ok(jobs.length >= N, `${jobs.length} job_done lines for gateway 1's sends`);
    const reqs = new Set(answers.map((m) => m[2]));
    assert.ok(jobs.some((m) => reqs.has(m[2])), 'a worker job id ends with a req the gateway logged');
    for (const line of workerText.split('\n').filter((l) => /event=job_(dead|failed|done)/.test(l))) {
        assert.match(line, / job=\S+ entry=\S+ stream=\S+ kind=/, `job line without ids: ${line}`);
    }

    // Gateway 1 logs JSON: one object per line, the same fields.
    const json = fs.readFileSync(cluster.gateways[1].proc.logFile, 'utf8').split('\n').filter((l) => l.startsWith('{'));
    assert.ok(json.length > 0, 'JSON lines on gateway 1');
    const records = json.map((l) => JSON.parse(l));
    for (const r of records) {
        assert.equal(typeof r.ts, 'string');
        assert.equal(r.prog, 'imkit-gateway');
        assert.match(r.level, /^(debug|info|warn|error)$/);
    }
    const answered = records.filter((r) => r.event === 'answer' && r.op === 'msg.send');
    assert.ok(answered.length >= 1, 'answer records in JSON');
    assert.match(answered[0].session, /^\d+$/);
    assert.match(answered[0].req, /^\d+$/);
    assert.equal(answered[0].status, 'ok');
});
