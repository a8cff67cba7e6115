// The checker: compares what clients were told with what is stored.
//
// Input: the Recorder of a run (every send attempted, every acknowledgement with its seq), the
// clients (each one's view of each of its rooms: live `message` events plus its `sync` and
// `msg.history` catch-up), and every room's full history read through the admin API
// (`GET /v1/rooms/{rid}/messages?after=`) with its `last_seq` (`GET /v1/rooms/{rid}`).
//
// Failures:
//   lost        an acknowledged (room, sender, cid) is not in history, or is there under
//               another seq than the one acknowledged
//   inconsistent two acknowledgements of one (room, sender, cid) with different seqs
//   duplicated  one (room, sender, cid) stored twice or more
//   unexpected  a stored message that no client ever tried to send
//   gaps        seqs of a room are not exactly 1..last_seq
//   views       a member's final view of a room differs from the room's history (a seq
//               missing or extra, or a seq told with another sender or cid)
//   wrong answers an ok answer to a send that names another room or cid
// Not failures (reported as figures): a send stored without its ack reaching the client (the
// client then resent it with the same cid), repeated live deliveries of one seq.

import assert from 'node:assert/strict';
import { Recorder } from './chat.mjs';

/**
 * Reads one room's whole history through the admin API, page by page (`after=`, limit 100).
 * Returns {messages, lastSeq}.
 */
export async function readRoomHistory(fc, rid) {
    const deadline = Date.now() + 60000;
    const enc = encodeURIComponent(rid);
    const get = async (p) => {
        for (;;) {
            const r = await fc.admin('GET', p).catch((e) => ({ status: 0, text: e.message }));
            if (r.status === 200) {
                return r.body;
            }
            if (Date.now() > deadline) {
                throw new Error(`GET ${p}: ${r.status} ${r.text}`);
            }
            await new Promise((res) => setTimeout(res, 200));
        }
    };
    const room = await get(`/v1/rooms/${enc}`);
    const messages = [];
    let after = 0;
    for (let page = 0; page < 100000; page++) {
        const h = await get(`/v1/rooms/${enc}/messages?after=${after}&limit=100`);
        messages.push(...h.messages);
        if (!h.has_more || h.messages.length === 0) {
            break;
        }
        after = h.messages[h.messages.length - 1].seq;
    }
    return { messages, lastSeq: room.last_seq };
}

/** Reads every room's history: Map rid -> {messages, lastSeq}. */
export async function readHistories(fc, roomIds) {
    const out = new Map();
    for (const rid of roomIds) {
        out.set(rid, await readRoomHistory(fc, rid));
    }
    return out;
}

/** Compact "1-5,9,12-13" form of a sorted list of integers (for messages). */
export function ranges(nums, max = 20) {
    const out = [];
    let i = 0;
    while (i < nums.length && out.length < max) {
        let j = i;
        while (j + 1 < nums.length && nums[j + 1] === nums[j] + 1) {
            j++;
        }
        out.push(i === j ? `${nums[i]}` : `${nums[i]}-${nums[j]}`);
        i = j + 1;
    }
    return out.join(',') + (i < nums.length ? ',…' : '');
}

/**
 * The comparison itself, on plain data (no I/O), so that it can be tested on made-up runs.
 *   histories: Map rid -> {messages: [{seq, from, cid, …}], lastSeq}
 *   recorder:  a Recorder (attempted, acks, wrongAnswers, errors, gaveUp)
 *   views:     [{client, rooms: [rid], view: Map rid -> Map seq -> {from, cid}, conflicts: []}]
 */
export function compare({ histories, recorder, views }) {
    const report = {
        rooms: 0, stored: 0, acked: 0, attempted: recorder.attempted.size,
        lost: [], inconsistent: [], duplicated: [], unexpected: [], gaps: [], views: [], wrongAnswers: recorder.wrongAnswers.slice(),
        storedNotAcked: 0, members: 0,
    };
    // Stored messages by (room, from, cid).
    const stored = new Map(); // key -> [seq…]
    for (const [rid, h] of histories) {
        report.rooms++;
        const seqs = h.messages.map((m) => m.seq);
        report.stored += seqs.length;
        // Gaps: exactly 1..lastSeq, ascending, each once.
        const want = h.lastSeq ?? (seqs.length ? Math.max(...seqs) : 0);
        const present = new Set(seqs);
        const missing = [];
        for (let s = 1; s <= want; s++) {
            if (!present.has(s)) {
                missing.push(s);
            }
        }
        const repeated = seqs.filter((s, i) => seqs.indexOf(s) !== i);
        const beyond = seqs.filter((s) => s > want || s < 1);
        const unordered = seqs.some((s, i) => i > 0 && s <= seqs[i - 1]);
        if (missing.length || repeated.length || beyond.length || unordered || present.size !== want) {
            report.gaps.push({ room: rid, lastSeq: want, count: seqs.length, missing: ranges(missing), repeated: ranges([...new Set(repeated)]), beyond: ranges(beyond), unordered });
        }
        for (const m of h.messages) {
            const k = Recorder.key(rid, m.from, m.cid);
            if (!stored.has(k)) {
                stored.set(k, []);
            }
            stored.get(k).push(m.seq);
        }
    }
    for (const [k, seqs] of stored) {
        const [room, from, cid] = k.split('\n');
        if (seqs.length > 1) {
            report.duplicated.push({ room, from, cid, seqs });
        }
        if (!recorder.attempted.has(k)) {
            report.unexpected.push({ room, from, cid, seqs });
        }
    }
    // Acknowledged sends: stored, under the seq acknowledged; all acks of one send agree.
    const firstAck = new Map();
    for (const a of recorder.acks) {
        const k = Recorder.key(a.room, a.from, a.cid);
        const prev = firstAck.get(k);
        if (prev && prev.seq !== a.seq) {
            report.inconsistent.push({ room: a.room, from: a.from, cid: a.cid, seqs: [prev.seq, a.seq] });
        }
        if (!prev) {
            firstAck.set(k, a);
        }
    }
    report.acked = firstAck.size;
    for (const [k, a] of firstAck) {
        if (!histories.has(a.room)) {
            continue; // a room the run did not ask to check
        }
        const seqs = stored.get(k);
        if (!seqs) {
            report.lost.push({ room: a.room, from: a.from, cid: a.cid, ackedSeq: a.seq, stored: 'nowhere' });
        } else if (!seqs.includes(a.seq)) {
            report.lost.push({ room: a.room, from: a.from, cid: a.cid, ackedSeq: a.seq, stored: `at seq ${seqs.join(',')}` });
        }
    }
    for (const k of stored.keys()) {
        if (recorder.attempted.has(k) && !firstAck.has(k)) {
            report.storedNotAcked++;
        }
    }
    // Views: every member's final view of each of its rooms equals the room's history.
    for (const v of views) {
        for (const rid of v.rooms) {
            const h = histories.get(rid);
            if (!h) {
                continue;
            }
            report.members++;
            const mine = v.view.get(rid) || new Map();
            const missing = [];
            const differ = [];
            const hseqs = new Set();
            for (const m of h.messages) {
                hseqs.add(m.seq);
                const got = mine.get(m.seq);
                if (!got) {
                    missing.push(m.seq);
                } else if (got.from !== m.from || got.cid !== m.cid) {
                    differ.push({ seq: m.seq, told: got, stored: { from: m.from, cid: m.cid } });
                }
            }
            const extra = [...mine.keys()].filter((s) => !hseqs.has(s)).sort((x, y) => x - y);
            const conflicts = (v.conflicts || []).filter((c) => c.room === rid);
            if (missing.length || extra.length || differ.length || conflicts.length) {
                report.views.push({ client: v.client, room: rid, missing: ranges(missing), missingCount: missing.length, extra: ranges(extra), differ: differ.slice(0, 5), conflicts: conflicts.slice(0, 5) });
            }
        }
    }
    return report;
}

/** Reads the histories of `roomIds` and compares them with the run's recorder and clients. */
export async function checkRun(fc, { roomIds, recorder, clients }) {
    const histories = await readHistories(fc, roomIds);
    const views = clients.map((c) => ({ client: c.id, rooms: [...c.rooms].filter((r) => roomIds.includes(r)), view: c.view, conflicts: c.viewConflicts }));
    const report = compare({ histories, recorder, views });
    report.liveEvents = clients.reduce((n, c) => n + c.live, 0);
    report.liveDuplicates = clients.reduce((n, c) => n + c.liveDuplicates, 0);
    report.reconnects = clients.reduce((n, c) => n + Math.max(0, c.connects - 1), 0);
    report.closes = clients.reduce((n, c) => n + c.closes.length, 0);
    report.timeouts = recorder.timeouts;
    report.unavailable = recorder.unavailable.length;
    report.closedDuring = recorder.closedDuring;
    report.errors = recorder.errors.length;
    report.gaveUp = recorder.gaveUp.length;
    return report;
}

/** One line of figures. */
export function summary(r) {
    return `rooms=${r.rooms} stored=${r.stored} acked=${r.acked} attempted=${r.attempted} storedNotAcked=${r.storedNotAcked} ` +
        `lost=${r.lost.length} duplicated=${r.duplicated.length} unexpected=${r.unexpected.length} gaps=${r.gaps.length} ` +
        `inconsistentAcks=${r.inconsistent.length} wrongAnswers=${r.wrongAnswers.length} viewMismatches=${r.views.length}/${r.members} ` +
        `live=${r.liveEvents ?? '-'} liveDup=${r.liveDuplicates ?? '-'} reconnects=${r.reconnects ?? '-'} ` +
        `timeouts=${r.timeouts ?? '-'} unavailable=${r.unavailable ?? '-'} lostToClose=${r.closedDuring ?? '-'} errors=${r.errors ?? '-'} gaveUp=${r.gaveUp ?? '-'}`;
}

/** Asserts the run lost nothing, doubled nothing, left no gap, and every view equals history. */
export function assertClean(r, what = 'run') {
    const show = (list) => JSON.stringify(list.slice(0, 5));
    const problems = [];
    if (r.lost.length) {
        problems.push(`${r.lost.length} acknowledged messages lost: ${show(r.lost)}`);
    }
    if (r.inconsistent.length) {
        problems.push(`${r.inconsistent.length} sends acknowledged with two different seqs: ${show(r.inconsistent)}`);
    }
    if (r.duplicated.length) {
        problems.push(`${r.duplicated.length} (sender, cid) stored more than once: ${show(r.duplicated)}`);
    }
    if (r.unexpected.length) {
        problems.push(`${r.unexpected.length} stored messages nobody sent: ${show(r.unexpected)}`);
    }
    if (r.gaps.length) {
        problems.push(`seq gaps in ${r.gaps.length} rooms: ${show(r.gaps)}`);
    }
    if (r.wrongAnswers.length) {
        problems.push(`${r.wrongAnswers.length} ok answers that belong to another request: ${show(r.wrongAnswers)}`);
    }
    if (r.views.length) {
        problems.push(`${r.views.length} of ${r.members} member views differ from history: ${show(r.views)}`);
    }
    assert.ok(problems.length === 0, `${what}: ${summary(r)}\n${problems.join('\n')}`);
}
