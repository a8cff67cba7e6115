// Small helpers shared by the fault cases.

import fs from 'node:fs';
import { waitFor } from './fault-cluster.mjs';

/** Counts the lines of a log file that contain `needle`. */
export function countLogLines(file, needle) {
    try {
        return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.includes(needle)).length;
    } catch {
        return 0;
    }
}

/** Sum over every worker log of the jobs the workers said they claimed (jobs_claimed count=N). */
export function claimedJobs(fc) {
    const files = new Set(fc.workers.map((w) => w.proc.logFile));
    let n = 0;
    for (const f of files) {
        let text = '';
        try {
            text = fs.readFileSync(f, 'utf8');
        } catch {
            continue;
        }
        for (const m of text.matchAll(/jobs_claimed[^\n]*count=(\d+)/g)) {
            n += Number(m[1]);
        }
    }
    return n;
}

/** The common end of a case: nothing left pending, no dead job, every process healthy. */
export async function assertSettled(fc, t, { allowDead = 0, pendingWaitMs = 20000 } = {}) {
    let pending = -1;
    try {
        await waitFor(async () => {
            pending = await fc.pendingTotal();
            return pending === 0;
        }, pendingWaitMs, 'no job pending', 250);
    } catch {
        throw new Error(`${pending} jobs still pending ${pendingWaitMs} ms after the run (never claimed?)`);
    }
    const dead = await fc.deadJobs();
    if (dead.length > allowDead) {
        throw new Error(`${dead.length} jobs in the dead-letter stream: ${JSON.stringify(dead.slice(0, 3).map((d) => ({ id: d.id, stream: d.fields.stream, error: d.fields.error })))}`);
    }
    await fc.waitHealthy(20000);
    if (t) {
        t.diagnostic(`settled: 0 pending, ${dead.length} dead jobs, every process healthy`);
    }
}

/** The job stream partition of a room or client id: FNV-1a 32 mod partitions (common/src/keys.c). */
export function partitionOf(id, partitions = 4) {
    let h = 2166136261;
    for (const b of Buffer.from(id, 'utf8')) {
        h ^= b;
        h = Math.imul(h, 16777619) >>> 0;
    }
    return h % partitions;
}

/**
 * A minimal msgpack encoder (maps, strings, non-negative integers, booleans, arrays, and
 * Buffers as bin), enough to write job envelopes by hand (common/src/job.c).
 */
export function msgpack(v) {
    const parts = [];
    const enc = (x) => {
        if (Buffer.isBuffer(x)) {
            if (x.length < 256) {
                parts.push(Buffer.from([0xc4, x.length]));
            } else {
                const h = Buffer.alloc(5);
                h[0] = 0xc6;
                h.writeUInt32BE(x.length, 1);
                parts.push(h);
            }
            parts.push(x);
        } else if (typeof x === 'string') {
            const b = Buffer.from(x, 'utf8');
            if (b.length < 32) {
                parts.push(Buffer.from([0xa0 | b.length]));
            } else if (b.length < 256) {
                parts.push(Buffer.from([0xd9, b.length]));
            } else {
                const h = Buffer.alloc(3);
                h[0] = 0xda;
                h.writeUInt16BE(b.length, 1);
                parts.push(h);
            }
            parts.push(b);
        } else if (typeof x === 'boolean') {
            parts.push(Buffer.from([x ? 0xc3 : 0xc2]));
        } else if (typeof x === 'number') {
            if (!Number.isInteger(x) || x < 0) {
                throw new Error(`msgpack: unsupported number ${x}`);
            }
            if (x < 128) {
                parts.push(Buffer.from([x]));
            } else {
                const h = Buffer.alloc(9);
                h[0] = 0xcf;
                h.writeBigUInt64BE(BigInt(x), 1);
                parts.push(h);
            }
        } else if (Array.isArray(x)) {
            parts.push(Buffer.from([0x90 | x.length]));
            x.forEach(enc);
        } else if (x && typeof x === 'object') {
            const keys = Object.keys(x);
            parts.push(Buffer.from([0x80 | keys.length]));
            for (const k of keys) {
                enc(k);
                enc(x[k]);
            }
        } else {
            throw new Error(`msgpack: unsupported value ${x}`);
        }
    };
    enc(v);
    return Buffer.concat(parts);
}

/** A job envelope as the gateway writes it: {v, kind, job_id, gw, conn, req, from, at, args}. */
export function jobEnvelope({ kind, from, args, gw = '', conn = 0, req = 0, jobId = `crafted.${Date.now()}` }) {
    return msgpack({ v: 1, kind, job_id: jobId, gw, conn, req, from, at: Date.now(), args: msgpack(args) });
}
