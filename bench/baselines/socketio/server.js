// Baseline for the IMKit benchmark (docs/PERFORMANCE.md): the chat server a web team would
// otherwise write with Socket.IO and its Redis adapter, storing messages in Redis. It speaks
// the same operations as IMKit (auth with an HS256 JWT, room.create, room.members.add,
// msg.send, sync) as Socket.IO events with acks answered {"ok","data"|"error"}, so the C
// load generator drives both alike. One process per core, each on its own port.
//
//   PORT=7700 REDIS_URL=redis://127.0.0.1:6379 JWT_SECRET=... node server.js
'use strict';

const crypto = require('node:crypto');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const Redis = require('ioredis');

const port = Number(process.env.PORT || 7700);
const secret = process.env.JWT_SECRET || 'bench-secret';
const redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

const ID = /^[A-Za-z0-9_.@:-]{1,64}$/;
const MAX_TEXT = 16384;
const HISTORY = 100;

// HS256 verification with Node's own HMAC: sub and exp required, as IMKit checks.
function verifyJwt(token) {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3) return null;
  const header = JSON.parse(Buffer.from(parts[0], 'base64url'));
  if (header.alg !== 'HS256') return null;
  const mac = crypto.createHmac('sha256', secret).update(parts[0] + '.' + parts[1]).digest();
  const sig = Buffer.from(parts[2], 'base64url');
  if (sig.length !== mac.length || !crypto.timingSafeEqual(sig, mac)) return null;
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
  if (typeof claims.sub !== 'string' || !ID.test(claims.sub)) return null;
  if (typeof claims.exp !== 'number' || claims.exp * 1000 <= Date.now()) return null;
  return claims;
}

const db = new Redis(redisUrl);
const pub = new Redis(redisUrl);
const sub = pub.duplicate();
const io = new Server({
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  maxHttpBufferSize: 65536,
});
io.adapter(createAdapter(pub, sub));

const ok = (data) => ({ ok: true, data });
const fail = (code, message) => ({ ok: false, error: { code, message } });
const keys = {
  rooms: (user) => `sio:u:${user}:rooms`,
  members: (room) => `sio:r:${room}:m`,
  seq: (room) => `sio:r:${room}:seq`,
  log: (room) => `sio:r:${room}:log`,
};

// Authentication happens before the connect packet is answered, and the client's rooms are
// loaded then too, so its first request already sees them.
io.use(async (socket, next) => {
  try {
    const claims = verifyJwt(socket.handshake.auth && socket.handshake.auth.token);
    if (!claims) return next(new Error('unauthenticated'));
    socket.data.user = claims.sub;
    socket.data.rooms = await db.smembers(keys.rooms(claims.sub));
    next();
  } catch (err) {
    next(new Error('unavailable'));
  }
});

// Adds members to a room: the record in Redis, their sockets on every node, their event.
// socketsJoin goes through Redis even for this node's sockets, so the caller's own socket
// joins directly: its next request must already see the room.
async function addMembers(socket, room, type, members) {
  const multi = db.multi().sadd(keys.members(room), ...members);
  for (const m of members) multi.sadd(keys.rooms(m), room);
  await multi.exec();
  socket.join(room);
  for (const m of members) {
    io.in(`u:${m}`).socketsJoin(room);
    io.to(`u:${m}`).emit('room.joined', { id: room, type });
  }
}

function validIds(ids) {
  return Array.isArray(ids) && ids.length >= 1 && ids.length <= 100 && ids.every((x) => ID.test(x));
}

async function roomCreate(socket, d) {
  const user = socket.data.user;
  if (!d || !validIds(d.members)) return fail('bad_request', 'members: 1-100 ids');
  if (d.type === 'direct') {
    if (d.members.length !== 1) return fail('bad_request', 'members: exactly one other');
    const pair = [user, d.members[0]].sort();
    const room = `d:${pair[0]}:${pair[1]}`;
    await addMembers(socket, room, 'direct', pair);
    return ok({ id: room, type: 'direct', created: true });
  }
  if (d.type !== 'group' || typeof d.id !== 'string' || !ID.test(d.id)) {
    return fail('bad_request', 'type, id');
  }
  await addMembers(socket, d.id, 'group', [user, ...d.members]);
  return ok({ id: d.id, type: 'group', created: true });
}

async function membersAdd(socket, d) {
  if (!d || typeof d.room !== 'string' || !socket.rooms.has(d.room) || !validIds(d.members)) {
    return fail('forbidden', 'not a member of this room');
  }
  await addMembers(socket, d.room, 'group', d.members);
  return ok({ id: d.room });
}

// A message: membership from the socket's rooms, the next seq, stored in the room's log (a
// sorted set by seq), then broadcast to the room through the adapter, then acknowledged.
async function msgSend(socket, d) {
  if (!d || typeof d.room !== 'string' || !socket.rooms.has(d.room)) {
    return fail('forbidden', 'not a member of this room');
  }
  if (typeof d.text !== 'string' || Buffer.byteLength(d.text) > MAX_TEXT) {
    return fail('bad_request', 'text: required, at most 16384 bytes');
  }
  if (typeof d.cid !== 'string' || !ID.test(d.cid)) return fail('bad_request', 'cid');
  const seq = await db.incr(keys.seq(d.room));
  const msg = {
    room: d.room, seq, ts: Date.now(), from: socket.data.user, type: 'text', text: d.text, cid: d.cid,
  };
  await db.zadd(keys.log(d.room), seq, JSON.stringify(msg));
  io.to(d.room).emit('message', msg);
  return ok({ room: d.room, seq, ts: msg.ts, cid: d.cid });
}

// After a reconnect: the messages after what the client holds, for each of its rooms.
async function sync(socket, d) {
  const known = (d && d.known) || {};
  const rooms = [...socket.rooms].filter((r) => r !== socket.id && !r.startsWith('u:'));
  const pipeline = db.pipeline();
  for (const r of rooms) {
    pipeline.zrangebyscore(keys.log(r), `(${Number(known[r]) || 0}`, '+inf', 'LIMIT', 0, HISTORY);
  }
  const results = await pipeline.exec();
  const messages = {};
  rooms.forEach((r, i) => {
    messages[r] = (results[i][1] || []).map((m) => JSON.parse(m));
  });
  return ok({ rooms, messages });
}

const handlers = {
  'room.create': roomCreate,
  'room.members.add': membersAdd,
  'msg.send': msgSend,
  sync,
};

io.on('connection', (socket) => {
  socket.join([`u:${socket.data.user}`, ...socket.data.rooms]);
  for (const [name, handler] of Object.entries(handlers)) {
    socket.on(name, (data, ack) => {
      if (typeof ack !== 'function') return;
      handler(socket, data).then(ack, (err) => ack(fail('unavailable', String(err))));
    });
  }
});

io.listen(port);
process.on('SIGTERM', () => io.close(() => process.exit(0)));
