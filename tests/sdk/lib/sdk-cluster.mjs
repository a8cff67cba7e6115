// Harness for the Web SDK's real-server tests (and the demo's browser tests): the integration
// harness's Cluster (tests/integration/lib/cluster.mjs, imported, not edited) with the
// gateways serving sdk/web (`/sdk/…`, `/demo/`) and handing out demo tokens, plus:
// - SdkClient: an IMKit (sdk/web/imkit.mjs, with `ws` as its WebSocket) that records every
//   event it emits and can wait for one;
// - killGateway / startGatewayAgain: SIGKILL a gateway and start it again on the same ports;
// - FlakyWebSocket: a `ws` WebSocket whose connections a test can cut and refuse.
//
// Every wait is bounded: a broken server fails a test, it never hangs the suite.

import { after } from 'node:test';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import {
    useCluster,
    waitFor,
    withTimeout,
    sleep,
    uid,
    jwt,
    nowSec,
    freePorts,
} from '../../integration/lib/cluster.mjs';
import { IMKit } from '../../../sdk/web/imkit.mjs';

export { IMKit, WebSocket, waitFor, withTimeout, sleep, uid, jwt, nowSec, freePorts };

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_DIR = path.resolve(here, '..', '..', '..');
export const SDK_WEB_DIR = path.join(REPO_DIR, 'sdk', 'web');

/** Every event name the SDK emits: the protocol's events plus `state` and `error`. */
export const EVENT_NAMES = [
    'message', 'message.edited', 'message.recalled', 'message.reacted',
    'room.joined', 'room.left', 'room.updated', 'member.joined', 'member.left',
    'read', 'typing', 'presence', 'state', 'error',
];

export const EVENT_TIMEOUT_MS = Number(process.env.IMKIT_SDK_EVENT_TIMEOUT_MS || 8000);

/**
 * useCluster() with the gateways serving the real sdk/web folder and /dev/token on.
 * opts as useCluster's (gateways, workers default 2 and 2); every SdkClient made with
 * `sdkClient(cluster, …)` is closed after the file, before the cluster stops.
 */
export function useSdkCluster(opts = {}) {
    const clients = new Set();
    // Registered before useCluster's own `after`, so it runs first: the clients close while
    // the gateways still run (no reconnect storm against a stopping cluster).
    after(() => {
        for (const c of clients) {
            c.close();
        }
        clients.clear();
    });
    const cluster = useCluster({
        gateways: 2,
        workers: 2,
        ...opts,
        gatewaySet: {
            'gateway.static_dir': SDK_WEB_DIR,
            'dev.demo_tokens': 'on',
            ...(opts.gatewaySet || {}),
        },
    });
    cluster.sdkClients = clients;
    return cluster;
}

/**
 * A connected-or-not IMKit on gateway `gateway` of `cluster`, recording its events.
 * opts: gateway (default 0), id (client id: a 1-hour JWT with `sub` = id, `name`), token
 * (string or function, instead of id), plus any IMKit option (reconnect, WebSocket, url…).
 */
export function sdkClient(cluster, opts = {}) {
    const { gateway = 0, id, name, token, ...imOpts } = opts;
    const client = new SdkClient({
        url: cluster.wsUrl(gateway),
        token: token ?? cluster.token(id, name ? { name } : {}),
        WebSocket,
        ...imOpts,
    });
    client.id = id;
    cluster.sdkClients?.add(client);
    return client;
}

/** Connects a new SdkClient as `id` on `gateway` and waits until it is open. */
export async function connected(cluster, id, gateway = 0, opts = {}) {
    const c = sdkClient(cluster, { id, gateway, ...opts });
    c.me = await withTimeout(c.im.connect(), 10000, `${id} connect() on gateway ${gateway}`);
    return c;
}

export class SdkClient {
    constructor(options) {
        this.im = new IMKit(options);
        this.log = []; // { name, data, at } in emission order
        this.waiters = new Set();
        for (const name of EVENT_NAMES) {
            this.im.on(name, (data) => {
                this.log.push({ name, data, at: Date.now() });
                for (const w of [...this.waiters]) {
                    w();
                }
            });
        }
    }

    get state() {
        return this.im.state;
    }

    /** `data` of every event `name` so far (optionally filtered). */
    events(name, predicate = () => true) {
        return this.log.filter((e) => e.name === name && predicate(e.data)).map((e) => e.data);
    }

    /** Messages of `room` delivered as `message` events, in delivery order. */
    messages(room) {
        return this.events('message', (m) => m.room === room);
    }

    /** The first event `name` matching `predicate`, received so far or within `ms`. */
    waitEvent(name, predicate = () => true, ms = EVENT_TIMEOUT_MS) {
        return this.waitUntil(() => this.events(name, predicate)[0], ms,
            () => `event "${name}" (got: ${this.describe()})`);
    }

    /** Waits until `n` events `name` match `predicate`; resolves with them. */
    waitEvents(name, n, predicate = () => true, ms = EVENT_TIMEOUT_MS) {
        return this.waitUntil(() => {
            const got = this.events(name, predicate);
            return got.length >= n ? got : undefined;
        }, ms, () => `${n} events "${name}" (got ${this.events(name, predicate).length}; all: ${this.describe()})`);
    }

    /** Waits for `state` (now or later). */
    waitState(state, ms = EVENT_TIMEOUT_MS) {
        return this.waitUntil(() => (this.im.state === state ? state : undefined), ms,
            () => `state "${state}" (now "${this.im.state}"; states: ${this.events('state').join(' → ')})`);
    }

    waitUntil(find, ms, what) {
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
                reject(new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`));
            }, ms);
            this.waiters.add(check);
        });
    }

    describe() {
        const counts = {};
        for (const e of this.log) {
            counts[e.name] = (counts[e.name] || 0) + 1;
        }
        return JSON.stringify(counts);
    }

    close() {
        this.im.close();
    }
}

/**
 * Asserts that `promise` rejects with an Error whose `code` is `code`; returns the error.
 * Fails with what it got otherwise (a resolution included).
 */
export async function rejectsWithCode(promise, code, what = 'request') {
    let value;
    try {
        value = await promise;
    } catch (error) {
        if (error?.code !== code) {
            throw new Error(`${what}: expected a rejection with code "${code}", got code ${JSON.stringify(error?.code)}: ${error?.message}`);
        }
        if (!(error instanceof Error)) {
            throw new Error(`${what}: rejected with a non-Error ${JSON.stringify(error)}`);
        }
        return error;
    }
    throw new Error(`${what}: expected a rejection with code "${code}", but it resolved with ${JSON.stringify(value)}`);
}

/** Runs `fn`; on a rejection, rethrows it with the protocol's code in the message. */
export async function op(what, fn) {
    try {
        return await fn();
    } catch (error) {
        const e = new Error(`${what} failed: ${error?.code ?? ''} ${error?.message ?? error}`);
        e.code = error?.code;
        e.cause = error;
        throw e;
    }
}

// ---------------------------------------------------------------------------------------------
// Gateways: kill and start again on the same ports

async function httpStatus(port, p) {
    const r = await fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(1000) });
    await r.arrayBuffer();
    return r.status;
}

/**
 * SIGKILL gateway `i` (no goodbye to its clients: their sockets just drop). The killed process
 * is taken off the cluster's list of server lives, since a SIGKILL exit is what was asked for.
 */
export async function killGateway(cluster, i) {
    const gw = cluster.gateways[i];
    const proc = gw.proc;
    proc.expectedStop = true;
    proc.child.kill('SIGKILL');
    await withTimeout(proc.exited, 5000, `${gw.id} to die after SIGKILL`);
    const at = cluster.serverProcs.indexOf(proc);
    if (at >= 0) {
        cluster.serverProcs.splice(at, 1);
    }
    return proc.exit;
}

/** Starts gateway `i` again with the same arguments (same ports, same log file). */
export async function startGatewayAgain(cluster, i) {
    const gw = cluster.gateways[i];
    const old = gw.proc;
    if (old.alive) {
        throw new Error(`${gw.id} is still running`);
    }
    gw.run = (gw.run || 1) + 1;
    const Proc = old.constructor; // the harness's process class, not exported
    const proc = new Proc(`${gw.id}(run ${gw.run})`, old.cmd, old.args, old.logFile);
    cluster.track(proc);
    cluster.serverProcs.push(proc);
    gw.proc = proc;
    await cluster.waitReady(proc, async () => (await httpStatus(gw.publicPort, '/healthz')) === 200, `${gw.id} public /healthz 200 after restart`);
    await cluster.waitReady(proc, async () => (await httpStatus(gw.adminPort, '/healthz')) === 200, `${gw.id} admin /healthz 200 after restart`);
    return gw;
}

/** SIGSTOP / SIGCONT a process of the cluster (a worker's or redis's `proc`). */
export function freeze(proc) {
    proc.child.kill('SIGSTOP');
}

export function thaw(proc) {
    proc.child.kill('SIGCONT');
}

// ---------------------------------------------------------------------------------------------
// A WebSocket whose connections a test can cut

/**
 * Makes a WebSocket class (for IMKit's `WebSocket` option) built on `ws`, with controls:
 * `cut()` drops every open connection as a lost network would (the SDK sees close 1006, the
 * server sees the TCP connection end), `refuse(true)` makes new connections fail until
 * `refuse(false)`. `opened` counts the connections that opened, `closes` lists the close
 * code of each connection that ended, as the SDK saw it (4401, 4403, 1006, …);
 * `dropIncoming = (text) => bool` hides chosen server frames from the SDK (kept in `dropped`);
 * `sent` lists every frame the SDK wrote.
 */
export function flakyWebSocket() {
    const sockets = new Set();
    const control = {
        refusing: false,
        opened: 0,
        created: 0,
        closes: [],
        dropIncoming: null,
        dropped: [],
        sent: [],
        cut() {
            for (const s of sockets) {
                s.terminate();
            }
        },
        refuse(on) {
            control.refusing = on;
        },
    };
    class FlakyWebSocket extends WebSocket {
        constructor(url, protocols, options) {
            // A refused connection goes to a port where nothing listens: it fails as a down
            // server does (error, then close 1006).
            super(control.refusing ? `ws://127.0.0.1:${control.deadPort}/ws` : url, protocols, options);
            control.created += 1;
            sockets.add(this);
            this.once('open', () => {
                control.opened += 1;
            });
            this.once('close', (code) => {
                sockets.delete(this);
                control.closes.push(code);
            });
        }

        send(data, ...rest) {
            control.sent.push(String(data));
            return super.send(data, ...rest);
        }

        // The SDK reads frames through onmessage: a frame for which control.dropIncoming(text)
        // is true never reaches it, as if the server had not sent it.
        get onmessage() {
            return super.onmessage;
        }

        set onmessage(handler) {
            super.onmessage = typeof handler !== 'function' ? handler : (event) => {
                if (control.dropIncoming && control.dropIncoming(String(event.data))) {
                    control.dropped.push(String(event.data));
                    return;
                }
                handler(event);
            };
        }
    }
    control.WebSocket = FlakyWebSocket;
    return control;
}

/** flakyWebSocket() with a port where nothing listens picked for refused connections. */
export async function makeFlakyWebSocket() {
    const control = flakyWebSocket();
    [control.deadPort] = await freePorts(1);
    return control;
}

// ---------------------------------------------------------------------------------------------
// Messages

/** [from, from+1, …, to] */
export function range(from, to) {
    return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

/** Every message of `room` through `im.history` (after=0, paging by 100). */
export async function fullHistory(im, room) {
    const all = [];
    let after = 0;
    for (let page = 0; page < 100; page++) {
        const { messages, has_more } = await im.history(room, { after, limit: 100 });
        all.push(...messages);
        if (!has_more || messages.length === 0) {
            return all;
        }
        after = messages[messages.length - 1].seq;
    }
    throw new Error(`history of ${room}: more than 100 pages`);
}
