// kill -9 a gateway under load. Its clients lose their connection, reconnect to the other
// gateway, `sync`, and resend every unacknowledged send with the same cid. Pass: 0 lost,
// 0 duplicated, 0 gaps, every member's view equal to history; the dead gateway's presence
// entries are cleaned by the survivor (gateway.heartbeat_ms = 1 s here, so within a few
// seconds); the gateway restarted on its ports is healthy.
//
// Second case: a gateway restarted under the same configured gateway.id must not hand
// answers meant for its previous life (jobs still queued when it died) to new requests.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFaultCluster, sleep, waitFor } from './lib/fault-cluster.mjs';
import { Recorder, setupChat, runLoad } from './lib/chat.mjs';
import { checkRun, summary, assertClean } from './lib/checker.mjs';
import { assertSettled } from './lib/util.mjs';

const TOTAL = 6000;
const RATE = 600;
const HEARTBEAT_MS = 1000;

const fc = useFaultCluster({
    gateways: 2,
    workers: 2,
    gatewaySet: { 'limits.rate': 100000, 'limits.burst': 100000, 'gateway.heartbeat_ms': HEARTBEAT_MS },
});

test(`kill -9 a gateway during ${TOTAL} messages: its clients fail over, resend with the same cid, nothing lost or doubled`, { timeout: 90000 }, async (t) => {
    const rec = new Recorder();
    const { clients, rooms } = await setupChat(fc, { nClients: 8, nRooms: 4, roomsPerClient: 2, recorder: rec });
    const victim = 1;
    const victimId = fc.gateways[victim].id;
    const onVictim = clients.filter((c) => c.conn && c.conn.gateway === victim);
    assert.ok(onVictim.length > 0);
    // Presence before: the victim counts its clients.
    const countedBefore = await Promise.all(onVictim.map((c) => fc.redis('HGET', `${fc.prefix}online:{${c.id}}`, victimId)));
    assert.ok(countedBefore.every((n) => Number(n) >= 1), `presence of the victim's clients before the kill: ${countedBefore}`);

    const presenceGone = async () => {
        for (const c of onVictim) {
            if (await fc.redis('HEXISTS', `${fc.prefix}online:{${c.id}}`, victimId)) {
                return false;
            }
        }
        return (await fc.redis('EXISTS', `${fc.prefix}gwc:${victimId}`)) === 0;
    };
    let killedAt = 0;
    const killer = (async () => {
        await sleep(3000);
        await fc.killGateway(victim);
        killedAt = Date.now();
        // The survivor cleans the dead gateway's presence entries once its heartbeat expired.
        await waitFor(presenceGone, 10 * HEARTBEAT_MS, `presence entries of ${victimId} cleaned`, 200);
        return Date.now() - killedAt;
    })();
    const load = await runLoad(clients, { total: TOTAL, window: 6, rate: RATE, deadline: Date.now() + 60000 });
    const cleanedMs = await killer;
    const moved = onVictim.filter((c) => c.conn && c.conn.gateway !== victim).length;
    t.diagnostic(`load: ${JSON.stringify(load)}; ${onVictim.length} clients on the killed gateway, ${moved} moved to the other; ` +
        `sends lost to the closed connection and resent: ${rec.closedDuring}; reconnects: ${clients.reduce((n, c) => n + c.connects - 1, 0)}; ` +
        `presence of the dead gateway cleaned ${cleanedMs} ms after the kill`);
    assert.equal(load.acked, TOTAL, `unacknowledged: ${JSON.stringify(rec.errors.slice(0, 3))} gave up: ${rec.gaveUp.length}`);
    assert.equal(moved, onVictim.length, 'every client of the killed gateway is connected to the other one');
    for (const c of onVictim) {
        const h = await fc.redis('HGETALL', `${fc.prefix}online:{${c.id}}`);
        assert.ok(h && Object.keys(h).length > 0, `${c.id} is online through the other gateway: ${JSON.stringify(h)}`);
    }

    await fc.restartGateway(victim);
    await assertSettled(fc, t);
    await Promise.all(clients.map((c) => c.catchUp(Date.now() + 30000)));
    const report = await checkRun(fc, { roomIds: rooms.map((r) => r.id), recorder: rec, clients });
    t.diagnostic(summary(report));
    assertClean(report, 'gateway kill -9');
    assert.equal(report.stored, TOTAL);
});

test('a gateway restarted under the same gateway.id never gives a new request the answer of a job from its previous life', { timeout: 60000 }, async (t) => {
    const gi = 1;
    const rec = new Recorder();
    const { clients, rooms } = await setupChat(fc, { nClients: 2, nRooms: 1, roomsPerClient: 1, recorder: rec, prefix: 'life' });
    const onGw = clients.find((c) => c.conn.gateway === gi) || clients[0];
    const room = rooms[0].id;
    // Jobs of the gateway's first life, queued while no worker takes them.
    for (let i = 0; i < fc.workers.length; i++) {
        fc.signalWorker(i, 'SIGSTOP');
    }
    const OLD = 30;
    for (let k = 0; k < OLD; k++) {
        rec.attempt(room, onGw.id, `old-${k}`);
        onGw.conn.request('msg.send', { room, cid: `old-${k}`, type: 'text', text: `old ${k}` }, 60000).catch(() => {});
    }
    await waitFor(async () => {
        let n = 0;
        for (let p = 0; p < fc.partitions; p++) {
            n += Number(await fc.redis('XLEN', `${fc.prefix}jobs:${p}`));
        }
        return n >= OLD;
    }, 5000, 'the old jobs in the streams');
    await fc.killGateway(gi);
    // Same id, same ports: its request numbers start again at 1. The admin API needs no auth
    // job, so requests can wait in the new life while the old jobs are still queued.
    await fc.restartGateway(gi);
    const NEW = 30;
    const posts = [];
    for (let k = 0; k < NEW; k++) {
        const body = { from: clients[0].id, type: 'text', text: `new ${k}`, cid: `new-${k}` };
        rec.attempt(room, clients[0].id, `new-${k}`);
        posts.push(fc.admin('POST', `/v1/rooms/${encodeURIComponent(room)}/messages`, body, { gateway: gi, timeoutMs: 15000 }).then((r) => ({ r, body })));
    }
    await sleep(300);
    for (let i = 0; i < fc.workers.length; i++) {
        fc.signalWorker(i, 'SIGCONT');
    }
    const results = await Promise.all(posts);
    const wrong = [];
    let ok = 0;
    for (const { r, body } of results) {
        if (r.status === 201) {
            if (r.body.cid !== body.cid) {
                wrong.push({ asked: body.cid, answered: r.body });
            } else {
                ok++;
                rec.acks.push({ room, from: body.from, cid: body.cid, seq: r.body.seq, at: Date.now() });
            }
        }
    }
    t.diagnostic(`new requests: ${ok} right answers, ${wrong.length} answers of another job, ${results.filter((x) => x.r.status !== 201).length} errors (${[...new Set(results.map((x) => x.r.status))].join(',')})`);
    assert.deepEqual(wrong.slice(0, 3), [], `${wrong.length} of ${NEW} requests to the restarted ${fc.gateways[gi].id} were answered with the answer of a job sent by its previous life`);
    await assertSettled(fc, t);
    await Promise.all(clients.map((c) => c.catchUp(Date.now() + 30000)));
    const report = await checkRun(fc, { roomIds: [room], recorder: rec, clients });
    t.diagnostic(summary(report));
    assertClean(report, 'same-id restart');
});
