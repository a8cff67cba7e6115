// The demo page (sdk/web/demo/, served at /demo/) in Debian's Chromium against the real
// system: 2 gateways, 2 workers, Redis. Alice's page is on gateway 0, Bob's on gateway 1.
// The tests run in order and share the two pages, like a person's session would:
// sign in → direct chat → messages both ways → unread badge → read mark → Bob's gateway
// restarts while Alice sends 5 messages → Bob's page shows each once, in order.

import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
    useSdkCluster, killGateway, startGatewayAgain, range, sleep,
} from '../sdk/lib/sdk-cluster.mjs';
import {
    launchChromium, openPage, byTestId, signIn, waitConnState, shownMessages, shownRooms, until,
    sendFromComposer, screenshot, DOCS_SCREENSHOT, UI_TIMEOUT_MS,
} from './lib/browser.mjs';

const T = { timeout: 60000 };
let browser;
// Registered before the cluster's hooks, so it runs first: the pages (and their WebSockets)
// are gone before the gateways stop.
after(async () => {
    await browser?.close();
});
const cluster = useSdkCluster({ gateways: 2, workers: 2 });

// A fresh Redis per file: fixed, readable ids are fine (and make a tidy docs screenshot).
const ALICE = 'alice';
const BOB = 'bob';

let pageA; // Alice, gateway 0
let pageB; // Bob, gateway 1
let roomId;

const demoUrl = (gw) => `http://127.0.0.1:${cluster.gateways[gw].publicPort}/demo/`;

// The cluster's setup runs after it started (a second top-level before() could run first).
cluster.setup(async () => {
    browser = await launchChromium();
});

afterEach(async (t) => {
    if (t.passed === false) {
        for (const page of [pageA, pageB].filter(Boolean)) {
            const name = `demo-failed-${page.label}-${t.name.slice(0, 40).replace(/[^A-Za-z0-9]+/g, '-')}.png`;
            const file = await screenshot(page, name).catch((e) => `(no screenshot: ${e.message})`);
            process.stderr.write(`[browser] ${page.label}: screenshot ${file}\n[browser] ${page.label} problems:\n  ${page.problems.join('\n  ') || '(none)'}\n`);
        }
    }
});


test('the gateway serves the demo and the SDK; both users sign in through the form, on two gateways', T, async () => {
    pageA = await openPage(browser, demoUrl(0), 'alice');
    pageB = await openPage(browser, demoUrl(1), 'bob');
    for (const page of [pageA, pageB]) {
        await byTestId(page, 'signin-form').waitFor({ state: 'visible' });
        assert.equal(await page.title(), 'IMKit demo');
    }
    await signIn(pageA, ALICE, 'Alice');
    await signIn(pageB, BOB, 'Bob');
    assert.equal(await byTestId(pageA, 'me-name').textContent(), 'Alice');
    assert.equal(await byTestId(pageB, 'me-name').textContent(), 'Bob');
    assert.equal(await byTestId(pageA, 'conn-state').textContent(), 'Online');
    assert.ok(await byTestId(pageB, 'room-list-empty').isVisible(), 'Bob has no chats yet');
});

test('Alice starts a direct chat with Bob; it opens titled Bob; Bob gets it in his list', T, async () => {
    await byTestId(pageA, 'new-direct-input').fill(BOB);
    await byTestId(pageA, 'new-direct-submit').click();
    await byTestId(pageA, 'composer').waitFor({ state: 'visible' });
    await until(() => byTestId(pageA, 'chat-title').textContent(), (t) => t === 'Bob', 'the chat title "Bob"');
    assert.equal(await byTestId(pageA, 'chat-subtitle').textContent(), `@${BOB}`);
    const rooms = await until(() => shownRooms(pageA), (r) => r.length === 1, 'Alice\'s room list with one chat');
    roomId = rooms[0].room;
    const bobRooms = await until(() => shownRooms(pageB), (r) => r.length === 1, 'Bob\'s room list with the new chat');
    assert.equal(bobRooms[0].room, roomId);
    assert.equal(bobRooms[0].name, 'Alice');
    assert.equal(bobRooms[0].unread, null, 'no unread badge before any message');
});

test('Alice sends two messages; Bob sees an unread badge of 2 and the preview before opening the chat', T, async () => {
    assert.ok(roomId, 'depends on the previous test');
    await sendFromComposer(pageA, 'Hi Bob! Is the bike still for sale?');
    await until(() => shownMessages(pageA), (m) => m.length === 1 && m[0].seq === 1, 'Alice\'s first message stored (seq 1)');
    await sendFromComposer(pageA, 'I could pick it up tomorrow.');
    const mine = await until(() => shownMessages(pageA), (m) => m.length === 2 && m[1].seq === 2, 'Alice\'s second message stored');
    assert.deepEqual(mine.map((m) => m.from), [ALICE, ALICE]);
    assert.ok(mine.every((m) => m.read === null), 'not read yet');

    const rooms = await until(() => shownRooms(pageB), (r) => r[0]?.unread === '2', 'Bob\'s unread badge "2"');
    assert.equal(rooms[0].preview, 'I could pick it up tomorrow.');
    assert.equal(await pageB.title(), '(2) IMKit demo');
    await screenshot(pageB, 'demo-bob-unread-badge.png');
});

test('Bob opens the chat: the messages show, the badge clears; Alice sees "Read" under her messages', T, async () => {
    await byTestId(pageB, 'room-item').first().click();
    const shown = await until(() => shownMessages(pageB), (m) => m.length === 2, 'Bob sees the two messages');
    assert.deepEqual(shown.map((m) => [m.seq, m.from, m.text]), [
        [1, ALICE, 'Hi Bob! Is the bike still for sale?'],
        [2, ALICE, 'I could pick it up tomorrow.'],
    ]);
    await until(() => shownRooms(pageB), (r) => r[0]?.unread === null, 'Bob\'s badge cleared');
    assert.equal(await pageB.title(), 'IMKit demo');
    const marks = await until(() => shownMessages(pageA), (m) => m.length === 2 && m.every((x) => x.read === 'Read'), 'Alice\'s read marks');
    assert.equal(marks[1].read, 'Read');
});

test('they chat both ways: each message once, in order, on both pages; typing shows', T, async () => {
    await byTestId(pageB, 'composer-input').pressSequentially('Yes', { delay: 20 });
    await until(() => byTestId(pageA, 'typing-indicator').textContent(), (t) => t === 'Bob is typing…', 'Alice sees "Bob is typing…"');
    await byTestId(pageB, 'composer-input').fill('Yes, it is! Tomorrow works.');
    await byTestId(pageB, 'composer-send').click();
    await until(() => shownMessages(pageA), (m) => m.length === 3, 'Alice gets Bob\'s reply');
    await sendFromComposer(pageA, 'Great, see you at 10.');
    await sendFromComposer(pageB, 'See you then.');
    const expected = [
        [1, ALICE, 'Hi Bob! Is the bike still for sale?'],
        [2, ALICE, 'I could pick it up tomorrow.'],
        [3, BOB, 'Yes, it is! Tomorrow works.'],
    ];
    for (const page of [pageA, pageB]) {
        const shown = await until(() => shownMessages(page), (m) => m.length === 5 && m.every((x) => x.seq !== null), `${page.label}: 5 stored messages`);
        assert.deepEqual(shown.map((m) => m.seq), [1, 2, 3, 4, 5], `${page.label}: in seq order, once each`);
        assert.deepEqual(shown.slice(0, 3).map((m) => [m.seq, m.from, m.text]), expected);
        assert.deepEqual(new Set(shown.slice(3).map((m) => m.text)), new Set(['Great, see you at 10.', 'See you then.']));
    }
    const file = await screenshot(pageA, 'demo-chat-alice.png');
    await screenshot(pageB, 'demo-chat-bob.png');
    if (process.env.IMKIT_UPDATE_DOCS_SCREENSHOT) {
        fs.copyFileSync(file, DOCS_SCREENSHOT);
    }
});

test('a message that arrives while Bob has the chat open is read: Alice sees "Read" under it too', T, async () => {
    // Bob's chat is open and visible (README: "Read" under own messages the peer has read).
    assert.equal(await pageB.evaluate(() => document.visibilityState), 'visible');
    const shown = await until(() => shownMessages(pageA), (m) => m.filter((x) => x.from === ALICE).every((x) => x.read === 'Read'),
        'every one of Alice\'s messages marked "Read" (seq 4 arrived while Bob\'s chat was open)');
    assert.ok(shown.length >= 5);
    const bobRooms = await shownRooms(pageB);
    assert.equal(bobRooms[0].unread, null, 'no badge on the chat Bob is reading');
});

test('Bob\'s gateway restarts (SIGKILL, same port) while Alice sends 5 messages: Bob\'s page shows each once, in order', { timeout: 90000 }, async () => {
    const before = (await shownMessages(pageB)).length;
    await killGateway(cluster, 1);
    await waitConnState(pageB, 'reconnecting', UI_TIMEOUT_MS);
    assert.equal(await byTestId(pageB, 'conn-state').textContent(), 'Reconnecting…');

    const missed = range(1, 5).map((i) => `Missed message ${i}`);
    for (const text of missed) {
        await sendFromComposer(pageA, text);
        await until(() => shownMessages(pageA), (m) => m.some((x) => x.text === text && x.seq !== null), `"${text}" stored`);
    }
    await screenshot(pageB, 'demo-bob-offline.png');
    await sleep(500);
    assert.equal((await shownMessages(pageB)).length, before, 'Bob\'s page got nothing while offline');

    await startGatewayAgain(cluster, 1);
    await waitConnState(pageB, 'open', 40000); // the SDK's backoff: 0.5 s doubling, with jitter
    const shown = await until(() => shownMessages(pageB), (m) => m.length >= before + 5, 'the 5 missed messages on Bob\'s page', 15000);
    await sleep(1000); // a repeat would show by now
    const final = await shownMessages(pageB);
    await screenshot(pageB, 'demo-bob-caught-up.png');
    assert.equal(final.length, before + 5, `each missed message once: ${JSON.stringify(final.map((m) => m.text))}`);
    assert.deepEqual(final.slice(before).map((m) => m.text), missed, 'in the order Alice sent them');
    assert.deepEqual(final.map((m) => m.seq), range(1, before + 5), 'seqs ascending, no gap, no repeat');
    assert.ok(shown.every((m) => m.from), 'every item has a sender');
});

test('after the catch-up, the chat Bob has open shows no unread badge, and Alice sees "Read" under the missed messages', T, async () => {
    await screenshot(pageB, 'demo-bob-after-catch-up-list.png');
    await until(() => shownRooms(pageB), (r) => r[0]?.unread === null, 'no unread badge on the chat Bob is reading', 3000);
    await until(() => shownMessages(pageA), (m) => m.filter((x) => x.text.startsWith('Missed message')).every((x) => x.read === 'Read'),
        'Alice sees the missed messages read');
});

test('after the restart, live messages flow both ways again', T, async () => {
    const before = (await shownMessages(pageB)).length;
    await sendFromComposer(pageB, 'Back online.');
    await until(() => shownMessages(pageA), (m) => m.at(-1)?.text === 'Back online.' && m.at(-1)?.seq === before + 1, 'Alice gets Bob\'s message after the restart');
    await until(() => shownMessages(pageB), (m) => m.at(-1)?.text === 'Back online.' && m.at(-1)?.seq === before + 1, 'Bob\'s own message stored');
    await sendFromComposer(pageA, 'Welcome back!');
    await until(() => shownMessages(pageB), (m) => m.at(-1)?.text === 'Welcome back!' && m.at(-1)?.seq === before + 2, 'Bob gets Alice\'s message after the restart');
});
