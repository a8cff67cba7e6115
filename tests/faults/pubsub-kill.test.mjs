// `redis-cli CLIENT KILL TYPE pubsub` every second during a run: every gateway loses its
// subscriber connection (events and the workers' answers) again and again. Live deliveries
// may be missed, and answers lost in the gap make the client's request time out
// (`unavailable` after 5 s) and be resent with the same cid. Pass: each client's catch-up
// (msg.history after its last contiguous seq) completes its view, so every member's view
// equals history; 0 lost, 0 duplicated, 0 gaps; the gateways resubscribe every time and stay
// healthy.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFaultCluster, sleep } from './lib/fault-cluster.mjs';
import { Recorder, setupChat, runLoad } from './lib/chat.mjs';
import { checkRun, summary, assertClean } from './lib/checker.mjs';
import { assertSettled, countLogLines } from './lib/util.mjs';

const TOTAL = 4000;
const RATE = 250;

const fc = useFaultCluster({
    gateways: 2,
    workers: 2,
    gatewaySet: { 'limits.rate': 100000, 'limits.burst': 100000 },
});

test(`CLIENT KILL TYPE pubsub every second during ${TOTAL} messages: catch-up completes every view`, { timeout: 120000 }, async (t) => {
    const rec = new Recorder();
    const { clients, rooms } = await setupChat(fc, { nClients: 6, nRooms: 3, roomsPerClient: 2, recorder: rec });
    let done = false;
    const killed = [];
    const killer = (async () => {
        while (!done) {
            await sleep(1000);
            if (!done) {
                killed.push(await fc.killPubsubClients().catch(() => -1));
            }
        }
    })();
    const load = await runLoad(clients, { total: TOTAL, window: 8, rate: RATE, deadline: Date.now() + 90000 }).finally(() => {
        done = true;
    });
    await killer;
    fc.note(`${killed.length} CLIENT KILL TYPE pubsub`);
    const resubscribed = fc.gateways.reduce((n, g) => n + countLogLines(g.proc.logFile, 'link=subscriber'), 0);
    t.diagnostic(`load: ${JSON.stringify(load)}; ${killed.length} CLIENT KILL TYPE pubsub, connections killed: ${killed.reduce((a, b) => a + Math.max(0, b), 0)}; ` +
        `subscriber link log lines (disconnects + reconnects): ${resubscribed}; requests with no answer in time: ${rec.timeouts}, unavailable: ${rec.unavailable.length}`);
    assert.ok(killed.filter((n) => n > 0).length >= 5, `pub/sub connections were killed only ${killed.filter((n) => n > 0).length} times`);
    assert.equal(load.acked, TOTAL, `unacknowledged: ${JSON.stringify(rec.errors.slice(0, 3))}; gave up: ${rec.gaveUp.length}`);

    // After the storm: live delivery works again (every gateway resubscribed).
    const after = [];
    const liveBefore = clients.map((c) => c.live);
    for (const c of clients) {
        const room = [...c.rooms][0];
        after.push({ room, ack: await c.send(room, `after-${c.id}`, 'after the storm', Date.now() + 15000) });
    }
    await sleep(1000);
    for (const { room, ack } of after) {
        assert.ok(ack, 'a send after the storm is acknowledged');
        for (const c of clients.filter((x) => x.rooms.has(room))) {
            assert.ok(c.view.get(room) && c.view.get(room).has(ack.seq), `${c.id} got no live event for ${room} seq ${ack.seq} after the storm`);
        }
    }
    t.diagnostic(`live events after the storm: ${clients.reduce((n, c, i) => n + c.live - liveBefore[i], 0)}`);

    await assertSettled(fc, t);
    const liveViews = clients.map((c) => [...c.view.values()].reduce((n, m) => n + m.size, 0));
    await Promise.all(clients.map((c) => c.catchUp(Date.now() + 30000)));
    const caughtUp = clients.map((c, i) => [...c.view.values()].reduce((n, m) => n + m.size, 0) - liveViews[i]);
    const report = await checkRun(fc, { roomIds: rooms.map((r) => r.id), recorder: rec, clients });
    t.diagnostic(`messages each client had to catch up (missed live): ${caughtUp.join(',')}`);
    t.diagnostic(summary(report));
    assertClean(report, 'pub/sub kills');
    assert.equal(report.stored, TOTAL + clients.length);
});
