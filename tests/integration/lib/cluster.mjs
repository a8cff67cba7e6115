// Integration harness: starts a real redis-server, N imkit-worker and M imkit-gateway
// processes on free loopback ports, and gives tests a WebSocket client, an admin API
// client, a JWT minter and redis-cli for inspection. Used by every tests/integration/*.test.mjs.
// With IMKIT_TEST_REDIS=cluster the Redis is a real Redis Cluster of 3 masters instead
// (redis.cluster in every process; redis-cli follows MOVED with -c).
//
// Every wait here is bounded: a broken server fails a test, it never hangs the suite.

import { spawn, execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Directory holding imkit-gateway and imkit-worker: $IMKIT_BUILD_DIR or <repo>/build. */
export const BUILD_DIR = path.resolve(process.env.IMKIT_BUILD_DIR || path.join(here, '..', '..', '..', 'build'));

export const DEFAULT_REQUEST_TIMEOUT_MS = 8000; // the server answers `unavailable` after 5 s
export const DEFAULT_EVENT_TIMEOUT_MS = 5000;
const START_TIMEOUT_MS = 15000;
const STOP_GRACE_MS = 3000;
const LOG_TAIL_LINES = Number(process.env.IMKIT_TEST_LOG_TAIL || 60);

/** True when the tests run against a Redis Cluster (IMKIT_TEST_REDIS=cluster). */
export const ON_REDIS_CLUSTER = process.env.IMKIT_TEST_REDIS === 'cluster';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves with the value of `promise`, or rejects after `ms` with `what` in the message. */
export function withTimeout(promise, ms, what) {
    let timer;
    const t = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    });
    return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/** Polls `fn` until it returns a truthy value; returns it, or throws after `ms`. */
export async function waitFor(fn, ms, what, intervalMs = 50) {
    const deadline = Date.now() + ms;
    let lastErr = null;
    for (;;) {
        try {
            const v = await fn();
            if (v) {
                return v;
            }
        } catch (e) {
            lastErr = e;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${ms} ms waiting for ${what}` + (lastErr ? ` (last error: ${lastErr.message})` : ''));
        }
        await sleep(intervalMs);
    }
}

// ---------------------------------------------------------------------------------------------
// JWT (HS256) with node:crypto only

export function b64url(input) {
    return Buffer.from(input).toString('base64url');
}

/**
 * Mints a JWT. `claims` is the payload as given (add `exp` yourself, or use `token()` below).
 * `opts.kid` sets the header's kid, `opts.alg` the header's alg (the signature is HS256
 * unless alg is 'none', which gives an empty signature), `opts.header` merges extra fields.
 */
export function jwt(secret, claims, opts = {}) {
    const header = { alg: opts.alg || 'HS256', typ: 'JWT', ...(opts.kid !== undefined ? { kid: opts.kid } : {}), ...(opts.header || {}) };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    if (header.alg === 'none') {
        return `${signingInput}.`;
    }
    const sig = createHmac('sha256', Buffer.from(secret, 'utf8')).update(signingInput).digest('base64url');
    return `${signingInput}.${sig}`;
}

export const nowSec = () => Math.floor(Date.now() / 1000);

/** A random id in the contract's alphabet, unique enough for one test run. */
export function uid(prefix = 'u') {
    return `${prefix}-${randomBytes(5).toString('hex')}`;
}

// ---------------------------------------------------------------------------------------------
// Ports, processes, logs

/** Picks `n` distinct free loopback ports (all held open together, then closed). */
export async function freePorts(n) {
    const servers = [];
    try {
        for (let i = 0; i < n; i++) {
            const s = net.createServer();
            await new Promise((resolve, reject) => {
                s.once('error', reject);
                s.listen(0, '127.0.0.1', resolve);
            });
            servers.push(s);
        }
        return servers.map((s) => s.address().port);
    } finally {
        await Promise.all(servers.map((s) => new Promise((r) => s.close(() => r()))));
    }
}

function tailFile(file, lines) {
    try {
        const text = fs.readFileSync(file, 'utf8');
        const all = text.split('\n');
        if (all.length && all[all.length - 1] === '') {
            all.pop();
        }
        return all.slice(-lines).join('\n');
    } catch (e) {
        return `(cannot read ${file}: ${e.message})`;
    }
}

function httpGetStatus(port, p, timeoutMs = 1000) {
    return fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(timeoutMs) }).then(async (r) => {
        await r.arrayBuffer();
        return r.status;
    });
}

function tcpPing(port, timeoutMs = 1000) {
    // One RESP PING over a raw socket: no dependency on redis-cli for the readiness wait.
    return new Promise((resolve) => {
        const sock = net.connect(port, '127.0.0.1');
        let buf = '';
        const done = (v) => {
            clearTimeout(timer);
            sock.destroy();
            resolve(v);
        };
        const timer = setTimeout(() => done(false), timeoutMs);
        sock.on('connect', () => sock.write('*1\r\n$4\r\nPING\r\n'));
        sock.on('data', (d) => {
            buf += d.toString();
            if (buf.includes('\r\n')) {
                done(buf.startsWith('+PONG'));
            }
        });
        sock.on('error', () => done(false));
    });
}

export class Proc {
    constructor(name, cmd, args, logFile, env) {
        this.name = name;
        this.cmd = cmd;
        this.args = args;
        this.logFile = logFile;
        this.exit = null; // {code, signal} once exited
        this.expectedStop = false;
        const fd = fs.openSync(logFile, 'a');
        fs.writeSync(fd, `# ${new Date().toISOString()} ${cmd} ${args.map((a) => JSON.stringify(a)).join(' ')}\n`);
        this.child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
        // A server left running must never keep the test file's process alive (the runner
        // would wait for it forever); the 'exit' handler below kills whatever is left.
        this.child.unref();
        fs.closeSync(fd);
        this.exited = new Promise((resolve) => {
            this.child.on('exit', (code, signal) => {
                this.exit = { code, signal };
                resolve(this.exit);
            });
            this.child.on('error', (err) => {
                this.exit = { code: null, signal: null, error: err.message };
                resolve(this.exit);
            });
        });
    }

    get alive() {
        return this.exit === null;
    }

    describeExit() {
        if (!this.exit) {
            return 'running';
        }
        if (this.exit.error) {
            return `failed to start: ${this.exit.error}`;
        }
        return this.exit.signal ? `killed by ${this.exit.signal}` : `exited with code ${this.exit.code}`;
    }

    tail(lines = LOG_TAIL_LINES) {
        return tailFile(this.logFile, lines);
    }

    async stop() {
        if (!this.alive) {
            return this.exit;
        }
        this.expectedStop = true;
        this.child.kill('SIGTERM');
        const r = await Promise.race([this.exited, sleep(STOP_GRACE_MS).then(() => null)]);
        if (r) {
            return r;
        }
        this.neededKill = true;
        this.child.kill('SIGKILL');
        return withTimeout(this.exited, 2000, `${this.name} to die after SIGKILL`);
    }

    /**
     * What went wrong with this process's life, or null: it died unasked, it needed SIGKILL,
     * or it exited non-zero after SIGTERM (a sanitizer report does that).
     */
    problem() {
        if (this.exit && !this.expectedStop) {
            return `${this.name} ${this.describeExit()} while the tests ran`;
        }
        if (this.neededKill) {
            return `${this.name} did not exit within ${STOP_GRACE_MS} ms of SIGTERM (killed)`;
        }
        if (this.exit && (this.exit.code !== 0 || this.exit.signal)) {
            return `${this.name} ${this.describeExit()} after SIGTERM (expected a clean exit 0)`;
        }
        return null;
    }
}

const allProcs = new Set();
process.on('exit', () => {
    for (const p of allProcs) {
        if (p.alive) {
            try {
                p.child.kill('SIGKILL');
            } catch {
                // already gone
            }
        }
    }
});

// ---------------------------------------------------------------------------------------------
// The cluster

export class Cluster {
    /**
     * opts: gateways (M, default 1), workers (N, default 1), secret (the default JWT secret),
     * jwtSecrets (auth.jwt_secrets value), apiKey / apiKeys (admin.api_keys value), set (extra
     * --set for every process), gatewaySet (an object, or i => object for gateway i), workerSet,
     * logLevel, allowUncleanExit (useCluster
     * then does not fail the file when a process dies unasked, needs SIGKILL or exits non-zero).
     */
    constructor(opts = {}) {
        this.opts = opts;
        this.nGateways = opts.gateways ?? 1;
        this.nWorkers = opts.workers ?? 1;
        this.secret = opts.secret || `secret-${randomBytes(12).toString('hex')}`;
        this.jwtSecrets = opts.jwtSecrets || this.secret;
        this.apiKey = opts.apiKey || `key-${randomBytes(12).toString('hex')}`;
        this.apiKeys = opts.apiKeys || this.apiKey;
        this.prefix = opts.prefix || 'imkit:';
        this.partitions = opts.partitions || 4;
        this.logLevel = opts.logLevel || process.env.IMKIT_TEST_LOG_LEVEL || 'debug';
        this.gateways = [];
        this.workers = [];
        this.redisProc = null;
        this.redisCluster = null; // a RedisCluster (tests/cluster/lib) when ON_REDIS_CLUSTER
        this.clients = new Set();
        this.failed = false;
        this.setupFns = [];
        this.serverProcs = []; // every gateway and worker process ever started, restarts included
    }

    /** Registers a setup function run (in order) once the cluster is up; see useCluster(). */
    setup(fn) {
        this.setupFns.push(fn);
    }

    get gatewayBin() {
        return path.join(BUILD_DIR, 'imkit-gateway');
    }

    get workerBin() {
        return path.join(BUILD_DIR, 'imkit-worker');
    }

    get redisUrl() {
        return `redis://127.0.0.1:${this.redisPort}/0`;
    }

    /** The servers' setting that names the Redis: redis.url, or redis.cluster's seeds. */
    redisSet() {
        return this.redisCluster ? { 'redis.cluster': this.redisCluster.seeds } : { 'redis.url': this.redisUrl };
    }

    commonSet() {
        const s = {
            ...this.redisSet(),
            'log.level': this.logLevel,
            // One process per gateway, so that a test's signals reach the gateway itself.
            'gateway.processes': 1,
            ...(this.opts.set || {}),
        };
        return s;
    }

    static setArgs(obj) {
        const args = [];
        for (const [k, v] of Object.entries(obj)) {
            args.push('--set', `${k}=${v}`);
        }
        return args;
    }

    async start() {
        for (const bin of [this.gatewayBin, this.workerBin]) {
            if (!fs.existsSync(bin)) {
                throw new Error(`${bin} does not exist: build first (cmake --build build), or set IMKIT_BUILD_DIR`);
            }
        }
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imkit-it-'));
        // Laid out like the installed sdk/web: its files are /sdk/…, its demo/ is /demo/….
        this.staticDir = path.join(this.dir, 'static');
        fs.mkdirSync(path.join(this.staticDir, 'demo'), { recursive: true });
        fs.writeFileSync(path.join(this.staticDir, 'hello.txt'), 'hello from the integration tests\n');
        fs.writeFileSync(path.join(this.staticDir, 'demo', 'index.html'), '<!doctype html><title>demo</title>\n');

        await (ON_REDIS_CLUSTER ? this.startRedisCluster() : this.startRedis());
        // Picked once Redis listens, so that no gateway is handed a Redis node's port.
        const ports = await freePorts(2 * this.nGateways);

        // Workers
        for (let i = 0; i < this.nWorkers; i++) {
            this.workers.push(this.startWorker(i));
        }
        // Gateways
        for (let i = 0; i < this.nGateways; i++) {
            const gw = {
                index: i,
                id: `gw${i + 1}`,
                publicPort: ports[2 * i],
                adminPort: ports[2 * i + 1],
            };
            const set = {
                ...this.commonSet(),
                'gateway.id': gw.id,
                'gateway.public_listen': `127.0.0.1:${gw.publicPort}`,
                'gateway.admin_listen': `127.0.0.1:${gw.adminPort}`,
                'auth.jwt_secrets': this.jwtSecrets,
                'admin.api_keys': this.apiKeys,
                'gateway.static_dir': this.staticDir,
                ...(typeof this.opts.gatewaySet === 'function' ? this.opts.gatewaySet(i) : (this.opts.gatewaySet || {})),
            };
            gw.proc = this.track(new Proc(gw.id, this.gatewayBin, Cluster.setArgs(set), path.join(this.dir, `${gw.id}.log`)));
            this.serverProcs.push(gw.proc);
            this.gateways.push(gw);
        }
        for (const gw of this.gateways) {
            await this.waitReady(gw.proc, async () => (await httpGetStatus(gw.publicPort, '/healthz')) === 200, `${gw.id} public /healthz 200`);
            await this.waitReady(gw.proc, async () => (await httpGetStatus(gw.adminPort, '/healthz')) === 200, `${gw.id} admin /healthz 200`);
        }
        await this.waitWorkersReady();
        return this;
    }

    async startRedis() {
        [this.redisPort] = await freePorts(1);
        const redisDir = path.join(this.dir, 'redis');
        fs.mkdirSync(redisDir);
        this.redisProc = this.track(new Proc('redis', 'redis-server', [
            '--port', String(this.redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
            '--dir', redisDir, '--protected-mode', 'no',
        ], path.join(this.dir, 'redis.log')));
        await this.waitReady(this.redisProc, () => tcpPing(this.redisPort), 'redis PING');
    }

    /**
     * 3 masters, no replicas (failovers have their own tests in tests/cluster/); redis-cli
     * inspection goes through the first master, with -c.
     */
    async startRedisCluster() {
        const { RedisCluster } = await import('../../cluster/lib/redis-cluster.mjs');
        this.redisCluster = await new RedisCluster({ masters: 3, replicasPerMaster: 0, appendonly: false }).start();
        this.redisPort = (await this.redisCluster.masters())[0].port;
    }

    /** redis-cli's connection options: the single Redis, or the cluster with redirects followed. */
    redisCliArgs() {
        return this.redisCluster ? ['-c', '-p', String(this.redisPort)] : ['-p', String(this.redisPort)];
    }

    /** Whether the one redis-server, or every node of the cluster, is still running. */
    redisAlive() {
        return this.redisCluster ? this.redisCluster.nodes.every((n) => n.proc && n.proc.alive) : this.redisProc.alive;
    }

    /** The Redis processes: the one redis-server, or every node of the cluster. */
    redisChildren() {
        return this.redisCluster ? this.redisCluster.liveNodes().map((n) => n.proc.child) : [this.redisProc.child];
    }

    /** SIGSTOP to every Redis process: Redis stops answering, connections stay open. */
    pauseRedis() {
        for (const c of this.redisChildren()) {
            c.kill('SIGSTOP');
        }
    }

    /** SIGCONT to every Redis process, after pauseRedis(). */
    resumeRedis() {
        for (const c of this.redisChildren()) {
            c.kill('SIGCONT');
        }
    }

    startWorker(i, run = 1) {
        const w = { index: i, name: `worker${i + 1}` };
        const set = { ...this.commonSet(), ...(this.opts.workerSet || {}) };
        const name = run > 1 ? `${w.name}(run ${run})` : w.name;
        w.run = run;
        w.proc = this.track(new Proc(name, this.workerBin, Cluster.setArgs(set), path.join(this.dir, `${w.name}.log`)));
        this.serverProcs.push(w.proc);
        return w;
    }

    /** SIGTERM to worker `i` (SIGKILL after 3 s); resolves with its exit. */
    async stopWorker(i) {
        return this.workers[i].proc.stop();
    }

    /** Starts worker `i` again (its log file goes on), after stopWorker(i). */
    async restartWorker(i) {
        const old = this.workers[i];
        assert.ok(!old.proc.alive, `worker ${i} is still running`);
        this.workers[i] = this.startWorker(i, (old.run || 1) + 1);
        await this.waitWorkersReady();
        return this.workers[i];
    }

    /**
     * kill -9 worker `i`, on purpose: taken out of the clean-exit check (its exit is not a
     * failure); resolves once it is dead. restartWorker(i) starts it again.
     */
    async killWorker(i) {
        const proc = this.workers[i].proc;
        proc.expectedStop = true;
        const k = this.serverProcs.indexOf(proc);
        if (k >= 0) {
            this.serverProcs.splice(k, 1);
        }
        proc.child.kill('SIGKILL');
        return withTimeout(proc.exited, 5000, `${proc.name} to die after SIGKILL`);
    }

    /** SIGTERM to gateway `i` (SIGKILL after 3 s); resolves with its exit. */
    async stopGateway(i) {
        return this.gateways[i].proc.stop();
    }

    track(proc) {
        allProcs.add(proc);
        return proc;
    }

    async waitReady(proc, probe, what) {
        const died = () => new Error(`${proc.name} ${proc.describeExit()} while waiting for ${what}\n--- ${proc.name} log tail ---\n${proc.tail()}`);
        try {
            await waitFor(async () => {
                if (!proc.alive) {
                    throw died();
                }
                return probe();
            }, START_TIMEOUT_MS, what);
        } catch (e) {
            throw proc.alive ? e : died();
        }
    }

    /**
     * Workers have no health endpoint. They load the `imkit` function library and create the
     * consumer group at start (docs/FUNCTIONS.md, DESIGN.md). A library that never loads
     * fails the start (nothing could work); missing groups only warn.
     */
    async waitWorkersReady() {
        const deadline = Date.now() + START_TIMEOUT_MS;
        let libSeenAt = 0;
        for (;;) {
            for (const w of this.workers) {
                if (!w.proc.alive) {
                    throw new Error(`${w.name} ${w.proc.describeExit()} at start\n--- ${w.name} log tail ---\n${w.proc.tail()}`);
                }
            }
            let groups = 0;
            try {
                if (!libSeenAt && /imkit/.test(await this.redisRaw(['FUNCTION', 'LIST', 'LIBRARYNAME', 'imkit']))) {
                    libSeenAt = Date.now();
                }
                for (let p = 0; p < this.partitions; p++) {
                    const stream = await this.jobStream(p);
                    const g = stream ? await this.redisRaw(['XINFO', 'GROUPS', stream]).catch(() => '') : '';
                    if (/\bworkers\b/.test(g)) {
                        groups++;
                    }
                }
            } catch {
                // redis-cli failed: try again
            }
            if (libSeenAt && groups === this.partitions) {
                return;
            }
            // Without the library no job can run: every test would only wait for `unavailable`.
            if (!libSeenAt && Date.now() > deadline) {
                const tails = this.workers.map((w) => `--- ${w.name} log tail ---\n${w.proc.tail(20)}`).join('\n');
                throw new Error(`the workers did not load the function library "imkit" within ${START_TIMEOUT_MS} ms (FUNCTION LIST LIBRARYNAME imkit is empty)\n${tails}`);
            }
            // The groups (created from id 0, so no job is lost) only get 2 s more.
            if (libSeenAt && Date.now() - libSeenAt > 2000) {
                process.stderr.write(`[cluster] warning: workers not seen fully ready (function library "imkit": ${libSeenAt ? 'loaded' : 'missing'}, group "workers" on ${groups}/${this.partitions} partitions); going on\n`);
                return;
            }
            await sleep(50);
        }
    }

    /**
     * Stops everything: gateways, workers (SIGTERM, SIGKILL after 3 s), then redis. Returns
     * the problems seen with the gateways' and workers' lives (see Proc.problem()).
     */
    async stop() {
        for (const c of this.clients) {
            c.terminate();
        }
        this.clients.clear();
        const procs = this.serverProcs;
        await Promise.all(procs.map((p) => p.stop().catch(() => {})));
        if (this.redisProc) {
            await this.redisProc.stop().catch(() => {});
        }
        if (this.redisCluster) {
            this.redisCluster.failed = this.failed;
            await this.redisCluster.stop().catch(() => {});
        }
        for (const p of [...procs, this.redisProc]) {
            if (p) {
                allProcs.delete(p);
            }
        }
        const problems = procs.map((p) => p.problem()).filter(Boolean);
        if (problems.length) {
            this.failed = true;
        }
        if (this.dir && !this.failed && !process.env.IMKIT_TEST_KEEP_LOGS) {
            fs.rmSync(this.dir, { recursive: true, force: true });
        } else if (this.dir) {
            process.stderr.write(`[cluster] logs kept in ${this.dir}\n`);
        }
        return problems;
    }

    /**
     * Log tails of every process (for a failing test), with exits that were not asked for.
     * With `sinceLastDump`, each log shows only the lines written since the previous dump
     * (still at most `lines`), so a file whose every test fails does not repeat itself.
     */
    logTails(lines = LOG_TAIL_LINES, sinceLastDump = false) {
        const out = [];
        const procs = [this.redisProc, ...this.workers.map((w) => w.proc), ...this.gateways.map((g) => g.proc)].filter(Boolean);
        for (const p of procs) {
            const state = p.alive ? 'running' : p.describeExit() + (p.expectedStop ? '' : ' (UNEXPECTED)');
            let size = 0;
            try {
                size = fs.statSync(p.logFile).size;
            } catch {
                size = 0;
            }
            const from = sinceLastDump ? (p.dumpedTo || 0) : 0;
            p.dumpedTo = size;
            if (sinceLastDump && from >= size) {
                out.push(`--- ${p.name} (${state}): no new lines since the last dump ---`);
                continue;
            }
            let text = tailFile(p.logFile, lines);
            if (from > 0) {
                const fd = fs.openSync(p.logFile, 'r');
                const buf = Buffer.alloc(size - from);
                fs.readSync(fd, buf, 0, buf.length, from);
                fs.closeSync(fd);
                const all = buf.toString('utf8').split('\n').filter((l, i, a) => i < a.length - 1 || l !== '');
                text = all.slice(-lines).join('\n');
            }
            out.push(`--- ${p.name} (${state}) ${p.logFile}: ${from > 0 ? 'new lines' : `last ${lines} lines`} ---\n${text}`);
        }
        return out.join('\n');
    }

    /** Processes that died without being asked to. */
    deadProcesses() {
        const procs = [this.redisProc, ...this.serverProcs].filter(Boolean);
        return procs.filter((p) => !p.alive && !p.expectedStop).map((p) => `${p.name} ${p.describeExit()}`);
    }

    // -----------------------------------------------------------------------------------------
    // Tokens

    /** A valid JWT for `sub` (exp in one hour) signed with the default secret; extra claims merged. */
    token(sub, claims = {}, opts = {}) {
        return jwt(opts.secret || this.secret, { sub, exp: nowSec() + 3600, ...claims }, opts);
    }

    // -----------------------------------------------------------------------------------------
    // WebSocket

    /** Tracks a client opened by hand (new WsClient) so that stop() terminates it. */
    adopt(client) {
        this.clients.add(client);
        return client;
    }

    wsUrl(gatewayIndex = 0, p = '/ws') {
        return `ws://127.0.0.1:${this.gateways[gatewayIndex].publicPort}${p}`;
    }

    /**
     * Opens a WebSocket to gateway `gatewayIndex`. With a token (string), sends `auth` and
     * asserts it succeeded (the answer's data is in `client.authResult`); without one, the
     * connection is left unauthenticated.
     * opts: protocols (array, default none), perMessageDeflate (default false), headers.
     */
    async connect(gatewayIndex = 0, token = null, opts = {}) {
        const c = new WsClient(this.wsUrl(gatewayIndex), opts);
        this.clients.add(c);
        c.gateway = gatewayIndex;
        await c.opened();
        if (token) {
            const res = await c.request('auth', { token });
            assertOk(res, 'auth');
            c.authResult = res.data;
            c.clientId = res.data.client && res.data.client.id;
        }
        return c;
    }

    /** Shorthand: connect as client `id` (a JWT with `sub`=id plus `claims`). */
    async login(gatewayIndex, id, claims = {}) {
        return this.connect(gatewayIndex, this.token(id, claims));
    }

    // -----------------------------------------------------------------------------------------
    // Admin API

    /**
     * Calls the admin API of gateway `opts.gateway` (default 0). `body`: an object (sent as
     * JSON) or a string (sent as is). Returns {status, body, headers, text}; body is the
     * parsed JSON or null when empty or not JSON.
     */
    async admin(method, p, body, opts = {}) {
        const gw = this.gateways[opts.gateway ?? 0];
        const headers = { ...(opts.headers || {}) };
        if (opts.key !== null) {
            headers.authorization = `Bearer ${opts.key === undefined ? this.apiKey : opts.key}`;
        }
        let payload;
        if (body !== undefined) {
            headers['content-type'] = headers['content-type'] || 'application/json';
            payload = typeof body === 'string' ? body : JSON.stringify(body);
        }
        const r = await fetch(`http://127.0.0.1:${opts.port || gw.adminPort}${p}`, {
            method,
            headers,
            body: payload,
            signal: AbortSignal.timeout(opts.timeoutMs || DEFAULT_REQUEST_TIMEOUT_MS),
        });
        const text = await r.text();
        let parsed = null;
        if (text.length) {
            try {
                parsed = JSON.parse(text);
            } catch {
                parsed = null;
            }
        }
        return { status: r.status, body: parsed, headers: r.headers, text };
    }

    /** GET on the public listener; returns {status, text, headers}. */
    async publicGet(p, gatewayIndex = 0) {
        const r = await fetch(`http://127.0.0.1:${this.gateways[gatewayIndex].publicPort}${p}`, {
            signal: AbortSignal.timeout(DEFAULT_REQUEST_TIMEOUT_MS),
        });
        return { status: r.status, text: await r.text(), headers: r.headers };
    }

    // -----------------------------------------------------------------------------------------
    // Redis inspection

    /** Raw `redis-cli -p P args…` output (trimmed). */
    redisRaw(args, timeoutMs = 5000) {
        return new Promise((resolve, reject) => {
            execFile('redis-cli', [...this.redisCliArgs(), ...args.map(String)], { timeout: timeoutMs }, (err, stdout, stderr) => {
                if (err) {
                    reject(new Error(`redis-cli ${args.join(' ')}: ${err.message} ${stderr}`));
                } else {
                    resolve(stdout.replace(/\n$/, ''));
                }
            });
        });
    }

    /**
     * The name of job stream p: <prefix>jobs:<p>, or on a cluster <prefix>jobs:<p>:{<tag>}
     * (the tag places it: docs/OPERATIONS.md), found among the keys; null while it does not
     * exist yet.
     */
    async jobStream(p) {
        if (!this.redisCluster) {
            return `${this.prefix}jobs:${p}`;
        }
        const [name] = await this.keys(`${this.prefix}jobs:${p}:{*}`);
        return name ?? null;
    }

    /** The keys matching pattern: KEYS, on every master of a cluster. */
    async keys(pattern) {
        const ports = this.redisCluster ? (await this.redisCluster.masters()).map((m) => m.port) : [this.redisPort];
        const lists = await Promise.all(ports.map((port) => new Promise((resolve, reject) => {
            execFile('redis-cli', ['-p', String(port), 'KEYS', pattern], { timeout: 5000 }, (err, stdout, stderr) => {
                if (err) {
                    reject(new Error(`redis-cli KEYS ${pattern}: ${err.message} ${stderr}`));
                } else {
                    resolve(stdout.split('\n').filter(Boolean));
                }
            });
        })));
        return lists.flat();
    }

    /**
     * Waits until `n` gateways subscribe room `rid`'s channel. A gateway subscribes when one
     * of its clients joins, a moment after the join's answer (on a cluster, on the room's
     * master, through another connection), and unsubscribes when its last one leaves. An
     * event published before the subscription reaches none of its sessions: the join's
     * catch-up brings back the messages, in their current version, and nothing else
     * (typing, room.updated, member.*). Tests of live events to every member start here.
     */
    async roomFollowed(rid, n, what = `${n} gateways subscribe room ${rid}`) {
        const channel = `${this.prefix}ch:r:{${rid}}`;
        await waitFor(async () => (await this.subscribers(channel)) === n, 3000, what);
    }

    /**
     * How many gateways subscribe channel: PUBSUB NUMSUB, or on a cluster (sharded
     * channels) PUBSUB SHARDNUMSUB on the master of the channel's slot (the command names
     * no key, so nothing redirects it there).
     */
    async subscribers(channel) {
        if (!this.redisCluster) {
            const v = await this.redis('PUBSUB', 'NUMSUB', channel);
            return Number(Array.isArray(v) ? v[1] : Object.values(v)[0]);
        }
        const port = await this.redisCluster.masterOfKey(channel);
        const out = await this.redisCluster.redis(port, 'PUBSUB', 'SHARDNUMSUB', channel);
        return Number(out.split('\n')[1]);
    }

    /**
     * `redis-cli -p P --json args…`, parsed: strings, numbers, arrays, maps (RESP3 maps come
     * back as objects), null. Errors reject.
     */
    async redis(...args) {
        const out = await new Promise((resolve, reject) => {
            execFile('redis-cli', [...this.redisCliArgs(), '--json', ...args.map(String)], { timeout: 5000 }, (err, stdout, stderr) => {
                if (err) {
                    reject(new Error(`redis-cli ${args.join(' ')}: ${err.message} ${stderr}`));
                } else {
                    resolve(stdout);
                }
            });
        });
        const text = out.trim();
        // Errors come out as `error:"ERR …"` (a string value would be quoted).
        if (text.startsWith('error:') || text.startsWith('(error)')) {
            throw new Error(`redis ${args.join(' ')}: ${text}`);
        }
        try {
            return JSON.parse(text);
        } catch {
            return text;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket client

export class WsClient {
    constructor(url, opts = {}) {
        this.url = url;
        this.nextId = 1;
        this.pending = new Map();
        this.frames = []; // every frame received, parsed (or {raw} when not JSON)
        this.eventsList = []; // {frame, consumed}
        this.orphans = []; // responses whose id matches no pending request (id null included)
        this.waiters = new Set();
        this.closeInfo = null;
        this.requestTimeoutMs = opts.requestTimeoutMs || DEFAULT_REQUEST_TIMEOUT_MS;
        this.ws = new WebSocket(url, opts.protocols || [], {
            perMessageDeflate: opts.perMessageDeflate ?? false,
            handshakeTimeout: 5000,
            headers: opts.headers || {},
            maxPayload: 16 * 1024 * 1024,
        });
        this.closed = new Promise((resolve) => {
            this.ws.on('close', (code, reason) => {
                this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
                for (const [id, p] of this.pending) {
                    clearTimeout(p.timer);
                    p.reject(new Error(`connection closed (${code} ${reason}) before the answer to request ${id} (${p.op})`));
                }
                this.pending.clear();
                this.notify();
                resolve(this.closeInfo);
            });
        });
        this.openPromise = new Promise((resolve, reject) => {
            this.ws.once('open', resolve);
            this.ws.once('error', reject);
            this.ws.once('unexpected-response', (req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
        });
        this.ws.on('error', (e) => {
            this.lastError = e;
        });
        this.ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    }

    async opened() {
        await withTimeout(this.openPromise, 6000, `WebSocket open ${this.url}`);
        return this;
    }

    get protocol() {
        return this.ws.protocol;
    }

    get extensions() {
        return this.ws.extensions;
    }

    get isOpen() {
        return this.ws.readyState === WebSocket.OPEN;
    }

    onMessage(data, isBinary) {
        let frame;
        const text = data.toString('utf8');
        try {
            frame = JSON.parse(text);
        } catch {
            frame = { raw: text, binary: isBinary };
        }
        this.frames.push(frame);
        if (frame && typeof frame === 'object' && 'ev' in frame) {
            this.eventsList.push({ frame, consumed: false });
        } else if (frame && typeof frame === 'object' && 'id' in frame) {
            const p = this.pending.get(frame.id);
            if (p) {
                this.pending.delete(frame.id);
                clearTimeout(p.timer);
                p.resolve(frame);
            } else {
                this.orphans.push(frame);
            }
        } else {
            this.orphans.push(frame);
        }
        this.notify();
    }

    notify() {
        for (const w of [...this.waiters]) {
            w();
        }
    }

    /** Sends a raw text frame. */
    sendRaw(text) {
        this.ws.send(text);
    }

    /**
     * Sends {id, op, data} and resolves with the whole response frame
     * ({id, ok:true, data} or {id, ok:false, error:{code, message}}). Rejects on timeout or close.
     */
    request(op, data, opts = {}) {
        const id = this.nextId++;
        const frame = { id, op };
        if (data !== undefined) {
            frame.data = data;
        }
        const timeoutMs = opts.timeoutMs || this.requestTimeoutMs;
        return new Promise((resolve, reject) => {
            if (this.ws.readyState !== WebSocket.OPEN) {
                reject(new Error(`cannot send ${op}: connection not open (${this.closeInfo ? `closed ${this.closeInfo.code}` : this.ws.readyState})`));
                return;
            }
            const timer = setTimeout(() => {
                this.pending.delete(id);
                reject(new Error(`no answer to ${op} (id ${id}) within ${timeoutMs} ms`));
            }, timeoutMs);
            this.pending.set(id, { resolve, reject, timer, op });
            this.ws.send(JSON.stringify(frame));
        });
    }

    /** request() that asserts ok:true and returns `data`. */
    async call(op, data, opts) {
        const res = await this.request(op, data, opts);
        assertOk(res, op);
        return res.data;
    }

    /** Sends a frame without an id (no answer expected). */
    notifyOp(op, data) {
        this.ws.send(JSON.stringify(data === undefined ? { op } : { op, data }));
    }

    /** All events of kind `ev` received so far (consumed or not), their `data`. */
    events(ev) {
        return this.eventsList.filter((e) => e.frame.ev === ev).map((e) => e.frame.data);
    }

    /**
     * Resolves with the `data` of the first not yet consumed event `ev` that matches
     * `predicate(data)` (already received or arriving within timeoutMs), and marks it consumed.
     */
    waitEvent(ev, predicate = () => true, timeoutMs = DEFAULT_EVENT_TIMEOUT_MS) {
        const find = () => {
            for (const e of this.eventsList) {
                if (!e.consumed && e.frame.ev === ev && predicate(e.frame.data)) {
                    e.consumed = true;
                    return e.frame.data;
                }
            }
            return undefined;
        };
        return this.waitUntil(find, timeoutMs, () => `event "${ev}" (events received by then: ${this.describeEvents()})`);
    }

    /** Waits until at least `n` events `ev` matching `predicate` were received; returns them. */
    waitEvents(ev, n, predicate = () => true, timeoutMs = DEFAULT_EVENT_TIMEOUT_MS) {
        const find = () => {
            const got = this.events(ev).filter(predicate);
            return got.length >= n ? got : undefined;
        };
        return this.waitUntil(find, timeoutMs, () => `${n} events "${ev}" (got ${this.events(ev).filter(predicate).length})`);
    }

    /** Waits for a frame among the orphans (responses matching no request, e.g. id null). */
    waitOrphan(predicate = () => true, timeoutMs = DEFAULT_EVENT_TIMEOUT_MS) {
        return this.waitUntil(() => this.orphans.find(predicate), timeoutMs, 'a response with no matching request');
    }

    /** Resolves with {code, reason} when the server closes the connection. */
    waitClose(timeoutMs = DEFAULT_EVENT_TIMEOUT_MS) {
        return withTimeout(this.closed, timeoutMs, `close of ${this.url}`);
    }

    waitUntil(find, timeoutMs, what) {
        const v = find();
        if (v !== undefined) {
            return Promise.resolve(v);
        }
        return new Promise((resolve, reject) => {
            const check = () => {
                const r = find();
                if (r !== undefined) {
                    this.waiters.delete(check);
                    clearTimeout(timer);
                    resolve(r);
                }
            };
            const timer = setTimeout(() => {
                this.waiters.delete(check);
                const desc = typeof what === 'function' ? what() : what;
                reject(new Error(`timed out after ${timeoutMs} ms waiting for ${desc}${this.closeInfo ? ` (connection closed ${this.closeInfo.code})` : ''}`));
            }, timeoutMs);
            this.waiters.add(check);
        });
    }

    describeEvents() {
        const counts = {};
        for (const e of this.eventsList) {
            counts[e.frame.ev] = (counts[e.frame.ev] || 0) + 1;
        }
        return JSON.stringify(counts);
    }

    close(code = 1000) {
        try {
            this.ws.close(code);
        } catch {
            // ignore
        }
    }

    terminate() {
        try {
            this.ws.terminate();
        } catch {
            // ignore
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Assertions

/** Asserts a WebSocket response is ok:true (the message shows the error when it is not). */
export function assertOk(res, what = 'request') {
    if (!res || res.ok !== true) {
        assert.fail(`${what} failed: ${JSON.stringify(res)}`);
    }
    assert.ok(res.data !== undefined && res.data !== null && typeof res.data === 'object', `${what}: ok response without a data object: ${JSON.stringify(res)}`);
}

/**
 * Asserts a WebSocket response is the error `code`; when `field` is given, the message
 * must name it.
 */
export function assertError(res, code, field, what = 'request') {
    assert.equal(res.ok, false, `${what}: expected error ${code}, got ${JSON.stringify(res)}`);
    assert.ok(res.error && typeof res.error === 'object', `${what}: error response without an error object: ${JSON.stringify(res)}`);
    assert.equal(res.error.code, code, `${what}: expected error code ${code}, got ${JSON.stringify(res.error)}`);
    assert.equal(typeof res.error.message, 'string', `${what}: error without a message: ${JSON.stringify(res.error)}`);
    if (field) {
        assert.ok(res.error.message.includes(field), `${what}: error message should name "${field}": ${JSON.stringify(res.error)}`);
    }
}

/** Asserts an admin API answer has `status` and, for errors, the {"error":{code,message}} body. */
export function assertHttp(res, status, code, what = 'admin request') {
    assert.equal(res.status, status, `${what}: expected HTTP ${status}, got ${res.status} ${res.text}`);
    if (code) {
        assert.ok(res.body && res.body.error, `${what}: expected an {"error":{...}} body, got ${res.text}`);
        assert.equal(res.body.error.code, code, `${what}: expected error code ${code}, got ${res.text}`);
        assert.equal(typeof res.body.error.message, 'string', `${what}: error without a message: ${res.text}`);
    }
}

/** Asserts `obj` has every key in `keys` (present, maybe null). */
export function assertKeys(obj, keys, what = 'object') {
    assert.ok(obj && typeof obj === 'object', `${what}: not an object: ${JSON.stringify(obj)}`);
    for (const k of keys) {
        assert.ok(Object.hasOwn(obj, k), `${what}: missing field "${k}" in ${JSON.stringify(obj)}`);
    }
}

export const CLIENT_KEYS = ['id', 'name', 'avatar', 'meta'];
export const ROOM_KEYS = ['id', 'type', 'name', 'cover', 'meta', 'owner', 'members_count', 'created_at', 'updated_at', 'last_seq'];
export const SUMMARY_KEYS = [...ROOM_KEYS, 'last_message', 'unread'];
export const MESSAGE_KEYS = ['room', 'seq', 'ts', 'from', 'type', 'cid'];

/** A plausible server timestamp: integer ms, within `slackMs` of this machine's clock. */
export function assertTs(ts, what = 'ts', slackMs = 120000) {
    assert.ok(Number.isInteger(ts), `${what} should be an integer (ms), got ${JSON.stringify(ts)}`);
    assert.ok(Math.abs(ts - Date.now()) < slackMs, `${what}=${ts} is not near now (${Date.now()}): not milliseconds since the epoch?`);
}

// ---------------------------------------------------------------------------------------------
// node:test glue

/**
 * Registers before/after hooks that start a cluster for the current file and stop it; prints
 * every process's log tail when a test fails. Returns the Cluster (usable inside tests, once
 * `before` ran). File-level setup goes through `cluster.setup(fn)`, not a second `before()`:
 * Node 20 runs several top-level `before` hooks concurrently, so a second one could run
 * before the cluster is up. Setup functions run in order, after the cluster started.
 */
export function useCluster(opts = {}) {
    const cluster = new Cluster(opts);
    before(async () => {
        try {
            await cluster.start();
            for (const fn of cluster.setupFns) {
                await fn();
            }
        } catch (e) {
            cluster.failed = true;
            process.stderr.write(`[cluster] start failed: ${e.message}\n`);
            if (cluster.redisProc) {
                process.stderr.write(cluster.logTails() + '\n');
            }
            throw e;
        }
    }, { timeout: 60000 });
    // A server process that died unasked fails every later test at once, instead of letting
    // each one wait for its timeouts.
    beforeEach(() => {
        const dead = cluster.deadProcesses();
        if (dead.length) {
            throw new Error(`server processes died earlier in this file: ${dead.join(', ')} (logs above)`);
        }
    });
    afterEach((t) => {
        if (t.passed === false) {
            cluster.failed = true;
            const dead = cluster.deadProcesses();
            const tails = cluster.logTails(LOG_TAIL_LINES, true);
            const nothingNew = tails.split('\n').every((l) => l.endsWith('no new lines since the last dump ---'));
            process.stderr.write(`\n[cluster] test "${t.name}" failed${dead.length ? `; processes that died: ${dead.join(', ')}` : ''}; ${nothingNew ? 'no new server log lines since the last dump' : `server logs:\n${tails}`}\n`);
        }
    });
    // Only one useCluster() per file: when an `after` hook throws, Node skips the later ones.
    after(async () => {
        // stop() keeps the log folder when it found a problem, so the tails are still there.
        const problems = await cluster.stop();
        if (problems.length && !opts.allowUncleanExit) {
            const tails = cluster.serverProcs.filter((p) => p.problem()).map((p) => `--- ${p.name} ${p.logFile}: last ${LOG_TAIL_LINES} lines ---\n${p.tail()}`).join('\n');
            process.stderr.write(`[cluster] ${problems.join('; ')}\n${tails}\n`);
            throw new Error(`unclean process lives: ${problems.join('; ')}`);
        }
    }, { timeout: 30000 });
    return cluster;
}

/** Runs `fn(i)` for i in 0..n-1 with at most `limit` in flight; results in order. */
export async function pool(n, limit, fn) {
    const results = new Array(n);
    let next = 0;
    const workers = [];
    for (let w = 0; w < Math.min(limit, n); w++) {
        workers.push((async () => {
            for (;;) {
                const i = next++;
                if (i >= n) {
                    return;
                }
                results[i] = await fn(i);
            }
        })());
    }
    await Promise.all(workers);
    return results;
}
