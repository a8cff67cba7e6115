// scripts/autoscale against the real thing: a redis-server, a gateway and the workers the
// autoscaler starts. Chat clients flood messages faster than one worker applies them; the
// autoscaler must add workers, every message must end up in history exactly once, the count
// must come back to --min once the streams are idle, a worker killed with SIGKILL must be
// replaced, and SIGTERM must stop every worker gracefully (nothing left pending) and exit 0.
//
// Workers run with worker.batch=1 so that each job costs three round trips: one worker then
// surely drains slower than the gateway takes messages in, whatever the machine. The flood
// goes on until the autoscaler has scaled up (bounded by a message cap), so the checks are
// on outcomes, not on timings.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILD_DIR, Cluster, Proc, sleep, waitFor } from '../integration/lib/cluster.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const AUTOSCALE = path.resolve(here, '..', '..', 'scripts', 'autoscale');

const PARTITIONS = 3; // not the default: the autoscaler must read it from its configuration
const MIN = 1;
const MAX = 4;
const ROUND = 2000; // messages sent at once, spread over the clients
const MIN_MESSAGES = 8000;
const MAX_MESSAGES = 40000;
const N_CLIENTS = 4;

const SCALER_ARGS = [
    '--min', MIN, '--max', MAX, '--interval', '0.5', '--scale-up-lag', '300',
    '--scale-up-intervals', '2', '--cooldown-s', '1', '--idle-s', '3', '--idle-lag', '0',
    '--stop-timeout-s', '10',
].map(String);

/** The integration cluster with no workers of its own: the autoscaler runs them. */
class AutoscaleCluster extends Cluster {
    constructor(opts) {
        super({ ...opts, workers: 0 });
        this.scaler = null;
    }

    // Cluster.start() waits for the workers once Redis and the gateway are up: the autoscaler
    // is started at that point, and the wait then sees its first worker get ready.
    async waitWorkersReady() {
        if (!this.scaler) {
            this.startScaler();
        }
        return super.waitWorkersReady();
    }

    startScaler() {
        const args = [
            ...SCALER_ARGS,
            '--worker', this.workerBin,
            '--set', `jobs.partitions=${PARTITIONS}`,
            '--set', 'log.level=debug',
            '--', '--set', 'worker.batch=1', '--set', 'worker.block_ms=500',
        ];
        const env = { IMKIT_REDIS_URL: this.redisUrl };
        this.scaler = this.track(new Proc('autoscale', AUTOSCALE, args, path.join(this.dir, 'autoscale.log'), env));
    }

    /** The autoscaler's own log records, parsed (key=value, values maybe quoted). */
    scalerRecords() {
        const text = fs.readFileSync(this.scaler.logFile, 'utf8');
        return text.split('\n').filter((l) => l.includes('prog=imkit-autoscale')).map(parseRecord);
    }

    events(name) {
        return this.scalerRecords().filter((r) => r.event === name);
    }

    /** Pids of the running imkit-worker processes whose parent is the autoscaler. */
    workerChildren() {
        return childProcesses(this.scaler.child.pid).filter((p) => p.comm === 'imkit-worker' && p.state !== 'Z').map((p) => p.pid);
    }

    /** Total lag and pending of the group `workers` over the job streams. */
    async backlog() {
        let lag = 0;
        let pending = 0;
        for (let p = 0; p < PARTITIONS; p++) {
            const groups = await this.redis('XINFO', 'GROUPS', `${this.prefix}jobs:${p}`).catch(() => []);
            const g = (groups || []).map(asObject).find((x) => x.name === 'workers');
            if (g) {
                lag += Number(g.lag);
                pending += Number(g.pending);
            }
        }
        return { lag, pending };
    }

    /** Names of every consumer the group has handed a job to, over the streams. */
    async consumers() {
        const names = new Set();
        for (let p = 0; p < PARTITIONS; p++) {
            const list = await this.redis('XINFO', 'CONSUMERS', `${this.prefix}jobs:${p}`, 'workers').catch(() => []);
            for (const c of list || []) {
                names.add(asObject(c).name);
            }
        }
        return names;
    }
}

function parseRecord(line) {
    const rec = {};
    for (const m of line.matchAll(/(\w+)=("[^"]*"|\S*)/g)) {
        rec[m[1]] = m[2].startsWith('"') ? m[2].slice(1, -1) : m[2];
    }
    return rec;
}

/** redis-cli --json gives a RESP2 field/value array or an object: an object either way. */
function asObject(v) {
    if (!Array.isArray(v)) {
        return v || {};
    }
    const o = {};
    for (let i = 0; i + 1 < v.length; i += 2) {
        o[v[i]] = v[i + 1];
    }
    return o;
}

/** {pid, comm, state} of the processes whose parent is `ppid`, from /proc. */
function childProcesses(ppid) {
    const out = [];
    for (const name of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(name)) {
            continue;
        }
        let stat;
        try {
            stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
        } catch {
            continue; // exited meanwhile
        }
        // pid (comm) state ppid ...: comm may hold spaces and parentheses.
        const close = stat.lastIndexOf(')');
        const [state, parent] = stat.slice(close + 2).split(' ');
        if (Number(parent) === ppid) {
            out.push({ pid: Number(name), comm: stat.slice(stat.indexOf('(') + 1, close), state });
        }
    }
    return out;
}

/** Whether `pid` is a live (not zombie) imkit-worker process. */
function isLiveWorker(pid) {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        const close = stat.lastIndexOf(')');
        return stat.slice(stat.indexOf('(') + 1, close) === 'imkit-worker' && stat[close + 2] !== 'Z';
    } catch {
        return false;
    }
}

function run(cmd, args, env = {}) {
    return new Promise((resolve) => {
        execFile(cmd, args, { env: { ...process.env, ...env }, timeout: 10000 }, (err, stdout, stderr) => {
            resolve({ code: err ? err.code : 0, stdout, stderr });
        });
    });
}

// -------------------------------------------------------------------------------------------
// The command line alone (no Redis needed)

test('--help documents every option with its default', async () => {
    const r = await run(AUTOSCALE, ['--help']);
    assert.equal(r.code, 0, r.stderr);
    const options = ['--min', '--max', '--interval', '--scale-up-lag', '--scale-up-intervals', '--idle-lag',
        '--idle-s', '--cooldown-s', '--stop-timeout-s', '--worker', '--config', '--set'];
    for (const opt of options) {
        const line = r.stdout.split(/\n(?=  -)/).find((l) => l.trimStart().startsWith(opt + ' '));
        assert.ok(line, `--help does not list ${opt}:\n${r.stdout}`);
        assert.match(line.replace(/\s+/g, ' '), /\(default: [^)]+\)/, `--help gives no default for ${opt}: ${line}`);
    }
});

test('a bad configuration stops it at once with status 2, as the binaries do', async () => {
    const cases = [
        [['--set', 'jobs.partitions=0'], {}, /jobs\.partitions/],
        [[], { IMKIT_REDIS_URL: 'http://nope' }, /redis\.url/],
        [['--config', '/nonexistent/imkit.conf'], {}, /cannot open/],
        [['--worker', '/nonexistent/imkit-worker'], {}, /imkit-worker/],
        [['--min', '3', '--max', '2'], {}, /--min/],
    ];
    for (const [args, env, message] of cases) {
        const r = await run(AUTOSCALE, args, env);
        assert.equal(r.code, 2, `${args.join(' ')} ${JSON.stringify(env)}: status ${r.code}, ${r.stderr}`);
        assert.match(r.stderr, message);
    }
});

test('a configuration the workers refuse stops it with status 2', async () => {
    const worker = path.join(BUILD_DIR, 'imkit-worker');
    const r = await run(AUTOSCALE, ['--worker', worker, '--', '--set', 'no.such=key'], { IMKIT_REDIS_URL: 'redis://127.0.0.1:1/0' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /unknown configuration key 'no\.such'/);
    assert.match(r.stderr, /event=worker_config_error/);
});

// -------------------------------------------------------------------------------------------
// Against a running system

const cluster = new AutoscaleCluster({
    logLevel: 'info',
    partitions: PARTITIONS,
    set: { 'jobs.partitions': PARTITIONS },
    gatewaySet: {
        'limits.rate': 100000,
        'limits.burst': 100000,
        'limits.rate_abuse': 1000000,
        'limits.slow_reader_bytes': 64 * 1024 * 1024,
        'gateway.request_timeout_ms': 60000,
    },
});
let started = false;
const sent = new Map(); // room -> Set of cids sent there
const answers = []; // promises of every send's answer
const clients = [];
const everWorkers = new Set(); // every worker pid the autoscaler reported

before(async () => {
    try {
        await cluster.start();
    } catch (e) {
        cluster.failed = true; // keeps the log folder
        const scaler = cluster.scaler ? `\n--- autoscale ---\n${cluster.scaler.tail(80)}` : '';
        process.stderr.write(`[autoscale] start failed: ${e.message}${scaler}\n`);
        throw e;
    }
    started = true;
}, { timeout: 60000 });

afterEach((t) => {
    if (t.passed === false && started) {
        process.stderr.write(`\n[autoscale] "${t.name}" failed; logs:\n${cluster.logTails(80)}\n--- autoscale (${cluster.scaler.describeExit()}) ---\n${cluster.scaler.tail(80)}\n`);
        cluster.failed = true;
    }
});

after(async () => {
    for (const c of clients) {
        c.terminate();
    }
    if (cluster.scaler && cluster.scaler.alive) {
        cluster.scaler.child.kill('SIGTERM');
        await Promise.race([cluster.scaler.exited, sleep(20000)]);
    }
    await cluster.stop();
}, { timeout: 40000 });

function recordPids() {
    for (const ev of ['scale_up', 'restart', 'worker_started']) {
        for (const r of cluster.events(ev).filter((x) => x.pid)) {
            everWorkers.add(Number(r.pid));
        }
    }
    for (const pid of cluster.workerChildren()) {
        everWorkers.add(pid);
    }
}

async function setupClients() {
    await cluster.admin('PUT', '/v1/clients/observer', { name: 'Observer' });
    for (let i = 0; i < N_CLIENTS; i++) {
        const id = `sender-${i}`;
        const room = `flood-${i}`;
        assert.equal((await cluster.admin('PUT', `/v1/clients/${id}`, { name: id })).status, 200);
        const r = await cluster.admin('POST', '/v1/rooms', { type: 'group', id: room, owner: id, members: [id, 'observer'] });
        assert.equal(r.status, 201, r.text);
        const c = await cluster.login(0, id);
        c.room = room;
        sent.set(room, new Set());
        clients.push(c);
    }
}

/** Sends one round of messages without waiting for the answers. */
function sendRound(round) {
    for (let k = 0; k < ROUND / N_CLIENTS; k++) {
        for (const c of clients) {
            const cid = `r${round}-${k}`;
            sent.get(c.room).add(cid);
            const data = { room: c.room, cid, type: 'text', text: `message ${cid}` };
            answers.push(c.request('msg.send', data, { timeoutMs: 120000 }));
        }
    }
}

function peakWorkers() {
    return Math.max(0, ...cluster.events('scale_up').map((r) => Number(r.workers)));
}

/** Every message of `room`, read back through the admin API page by page. */
async function history(room) {
    const out = [];
    let after = 0;
    for (;;) {
        const r = await cluster.admin('GET', `/v1/rooms/${room}/messages?after=${after}&limit=100`);
        assert.equal(r.status, 200, r.text);
        out.push(...r.body.messages);
        if (!r.body.has_more || r.body.messages.length === 0) {
            return out;
        }
        after = r.body.messages[r.body.messages.length - 1].seq;
    }
}

test('starts --min workers and reads the configured streams', { timeout: 30000 }, async () => {
    await waitFor(() => cluster.workerChildren().length === MIN, 15000, `${MIN} worker running`, 100);
    const start = cluster.events('start')[0];
    assert.ok(start, 'no start record');
    assert.equal(start.streams, String(PARTITIONS));
    assert.equal(start.min, String(MIN));
    assert.equal(start.max, String(MAX));
    await waitFor(() => cluster.events('sample').length > 0, 10000, 'a first reading of the backlog', 100);
    recordPids();
});

test('a flood of messages makes it add workers; every message is applied once', { timeout: 120000 }, async (t) => {
    await setupClients();
    let round = 0;
    const t0 = Date.now();
    while (round * ROUND < MAX_MESSAGES) {
        sendRound(round++);
        await sleep(250);
        if (round * ROUND >= MIN_MESSAGES && peakWorkers() >= 3) {
            break;
        }
    }
    const total = round * ROUND;
    t.diagnostic(`sent ${total} messages in ${Date.now() - t0} ms; peak workers ${peakWorkers()}`);

    // Every send is answered, ok with a seq (a late answer may be `unavailable`: the job is
    // still applied, which the history check below shows).
    const results = await Promise.all(answers);
    const refused = results.filter((r) => !r.ok && r.error.code !== 'unavailable');
    assert.deepEqual(refused.slice(0, 3), [], `${refused.length} sends refused`);
    t.diagnostic(`answers: ${results.filter((r) => r.ok).length} ok, ${results.length - results.filter((r) => r.ok).length} unavailable`);

    const ups = cluster.events('scale_up');
    assert.ok(ups.length >= 1, 'no scale_up record');
    assert.ok(peakWorkers() > MIN, `the workers never rose above ${MIN}`);
    assert.ok(peakWorkers() <= MAX, `more than --max workers: ${peakWorkers()}`);
    for (const r of ups) {
        assert.ok(Number(r.lag) + Number(r.pending) > 0, `scale_up with no backlog: ${JSON.stringify(r)}`);
        assert.ok(r.ts && r.pid, `scale_up record without ts or pid: ${JSON.stringify(r)}`);
    }
    recordPids();

    // Nothing left to do: no lag, nothing pending.
    await waitFor(async () => {
        const b = await cluster.backlog();
        return b.lag === 0 && b.pending === 0;
    }, 60000, 'lag and pending back to 0', 250);

    // Several workers really took jobs: their consumers (named <host>-<pid>) are in the group,
    // and each is one of the autoscaler's workers.
    const consumers = [...(await cluster.consumers())];
    t.diagnostic(`consumers that got jobs: ${consumers.join(' ')}`);
    assert.ok(consumers.length > MIN, `only ${consumers.length} consumer(s) got jobs`);
    for (const name of consumers) {
        const pid = Number(name.slice(name.lastIndexOf('-') + 1));
        assert.ok(everWorkers.has(pid), `consumer ${name} is not a worker of the autoscaler (${[...everWorkers].join(' ')})`);
    }

    // Every message is in its room's history exactly once.
    for (const [room, cids] of sent) {
        const msgs = await history(room);
        const stored = msgs.map((m) => m.cid);
        assert.equal(new Set(stored).size, stored.length, `${room}: a cid is stored twice`);
        assert.equal(stored.length, cids.size, `${room}: ${stored.length} messages stored, ${cids.size} sent`);
        assert.ok(stored.every((cid) => cids.has(cid)), `${room}: a stored message was never sent`);
        assert.deepEqual(msgs.map((m) => m.seq), msgs.map((_, i) => i + 1), `${room}: seqs are not 1..n`);
    }
    assert.equal((await cluster.redis('XLEN', `${cluster.prefix}jobs:dead`)) || 0, 0, 'jobs were dead-lettered');
});

test('once idle, the count comes back to --min, each removed worker exiting 0', { timeout: 90000 }, async (t) => {
    const t0 = Date.now();
    await waitFor(() => cluster.workerChildren().length === MIN, 60000, `the workers back to ${MIN}`, 200);
    t.diagnostic(`back to ${MIN} worker ${Date.now() - t0} ms after the backlog was 0`);
    const downs = cluster.events('scale_down');
    assert.ok(downs.length >= 1, 'no scale_down record');
    assert.equal(downs[downs.length - 1].workers, String(MIN));
    for (const r of downs) {
        assert.equal(r.lag, '0', `scale_down with lag: ${JSON.stringify(r)}`);
    }
    // A removed worker finished its batch and exited by itself: status 0, no SIGKILL.
    await waitFor(() => cluster.events('worker_stopped').length >= downs.length, 15000, 'every removed worker to exit', 200);
    for (const r of cluster.events('worker_stopped')) {
        assert.equal(r.exit, '0', `a removed worker exited ${r.exit}`);
    }
    assert.equal(cluster.events('worker_killed').length, 0, 'a worker needed SIGKILL');
    // It stays at the minimum while idle.
    await sleep(2000);
    assert.equal(cluster.workerChildren().length, MIN);
    recordPids();
});

test('a worker that dies is replaced', { timeout: 60000 }, async () => {
    const [victim] = cluster.workerChildren();
    process.kill(victim, 'SIGKILL');
    await waitFor(() => cluster.events('restart').length >= 1, 30000, 'a restart record', 100);
    const died = cluster.events('worker_died').find((r) => Number(r.pid) === victim);
    assert.ok(died, 'no worker_died record for the killed worker');
    assert.equal(died.exit, 'SIGKILL');
    await waitFor(() => {
        const now = cluster.workerChildren();
        return now.length === MIN && !now.includes(victim);
    }, 15000, 'a new worker in place of the killed one', 100);
    recordPids();
    // The replacement works: a message sent now is applied.
    const c = clients[0];
    const r = await c.request('msg.send', { room: c.room, cid: 'after-restart', type: 'text', text: 'still there?' }, { timeoutMs: 20000 });
    assert.equal(r.ok, true, JSON.stringify(r));
});

test('SIGTERM stops every worker gracefully and exits 0', { timeout: 60000 }, async () => {
    recordPids();
    const running = cluster.workerChildren();
    assert.equal(running.length, MIN);
    cluster.scaler.expectedStop = true;
    cluster.scaler.child.kill('SIGTERM');
    const exit = await Promise.race([cluster.scaler.exited, sleep(30000).then(() => null)]);
    assert.deepEqual(exit, { code: 0, signal: null }, `autoscale exit: ${JSON.stringify(exit)}`);
    for (const pid of everWorkers) {
        assert.ok(!isLiveWorker(pid), `worker ${pid} still runs after the autoscaler stopped`);
    }
    for (const pid of running) {
        const r = cluster.events('worker_stopped').find((x) => Number(x.pid) === pid);
        assert.ok(r, `no worker_stopped record for ${pid}`);
        assert.equal(r.exit, '0');
    }
    assert.ok(cluster.events('stopped').length === 1, 'no stopped record');
    const b = await cluster.backlog();
    assert.deepEqual(b, { lag: 0, pending: 0 });
    // Their Redis connections are gone (a worker's is blocked in XREADGROUP most of the time).
    let clientsList = '';
    await waitFor(async () => {
        clientsList = await cluster.redisRaw(['CLIENT', 'LIST']);
        return !/cmd=xreadgroup/.test(clientsList);
    }, 10000, `the workers' connections closed (${clientsList})`, 200);
});
