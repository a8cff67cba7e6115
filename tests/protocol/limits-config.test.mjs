// The configurable limits with other values: gateways started with
// --set limits.members=5 (members in a group room, too_large) and
// --set limits.auth_timeout_ms=500 (time to send auth, close 4401).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    useCluster, uid, user, group, expectError, expectSilence, assertHttp, ids, sleep,
} from './lib/proto.mjs';

const cluster = useCluster({
    gateways: 2,
    workers: 2,
    gatewaySet: { 'limits.members': 5, 'limits.auth_timeout_ms': 500 },
});

test('members in a group (limits.members=5): room.members.add up to 5 accepted, beyond too_large naming members; nothing added, no event', async () => {
    const o = await user(cluster, [0], { prefix: 'o' });
    const m = await user(cluster, [1], { prefix: 'm' });
    const extra = await user(cluster, [0, 1], { prefix: 'extra' });
    const r = await group(o, [m, uid('a')]); // 3 members
    await expectError(m, 'room.members.add', { room: r.id, members: [uid('b'), uid('c'), extra.id] }, 'too_large', 'members', '3 + 3 > 5');
    assert.equal((await o.call('room.get', { room: r.id })).members_count, 3, 'a refused add adds nobody');
    const ok = await m.call('room.members.add', { room: r.id, members: [uid('b'), uid('c')] });
    assert.equal(ok.members_count, 5, 'exactly 5 is accepted');
    await expectError(o, 'room.members.add', { room: r.id, members: [extra.id] }, 'too_large', 'members', 'a 6th member');
    await expectSilence('room.joined', (d) => d.id === r.id, [extra], 'refused add');
    const mj = o.tabs[0].events('member.joined').filter((d) => d.room === r.id);
    assert.equal(mj.length, 1, 'only the accepted add was announced');
    const adm = await cluster.admin('POST', `/v1/rooms/${r.id}/members`, { members: [extra.id] }, { gateway: 1 });
    assertHttp(adm, 413, 'too_large', 'admin add of a 6th member');
    assert.equal((await o.call('room.get', { room: r.id })).members_count, 5);
    // Ids already members do not count twice.
    assert.equal((await o.call('room.members.add', { room: r.id, members: [m.id] })).members_count, 5);
});

test('members in a group (limits.members=5): room.create with more than 5 members is too_large, by a client and by the admin API; 5 accepted', async () => {
    const o = await user(cluster, [1], { prefix: 'o' });
    const four = ids(4);
    const five = ids(5);
    const ok = await o.call('room.create', { type: 'group', members: four });
    assert.equal(ok.members_count, 5, 'the creator and 4 others');
    const before = (await o.call('room.list', { limit: 100 })).rooms.length;
    await expectError(o, 'room.create', { type: 'group', members: five }, 'too_large', 'members', 'room.create with 6 members');
    assert.equal((await o.call('room.list', { limit: 100 })).rooms.length, before, 'no room was created');
    const adm5 = await cluster.admin('POST', '/v1/rooms', { type: 'group', members: five });
    assertHttp(adm5, 201, null, 'admin POST /v1/rooms with 5 members');
    const adm6 = await cluster.admin('POST', '/v1/rooms', { type: 'group', members: ids(6) }, { gateway: 1 });
    assertHttp(adm6, 413, 'too_large', 'admin POST /v1/rooms with 6 members');
});

test('auth timeout (limits.auth_timeout_ms=500): a connection that does not authenticate is closed 4401 after about 500 ms, on both gateways; requests before auth do not extend it', async () => {
    const t0 = Date.now();
    const idle = await cluster.connect(0);
    const busy = await cluster.connect(1);
    const res = await busy.request('ping');
    assert.equal(res.error?.code, 'unauthenticated');
    const late = await cluster.connect(1);
    for (const c of [idle, busy]) {
        const info = await c.waitClose(3000);
        const dt = info.at - t0;
        assert.equal(info.code, 4401);
        assert.ok(dt >= 400 && dt < 2500, `closed after ${dt} ms, expected about 500`);
    }
    // An auth arriving after the timeout is too late.
    await sleep(700);
    assert.equal(late.isOpen, false, 'still open after the auth timeout');
    assert.equal(late.closeInfo?.code, 4401);
});

test('auth timeout: an authenticated connection stays open past it', async () => {
    const a = await user(cluster, [0, 1], { prefix: 'a' });
    await sleep(900);
    for (const t of a.tabs) {
        assert.ok(t.isOpen, `${t.label} closed after authenticating (${JSON.stringify(t.closeInfo)})`);
        assert.ok((await t.call('ping')).ts > 0);
    }
});
