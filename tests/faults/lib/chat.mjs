// Chat clients that behave as the contract asks a client to (PROTOCOL.md): a send that gets
// no answer, `unavailable`, or loses its connection is resent with the same `cid` (to any
// gateway); a client that reconnects runs `sync` with what it holds; at the end, a catch-up
// with `msg.history after=<last contiguous seq>` completes its view. Everything the client
// was told is written into a Recorder, which the checker compares with the stored history.
//
// Every wait is bounded by a deadline: a broken server fails a case, it never hangs it.

import WebSocket from 'ws';
import { sleep } from '../../integration/lib/cluster.mjs';

const OPEN_TIMEOUT_MS = 4000;

/** One WebSocket connection: requests with ids and timeouts, events to a callback. */
export class Conn {
    constructor(url, onEvent) {
        this.url = url;
        this.onEvent = onEvent;
        this.nextId = 1;
        this.pending = new Map(); // id -> {resolve, reject, timer, late}
        this.late = new Map(); // id -> handler for an answer that came after its timeout
        this.closeInfo = null;
        this.closeHandlers = [];
        this.ws = new WebSocket(url, [], { perMessageDeflate: false, handshakeTimeout: OPEN_TIMEOUT_MS, maxPayload: 16 * 1024 * 1024 });
        this.ws.on('error', (e) => {
            this.lastError = e;
        });
        this.ws.on('message', (data) => this.onMessage(data));
        this.ws.on('close', (code, reason) => {
            this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
            for (const [, p] of this.pending) {
                clearTimeout(p.timer);
                p.reject(Object.assign(new Error(`connection closed ${code}`), { kind: 'closed' }));
            }
            this.pending.clear();
            this.late.clear();
            for (const h of this.closeHandlers) {
                h(this.closeInfo);
            }
        });
    }

    open() {
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.terminate();
                reject(new Error(`open ${this.url}: timeout`));
            }, OPEN_TIMEOUT_MS + 500);
            this.ws.once('open', () => {
                clearTimeout(timer);
                resolve(this);
            });
            this.ws.once('close', () => {
                clearTimeout(timer);
                reject(new Error(`open ${this.url}: closed (${this.lastError ? this.lastError.message : 'no reason'})`));
            });
        });
    }

    get isOpen() {
        return this.ws.readyState === WebSocket.OPEN;
    }

    onMessage(data) {
        let frame;
        try {
            frame = JSON.parse(data.toString('utf8'));
        } catch {
            return;
        }
        if (frame && 'ev' in frame) {
            this.onEvent(frame.ev, frame.data);
            return;
        }
        const p = this.pending.get(frame.id);
        if (p) {
            this.pending.delete(frame.id);
            clearTimeout(p.timer);
            p.resolve(frame);
            return;
        }
        const late = this.late.get(frame.id);
        if (late) {
            this.late.delete(frame.id);
            late(frame);
        }
    }

    /**
     * Resolves with the response frame; rejects with kind 'timeout' (no answer in timeoutMs;
     * a later answer goes to `late`, when given) or 'closed'.
     */
    request(op, data, timeoutMs, late) {
        const id = this.nextId++;
        return new Promise((resolve, reject) => {
            if (!this.isOpen) {
                reject(Object.assign(new Error('not open'), { kind: 'closed' }));
                return;
            }
            const timer = setTimeout(() => {
                this.pending.delete(id);
                if (late) {
                    this.late.set(id, late);
                }
                reject(Object.assign(new Error(`no answer to ${op} in ${timeoutMs} ms`), { kind: 'timeout' }));
            }, timeoutMs);
            this.pending.set(id, { resolve, reject, timer });
            this.ws.send(JSON.stringify(data === undefined ? { id, op } : { id, op, data }));
        });
    }

    terminate() {
        try {
            this.ws.terminate();
        } catch {
            // ignore
        }
    }
}

/** What clients were told, for the checker. */
export class Recorder {
    constructor() {
        this.attempted = new Map(); // "room\nfrom\ncid" -> number of attempts
        this.acks = []; // {room, from, cid, seq, ts, late}
        this.errors = []; // answers other than ok / unavailable / rate_limited: {room, from, cid, code, message}
        this.wrongAnswers = []; // an ok answer that does not belong to the request
        this.gaveUp = []; // sends with no success before their deadline
        this.unavailable = []; // {at, latencyMs, op}
        this.timeouts = 0; // requests with no answer within the client's timeout
        this.closedDuring = 0; // requests lost to a closed connection
    }

    static key(room, from, cid) {
        return `${room}\n${from}\n${cid}`;
    }

    attempt(room, from, cid) {
        const k = Recorder.key(room, from, cid);
        this.attempted.set(k, (this.attempted.get(k) || 0) + 1);
    }

    /** Acknowledged sends, one per (room, from, cid) (the first seq told). */
    ackedKeys() {
        const m = new Map();
        for (const a of this.acks) {
            const k = Recorder.key(a.room, a.from, a.cid);
            if (!m.has(k)) {
                m.set(k, a);
            }
        }
        return m;
    }
}

/**
 * A chat user: one connection at a time, to its home gateway first, then to any other; the
 * messages it knows per room (live events, sync, history), and its sends with retries.
 */
export class ChatClient {
    /**
     * fc: the (Fault)Cluster; id: the client id; opts: home (gateway index tried first),
     * requestTimeoutMs (client side; the server answers `unavailable` after 5 s),
     * recorder, deadline (ms epoch after which nothing is retried any more).
     */
    constructor(fc, id, opts = {}) {
        this.fc = fc;
        this.id = id;
        this.home = opts.home ?? 0;
        this.requestTimeoutMs = opts.requestTimeoutMs ?? 7000;
        this.rec = opts.recorder;
        this.rooms = new Set();
        this.view = new Map(); // room -> Map(seq -> {from, cid, src})
        this.viewConflicts = []; // same seq told with two different (from, cid)
        this.live = 0;
        this.liveDuplicates = 0;
        this.conn = null;
        this.connecting = null;
        this.connects = 0;
        this.closes = []; // {code, at, gateway}
        this.syncs = 0;
        this.stopped = false;
        this.onEventHook = null;
    }

    gatewayOrder() {
        const n = this.fc.gateways.length;
        const order = [];
        for (let k = 0; k < n; k++) {
            order.push((this.home + k) % n);
        }
        return order.filter((i) => this.fc.gateways[i].proc.alive);
    }

    onEvent(ev, data) {
        if (ev === 'message') {
            this.live++;
            this.merge(data, 'live');
        } else if (ev === 'room.joined' && data && data.id) {
            this.rooms.add(data.id);
        }
        if (this.onEventHook) {
            this.onEventHook(ev, data);
        }
    }

    merge(m, src) {
        if (!m || typeof m.room !== 'string' || !Number.isInteger(m.seq)) {
            return;
        }
        let room = this.view.get(m.room);
        if (!room) {
            room = new Map();
            this.view.set(m.room, room);
        }
        const had = room.get(m.seq);
        if (had) {
            if (had.from !== m.from || had.cid !== m.cid) {
                this.viewConflicts.push({ room: m.room, seq: m.seq, first: had, then: { from: m.from, cid: m.cid, src } });
            } else if (src === 'live' && had.src === 'live') {
                this.liveDuplicates++;
            }
            return;
        }
        room.set(m.seq, { from: m.from, cid: m.cid, src });
    }

    /** Highest seq s such that 1..s are all in the view of `room`. */
    contiguous(room) {
        const r = this.view.get(room);
        let s = 0;
        while (r && r.has(s + 1)) {
            s++;
        }
        return s;
    }

    /** Opens and authenticates a connection (home gateway first), retrying until `deadline`. */
    async ensureConnected(deadline) {
        if (this.conn && this.conn.isOpen) {
            return this.conn;
        }
        if (!this.connecting) {
            this.connecting = this.connectLoop(deadline).finally(() => {
                this.connecting = null;
            });
        }
        return this.connecting;
    }

    async connectLoop(deadline) {
        let backoff = 100;
        while (!this.stopped && Date.now() < deadline) {
            for (const gi of this.gatewayOrder()) {
                if (Date.now() >= deadline) {
                    break;
                }
                const conn = new Conn(this.fc.wsUrl(gi), (ev, data) => this.onEvent(ev, data));
                try {
                    await conn.open();
                    const res = await conn.request('auth', { token: this.fc.token(this.id) }, this.requestTimeoutMs);
                    if (!res.ok) {
                        throw new Error(`auth: ${JSON.stringify(res.error)}`);
                    }
                } catch (e) {
                    this.lastConnectError = e.message;
                    conn.terminate();
                    continue;
                }
                conn.gateway = gi;
                conn.closeHandlers.push((info) => {
                    this.closes.push({ ...info, gateway: gi });
                    if (this.conn === conn) {
                        this.conn = null;
                    }
                });
                const first = this.connects === 0;
                this.connects++;
                this.conn = conn;
                if (!first) {
                    // A reconnect: one `sync` with what we hold (PROTOCOL.md). Best effort here;
                    // the final catch-up completes the view whatever happens to this one.
                    this.sync(conn).catch(() => {});
                }
                return conn;
            }
            await sleep(backoff);
            backoff = Math.min(backoff * 2, 1000);
        }
        return null;
    }

    async sync(conn) {
        const known = {};
        for (const r of this.rooms) {
            known[r] = this.contiguous(r);
        }
        const res = await conn.request('sync', { known }, this.requestTimeoutMs);
        if (res.ok) {
            this.syncs++;
            for (const s of res.data.rooms || []) {
                this.rooms.add(s.id);
            }
            for (const [, msgs] of Object.entries(res.data.messages || {})) {
                for (const m of msgs) {
                    this.merge(m, 'sync');
                }
            }
        }
        return res;
    }

    /** A request that is retried on `unavailable`, no answer or a lost connection, until deadline. */
    async call(op, data, deadline) {
        let backoff = 100;
        for (;;) {
            if (Date.now() > deadline) {
                throw new Error(`${this.id}: ${op} got no answer before the deadline (last: ${this.lastConnectError || 'none'})`);
            }
            const conn = await this.ensureConnected(deadline);
            if (!conn) {
                continue;
            }
            let res;
            try {
                res = await conn.request(op, data, this.requestTimeoutMs);
            } catch {
                await sleep(backoff);
                backoff = Math.min(backoff * 2, 1000);
                continue;
            }
            if (res.ok) {
                return res.data;
            }
            if (res.error.code === 'unavailable' || res.error.code === 'rate_limited') {
                await sleep(backoff);
                backoff = Math.min(backoff * 2, 1000);
                continue;
            }
            throw new Error(`${this.id}: ${op} ${JSON.stringify(data)} → ${JSON.stringify(res.error)}`);
        }
    }

    /**
     * Sends one text message, resending with the same cid until it is acknowledged, refused
     * for good, or `deadline` passes. Resolves with the ack data or null.
     */
    async send(room, cid, text, deadline) {
        const data = { room, cid, type: 'text', text };
        const rec = this.rec;
        let backoff = 100;
        const onLate = (frame) => {
            if (frame.ok) {
                this.recordAck(room, cid, frame.data, true);
            }
        };
        for (;;) {
            if (Date.now() > deadline || this.stopped) {
                rec.gaveUp.push({ room, from: this.id, cid });
                return null;
            }
            const conn = await this.ensureConnected(deadline);
            if (!conn) {
                continue;
            }
            rec.attempt(room, this.id, cid);
            const t0 = Date.now();
            let res;
            try {
                res = await conn.request('msg.send', data, this.requestTimeoutMs, onLate);
            } catch (e) {
                if (e.kind === 'timeout') {
                    rec.timeouts++;
                } else {
                    rec.closedDuring++;
                }
                continue; // same cid, maybe on another gateway
            }
            if (res.ok) {
                return this.recordAck(room, cid, res.data, false) ? res.data : null;
            }
            const code = res.error && res.error.code;
            if (code === 'unavailable') {
                rec.unavailable.push({ at: t0, latencyMs: Date.now() - t0, op: 'msg.send', gateway: conn.gateway });
                await sleep(backoff);
                backoff = Math.min(backoff * 2, 1000);
                continue;
            }
            if (code === 'rate_limited') {
                await sleep(200);
                continue;
            }
            rec.errors.push({ room, from: this.id, cid, code, message: res.error.message, at: t0 });
            return null;
        }
    }

    recordAck(room, cid, d, late) {
        if (!d || d.room !== room || d.cid !== cid || !Number.isInteger(d.seq)) {
            this.rec.wrongAnswers.push({ asked: { room, from: this.id, cid }, answer: d, late });
            return false;
        }
        this.rec.acks.push({ room, from: this.id, cid, seq: d.seq, ts: d.ts, late, at: Date.now() });
        return true;
    }

    /**
     * The final catch-up: `sync` with the contiguous seq of every room, then
     * `msg.history after=` page by page until has_more is false, for every room.
     */
    async catchUp(deadline) {
        const conn = await this.ensureConnected(deadline);
        if (!conn) {
            throw new Error(`${this.id}: cannot connect for the catch-up (${this.lastConnectError})`);
        }
        const known = {};
        for (const r of this.rooms) {
            known[r] = this.contiguous(r);
        }
        const s = await this.call('sync', { known }, deadline);
        for (const sum of s.rooms || []) {
            this.rooms.add(sum.id);
        }
        for (const [, msgs] of Object.entries(s.messages || {})) {
            for (const m of msgs) {
                this.merge(m, 'sync');
            }
        }
        for (const room of this.rooms) {
            let after = this.contiguous(room);
            for (let page = 0; page < 10000; page++) {
                const h = await this.call('msg.history', { room, after, limit: 100 }, deadline);
                for (const m of h.messages) {
                    this.merge(m, 'history');
                }
                if (!h.has_more || h.messages.length === 0) {
                    break;
                }
                after = h.messages[h.messages.length - 1].seq;
            }
        }
    }

    close() {
        this.stopped = true;
        if (this.conn) {
            this.conn.terminate();
        }
    }
}

/**
 * Creates `nClients` users spread over the gateways (client k's home is k mod gateways) and
 * `nRooms` group rooms; every user is in `roomsPerClient` rooms (round robin). Waits until
 * every member got `room.joined`. Returns {clients, rooms: [{id, members}]}.
 */
export async function setupChat(fc, { nClients, nRooms, roomsPerClient, recorder, prefix = 'u', requestTimeoutMs }) {
    const deadline = Date.now() + 30000;
    const ids = Array.from({ length: nClients }, (_, k) => `${prefix}${k}-${Math.random().toString(36).slice(2, 8)}`);
    const clients = ids.map((id, k) => new ChatClient(fc, id, { home: k % fc.gateways.length, recorder, requestTimeoutMs }));
    fc.closers.push(() => clients.forEach((c) => c.close()));
    await Promise.all(clients.map((c) => c.ensureConnected(deadline).then((conn) => {
        if (!conn) {
            throw new Error(`${c.id} cannot connect: ${c.lastConnectError}`);
        }
    })));
    const rooms = [];
    for (let r = 0; r < nRooms; r++) {
        const members = ids.filter((_, k) => {
            for (let j = 0; j < roomsPerClient; j++) {
                if ((k + j) % nRooms === r) {
                    return true;
                }
            }
            return false;
        });
        const owner = clients[ids.indexOf(members[0])];
        const room = await owner.call('room.create', { type: 'group', members: members.slice(1), name: `fault room ${r}` }, deadline);
        rooms.push({ id: room.id, members });
    }
    // Every member has the room (room.joined) before load starts, so live events can flow.
    for (const room of rooms) {
        for (const m of room.members) {
            const c = clients[ids.indexOf(m)];
            const until = Date.now() + 10000;
            while (!c.rooms.has(room.id)) {
                if (Date.now() > until) {
                    throw new Error(`${m} never got room.joined for ${room.id}`);
                }
                await sleep(20);
            }
        }
    }
    return { clients, rooms };
}

/**
 * Sends `total` messages: message k from client k mod n, to its rooms in turn, with `window`
 * sends in flight per client. Stops starting new sends at `deadline`. `onSent(n)` is called
 * after each finished send; `roomFilter(rid)` limits the rooms used; `rate` (messages/s, 0 = as fast as possible) paces the run,
 * `burst` releases that many sends at a time.
 * Resolves with {started, acked, failed, ms}.
 */
export async function runLoad(clients, { total, window = 8, deadline, tag = 'm', onSent, rate = 0, burst = 1, roomFilter = () => true }) {
    const t0 = Date.now();
    // With `rate` (messages/s over all clients), send k does not start before t0 + k/rate;
    // with `burst` > 1, sends are released `burst` at a time at that average rate.
    const due = (n) => (rate > 0 ? t0 + (Math.floor(n / burst) * burst * 1000) / rate : 0);
    const queues = clients.map(() => []);
    for (let k = 0; k < total; k++) {
        queues[k % clients.length].push(k);
    }
    let started = 0;
    let acked = 0;
    let failed = 0;
    let finished = 0;
    await Promise.all(clients.map(async (c, ci) => {
        const rooms = [...c.rooms].filter(roomFilter);
        const q = queues[ci];
        let next = 0;
        const lane = async () => {
            for (;;) {
                if (next >= q.length || Date.now() > deadline) {
                    return;
                }
                const k = q[next++];
                const room = rooms[k % rooms.length];
                const wait = due(k) - Date.now();
                if (wait > 0) {
                    await sleep(wait);
                }
                started++;
                const r = await c.send(room, `${tag}${k}`, `message ${k} from ${c.id}`, deadline);
                if (r) {
                    acked++;
                } else {
                    failed++;
                }
                finished++;
                if (onSent) {
                    onSent(finished);
                }
            }
        };
        await Promise.all(Array.from({ length: window }, lane));
    }));
    return { started, acked, failed, ms: Date.now() - t0 };
}
