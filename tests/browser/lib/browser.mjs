// Browser helpers for the demo's tests: Debian's Chromium through playwright-core (never a
// downloaded browser), pages that report their console errors, bounded waits on the demo's
// data-testid elements, and the artifacts folder for screenshots.

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { REPO_DIR } from '../../sdk/lib/sdk-cluster.mjs';

export const CHROMIUM = process.env.IMKIT_CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS_DIR = path.resolve(process.env.IMKIT_ARTIFACTS_DIR || path.join(REPO_DIR, 'tests', 'artifacts'));
export const DOCS_SCREENSHOT = path.join(REPO_DIR, 'docs', 'demo.png');
export const UI_TIMEOUT_MS = Number(process.env.IMKIT_BROWSER_TIMEOUT_MS || 10000);
export const VIEWPORT = { width: 1000, height: 700 };

export async function launchChromium() {
    if (!fs.existsSync(CHROMIUM)) {
        throw new Error(`${CHROMIUM} does not exist: apt-get install chromium, or set IMKIT_CHROMIUM`);
    }
    return chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        timeout: 30000,
        args: [
            '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
        ],
    });
}

/**
 * A new context and page at `url`; the page's console errors, uncaught errors and failed
 * requests are collected in `page.problems` (printed by a failing test).
 */
export async function openPage(browser, url, label) {
    const context = await browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1 });
    context.setDefaultTimeout(UI_TIMEOUT_MS);
    const page = await context.newPage();
    page.label = label;
    page.problems = [];
    page.on('console', (msg) => {
        if (msg.type() === 'error' || msg.type() === 'warning') {
            page.problems.push(`console.${msg.type()}: ${msg.text()}`);
        }
    });
    page.on('pageerror', (error) => page.problems.push(`pageerror: ${error.message}`));
    page.on('requestfailed', (req) => page.problems.push(`requestfailed: ${req.url()} ${req.failure()?.errorText}`));
    await page.goto(url, { waitUntil: 'load' });
    return page;
}

export const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

/** Signs in through the demo's form and waits for the connection indicator to say open. */
export async function signIn(page, id, name) {
    await byTestId(page, 'signin-id').fill(id);
    await byTestId(page, 'signin-name').fill(name);
    await byTestId(page, 'signin-submit').click();
    await waitConnState(page, 'open');
    await byTestId(page, 'app').waitFor({ state: 'visible' });
}

export async function waitConnState(page, state, timeout = UI_TIMEOUT_MS) {
    await page.waitForFunction((s) => document.querySelector('[data-testid="conn-state"]')?.dataset.state === s, state, { timeout });
}

/** The messages of the open chat, as the page shows them: {seq, cid, from, text, read}. */
export function shownMessages(page) {
    return page.$$eval('[data-testid="message-list"] [data-testid="message-item"]', (items) => items.map((li) => ({
        seq: li.dataset.seq === undefined ? null : Number(li.dataset.seq),
        cid: li.dataset.cid ?? null,
        from: li.dataset.from,
        text: li.querySelector('.bubble')?.textContent ?? '',
        read: li.querySelector('[data-testid="read-mark"]')?.textContent ?? null,
    })));
}

/** Room items of the list: {room, name, preview, unread (badge text or null)}. */
export function shownRooms(page) {
    return page.$$eval('[data-testid="room-item"]', (items) => items.map((li) => ({
        room: li.dataset.room,
        name: li.querySelector('[data-testid="room-name"]')?.textContent ?? '',
        preview: li.querySelector('[data-testid="room-preview"]')?.textContent ?? '',
        unread: li.querySelector('[data-testid="unread-badge"]')?.textContent ?? null,
    })));
}

/** Polls `probe()` (async) until `check(value)`; returns the value or throws with the last one. */
export async function until(probe, check, what, timeout = UI_TIMEOUT_MS) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
        last = await probe();
        if (check(last)) {
            return last;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${timeout} ms waiting for ${what}; last seen: ${JSON.stringify(last)}`);
        }
        await new Promise((r) => setTimeout(r, 100));
    }
}

/** Types a message in the composer and sends it with the Send button. */
export async function sendFromComposer(page, text) {
    await byTestId(page, 'composer-input').fill(text);
    await byTestId(page, 'composer-send').click();
}

export async function screenshot(page, name) {
    fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
    const file = path.join(ARTIFACTS_DIR, name);
    await page.screenshot({ path: file });
    return file;
}
