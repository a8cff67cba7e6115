// Fault-test harness: the integration Cluster (tests/integration/lib/cluster.mjs, used as is)
// plus what faults need: kill -9 / STOP / CONT / TERM of workers and gateways with restarts,
// Redis switched to AOF and restarted from it on the same port, Redis paused, pub/sub
// connections killed, a timeline of what was done, and a health check of every process.
//
// Processes killed on purpose are taken out of `serverProcs`, so the harness's end-of-file
// check (every gateway and worker exits 0 on SIGTERM, none died unasked) still applies to
// every process that was not a target, restarted ones included.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { before, after, afterEach } from 'node:test';
import { Cluster, sleep, waitFor, withTimeout } from '../../integration/lib/cluster.mjs';

export { sleep, waitFor, withTimeout };

const LOG_TAIL_LINES = Number(process.env.IMKIT_TEST_LOG_TAIL || 40);

/** GET http://127.0.0.1:port/path → status, or 0 when nothing answered. */
export async function httpStatus(port, p = '/healthz', timeoutMs = 1500) {
    try {
        const r = await fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(timeoutMs) });
        await r.arrayBuffer();
        return r.status;
    } catch {
        return 0;
    }
}

/** Encodes one command in RESP. */
function respCommand(args) {
    const parts = [`*${args.length}\r\n`];
    for (const a of args) {
        const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
        parts.push(`$${b.length}\r\n`, b, '\r\n');
    }
    return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
}

/** Parses one RESP2 reply at buf[pos]; returns [value, next] or null when incomplete. */
function respParse(buf, pos) {
    const eol = buf.indexOf('\r\n', pos);
    if (eol < 0) {
        return null;
    }
    const type = String.fromCharCode(buf[pos]);
    const line = buf.toString('utf8', pos + 1, eol);
    const next = eol + 2;
    if (type === '+') {
        return [line, next];
    }
    if (type === '-') {
        return [new Error(line), next];
    }
    if (type === ':') {
        return [Number(line), next];
    }
    if (type === '$') {
        const n = Number(line);
        if (n < 0) {
            return [null, next];
        }
        if (buf.length < next + n + 2) {
            return null;
        }
        return [buf.toString('utf8', next, next + n), next + n + 2];
    }
    if (type === '*') {
        const n = Number(line);
        if (n < 0) {
            return [null, next];
        }
        const out = [];
        let p = next;
        for (let i = 0; i < n; i++) {
            const r = respParse(buf, p);
            if (!r) {
                return null;
            }
            out.push(r[0]);
            p = r[1];
        }
        return [out, p];
    }
    throw new Error(`RESP: unexpected type ${type}`);
}

/**
 * Runs commands on a fresh connection to Redis (pipelined) and resolves with their replies
 * (an Error object for an error reply). Much cheaper than a redis-cli process per call.
 */
export function redisPipeline(port, commands, timeoutMs = 3000) {
    return new Promise((resolve, reject) => {
        const sock = net.connect(port, '127.0.0.1');
        let buf = Buffer.alloc(0);
        const replies = [];
        let pos = 0;
        const timer = setTimeout(() => {
            sock.destroy();
            reject(new Error(`redis on ${port}: no answer in ${timeoutMs} ms`));
        }, timeoutMs);
        sock.on('connect', () => sock.write(Buffer.concat(commands.map(respCommand))));
        sock.on('data', (d) => {
            buf = Buffer.concat([buf, d]);
            for (;;) {
                const r = respParse(buf, pos);
                if (!r) {
                    break;
                }
                replies.push(r[0]);
                pos = r[1];
            }
            if (replies.length === commands.length) {
                clearTimeout(timer);
                sock.destroy();
                resolve(replies);
            }
        });
        sock.on('error', (e) => {
            clearTimeout(timer);
            reject(e);
        });
    });
}

export class FaultCluster extends Cluster {
    constructor(opts = {}) {
        super({ logLevel: process.env.IMKIT_TEST_LOG_LEVEL || 'info', ...opts });
        this.t0 = Date.now();
        this.timeline = []; // [ms since start, what]
        this.targets = []; // processes killed or stopped on purpose: {name, proc, how}
    }

    note(what) {
        this.timeline.push([Date.now() - this.t0, what]);
    }

    timelineText(last = 60) {
        return this.timeline.slice(-last).map(([t, w]) => `${(t / 1000).toFixed(2)}s ${w}`).join('\n');
    }

    /** The Proc class of the harness (not exported there): the same as redisProc's. */
    get Proc() {
        return this.redisProc.constructor;
    }

    get redisDir() {
        return path.join(this.dir, 'redis');
    }

    // -----------------------------------------------------------------------------------
    // Workers

    /** Consumer name a worker uses in the group: "<hostname>-<pid>" (worker/src/main.c). */
    consumerName(i) {
        return `${os.hostname().slice(0, 63)}-${this.workers[i].proc.child.pid}`;
    }

    liveWorkers() {
        return this.workers.filter((w) => w.proc.alive);
    }

    /** Takes a process out of the harness's clean-exit check: it is a target. */
    disown(proc, how) {
        proc.expectedStop = true;
        const k = this.serverProcs.indexOf(proc);
        if (k >= 0) {
            this.serverProcs.splice(k, 1);
        }
        this.targets.push({ name: proc.name, proc, how });
    }

    /** kill -9 worker i; resolves once it is dead. */
    async killWorker(i) {
        const proc = this.workers[i].proc;
        this.disown(proc, 'SIGKILL');
        proc.child.kill('SIGKILL');
        await withTimeout(proc.exited, 5000, `${proc.name} to die after SIGKILL`);
        this.note(`kill -9 ${proc.name} (pid ${proc.child.pid})`);
    }

    /** Sends `sig` (SIGSTOP, SIGCONT, SIGTERM…) to worker i. */
    signalWorker(i, sig) {
        const proc = this.workers[i].proc;
        proc.child.kill(sig);
        this.note(`${sig} ${proc.name} (pid ${proc.child.pid})`);
    }

    /** Starts a new process for worker slot i (the old one must be dead). No wait. */
    respawnWorker(i) {
        const old = this.workers[i];
        if (old.proc.alive) {
            throw new Error(`worker ${i} is still running`);
        }
        this.workers[i] = this.startWorker(i, (old.run || 1) + 1);
        this.note(`start ${this.workers[i].proc.name} (pid ${this.workers[i].proc.child.pid})`);
        return this.workers[i];
    }

    /** Adds one more worker slot and starts it. */
    addWorker() {
        const i = this.workers.length;
        this.workers.push(this.startWorker(i));
        this.note(`start ${this.workers[i].proc.name}`);
        return i;
    }

    /** Pending entries of one consumer over every job stream (XPENDING … consumer). */
    async pendingOf(consumer) {
        const cmds = [];
        for (let p = 0; p < this.partitions; p++) {
            cmds.push(['XPENDING', `${this.prefix}jobs:${p}`, 'workers', '-', '+', '10000', consumer]);
        }
        const replies = await redisPipeline(this.redisPort, cmds);
        return replies.reduce((n, rows) => n + (Array.isArray(rows) ? rows.length : 0), 0);
    }

    /**
     * Freezes (SIGSTOP) one of the workers `slots` while it holds at least `min` jobs: in the
     * middle of a batch, or blocked in XREADGROUP and then handed one anyway. Tries the slots in
     * turn (a loaded worker holds big batches, an idle one gets the first job of a burst);
     * after `tries`, settles for one job on slots[0]. Returns {i, held}; the worker is left
     * stopped.
     */
    async freezeHolding(slots, min = 2, tries = 40) {
        for (let k = 0; k < tries; k++) {
            const i = slots[k % slots.length];
            if (!this.workers[i].proc.alive) {
                continue;
            }
            this.workers[i].proc.child.kill('SIGSTOP');
            const held = await this.pendingOf(this.consumerName(i)).catch(() => 0);
            if (held >= min) {
                this.note(`SIGSTOP ${this.workers[i].proc.name} holding ${held} jobs`);
                return { i, held };
            }
            this.workers[i].proc.child.kill('SIGCONT');
            await sleep(5 + Math.floor(Math.random() * 40));
        }
        const i = slots[0];
        this.workers[i].proc.child.kill('SIGSTOP');
        let held = 0;
        const until = Date.now() + 1500;
        while (held === 0 && Date.now() < until) {
            held = await this.pendingOf(this.consumerName(i)).catch(() => 0);
            if (held === 0) {
                await sleep(20);
            }
        }
        this.note(`SIGSTOP ${this.workers[i].proc.name} holding ${held} jobs`);
        return { i, held };
    }

    /** Pending entries of the group over every job stream. */
    async pendingTotal() {
        const cmds = [];
        for (let p = 0; p < this.partitions; p++) {
            cmds.push(['XPENDING', `${this.prefix}jobs:${p}`, 'workers']);
        }
        const replies = await redisPipeline(this.redisPort, cmds);
        return replies.reduce((n, s) => n + (Array.isArray(s) ? Number(s[0]) : 0), 0);
    }

    /** Entries of imkit:jobs:dead as [{id, fields}] (fields as an object). */
    async deadJobs() {
        const rows = await this.redis('XRANGE', `${this.prefix}jobs:dead`, '-', '+');
        return (Array.isArray(rows) ? rows : []).map(([id, flat]) => {
            const fields = {};
            for (let k = 0; k + 1 < flat.length; k += 2) {
                fields[flat[k]] = flat[k + 1];
            }
            return { id, fields };
        });
    }

    // -----------------------------------------------------------------------------------
    // Gateways

    async killGateway(i) {
        const gw = this.gateways[i];
        this.disown(gw.proc, 'SIGKILL');
        gw.proc.child.kill('SIGKILL');
        await withTimeout(gw.proc.exited, 5000, `${gw.id} to die after SIGKILL`);
        this.note(`kill -9 ${gw.id} (pid ${gw.proc.child.pid})`);
    }

    /** Starts gateway i again with the same arguments (same id, same ports); waits for /healthz. */
    async restartGateway(i) {
        const gw = this.gateways[i];
        if (gw.proc.alive) {
            throw new Error(`${gw.id} is still running`);
        }
        gw.run = (gw.run || 1) + 1;
        const proc = this.track(new this.Proc(`${gw.id}(run ${gw.run})`, gw.proc.cmd, gw.proc.args, gw.proc.logFile));
        gw.proc = proc;
        this.serverProcs.push(proc);
        this.note(`start ${proc.name} (pid ${proc.child.pid})`);
        await this.waitReady(proc, async () => (await httpStatus(gw.publicPort)) === 200, `${proc.name} /healthz 200`);
        await this.waitReady(proc, async () => (await httpStatus(gw.adminPort)) === 200, `${proc.name} admin /healthz 200`);
        return gw;
    }

    // -----------------------------------------------------------------------------------
    // Redis

    /** PING answered PONG (not LOADING, not refused). */
    async redisUp() {
        try {
            return (await this.redisRaw(['PING'], 1500)) === 'PONG';
        } catch {
            return false;
        }
    }

    async info(section) {
        const text = await this.redisRaw(['INFO', section]);
        const out = {};
        for (const line of text.split(/\r?\n/)) {
            const m = line.match(/^([a-z_0-9]+):(.*)$/);
            if (m) {
                out[m[1]] = m[2];
            }
        }
        return out;
    }

    /**
     * Turns the running Redis to AOF (`appendonly yes`, `appendfsync <fsync>`) and waits until
     * the first rewrite is done, so that a restart from the folder finds everything.
     */
    async enableAof(fsync = 'always') {
        await this.redisRaw(['CONFIG', 'SET', 'appendfsync', fsync]);
        await this.redisRaw(['CONFIG', 'SET', 'appendonly', 'yes']);
        await waitFor(async () => {
            const p = await this.info('persistence');
            return p.aof_enabled === '1' && p.aof_rewrite_in_progress === '0' && p.aof_rewrite_scheduled === '0';
        }, 15000, 'the first AOF rewrite', 100);
        this.aof = fsync;
        this.note(`redis AOF on, appendfsync ${fsync}`);
    }

    async killRedis() {
        const proc = this.redisProc;
        proc.expectedStop = true;
        proc.child.kill('SIGKILL');
        await withTimeout(proc.exited, 5000, 'redis to die after SIGKILL');
        this.targets.push({ name: proc.name, proc, how: 'SIGKILL' });
        this.note(`kill -9 redis (pid ${proc.child.pid})`);
    }

    /** Starts redis-server again on the same port and folder, loading the AOF. */
    async restartRedis() {
        if (this.redisProc.alive) {
            throw new Error('redis is still running');
        }
        this.redisRun = (this.redisRun || 1) + 1;
        const args = ['--port', String(this.redisPort), '--bind', '127.0.0.1', '--save', '', '--dir', this.redisDir,
            '--protected-mode', 'no'];
        if (this.aof) {
            args.push('--appendonly', 'yes', '--appendfsync', this.aof);
        } else {
            args.push('--appendonly', 'no');
        }
        const proc = this.track(new this.Proc(`redis(run ${this.redisRun})`, 'redis-server', args, path.join(this.dir, 'redis.log')));
        this.redisProc = proc;
        this.note(`start redis (pid ${proc.child.pid})`);
        await waitFor(async () => {
            if (!proc.alive) {
                throw new Error(`redis ${proc.describeExit()} at restart:\n${proc.tail()}`);
            }
            return this.redisUp();
        }, 20000, 'restarted redis to answer PONG', 100);
        this.note('redis answers PONG');
        return proc;
    }

    pauseRedis() {
        super.pauseRedis();
        this.redisPaused = true;
        this.note('kill -STOP redis');
    }

    resumeRedis() {
        super.resumeRedis();
        this.redisPaused = false;
        this.note('kill -CONT redis');
    }

    /** CLIENT KILL TYPE pubsub; resolves with the number of connections killed. */
    async killPubsubClients() {
        const out = await this.redisRaw(['CLIENT', 'KILL', 'TYPE', 'pubsub'], 3000);
        return Number(out) || 0;
    }

    // -----------------------------------------------------------------------------------
    // Health

    /**
     * The state of every process that should be running: gateways (public and admin
     * /healthz), workers (alive, unless stopped on purpose with SIGTERM), redis (PING).
     * Returns a list of problems (empty = healthy).
     */
    async healthProblems() {
        const problems = [];
        if (!this.redisProc.alive) {
            problems.push(`redis ${this.redisProc.describeExit()}`);
        } else if (!(await this.redisUp())) {
            problems.push('redis does not answer PING');
        }
        for (const gw of this.gateways) {
            if (!gw.proc.alive) {
                problems.push(`${gw.proc.name} ${gw.proc.describeExit()}`);
                continue;
            }
            const pub = await httpStatus(gw.publicPort);
            const adm = await httpStatus(gw.adminPort);
            if (pub !== 200 || adm !== 200) {
                problems.push(`${gw.proc.name} /healthz public ${pub} admin ${adm}`);
            }
        }
        for (const w of this.workers) {
            if (!w.proc.alive && !w.proc.expectedStop) {
                problems.push(`${w.proc.name} ${w.proc.describeExit()}`);
            }
        }
        if (this.liveWorkers().length === 0) {
            problems.push('no worker running');
        }
        return problems;
    }

    /** Waits (bounded) until every process is healthy; throws with the problems otherwise. */
    async waitHealthy(ms = 15000) {
        let last = [];
        try {
            await waitFor(async () => {
                last = await this.healthProblems();
                return last.length === 0;
            }, ms, 'every process healthy', 250);
        } catch {
            throw new Error(`not healthy after ${ms} ms: ${last.join('; ')}`);
        }
    }

    /** Last lines of every log, for a failure message. */
    allTails(lines = LOG_TAIL_LINES) {
        const procs = [this.redisProc, ...this.workers.map((w) => w.proc), ...this.gateways.map((g) => g.proc)];
        return procs.filter(Boolean).map((p) => `--- ${p.name} (${p.alive ? 'running' : p.describeExit()}) ---\n${p.tail(lines)}`).join('\n');
    }
}

/** redis-cli with stdin as the last argument (-x): binary-safe values. */
export function redisCliStdin(port, args, input, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
        const child = execFile('redis-cli', ['-p', String(port), '-x', ...args.map(String)], { timeout: timeoutMs, encoding: 'buffer' }, (err, stdout, stderr) => {
            if (err) {
                reject(new Error(`redis-cli -x ${args.join(' ')}: ${err.message} ${stderr}`));
            } else {
                resolve(stdout.toString('utf8').trim());
            }
        });
        child.stdin.end(input);
    });
}

/**
 * node:test glue, like useCluster() but with a FaultCluster: starts it before the file's
 * tests, prints the timeline and log tails when a test fails, and at the end resumes anything
 * paused, closes the given clients, stops every process and fails the file when a process
 * that was not a target died, needed SIGKILL or exited non-zero.
 */
export function useFaultCluster(opts = {}) {
    const fc = new FaultCluster(opts);
    fc.closers = [];
    before(async () => {
        try {
            await fc.start();
            fc.t0 = Date.now();
            fc.note('cluster up');
        } catch (e) {
            fc.failed = true;
            process.stderr.write(`[faults] start failed: ${e.message}\n`);
            throw e;
        }
    }, { timeout: 60000 });
    afterEach((t) => {
        if (t.passed === false) {
            fc.failed = true;
            process.stderr.write(`\n[faults] "${t.name}" failed. Timeline:\n${fc.timelineText()}\n${fc.allTails()}\n`);
        }
    });
    after(async () => {
        if (fc.redisPaused) {
            fc.resumeRedis();
        }
        for (const w of fc.workers) {
            try {
                w.proc.child.kill('SIGCONT'); // a worker left stopped by a failed case
            } catch {
                // gone
            }
        }
        for (const close of fc.closers) {
            try {
                close();
            } catch {
                // ignore
            }
        }
        const problems = await fc.stop();
        if (problems.length) {
            process.stderr.write(`[faults] ${problems.join('; ')}\n`);
            throw new Error(`unclean process lives: ${problems.join('; ')}`);
        }
    }, { timeout: 30000 });
    return fc;
}
