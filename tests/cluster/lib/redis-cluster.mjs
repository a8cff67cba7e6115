// Redis Cluster harness: starts a real local Redis Cluster (by default 3 masters + 3
// replicas) with redis-server and `redis-cli --cluster create`, on free loopback ports, each
// node in its own folder under one temp dir. Gives tests redis-cli access to any node, the
// cluster's view of masters and replicas, and failover / kill / restart of single nodes.
// For the cluster-mode tests of IMKit (tests/cluster/).
//
// Every wait here is bounded: a cluster that does not form or settle fails a test, it never
// hangs the suite. A failure message carries the tail of every node's log.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { before, after, afterEach } from 'node:test';
import { Proc, freePorts, waitFor, withTimeout } from '../../integration/lib/cluster.mjs';

export const SLOTS = 16384;
const BUS_OFFSET = 10000; // the cluster bus listens on port + 10000
const MAX_PORT = 55000; // so that port + 10000 stays a valid port, clear of the top of the range
const NODE_TIMEOUT_MS = 2000; // cluster-node-timeout: small, so failure detection is quick
const START_TIMEOUT_MS = 30000;
const POLL_MS = 200; // each poll runs a few redis-cli per node: not too often on 2 cores
const LOG_TAIL_LINES = Number(process.env.IMKIT_TEST_LOG_TAIL || 40);
const KEEP_TMP = Boolean(process.env.IMKIT_KEEP_TMP || process.env.IMKIT_TEST_KEEP_LOGS);

// Nodes still running when the test process exits (a crashed file) are killed; also on
// SIGINT / SIGTERM / SIGHUP (`timeout`, Ctrl-C), which skip 'exit': the signal is then
// raised again, so the process still dies of it.
const allProcs = new Set();
function killAll() {
    for (const p of allProcs) {
        if (p.alive) {
            try {
                p.child.kill('SIGKILL');
            } catch {
                // already gone
            }
        }
    }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
        killAll();
        process.kill(process.pid, sig);
    });
}

/** Trimmed stdout of `redis-cli args…`; rejects on a non-zero exit (-e: error replies too). */
function cli(args, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
        execFile('redis-cli', args.map(String), { timeout: timeoutMs }, (err, stdout, stderr) => {
            if (err) {
                const why = `${stderr}`.trim() || `${stdout}`.trim() || err.message;
                reject(new Error(`redis-cli ${args.join(' ')}: ${why}`));
            } else {
                resolve(stdout.trim());
            }
        });
    });
}

/** `name:value` of an INFO / CLUSTER INFO text, or null. */
function field(text, name) {
    const m = text.match(new RegExp(`^${name}:(.*?)\\r?$`, 'm'));
    return m ? m[1] : null;
}

/**
 * CLUSTER NODES, parsed: [{id, port, flags: [...], masterId|null, slots: [[lo, hi], ...]}].
 * Slots being imported or migrated ("[…]") are left out.
 */
function parseNodes(text) {
    return text.split('\n').filter((l) => l.trim()).map((line) => {
        const [id, addr, flags, master, , , , , ...slots] = line.trim().split(' ');
        return {
            id,
            port: Number(addr.split('@')[0].split(':').pop()),
            flags: flags.split(','),
            masterId: master === '-' ? null : master,
            slots: slots.filter((s) => !s.startsWith('[')).map((s) => {
                const [lo, hi = lo] = s.split('-').map(Number);
                return [lo, hi];
            }),
        };
    });
}

function canListen(port) {
    return new Promise((resolve) => {
        const s = net.createServer();
        s.once('error', () => resolve(false));
        s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
}

/** `n` free ports below MAX_PORT whose bus ports (port + 10000) are free too, no overlaps. */
async function clusterPorts(n) {
    const chosen = [];
    for (let round = 0; chosen.length < n; round++) {
        if (round === 20) {
            throw new Error(`could not find ${n} free ports p < ${MAX_PORT} with p + ${BUS_OFFSET} free as well`);
        }
        for (const p of await freePorts(2 * n)) {
            const taken = chosen.flatMap((q) => [q, q + BUS_OFFSET]);
            if (chosen.length < n && p < MAX_PORT && !taken.includes(p) && !taken.includes(p + BUS_OFFSET)
                && await canListen(p + BUS_OFFSET)) {
                chosen.push(p);
            }
        }
    }
    return chosen;
}

export class RedisCluster {
    /** opts: masters (3), replicasPerMaster (1), appendonly (true). */
    constructor({ masters = 3, replicasPerMaster = 1, appendonly = true } = {}) {
        this.nMasters = masters;
        this.replicasPerMaster = replicasPerMaster;
        this.appendonly = appendonly;
        this.nodes = []; // [{port, proc (a Proc of tests/integration/lib/cluster.mjs), dir, args, logFile}]
        this.seeds = '';
        this.dir = null;
        this.failed = false; // set on a failure: stop() then keeps the folder with the logs
    }

    async start() {
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imkit-rc-'));
        try {
            const ports = await clusterPorts(this.nMasters * (1 + this.replicasPerMaster));
            for (const port of ports) {
                const dir = path.join(this.dir, String(port));
                fs.mkdirSync(dir);
                const args = [
                    '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
                    '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', String(NODE_TIMEOUT_MS),
                    '--appendonly', this.appendonly ? 'yes' : 'no', '--save', '', '--dir', dir,
                    '--protected-mode', 'no', '--daemonize', 'no',
                    // A master waits 5 s (the default) for more replicas before a full sync:
                    // every replica's first sync, and a rejoining node's, would take that long.
                    '--repl-diskless-sync-delay', '0',
                ];
                this.nodes.push({ port, dir, args, logFile: path.join(dir, 'redis.log'), proc: null });
            }
            for (const n of this.nodes) {
                this.spawn(n);
            }
            for (const n of this.nodes) {
                await this.waitPing(n);
            }
            // The first nMasters nodes become the masters (one host: redis-cli keeps the order).
            await cli(['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`),
                '--cluster-replicas', this.replicasPerMaster, '--cluster-yes'], START_TIMEOUT_MS);
            await this.waitOk(START_TIMEOUT_MS, async () => {
                const [m, r] = [await this.masters(), await this.replicas()];
                return m.length === this.nMasters && r.length === this.nMasters * this.replicasPerMaster
                    ? null : `${m.length} masters and ${r.length} replicas in the cluster's view`;
            });
            this.seeds = (await this.masters()).map((m) => `127.0.0.1:${m.port}`).join(',');
            return this;
        } catch (e) {
            this.failed = true;
            e.message += `\n${this.logTails()}`;
            await this.stop();
            throw e;
        }
    }

    spawn(node) {
        node.proc = new Proc(`redis ${node.port}`, 'redis-server', node.args, node.logFile);
        allProcs.add(node.proc);
    }

    async waitPing(node) {
        // PING rejects while the node loads its data; a node that died ends the wait at once.
        await waitFor(async () => !node.proc.alive || (await this.redis(node.port, 'PING')) === 'PONG',
            START_TIMEOUT_MS, `${node.proc.name} to answer PING`, 100);
        if (!node.proc.alive) {
            throw new Error(`${node.proc.name} ${node.proc.describeExit()} at start`);
        }
    }

    node(port) {
        const n = this.nodes.find((x) => x.port === Number(port));
        if (!n) {
            throw new Error(`no node on port ${port} in this cluster`);
        }
        return n;
    }

    liveNodes() {
        return this.nodes.filter((n) => n.proc && n.proc.alive);
    }

    /** Trimmed output of `redis-cli -p port args…` on that node; rejects on errors. */
    redis(port, ...args) {
        return cli(['-e', '-p', port, ...args]);
    }

    /** The keys matching pattern, from every live master. */
    async keys(pattern) {
        const lists = await Promise.all((await this.masters()).map((m) => this.redis(m.port, 'KEYS', pattern)));
        return lists.flatMap((out) => out.split('\n').filter(Boolean));
    }

    /** `redis-cli -c` (follows MOVED / ASK) through a live master. */
    async command(...args) {
        const [m] = await this.masters();
        if (!m) {
            throw new Error('no live master');
        }
        return cli(['-e', '-c', '-p', m.port, ...args]);
    }

    /** CLUSTER NODES as seen by the first live node, only the nodes that run. */
    async view() {
        const [n] = this.liveNodes();
        if (!n) {
            throw new Error('no live node');
        }
        const live = new Set(this.liveNodes().map((x) => x.port));
        return parseNodes(await this.redis(n.port, 'CLUSTER', 'NODES'))
            .filter((x) => live.has(x.port) && !x.flags.includes('handshake') && !x.flags.includes('noaddr'));
    }

    /** Live masters [{id, port, slots}], by first slot. */
    async masters() {
        return (await this.view()).filter((x) => x.flags.includes('master'))
            .map(({ id, port, slots }) => ({ id, port, slots }))
            .sort((a, b) => (a.slots[0]?.[0] ?? SLOTS) - (b.slots[0]?.[0] ?? SLOTS));
    }

    /** Live replicas [{id, port, masterId}]. */
    async replicas() {
        return (await this.view()).filter((x) => x.flags.includes('slave'))
            .map(({ id, port, masterId }) => ({ id, port, masterId }));
    }

    /** Port of the live master owning the slot of `key`. */
    async masterOfKey(key) {
        const slot = Number(await this.redis(this.liveNodes()[0].port, 'CLUSTER', 'KEYSLOT', key));
        const m = (await this.masters()).find((x) => x.slots.some(([lo, hi]) => slot >= lo && slot <= hi));
        if (!m) {
            throw new Error(`no live master owns slot ${slot} (key ${key})`);
        }
        return m.port;
    }

    /**
     * What keeps the cluster from being settled, or null. Settled: every live node says
     * cluster_state:ok with all slots ok, every live replica's link to its master is up, no
     * live node is flagged failed (fail or fail?) by another, and every live node's CLUSTER
     * NODES maps all slots to live masters and gives every live node the same role.
     */
    async health() {
        const live = this.liveNodes();
        const livePorts = new Set(live.map((n) => n.port));
        const maps = new Set();
        for (const n of live) {
            const [info, repl, nodes] = await Promise.all([
                this.redis(n.port, 'CLUSTER', 'INFO'), this.redis(n.port, 'INFO', 'replication'), this.redis(n.port, 'CLUSTER', 'NODES'),
            ]);
            if (field(info, 'cluster_state') !== 'ok' || field(info, 'cluster_slots_ok') !== String(SLOTS)) {
                return `${n.port}: cluster_state:${field(info, 'cluster_state')} cluster_slots_ok:${field(info, 'cluster_slots_ok')}`;
            }
            if (field(repl, 'role') === 'slave' && field(repl, 'master_link_status') !== 'up') {
                return `${n.port}: replica of ${field(repl, 'master_port')}, master_link_status:${field(repl, 'master_link_status')}`;
            }
            const view = parseNodes(nodes);
            const flagged = view.find((x) => livePorts.has(x.port) && x.flags.some((f) => f === 'fail' || f === 'fail?'));
            if (flagged) {
                return `${n.port}: flags the running node ${flagged.port} ${flagged.flags.join(',')}`;
            }
            const owners = view.filter((x) => x.flags.includes('master') && !x.flags.includes('fail') && livePorts.has(x.port) && x.slots.length);
            const covered = owners.reduce((sum, x) => sum + x.slots.reduce((s, [lo, hi]) => s + hi - lo + 1, 0), 0);
            if (covered !== SLOTS) {
                return `${n.port}: its view has live masters owning ${covered} of ${SLOTS} slots`;
            }
            // Right after a failover, a node may already map the slots to the new master but
            // still see the old one as a master (of no slot): roles are compared too.
            const roles = view.filter((x) => livePorts.has(x.port))
                .map((x) => `${x.port}:${x.flags.includes('master') ? 'master' : `replica of ${x.masterId}`}`);
            maps.add([...owners.map((x) => `${x.port}:${x.slots.join(' ')}`), ...roles].sort().join(' | '));
        }
        return maps.size > 1 ? `the nodes disagree on slots or roles: ${[...maps].join(' / ')}` : null;
    }

    /** Waits until health() is null (and `extra()`, if given, returns null too). */
    async waitOk(ms = 20000, extra = null) {
        let why = 'not checked yet';
        await waitFor(async () => {
            why = (await this.health()) ?? (extra && await extra());
            return !why;
        }, ms, 'the cluster to settle', POLL_MS).catch((e) => {
            throw new Error(`${e.message}: ${why}`);
        });
    }

    /**
     * CLUSTER FAILOVER on replica `replicaPort`; resolves once it reports role:master and the
     * cluster settled (waitOk). Redis aborts a manual failover that does not complete in 5 s:
     * it is asked again after 6 s.
     */
    async failover(replicaPort, ms = 15000) {
        const deadline = Date.now() + ms;
        const role = async () => field(await this.redis(replicaPort, 'INFO', 'replication'), 'role');
        if ((await role()) !== 'slave') {
            throw new Error(`failover: ${replicaPort} is not a replica`);
        }
        let askedAt = 0;
        await waitFor(async () => {
            if (Date.now() - askedAt > 6000) {
                askedAt = Date.now();
                await this.redis(replicaPort, 'CLUSTER', 'FAILOVER');
            }
            return (await role()) === 'master';
        }, ms, `${replicaPort} to report role:master after CLUSTER FAILOVER`, 100);
        await this.waitOk(Math.max(deadline - Date.now(), 2000));
    }

    /** Sends `signal` to the node on `port`; resolves with its exit once it is gone. */
    async killNode(port, signal = 'SIGKILL') {
        const { proc } = this.node(port);
        proc.expectedStop = true;
        proc.child.kill(signal);
        return withTimeout(proc.exited, 15000, `${proc.name} to exit after ${signal}`);
    }

    /**
     * Starts the node on `port` again, same arguments and folder (its nodes-P.conf, its
     * append-only file): it rejoins the cluster. Resolves once the cluster settled (waitOk).
     */
    async restartNode(port, ms = 20000) {
        const n = this.node(port);
        if (n.proc.alive) {
            throw new Error(`restartNode: ${n.proc.name} is still running`);
        }
        allProcs.delete(n.proc);
        this.spawn(n); // Proc appends to the same log file
        await this.waitPing(n);
        await this.waitOk(ms);
    }

    /** Kills every node; removes the temp dir unless a failure or IMKIT_KEEP_TMP says to keep it. */
    async stop() {
        await Promise.all(this.liveNodes().map((n) => this.killNode(n.port).catch(() => {})));
        for (const n of this.nodes) {
            allProcs.delete(n.proc);
        }
        if (this.dir && fs.existsSync(this.dir)) {
            if (this.failed || KEEP_TMP) {
                process.stderr.write(`[redis-cluster] logs kept in ${this.dir}\n`);
            } else {
                fs.rmSync(this.dir, { recursive: true, force: true });
            }
        }
    }

    /** The last lines of every node's log, with its state. */
    logTails(lines = LOG_TAIL_LINES) {
        return this.nodes.filter((n) => n.proc).map((n) =>
            `--- ${n.proc.name} (${n.proc.describeExit()}) ${n.logFile}: last ${lines} lines ---\n${n.proc.tail(lines)}`).join('\n');
    }
}

/** Starts a cluster (see RedisCluster); on failure, rejects with the nodes' log tails. */
export async function startRedisCluster(opts = {}) {
    return new RedisCluster(opts).start();
}

/**
 * node:test glue: before() starts a cluster for the current file, after() stops it, a failed
 * test prints the nodes' log tails (and keeps the folder). Returns {cluster}: a getter, valid
 * inside tests once before() ran. One per file (see useCluster in tests/integration/lib).
 */
export function useRedisCluster(opts = {}) {
    const rc = new RedisCluster(opts);
    let started = false;
    before(async () => {
        await rc.start();
        started = true;
    }, { timeout: 90000 });
    afterEach((t) => {
        if (t.passed === false && started) {
            rc.failed = true;
            process.stderr.write(`\n[redis-cluster] test "${t.name}" failed; node logs:\n${rc.logTails()}\n`);
        }
    });
    after(() => rc.stop(), { timeout: 30000 });
    return {
        get cluster() {
            if (!started) {
                throw new Error('useRedisCluster: the cluster is not started (use it inside a test)');
            }
            return rc;
        },
    };
}
