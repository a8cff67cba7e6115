// Helpers of the protocol suite, on top of the integration harness (../../integration/lib/
// cluster.mjs, imported, never changed): clients with several tabs spread over the gateways,
// and delivery assertions that say exactly which connections get an event and which must not
// (absence is asserted after one bounded quiet period).

import assert from 'node:assert/strict';
import { uid, sleep, assertError } from '../../integration/lib/cluster.mjs';

export * from '../../integration/lib/cluster.mjs';

/** How long a connection must stay silent for "it does not get the event" (ms). */
export const QUIET_MS = Number(process.env.IMKIT_TEST_QUIET_MS || 400);

/** Bound of every wait for an event that must arrive (ms). */
export const EVENT_MS = 5000;

/**
 * A client with one connection (tab) per entry of `gateways` (gateway indexes), each
 * authenticated with a JWT for the same id. `u.tabs[i].label` names the tab in messages.
 * `u.call` / `u.request` go through the first tab.
 */
export async function user(cluster, gateways = [0], opts = {}) {
    const id = opts.id || uid(opts.prefix || 'u');
    const u = { id, tabs: [], cluster };
    for (const g of gateways) {
        u.tabs.push(await tab(cluster, u, g, opts.claims));
    }
    u.call = (op, data, o) => u.tabs[0].call(op, data, o);
    u.request = (op, data, o) => u.tabs[0].request(op, data, o);
    return u;
}

/** Opens one more authenticated tab of `u` on gateway `g`; returns it (also pushed to u.tabs by the caller). */
export async function tab(cluster, u, g, claims = {}) {
    const c = await cluster.login(g, u.id, claims);
    c.gateway = g;
    c.label = `${u.id}@gw${g + 1}#${u.tabs.length + 1}`;
    return c;
}

/** Every tab of every user given (users or single connections). */
export function conns(...who) {
    const out = [];
    for (const w of who.flat()) {
        if (w && Array.isArray(w.tabs)) {
            out.push(...w.tabs);
        } else if (w) {
            out.push(w);
        }
    }
    return out;
}

const label = (c) => c.label || c.clientId || c.url;

/**
 * Asserts the delivery of one event: every connection of `to` gets exactly one event `ev`
 * whose data matches `pred`, and no connection of `notTo` gets any, within QUIET_MS after
 * the last expected one arrived. `to` and `notTo` take users (all their tabs) or
 * connections. Returns the data received by each connection of `to`, in order.
 */
export async function expectDelivery(ev, pred, to, notTo = [], opts = {}) {
    const what = opts.what || ev;
    const toConns = conns(to);
    const notConns = conns(notTo);
    const got = await Promise.all(toConns.map((c) => c.waitEvent(ev, pred, opts.timeoutMs || EVENT_MS).catch((e) => {
        throw new Error(`${what}: ${label(c)} did not get "${ev}": ${e.message}`);
    })));
    await sleep(opts.quietMs ?? QUIET_MS);
    for (const c of toConns) {
        const n = c.events(ev).filter(pred).length;
        assert.equal(n, opts.count ?? 1, `${what}: ${label(c)} got "${ev}" ${n} times, expected ${opts.count ?? 1}`);
    }
    assertNone(ev, pred, notConns, what);
    return got;
}

/** Asserts no connection of `who` received an event `ev` matching `pred` (so far). */
export function assertNone(ev, pred, who, what = ev) {
    for (const c of conns(who)) {
        const bad = c.events(ev).filter(pred);
        assert.equal(bad.length, 0, `${what}: ${label(c)} must not get "${ev}", got ${JSON.stringify(bad)}`);
    }
}

/** Waits QUIET_MS, then asserts as assertNone. */
export async function expectSilence(ev, pred, who, what = ev, quietMs = QUIET_MS) {
    await sleep(quietMs);
    assertNone(ev, pred, who, what);
}

/**
 * Every event received by the connections of `who` about room `rid` (data.room or data.id
 * equal to it), as "ev" names; for "nothing at all happened here" checks.
 */
export function roomEvents(who, rid) {
    const out = [];
    for (const c of conns(who)) {
        for (const e of c.eventsList) {
            const d = e.frame.data || {};
            if (d.room === rid || d.id === rid) {
                out.push(`${label(c)}:${e.frame.ev}`);
            }
        }
    }
    return out;
}

/** Asserts a WebSocket request is refused with `code`, and the message names `field`. */
export async function expectError(c, op, data, code, field, what) {
    const res = await c.request(op, data);
    assertError(res, code, field, what || `${op} ${JSON.stringify(data).slice(0, 120)}`);
    return res;
}

/** Sends a text message and returns its ack ({room, seq, ts, cid}). */
export function send(u, room, text, extra = {}) {
    return u.call('msg.send', { room, cid: uid('c'), type: 'text', text, ...extra });
}

/**
 * Creates a group room owned by `owner` with the other users (or ids) as members; returns the
 * room once every tab of the owner and of the member users got room.joined (its gateway
 * counts it in the room from then on) and every gateway holding one follows the room
 * (Cluster.roomFollowed): from then on the room's live events reach all of them.
 * messages.test.mjs tests what a tab that joined a moment before a change ends up with.
 */
export async function group(owner, members, extra = {}) {
    const r = await owner.call('room.create', { type: 'group', members: members.map((m) => (typeof m === 'string' ? m : m.id)), ...extra });
    const tabs = conns(owner, members.filter((m) => typeof m !== 'string'));
    await Promise.all(tabs.map((c) => c.waitEvents('room.joined', 1, (d) => d.id === r.id)));
    await owner.cluster.roomFollowed(r.id, new Set(tabs.map((c) => c.gateway)).size);
    return r;
}

/** A JSON object whose compact serialization is exactly `bytes` bytes long: {"k":"xxx…"}. */
export function jsonOfSize(bytes) {
    const overhead = JSON.stringify({ k: '' }).length;
    const o = { k: 'x'.repeat(bytes - overhead) };
    assert.equal(JSON.stringify(o).length, bytes);
    return o;
}

/** n distinct valid ids. */
export function ids(n, prefix = 'i') {
    const base = uid(prefix);
    return Array.from({ length: n }, (_, i) => `${base}-${i}`);
}
