// The Functions library on a real Redis Cluster, called the way a worker calls a job's
// function: FCALL with one declared key, the job's home hash tag "{<room id>}". The room's
// own job kinds run on the room's master, whichever it is, and keep their done record in the
// room's slot; without the declared key the same call cannot be routed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { useRedisCluster } from './lib/redis-cluster.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const LUA = path.join(here, '..', '..', 'worker', 'lua', 'imkit.lua');
const MP = path.join(here, '..', 'lua', 'mp.py');
const P = 'imkit:';
const h = useRedisCluster();

let redirects = 0; // calls redis-cli sent on to another master (it says "-> Redirected")

/**
 * Runs one function as a worker would (job id, events flag 0) on `port` with redis-cli -c:
 * returns the reply's lines (status, body, then channel/frame pairs). home null: no key.
 */
function call(port, fn, from, args, job, home) {
    const line = execFileSync('python3', [MP, 'line', 'FCALL', fn, P, from, JSON.stringify(args), job, '0'], {
        env: { ...process.env, JOB_HOME: home || '' },
    });
    const lines = execFileSync('redis-cli', ['-c', '-p', String(port)], { input: line }).toString().trimEnd().split('\n');
    redirects += lines.filter((l) => l.startsWith('-> Redirected')).length;
    return lines.filter((l) => !l.startsWith('-> Redirected'));
}

test('a room\'s job kinds run on its master with the declared home key, wherever that is', { timeout: 60000 }, async () => {
    const rc = h.cluster;
    const lua = fs.readFileSync(LUA);
    const masters = await rc.masters();
    for (const m of masters) {
        execFileSync('redis-cli', ['-p', String(m.port), '-x', 'FUNCTION', 'LOAD', 'REPLACE'], { input: lua });
    }
    // One room on each master, alice and bob in it.
    const rooms = [];
    for (let i = 0; rooms.length < masters.length && i < 200; i++) {
        const port = await rc.masterOfKey(`{fr${i}}`);
        if (!rooms.some((r) => r.port === port)) {
            rooms.push({ id: `fr${i}`, port });
        }
    }
    assert.equal(rooms.length, 3);
    const other = masters.map((m) => m.port);
    for (const r of rooms) {
        await rc.command('HSET', `${P}r:{${r.id}}`, 'type', 'group', 'owner', 'alice', 'members_count', '2',
            'created_at', '1', 'updated_at', '1', 'last_seq', '0', 'last_ts', '0');
        await rc.command('HSET', `${P}r:{${r.id}}:m`, 'alice', 'owner|1', 'bob', 'member|1');
        // Sent through a master that does not own the room: redis-cli follows the MOVED.
        const via = other.find((p) => p !== r.port);
        const home = `{${r.id}}`;
        const sent = call(via, 'imkit_msg_send', 'alice', { room: r.id, cid: 'c1', type: 'text', text: 'hi' }, `j-${r.id}-1`, home);
        assert.equal(sent[0], 'ok', sent.join(' | '));
        assert.equal(JSON.parse(sent[1]).seq, 1);
        assert.equal(sent[2], `${P}ch:r:{${r.id}}`, 'the message event on the room channel');
        assert.match(await rc.command('HGET', `${P}r:{${r.id}}:cid`, 'alice|c1'), /^1\|\d+\|[0-9a-f]{8}$/,
            'the send recorded by its cid index entry, in the room slot');
        const again = call(via, 'imkit_msg_send', 'alice', { room: r.id, cid: 'c1', type: 'text', text: 'hi' }, `j-${r.id}-1`, home);
        assert.deepEqual(again, sent, 'the replayed job answers the same');

        const edit = call(via, 'imkit_msg_edit', 'alice', { room: r.id, seq: 1, text: 'edited' }, `j-${r.id}-2`, home);
        assert.equal(edit[0], 'ok', edit.join(' | '));
        assert.equal(await rc.command('EXISTS', `${P}done:{${r.id}}:j-${r.id}-2`), '1', 'done record in the room slot');
        const react = call(via, 'imkit_msg_react', 'bob', { room: r.id, seq: 1, emoji: '👍', on: true }, `j-${r.id}-3`, home);
        assert.equal(react[0], 'ok', react.join(' | '));
        const read = call(via, 'imkit_room_read', 'bob', { room: r.id, seq: 1 }, `j-${r.id}-4`, home);
        assert.equal(read[0], 'ok', read.join(' | '));
        const update = call(via, 'imkit_room_update', 'alice', { room: r.id, name: 'renamed' }, `j-${r.id}-5`, home);
        assert.equal(update[0], 'ok', update.join(' | '));
        const recall = call(via, 'imkit_msg_recall', 'alice', { room: r.id, seq: 1 }, `j-${r.id}-6`, home);
        assert.equal(recall[0], 'ok', recall.join(' | '));
        assert.equal(await rc.command('HGET', `${P}r:{${r.id}}`, 'name'), 'renamed');
        assert.equal(await rc.command('HGET', `${P}r:{${r.id}}:read`, 'bob'), '1');
    }
    assert.ok(redirects >= 3, `each room's calls went on to its master (${redirects} redirects)`);

    // Without the declared key, redis-cli cannot route the call: on a master that does not
    // own the room, Redis refuses the script's first access to the room's keys.
    const r = rooms[0];
    const wrong = other.find((p) => p !== r.port);
    const out = call(wrong, 'imkit_msg_send', 'alice', { room: r.id, cid: 'c2', type: 'text', text: 'x' }, `j-${r.id}-9`, null);
    assert.match(out.join(' '), /non local key|MOVED|CROSSSLOT/, out.join(' | '));
});
