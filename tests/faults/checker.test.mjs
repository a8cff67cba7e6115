// The checker on made-up runs: a clean run passes, and each kind of failure is found (a
// checker that finds nothing proves nothing). No server needed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Recorder } from './lib/chat.mjs';
import { compare, assertClean } from './lib/checker.mjs';

const msg = (seq, from, cid) => ({ room: 'r1', seq, from, cid, type: 'text', text: `t${seq}` });

function run({ stored, attempts, acks, views }) {
    const rec = new Recorder();
    for (const [from, cid] of attempts) {
        rec.attempt('r1', from, cid);
    }
    for (const [from, cid, seq] of acks) {
        rec.acks.push({ room: 'r1', from, cid, seq });
    }
    const histories = new Map([['r1', { messages: stored.map(([seq, from, cid]) => msg(seq, from, cid)), lastSeq: stored.length ? Math.max(...stored.map((s) => s[0])) : 0 }]]);
    const vs = Object.entries(views).map(([client, list]) => ({
        client, rooms: ['r1'], view: new Map([['r1', new Map(list.map(([seq, from, cid]) => [seq, { from, cid }]))]]), conflicts: [],
    }));
    return compare({ histories, recorder: rec, views: vs });
}

const base = {
    stored: [[1, 'a', 'c1'], [2, 'b', 'c2'], [3, 'a', 'c3']],
    attempts: [['a', 'c1'], ['b', 'c2'], ['a', 'c3']],
    acks: [['a', 'c1', 1], ['b', 'c2', 2]], // c3 stored without its ack reaching a: fine
    views: { a: [[1, 'a', 'c1'], [2, 'b', 'c2'], [3, 'a', 'c3']], b: [[1, 'a', 'c1'], [2, 'b', 'c2'], [3, 'a', 'c3']] },
};

test('a clean run passes; a send stored without its ack is counted, not failed', () => {
    const r = run(base);
    assertClean(r);
    assert.equal(r.storedNotAcked, 1);
    assert.equal(r.acked, 2);
    assert.equal(r.members, 2);
});

test('an acknowledged message missing from history is lost', () => {
    const r = run({ ...base, acks: [...base.acks, ['b', 'c9', 4]], attempts: [...base.attempts, ['b', 'c9']] });
    assert.equal(r.lost.length, 1);
    assert.equal(r.lost[0].cid, 'c9');
    assert.throws(() => assertClean(r), /lost/);
});

test('an ack whose seq holds another message is lost, two acks with two seqs are inconsistent', () => {
    const r = run({ ...base, acks: [['a', 'c1', 2], ['b', 'c2', 2], ['b', 'c2', 3]] });
    assert.equal(r.lost.length, 1);
    assert.equal(r.inconsistent.length, 1);
});

test('one (sender, cid) stored twice is a duplicate; a stored message nobody sent is unexpected', () => {
    const stored = [...base.stored, [4, 'a', 'c1'], [5, 'z', 'zz']];
    const views = { a: stored, b: stored };
    const r = run({ ...base, stored, views });
    assert.equal(r.duplicated.length, 1);
    assert.deepEqual(r.duplicated[0].seqs, [1, 4]);
    assert.equal(r.unexpected.length, 1);
    assert.equal(r.unexpected[0].from, 'z');
});

test('a seq missing from history is a gap', () => {
    const stored = [[1, 'a', 'c1'], [3, 'a', 'c3']];
    const r = run({ ...base, stored, acks: [['a', 'c1', 1]], views: { a: stored, b: stored } });
    assert.equal(r.gaps.length, 1);
    assert.equal(r.gaps[0].missing, '2');
});

test('a member view missing a seq, holding an extra one or another message at a seq differs', () => {
    const r = run({ ...base, views: { a: [[1, 'a', 'c1'], [3, 'a', 'c3']], b: [[1, 'a', 'c1'], [2, 'a', 'c3'], [3, 'a', 'c3'], [4, 'b', 'x']] } });
    assert.equal(r.views.length, 2);
    const a = r.views.find((v) => v.client === 'a');
    const b = r.views.find((v) => v.client === 'b');
    assert.equal(a.missing, '2');
    assert.equal(b.extra, '4');
    assert.equal(b.differ.length, 1);
});
