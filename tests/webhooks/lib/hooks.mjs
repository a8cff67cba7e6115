// Helpers of the webhook suite: a real HTTP receiver (node:http on a free loopback port) whose
// answers each test scripts, the signature check copied out of docs/WEBHOOKS.md, event-id
// ordering, and a cluster whose workers POST to the receiver.
//
// The cluster itself (redis-server, workers, gateways) comes from the integration harness,
// tests/integration/lib/cluster.mjs, which this suite imports and never changes.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';

export * from '../../integration/lib/cluster.mjs';
import { useCluster, sleep } from '../../integration/lib/cluster.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const DOCS = path.resolve(here, '..', '..', '..', 'docs', 'WEBHOOKS.md');

/** How long a test waits for an ordinary delivery (the deliverer polls every 200 ms). */
export const DELIVERY_MS = 10000;

// ---------------------------------------------------------------------------------------------
// The documented verification recipe

/**
 * The `verified(rawBody, header, secret)` function of docs/WEBHOOKS.md, taken from the Node
 * code block of the document and evaluated as written: the suite proves the recipe a site
 * copies, not a rewrite of it.
 */
export function documentedVerifier() {
    const md = fs.readFileSync(DOCS, 'utf8');
    const blocks = [...md.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
    const code = blocks.find((b) => b.includes('function verified('));
    assert.ok(code, `docs/WEBHOOKS.md has no \`\`\`js block defining verified(): ${DOCS}`);
    const require = createRequire(import.meta.url);
    // eslint-disable-next-line no-new-func
    return new Function('require', `${code}\nreturn verified;`)(require);
}

// ---------------------------------------------------------------------------------------------
// Event ids: "<ms>-<n>", compared as numbers

export function parseId(id) {
    const m = /^(\d+)-(\d+)$/.exec(id);
    assert.ok(m, `not an event id "<ms>-<n>": ${JSON.stringify(id)}`);
    return [BigInt(m[1]), BigInt(m[2])];
}

export function cmpId(a, b) {
    const [am, an] = parseId(a);
    const [bm, bn] = parseId(b);
    if (am !== bm) {
        return am < bm ? -1 : 1;
    }
    return an === bn ? 0 : an < bn ? -1 : 1;
}

// ---------------------------------------------------------------------------------------------
// The receiver

/**
 * A webhook receiver. Every request is recorded in `requests` as
 * {n, at, closedAt, answeredAt, status, late, headers, raw (Buffer), event (parsed or null)}.
 * `behave(req)` decides the answer: {status (default 200), delayMs (default 0)}; it sees the
 * record, with `attempt` = how many requests for the same event id came before (0 first).
 */
export class Receiver {
    constructor() {
        this.requests = [];
        this.behave = () => ({ status: 200 });
        this.inFlight = 0;
        this.maxInFlight = 0;
        this.waiters = new Set();
        this.sockets = new Set();
        this.server = null;
        this.port = null;
    }

    static async start(port = 0) {
        const r = new Receiver();
        await r.listen(port);
        return r;
    }

    async listen(port = this.port ?? 0) {
        const server = http.createServer((req, res) => this.onRequest(req, res));
        server.keepAliveTimeout = 1000;
        server.on('connection', (s) => {
            this.sockets.add(s);
            s.on('close', () => this.sockets.delete(s));
        });
        await new Promise((resolve, reject) => {
            server.once('error', reject);
            server.listen(port, '127.0.0.1', resolve);
        });
        server.unref();
        this.server = server;
        this.port = server.address().port;
    }

    /** Stops listening (the port then refuses connections) and drops every open connection. */
    async close() {
        const server = this.server;
        this.server = null;
        if (!server) {
            return;
        }
        for (const s of this.sockets) {
            s.destroy();
        }
        await new Promise((resolve) => server.close(() => resolve()));
    }

    url(p = '/imkit/hook') {
        return `http://127.0.0.1:${this.port}${p}`;
    }

    onRequest(req, res) {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            const raw = Buffer.concat(chunks);
            let event = null;
            try {
                event = JSON.parse(raw.toString('utf8'));
            } catch {
                event = null;
            }
            const id = event && typeof event.id === 'string' ? event.id : null;
            const rec = {
                n: this.requests.length,
                at: Date.now(),
                closedAt: null,
                answeredAt: null,
                status: null,
                late: false,
                method: req.method,
                url: req.url,
                headers: req.headers,
                raw,
                event,
                id,
                attempt: id === null ? 0 : this.requests.filter((r) => r.id === id).length,
            };
            this.requests.push(rec);
            this.inFlight++;
            this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
            let open = true;
            const done = () => {
                if (open) {
                    open = false;
                    this.inFlight--;
                    rec.closedAt = Date.now();
                    this.notify();
                }
            };
            res.on('close', done);
            let plan;
            try {
                plan = this.behave(rec) || {};
            } catch (e) {
                plan = { status: 599 };
                rec.behaveError = e.message;
            }
            const answer = () => {
                rec.status = plan.status ?? 200;
                rec.answeredAt = Date.now();
                rec.late = res.destroyed || req.socket.destroyed;
                if (!rec.late) {
                    res.writeHead(rec.status, { 'content-type': 'text/plain' });
                    res.end('ok');
                }
                this.notify();
            };
            if (plan.delayMs) {
                setTimeout(answer, plan.delayMs).unref();
            } else {
                answer();
            }
            this.notify();
        });
    }

    notify() {
        for (const w of [...this.waiters]) {
            w();
        }
    }

    /** Requests answered 2xx in time (the worker read the answer). */
    accepted() {
        return this.requests.filter((r) => r.status >= 200 && r.status < 300 && !r.late);
    }

    /** Accepted events, each id once (the first acceptance), in the order they were accepted. */
    unique() {
        const seen = new Set();
        const out = [];
        for (const r of [...this.accepted()].sort((a, b) => a.answeredAt - b.answeredAt || a.n - b.n)) {
            if (!seen.has(r.id)) {
                seen.add(r.id);
                out.push(r.event);
            }
        }
        return out;
    }

    /** Accepted events matching `pred` (deduplicated by id, acceptance order). */
    events(pred = () => true) {
        return this.unique().filter(pred);
    }

    /** Every request (attempt) for event `id`, in order. */
    attemptsOf(id) {
        return this.requests.filter((r) => r.id === id);
    }

    /** Waits until `find()` returns a truthy value (checked on every request/answer); bounded. */
    waitUntil(find, ms, what) {
        const first = find();
        if (first) {
            return Promise.resolve(first);
        }
        return new Promise((resolve, reject) => {
            const check = () => {
                let v;
                try {
                    v = find();
                } catch (e) {
                    cleanup();
                    reject(e);
                    return;
                }
                if (v) {
                    cleanup();
                    resolve(v);
                }
            };
            const timer = setTimeout(() => {
                cleanup();
                const d = typeof what === 'function' ? what() : what;
                reject(new Error(`timed out after ${ms} ms waiting for ${d} (receiver: ${this.describe()})`));
            }, ms);
            const poll = setInterval(check, 100);
            const cleanup = () => {
                clearTimeout(timer);
                clearInterval(poll);
                this.waiters.delete(check);
            };
            this.waiters.add(check);
        });
    }

    /** Waits for `n` accepted events matching `pred`; returns them (acceptance order). */
    waitEvents(pred, n, ms = DELIVERY_MS, what = 'events') {
        return this.waitUntil(() => {
            const got = this.events(pred);
            return got.length >= n ? got : null;
        }, ms, () => `${n} ${what} (got ${this.events(pred).length})`);
    }

    /** Waits for the first accepted event matching `pred`. */
    async waitEvent(pred, ms = DELIVERY_MS, what = 'an event') {
        return (await this.waitEvents(pred, 1, ms, what))[0];
    }

    describe() {
        const types = {};
        for (const e of this.unique()) {
            types[e?.type] = (types[e?.type] || 0) + 1;
        }
        const statuses = {};
        for (const r of this.requests) {
            statuses[r.status] = (statuses[r.status] || 0) + 1;
        }
        return `${this.requests.length} requests, answers ${JSON.stringify(statuses)}, accepted events by type ${JSON.stringify(types)}`;
    }
}

// ---------------------------------------------------------------------------------------------
// A cluster that delivers to a receiver

export const newSecret = (label = 's') => `${label}-${randomBytes(16).toString('hex')}`;

/**
 * Starts a receiver (top-level await in the test file, before the cluster's `before` hook),
 * then registers the cluster with webhook.url pointing at it. opts: secret, workerSet (more
 * worker --set keys), and any useCluster option. Returns {cluster, receiver, secret}.
 */
export async function useWebhookCluster(opts = {}) {
    const receiver = await Receiver.start();
    const secret = opts.secret ?? newSecret();
    const { workerSet, secret: _s, ...rest } = opts;
    const cluster = useCluster({
        ...rest,
        workerSet: {
            'webhook.url': receiver.url(),
            'webhook.secret': secret,
            'events.retention_s': 3600,
            ...(workerSet || {}),
        },
    });
    after(() => receiver.close());
    return { cluster, receiver, secret };
}

// ---------------------------------------------------------------------------------------------
// Small things

/** Which event is about room `rid`: the room itself, its members, its messages. */
export function aboutRoom(rid) {
    return (e) => !!e && e.data && (e.data.room === rid || (e.type.startsWith('room.') && e.data.id === rid));
}

/** Sends a text message, retrying on `unavailable` with the same cid (idempotent). */
export async function send(client, room, cid, text = cid, deadlineMs = 20000) {
    const end = Date.now() + deadlineMs;
    for (;;) {
        const res = await client.request('msg.send', { room, cid, type: 'text', text });
        if (res.ok) {
            return res.data;
        }
        if (res.error?.code !== 'unavailable' || Date.now() > end) {
            assert.fail(`msg.send ${cid} failed: ${JSON.stringify(res)}`);
        }
        await sleep(200);
    }
}

/** Waits (bounded) until the admin API reports client `id` offline. */
export async function waitOffline(cluster, id, ms = 8000) {
    const end = Date.now() + ms;
    let last;
    for (;;) {
        last = await cluster.admin('GET', `/v1/clients/${encodeURIComponent(id)}`);
        if (last.status === 200 && last.body?.online === false) {
            return last.body;
        }
        if (Date.now() > end) {
            assert.fail(`client ${id} still not offline after ${ms} ms: ${last.status} ${last.text}`);
        }
        await sleep(100);
    }
}

export function median(xs) {
    const s = [...xs].sort((a, b) => a - b);
    return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
}

export function percentile(xs, p) {
    const s = [...xs].sort((a, b) => a - b);
    return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
}

/**
 * Makes one more event (PUT of a fresh client: client.created) and waits until the receiver
 * accepted it. Delivery is in order, so every event of a change made before was delivered by
 * then: what has not arrived will not (used to assert that something was NOT sent).
 */
export async function flush(cluster, receiver, ms = DELIVERY_MS) {
    const id = `flush-${randomBytes(5).toString('hex')}`;
    const res = await cluster.admin('PUT', `/v1/clients/${id}`, { name: 'flush' });
    assert.equal(res.status, 200, `PUT /v1/clients/${id}: ${res.status} ${res.text}`);
    await receiver.waitEvent((e) => e.type === 'client.created' && e.data.id === id, ms, `client.created of the flush marker ${id}`);
}

/** Drops "created" (an answer's field, not the room object's). */
export function roomOnly(r) {
    const { created, members, ...room } = r;
    return room;
}
