// A client that stops reading while events keep coming for it (limits.slow_reader_bytes,
// small here): the gateway stops queueing for it at the limit and closes it 4408, its memory
// stays bounded, and the other members of the room (and the sender) are unaffected. A
// member floods the room with large messages; two members never read: one starts reading
// again afterwards (and must find the close frame 4408 at the end of what was queued), the
// other never does (the gateway must not hold it, and its queue, forever).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, RawWs, uid, assertHealthy, rssKb, gatewayPid, tcpStates, serverLogLines, inParallel, sleep, waitFor, assertMemory } from './lib/sec.mjs';

const LIMIT = 256 * 1024;
const MESSAGES = 600;
const TEXT = 'x'.repeat(16000);
const cluster = useCluster({
    gatewaySet: { 'limits.slow_reader_bytes': LIMIT, 'limits.rate': 10000, 'limits.burst': 10000 },
});

const state = {};
const slowLogLines = () => serverLogLines(cluster.gateways[0].proc).filter((l) => l.includes('event=ws_slow_reader')).length;

async function slowMember(id) {
    const ws = await RawWs.open(cluster.gateways[0].publicPort);
    const res = await ws.request('auth', { token: cluster.token(id) });
    assert.equal(res.ok, true, JSON.stringify(res));
    ws.clientId = id;
    return ws;
}

test('a flood into a room with two members that never read: 4408 is queued for both, the sender and a reading member get everything', async (t) => {
    const pid = gatewayPid(cluster);
    const alice = await cluster.login(0, uid('flooder'));
    const carol = await cluster.login(0, uid('reader'));
    const bob = await slowMember(uid('slow'));
    const dave = await slowMember(uid('never'));
    Object.assign(state, { alice, carol, bob, dave });
    const room = (await alice.call('room.create', { type: 'group', members: [carol.clientId, bob.clientId, dave.clientId] })).id;
    state.room = room;
    await bob.waitUntil(() => bob.frames.find((f) => f.ev === 'room.joined'), 5000, 'room.joined');
    await dave.waitUntil(() => dave.frames.find((f) => f.ev === 'room.joined'), 5000, 'room.joined');
    bob.sock.pause();
    dave.sock.pause();
    const logsBefore = slowLogLines();
    const before = rssKb(pid);
    let peak = before;
    const started = Date.now();
    const results = await inParallel(MESSAGES, 16, async (i) => {
        const r = await alice.request('msg.send', { room, cid: `c${i}`, type: 'text', text: TEXT }, { timeoutMs: 20000 });
        if (i % 50 === 0) {
            peak = Math.max(peak, rssKb(pid));
        }
        return r;
    });
    const failed = results.filter((r) => !r.ok);
    assert.equal(failed.length, 0, `the sender's msg.send failed ${failed.length} times: ${JSON.stringify(failed[0])}`);
    await carol.waitEvents('message', MESSAGES, (m) => m.room === room, 30000);
    peak = Math.max(peak, rssKb(pid));
    state.floodMs = Date.now() - started;
    state.rss = { before, peak };
    t.diagnostic(`flood of ${MESSAGES} × 16 kB in ${state.floodMs} ms; gateway VmRSS ${before} → peak ${peak} KiB`);
    await waitFor(() => slowLogLines() - logsBefore >= 2, 5000, 'the gateway to log ws_slow_reader for both slow members');
    assert.ok(alice.isOpen && carol.isOpen, 'the sender and the reading member stay connected');
    assert.equal((await alice.request('ping')).ok, true);
    assert.equal((await carol.request('ping')).ok, true);
    // What the gateway holds for the two slow members is bounded by the limit (plus one event
    // each), not by the size of the flood (MESSAGES × 16 kB ≈ 9.6 MB per member).
    assertMemory(peak - before < 6 * 1024, `gateway VmRSS grew by ${peak - before} KiB during the flood (before ${before}, peak ${peak} KiB)`);
});

test('the slow member that reads again finds the events queued before the limit, then close 4408', async () => {
    const { bob } = state;
    assert.ok(bob, 'set up by the previous test');
    bob.sock.resume();
    const c = await bob.waitClose(15000);
    assert.equal(c.code, 4408, `expected close 4408, got ${c.code} ${c.reason || ''}`);
    const got = bob.frames.filter((f) => f.ev === 'message').length;
    assert.ok(got < MESSAGES, `the slow member received all ${MESSAGES} messages: nothing was cut`);
    await assertHealthy(cluster);
});

test('the slow member that never reads again is let go by the gateway (not held with its queue forever)', async () => {
    const { dave } = state;
    assert.ok(dave, 'set up by the previous test');
    const gwPort = cluster.gateways[0].publicPort;
    const peerPort = dave.sock.localPort;
    const held = () => tcpStates(gwPort, peerPort).some((s) => s.state === '01'); // ESTABLISHED on the gateway's side
    assert.ok(tcpStates(gwPort, peerPort).length > 0, 'the gateway-side socket is visible in /proc/net/tcp');
    const deadline = Date.now() + 5000;
    while (held() && Date.now() < deadline) {
        await sleep(200);
    }
    const states = tcpStates(gwPort, peerPort);
    assert.ok(!held(), `5 s after close 4408 was queued, the gateway still holds the connection of a peer that does not read ` +
        `(gateway-side socket ESTABLISHED, ${states.map((s) => `${s.txQueue} bytes in the kernel send queue`).join(', ')}): ` +
        'a peer that never reads keeps its slot and its queue for ever');
    dave.destroy();
});

test('the flood, the 4408s and the memory: a second round leaves the gateway at the same level', async (t) => {
    const pid = gatewayPid(cluster);
    const { alice, room } = state;
    const after1 = rssKb(pid);
    const eve = await slowMember(uid('slow2'));
    await alice.call('room.members.add', { room, members: [eve.clientId] });
    await eve.waitUntil(() => eve.frames.find((f) => f.ev === 'room.joined'), 5000, 'room.joined');
    eve.sock.pause();
    await inParallel(MESSAGES, 16, (i) => alice.request('msg.send', { room, cid: `d${i}`, type: 'text', text: TEXT }, { timeoutMs: 20000 }));
    eve.sock.resume();
    const c = await eve.waitClose(15000);
    assert.equal(c.code, 4408);
    const after2 = rssKb(pid);
    t.diagnostic(`gateway VmRSS after the first flood ${after1} KiB, after the second ${after2} KiB`);
    assertMemory(after2 - after1 < 4 * 1024, `a second flood grew the gateway by ${after2 - after1} KiB (first flood: ${JSON.stringify(state.rss)}, took ${state.floodMs} ms)`);
    assert.ok(alice.isOpen && state.carol.isOpen, 'others unaffected');
    await assertHealthy(cluster);
});
