#!lua name=imkit
--[[
IMKit: the Redis Functions library that applies every change to the chat's state.

The contract with workers and gateways is docs/FUNCTIONS.md; the objects, operations and
rules are the wire contract (PROTOCOL.md sections 1-2). Conventions of this file:

Calling
  FCALL[_RO] <function> <0 | 1 {<id>}> <prefix> <from> <args>     (plain calls, queries)
  FCALL <function> <0 | 1 {<home>}> <prefix> <from> <args> <job id> <events> <cluster>
                                                                    (jobs, from workers)
  {<id>}  the one declared key: the hash tag of the room or client the call is about;
          every key the call touches is in its slot (writes elsewhere: Other slots).
  prefix  key prefix (e.g. "imkit:"); every key and channel is built from it (K.*, CH.*).
  from    the acting client id, or '' for the admin API ("acting as the system": no
          membership checks).
  args    one msgpack map. Strings must be packed as msgpack str (Redis' cmsgpack cannot
          decode bin). Users' JSON (meta, payload) arrives as JSON text and is stored and
          embedded verbatim, never decoded: this keeps big integers exact.
  job id  jobs only (functions registered JOB, the worker's allow-list): the job's unique
          id, for exactly-once replies (see Jobs). Absent or '' = a plain call.
  events  jobs only: "1" when the event feed is on (see Outbox); absent or "0" = off.
  cluster jobs only: "1" when Redis is a cluster (see Other slots); absent or "0" = one
          Redis. Other functions ignore the last three.

Reply
  { 'ok', <JSON data>, channel1, frame1, channel2, frame2, ... }   events to publish, in order
  { <error code>, <human message> }                                nothing was written
                                                                   (but a job's reply: Jobs)
  The caller publishes the events: the worker, for jobs. Functions that gateways call
  directly for their own bookkeeping (registered SELF_PUBLISH: imkit_presence_set,
  imkit_gateway_gone, imkit_presence_drop) PUBLISH their events themselves, in order, and
  reply { 'ok', data }; called with a 4th argument "1" (a cluster) they SPUBLISH, and
  imkit_presence_set leaves gwc:<gateway> (another slot) to the gateway.

Jobs: exactly-once replies
  A job is applied again when its worker died after applying it and before acknowledging
  it. So the reply of a call with a job id is stored in done:<job id> (cmsgpack of the
  reply array, 24 h TTL), in the same call; a call whose done:<job id> exists returns that
  reply unchanged (status, body and events: the worker publishes the same events again,
  which clients drop by seq) and touches nothing else. Every reply is stored, error
  replies too (they are definitive); a real fault (a Lua error) is not, and the retry runs
  for real. This is done once, by the registration wrapper (section 8).
  A message send, the one job per message, keeps no done record (OWN_RECORD): its entry in
  the room's cid index is its record, "<seq>|<ts>|<mark>", where mark is the first 8 hex
  digits of the job id's SHA-1. The same job again (same mark) publishes the message event
  again; another job with the same sender and cid (a client's retry) gets the answer only.
  A refused send records nothing: run again, it is judged again on the room as it then is.
  A done key per message would hold about 136 bytes for 24 h: gigabytes at a few thousand
  messages a second, and a keyspace that never stops growing.

Other slots
  A job's writes outside its home slot (a member's room index u:{id}:rooms and profile, a
  token's tok:<hash>, a room a deleted client leaves, a direct pair's key) go through
  elsewhere() and call_elsewhere(). On one Redis they run in the call, atomically. On a
  cluster (the cluster argument) they cannot, and are handed back in the reply instead,
  each as a pair '' (no channel), { <route key>, <command>, <arguments>... }: the worker
  runs them on the master of the route key's slot after the call, publishes the events of
  those that are Functions (registered FOLLOW_UP) and hands theirs on the same way, and
  acknowledges the job only when all have run. Each is idempotent: a replayed job hands
  them back again. One of them may answer the job instead of the call: its pair's channel
  is '=' (a direct room's creation runs in the pair's slot, and the room is read or made
  in its own by imkit_direct_open, whose reply is the answer). On a cluster a call reads
  nothing outside its slot either: a direct room's room.joined goes out from the peer's
  slot (imkit_peer_joined), with the peer's profile.

Outbox
  When a job's events argument is "1", the call appends the events for the website's
  backend (PROTOCOL.md section 4) to the stream <prefix>events, id '*', fields type, ts
  (ms, the change's time) and data (JSON text); workers deliver them to the webhook and
  imkit_events_get pages through them. outbox(type, data) queues one while the handler
  runs; the wrapper writes them once the handler succeeded, so a refused call writes none,
  and a replayed job none again. Types: message.sent (the message and "offline", the
  members with no open connection), room.created, room.updated, room.deleted (the room;
  deleted: as it was), member.joined and member.left ({"room","members"}, one entry per
  room and call), client.created (whenever ensure_profile creates a profile). Off, the
  handlers do no work for it (no offline list is computed).
  On a cluster the stream is in another slot: the call appends its entries to its home's
  outbox ob:{<home>} and hands back every entry still there as a write of imkit_outbox_add
  in the stream's slot (hand_outbox), which moves each once, in order, then has the home's
  outbox trimmed. The members' presence is in their slots too: a message.sent entry names
  the room's members, and the worker replaces the write's last argument with those
  offline (channel '?', else '+'). Follow-up Functions take the events flag, and then the
  offline ids, after their args.

Failures
  fail(code, msg) throws a marked error that the wrapper turns into the error reply. Every
  handler checks everything it needs BEFORE its first write, so a refused call writes
  nothing. Any other Lua error is a real fault and propagates as a Redis error reply: the
  worker retries the job and finally dead-letters it.

Numbers
  Lua 5.1 numbers are doubles: exact up to 2^53, plenty for ms timestamps and seqs, but
  tostring() prints 1.7e+12. Every integer leaving Lua (key, hash value, JSON) goes
  through fmt_int ('%d').

JSON
  A small encoder of our own: cjson cannot tell {} from [] and rounds big integers.
    obj(k1, v1, k2, v2, ...)  an object; keeps field order; a nil value leaves the field
                              out (the contract's `?` fields). put(o, k, v) adds one.
    NULL                      JSON null (fields written without `?` that have no value)
    arr(t)                    marks a Lua list as a JSON array (so an empty one is [])
    raw(text)                 embeds stored JSON text verbatim (meta, payload, messages)
    obj()                     the empty-object marker: an empty map encodes as {}
  and a reader that never decodes users' JSON: json_members(text) splits a stored object
  into its members, each value kept as raw text, so a stored message is rebuilt with one
  field changed and everything else byte for byte (see 6. Messages).

Events
  emit(channel, ev, data) queues one. An event on a room channel that some members'
  sessions must not get (member.joined: the new members get room.joined instead;
  member.left and room.updated after a leave: the leaver gets room.left) is queued with
  emit_skip: the frame is preceded by "!skip <id>,<id>\n"; the gateway drops those
  clients' sessions and strips the prefix before writing. On a cluster a client's channel
  and a room's are on different masters, so their events may reach a gateway in either
  order: the skip, not the order, keeps them from the wrong sessions.

Message versions
  The stream log r:{rid}:log is immutable (the message as sent). An edited, recalled or
  reacted message's current version is the JSON in the hash r:{rid}:edit (seq -> JSON),
  and every read overlays it: history and sync (one HMGET a page), and the room's
  last_msg, rewritten when the last message changes (summaries read it).

Deleted clients
  Deleting a client keeps its profile hash holding only `deleted` and `tokens_valid_after`
  (the revocation mark: its old tokens stay refused). load_profile treats it as absent;
  ensure_profile (a later auth, token or add) recreates the profile over it.

Presence
  online:{client} holds one field per gateway (that gateway's count of the client's
  sessions; dropped at 0) and last_seen; gwc:<gateway> is the set of clients a gateway
  counts, so imkit_gateway_gone can clean up after a dead gateway without a SCAN.

Ordering of ids
  Lua's `<` on strings uses strcoll, and Redis sets LC_COLLATE from the environment, so
  ids are compared with bytes_less (byte order) wherever the order is visible.

Load time
  While FUNCTION LOAD runs the library body, Redis 7.0 exposes only `redis` (no string,
  table, ipairs, setmetatable...). Top-level code therefore only defines locals, tables
  and functions and registers; everything else runs inside the callbacks.

Lua 5.1 limits
  A function may use at most 60 upvalues and a chunk at most 200 locals: helpers are
  grouped in tables (K, CH) and kept few and general, so the library can grow.

Layout
  1. JSON encoder, reader    5. rooms: load, membership, objects, summaries, leaving
  2. call context, events    6. messages: objects, current versions, reactions
  3. keys and channels       7. functions, one section per family
  4. clients, presence       8. the wrapper (replies, jobs, outbox) and registration
]]

---------------------------------------------------------------------------------------
-- 1. JSON encoder, and a reader of stored JSON
---------------------------------------------------------------------------------------

local NULL = {} -- compared by identity
local ARR, OBJ, RAW = {}, {}, {} -- metatables that mark what a table encodes to
local ORDER = {} -- key under which an object keeps its field order (never clashes with a string)

local function fmt_int(n)
  return string.format('%d', n)
end

local function arr(t)
  return setmetatable(t or {}, ARR)
end

local function raw(text)
  return setmetatable({ text }, RAW)
end

-- Stored JSON text, or null when there is none.
local function raw_or_null(text)
  if text == nil or text == false or text == '' then return NULL end
  return raw(text)
end

-- Adds a field to an object; nil leaves it out. Returns the object, for chaining.
local function put(o, k, v)
  if v == nil then return o end
  if rawget(o, k) == nil then
    local order = o[ORDER]
    order[#order + 1] = k
  end
  rawset(o, k, v)
  return o
end

local function obj(...)
  local o = setmetatable({ [ORDER] = {} }, OBJ)
  for i = 1, select('#', ...), 2 do
    local k, v = select(i, ...)
    put(o, k, v)
  end
  return o
end

-- cjson escapes strings correctly, but also writes "/" as "\/" (legal, and ugly in
-- URLs). Every "/" it writes is escaped, so a "\/" pair in its output is always such an
-- escape and can be turned back into "/".
local function json_string(s)
  if not string.find(s, '/', 1, true) then return cjson.encode(s) end -- most: no gsub
  return (cjson.encode(s):gsub('\\/', '/'))
end

local encode_into -- recursive: declared first
encode_into = function(v, out)
  local t = type(v)
  if t == 'string' then
    out[#out + 1] = json_string(v)
  elseif t == 'number' then
    out[#out + 1] = fmt_int(v)
  elseif t == 'boolean' then
    out[#out + 1] = v and 'true' or 'false'
  elseif v == NULL then
    out[#out + 1] = 'null'
  elseif t == 'table' and getmetatable(v) == RAW then
    out[#out + 1] = v[1]
  elseif t == 'table' and getmetatable(v) == ARR then
    out[#out + 1] = '['
    for i = 1, #v do
      if i > 1 then out[#out + 1] = ',' end
      encode_into(v[i], out)
    end
    out[#out + 1] = ']'
  elseif t == 'table' and getmetatable(v) == OBJ then
    out[#out + 1] = '{'
    for i, k in ipairs(v[ORDER]) do
      if i > 1 then out[#out + 1] = ',' end
      out[#out + 1] = json_string(k)
      out[#out + 1] = ':'
      encode_into(rawget(v, k), out)
    end
    out[#out + 1] = '}'
  else
    error('imkit json: cannot encode ' .. t .. ' (tables need arr/obj/raw)')
  end
end

local function json(v)
  local out = {}
  encode_into(v, out)
  return table.concat(out)
end

-- The reader: JSON text we stored (or the gateway validated) is split, never decoded, so
-- users' JSON stays verbatim. Positions are byte indexes into text.
local JR = {}

function JR.string_end(text, i) -- text:sub(i, i) is '"': the index of the closing quote
  local j = i + 1
  while true do
    local p = text:find('["\\]', j)
    if text:sub(p, p) == '"' then return p end
    j = p + 2 -- skip the escaped character
  end
end

function JR.value_end(text, i) -- the index of the last byte of the value starting at i
  local c = text:sub(i, i)
  if c == '"' then return JR.string_end(text, i) end
  if c == '{' or c == '[' then
    local depth, j = 0, i
    while true do
      local p = text:find('[%[%]{}"]', j)
      local d = text:sub(p, p)
      if d == '"' then
        j = JR.string_end(text, p) + 1
      else
        depth = depth + ((d == '{' or d == '[') and 1 or -1)
        if depth == 0 then return p end
        j = p + 1
      end
    end
  end
  local p = text:find('[,}%]%s]', i) -- a number, true, false or null
  return (p or #text + 1) - 1
end

-- The members of a JSON object: its keys in order, and key -> value as raw JSON text.
local function json_members(text)
  local keys, vals = {}, {}
  local i = text:find('{', 1, true) + 1
  while true do
    i = text:find('[^%s,]', i)
    if i == nil or text:sub(i, i) == '}' then break end
    local kend = JR.string_end(text, i)
    local key = cjson.decode(text:sub(i, kend))
    i = text:find('[^%s:]', kend + 1)
    local vend = JR.value_end(text, i)
    keys[#keys + 1] = key
    vals[key] = text:sub(i, vend)
    i = vend + 1
  end
  return keys, vals
end

---------------------------------------------------------------------------------------
-- 2. Call context, argument checks, events
---------------------------------------------------------------------------------------

-- State of the running call, reset by the wrapper (entry). Redis runs one function at a time.
local P = ''       -- key prefix
local FROM = ''    -- acting client, '' = admin
local NOW = nil    -- ms, read once per call so one call sees one instant
local EVENTS = {}  -- flat list: channel, frame, channel, frame, ...
local OUTBOX = nil -- the feed on: entries to write, in order, and .left (see outbox_left);
                   -- nil when the feed is off (header: Outbox)
local JOB_ID = nil -- the id of a job, else nil (see entry)
local HOME = nil   -- the declared key of a job: "{<room or client id>}", or nil (see entry)
local CLUSTER = false -- Redis is a cluster: writes to other slots go to AFTER (header)
local AFTER = {}   -- those writes: { route key, command, arguments... } each
local LEFT = {}    -- room id -> the ids that left it in this call (see leave_room)
local ANSWER_AT = nil -- the index in AFTER of the write whose reply answers the job
local OFFLINE = '' -- imkit_outbox_add: the offline ids the worker filled in (header: Outbox)
local DONE_TTL_MS = '86400000' -- how long a job's reply (and outbox write) is kept: 24 h

local FAIL = {} -- metatable of expected refusals (see fail)

local function fail(code, msg)
  error(setmetatable({ code = code, msg = msg }, FAIL), 0)
end

local function now_ms()
  if NOW == nil then
    local t = redis.call('TIME')
    NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return NOW
end

-- Byte-order "a < b" (see the header: `<` on strings follows the locale).
local function bytes_less(a, b)
  if a == b then return false end
  for i = 1, math.min(#a, #b) do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function clamp(n, lo, hi)
  if n < lo then return lo end
  if n > hi then return hi end
  return n
end

-- Argument readers. The gateway checked types and sizes already; these only guard the
-- worker against a malformed job (a bad_request, not a dead-lettered Lua error).
local function arg_str(args, name, required)
  local v = args[name]
  if v == nil then
    if required then fail('bad_request', name .. ': required') end
    return nil
  end
  if type(v) ~= 'string' then fail('bad_request', name .. ': must be a string') end
  return v
end

local function arg_int(args, name, required)
  local v = args[name]
  if v == nil then
    if required then fail('bad_request', name .. ': required') end
    return nil
  end
  local n = tonumber(v)
  if n == nil or n ~= math.floor(n) then fail('bad_request', name .. ': must be an integer') end
  return n
end

local function arg_bool(args, name, required)
  local v = args[name]
  if v == nil then
    if required then fail('bad_request', name .. ': required') end
    return nil
  end
  if type(v) ~= 'boolean' then fail('bad_request', name .. ': must be a boolean') end
  return v
end

-- A list of strings, duplicates dropped (first one kept). Absent = empty.
local function arg_ids(args, name, required)
  local v = args[name]
  if v == nil then
    if required then fail('bad_request', name .. ': required') end
    return {}
  end
  if type(v) ~= 'table' then fail('bad_request', name .. ': must be an array') end
  local out, seen = {}, {}
  for _, x in ipairs(v) do
    if type(x) ~= 'string' then fail('bad_request', name .. ': must hold strings') end
    if not seen[x] then
      seen[x] = true
      out[#out + 1] = x
    end
  end
  return out
end

-- Queues an event: channel, then the WebSocket frame {"ev":..,"data":..}.
local function emit(channel, ev, data)
  EVENTS[#EVENTS + 1] = channel
  EVENTS[#EVENTS + 1] = '{"ev":' .. json_string(ev) .. ',"data":' .. json(data) .. '}'
end

-- Queues an event on a room channel that the sessions of the clients in `skip` must not
-- get: the frame goes out as "!skip <id>,<id>\n<frame>" (see the header: Events).
local function emit_skip(channel, skip, ev, data)
  emit(channel, ev, data)
  if #skip > 0 then
    EVENTS[#EVENTS] = '!skip ' .. table.concat(skip, ',') .. '\n' .. EVENTS[#EVENTS]
  end
end

-- Queues an outbox entry when the call's feed is on (header: Outbox). data: an object, or
-- a function that builds it when the entry is written (the state at the end of the call);
-- ts: the change's time, now when nil.
local function outbox(type, data, ts)
  if OUTBOX then OUTBOX[#OUTBOX + 1] = { type = type, data = data, ts = ts } end
end

-- A write to key (outside the call's slot; the route of the command): run now on one
-- Redis, handed back to the worker on a cluster (header: Other slots).
local function elsewhere(key, ...)
  if CLUSTER then
    AFTER[#AFTER + 1] = { key, ... }
  else
    redis.call(...)
  end
end

-- Calls FOLLOW_UP function name (args: a Lua map) on the slot of {id} as the system; on
-- one Redis, fn(args) runs in this call instead (a script cannot FCALL). answers: the
-- call's reply is the job's answer (on one Redis, fn's result is returned).
local function call_elsewhere(id, name, fn, args, answers)
  if CLUSTER then
    local tag = '{' .. id .. '}'
    AFTER[#AFTER + 1] = { tag, 'FCALL', name, '1', tag, P, '', cmsgpack.pack(args),
      OUTBOX and '1' or '0' }
    if answers then ANSWER_AT = #AFTER end
    return obj() -- a placeholder: the worker answers with that reply
  end
  return fn(args)
end

---------------------------------------------------------------------------------------
-- 3. Keys and channels (DESIGN.md "Redis keys"; braces are Cluster hash tags)
---------------------------------------------------------------------------------------

local K = {}
function K.room(rid) return P .. 'r:{' .. rid .. '}' end
function K.members(rid) return P .. 'r:{' .. rid .. '}:m' end     -- id -> role|joined_at
function K.reads(rid) return P .. 'r:{' .. rid .. '}:read' end     -- id -> read seq
function K.log(rid) return P .. 'r:{' .. rid .. '}:log' end        -- stream, id <seq>-1
function K.cids(rid) return P .. 'r:{' .. rid .. '}:cid' end       -- sender|cid -> seq|ts
function K.edits(rid) return P .. 'r:{' .. rid .. '}:edit' end     -- seq -> current message
function K.user(id) return P .. 'u:{' .. id .. '}' end
function K.user_rooms(id) return P .. 'u:{' .. id .. '}:rooms' end -- zset rid, joined_at
function K.token(hash) return P .. 'tok:' .. hash end
function K.online(id) return P .. 'online:{' .. id .. '}' end   -- gw -> count, last_seen
function K.gw_clients(gw) return P .. 'gwc:' .. gw end            -- set of clients gw counts
function K.done(job) -- a job's reply (cmsgpack), in the slot of the job's home when declared
  return P .. 'done:' .. (HOME and HOME .. ':' or '') .. job
end
function K.events() return P .. 'events' end                      -- the outbox stream
function K.events_done(id) -- a home's outbox entry moved (cluster), in the stream's slot
  return P .. 'events:done:{' .. P .. 'events}:' .. id
end
function K.home_outbox(home) return P .. 'ob:' .. home end         -- entries to move (cluster)
function K.direct(a, b) -- the pair in byte order, so both sides find the same key
  if bytes_less(b, a) then a, b = b, a end
  return P .. 'direct:{' .. a .. '|' .. b .. '}'
end

local CH = {}
function CH.room(rid) return P .. 'ch:r:{' .. rid .. '}' end
function CH.user(id) return P .. 'ch:u:{' .. id .. '}' end
function CH.presence(id) return P .. 'ch:p:{' .. id .. '}' end

-- HGETALL as a Lua table, or nil when the key does not exist.
local function load_hash(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

---------------------------------------------------------------------------------------
-- 4. Clients (profiles), presence
---------------------------------------------------------------------------------------

-- The profile, or nil when there is none or the client was deleted (header: Deleted
-- clients). Every reader of profiles goes through here; only the revocation check of
-- imkit_auth reads the raw hash.
local function load_profile(id)
  local prof = load_hash(K.user(id))
  if prof == nil or prof.deleted then return nil end
  return prof
end

-- client: {"id","name","avatar","meta"}; a missing profile reads as a fresh one.
local function client_obj(id, prof)
  prof = prof or {}
  return obj('id', id, 'name', prof.name or id, 'avatar', prof.avatar or NULL,
    'meta', raw_or_null(prof.meta))
end

-- Creates the profile when missing (name = given name, else the id: PROTOCOL.md
-- "Ids that never connected may be named as members"). Returns the profile and
-- whether it was created. A deleted client's hash is reused: its revocation mark stays.
-- prof: the profile hash as read (nil when there is none).
local function ensure_read_profile(id, name, prof)
  if prof and not prof.deleted then return prof, false end
  if prof then redis.call('HDEL', K.user(id), 'deleted') end
  prof = { name = name or id, created_at = fmt_int(now_ms()),
    tokens_valid_after = prof and prof.tokens_valid_after }
  redis.call('HSET', K.user(id), 'name', prof.name, 'created_at', prof.created_at)
  -- built when written: callers fill in the returned prof (auth's avatar, client_put's meta)
  outbox('client.created', function() return client_obj(id, prof) end)
  return prof, true
end

local function ensure_profile(id, name)
  return ensure_read_profile(id, name, load_hash(K.user(id)))
end

-- imkit_profile_ensure (FOLLOW_UP): args id  ->  {}. ensure_profile in the client's slot.
local function fn_profile_ensure(args)
  ensure_profile(arg_str(args, 'id', true))
  return obj()
end

-- ensure_profile for a member a room call adds: in the member's own slot.
local function ensure_member_profile(id)
  call_elsewhere(id, 'imkit_profile_ensure', fn_profile_ensure, { id = id })
end

-- Presence from the gateways' counters: online when any gateway holds a connection.
-- h: the online hash as load_hash reads it.
local function online_in(h)
  for field, count in pairs(h) do
    if field ~= 'last_seen' and (tonumber(count) or 0) > 0 then return true end
  end
  return false
end

local function presence_of(id)
  local h = load_hash(K.online(id)) or {}
  return online_in(h), tonumber(h.last_seen)
end

-- presence_of's online, in one or two commands whatever the hash holds (message.sent asks
-- it for every member). online:{id} holds only gateway fields, each a count > 0
-- (imkit_presence_set drops a field at 0, imkit_gateway_gone a dead gateway's), and at most
-- one last_seen: online iff HLEN - HEXISTS(last_seen) > 0, and HEXISTS matters only at 1.
local function is_connected(id)
  local n = redis.call('HLEN', K.online(id))
  if n == 1 then n = n - redis.call('HEXISTS', K.online(id), 'last_seen') end
  return n > 0
end

-- Queues a presence change on the client's presence channel.
local function emit_presence(id, online, last_seen)
  emit(CH.presence(id), 'presence', obj('client', id, 'online', online,
    'last_seen', last_seen or NULL))
end

-- After a change to the client's online hash (was_online = presence before it, h = the hash
-- after it): when the client went offline, last_seen = now; when it went on- or offline, a
-- presence event. Returns whether the client is online.
local function presence_settle(id, was_online, h)
  local online, last_seen = online_in(h), tonumber(h.last_seen)
  if online ~= was_online then
    if not online then
      last_seen = now_ms()
      redis.call('HSET', K.online(id), 'last_seen', fmt_int(last_seen))
    end
    emit_presence(id, online, last_seen)
  end
  return online
end

---------------------------------------------------------------------------------------
-- 5. Rooms: loading, membership, objects, summaries
---------------------------------------------------------------------------------------

local function num(s)
  return tonumber(s) or 0
end

local function load_room(rid)
  return load_hash(K.room(rid))
end

local function must_room(rid)
  local h = load_room(rid)
  if not h then fail('not_found', 'room ' .. rid .. ' not found') end
  return h
end

-- Some fields of a room, for a hot path that needs no more: the hash also holds the last
-- message, up to the text limit, which must_room would copy. not_found as must_room.
local function must_room_fields(rid, ...)
  local v = redis.call('HMGET', K.room(rid), 'type', ...)
  if not v[1] then fail('not_found', 'room ' .. rid .. ' not found') end
  return unpack(v, 2, select('#', ...) + 1)
end

-- The member's "role|joined_at" entry, or nil.
local function member_entry(rid, id)
  local v = redis.call('HGET', K.members(rid), id)
  if v then return v end
  return nil
end

-- Refuses a caller that is not a member (the admin, from == '', is not checked).
local function check_member(rid)
  if FROM ~= '' and not member_entry(rid, FROM) then
    fail('forbidden', 'not a member of room ' .. rid)
  end
end

-- Loads a room the caller may act on: not_found, then forbidden. This is the check every
-- room operation starts with (PROTOCOL.md: "Every room operation checks membership").
local function must_access(rid)
  local h = must_room(rid)
  check_member(rid)
  return h
end

local function parse_member(v)
  local role, joined = v:match('^([^|]*)|(%d+)$')
  return role, tonumber(joined)
end

-- Members as {id, role, joined_at}, ordered by joined_at then id.
local function member_list(rid)
  local flat = redis.call('HGETALL', K.members(rid))
  local list = {}
  for i = 1, #flat, 2 do
    local role, joined = parse_member(flat[i + 1])
    list[#list + 1] = { id = flat[i], role = role, joined_at = joined or 0 }
  end
  table.sort(list, function(a, b)
    if a.joined_at ~= b.joined_at then return a.joined_at < b.joined_at end
    return bytes_less(a.id, b.id)
  end)
  return list
end

-- The members with no open connection (is_connected), in the order of the members hash:
-- message.sent's "offline". One HKEYS, then one or two commands a member.
local function offline_members(rid)
  local ids = arr()
  for _, id in ipairs(redis.call('HKEYS', K.members(rid))) do
    if not is_connected(id) then ids[#ids + 1] = id end
  end
  return ids
end

-- Queues message.sent: the stored message byte for byte, plus "offline". On a cluster the
-- members' presence is in their own slots: the entry keeps the message open (no closing
-- brace) and names the members to check, and imkit_outbox_add closes it with those the
-- worker found offline (header: Outbox).
local function outbox_message(rid, text, ts)
  if not OUTBOX then return end
  if not CLUSTER then
    outbox('message.sent', raw(text:sub(1, -2) .. ',"offline":' .. json(offline_members(rid)) ..
      '}'), ts)
    return
  end
  outbox('message.sent', raw(text:sub(1, -2)), ts)
  OUTBOX[#OUTBOX].offline = redis.call('HKEYS', K.members(rid))
end

-- room: {"id","type","name","cover","meta","owner","members_count","created_at","updated_at","last_seq"}
local function room_obj(rid, h)
  return obj('id', rid, 'type', h.type, 'name', h.name or NULL, 'cover', h.cover or NULL,
    'meta', raw_or_null(h.meta), 'owner', h.owner or NULL,
    'members_count', num(h.members_count), 'created_at', num(h.created_at),
    'updated_at', num(h.updated_at), 'last_seq', num(h.last_seq))
end

local function read_mark(rid, id)
  return num(redis.call('HGET', K.reads(rid), id))
end

-- Unread = last_seq - read mark: sending moves the sender's mark to its message, so
-- this counts only messages from others.
local function unread_of(h, mark)
  local n = num(h.last_seq) - mark
  if n < 0 then return 0 end
  return n
end

-- The other member of a direct room, or nil when it is gone.
local function direct_peer(rid, id)
  for _, m in ipairs(redis.call('HKEYS', K.members(rid))) do
    if m ~= id then return m end
  end
  return nil
end

-- How a stored message text reads back. Texts reach here already current: page_texts
-- overlays edits on log pages, and last_msg is rewritten with its message (set_current).
local function stored_message(text)
  return raw_or_null(text)
end

-- summary: room + "last_message" + "unread" + "peer" (direct rooms), as seen by client id.
-- On a cluster the peer's profile is in the peer's slot: the summary leaves "peer" out
-- and returns the peer's id beside it, for the caller to have it read there and added
-- with with_peer.
local function room_summary(rid, h, id, mark)
  local s = room_obj(rid, h)
  put(s, 'last_message', stored_message(h.last_msg))
  put(s, 'unread', unread_of(h, mark or read_mark(rid, id)))
  if h.type == 'direct' then
    local peer = direct_peer(rid, id)
    if peer and CLUSTER then return s, peer end
    put(s, 'peer', peer and client_obj(peer, load_profile(peer)) or NULL)
  end
  return s
end

-- A summary's JSON text without "peer", with the peer's client object added last.
local function with_peer(summary, peer)
  return summary:sub(1, -2) .. ',"peer":' .. json(peer) .. '}'
end

-- imkit_peer_joined (FOLLOW_UP, in the peer's slot, on a cluster): args to, peer, summary
-- (the JSON of a direct room's summary for client `to`, without "peer")  ->  {}; emits
-- room.joined to `to` with the peer's profile.
local function fn_peer_joined(args)
  local peer = arg_str(args, 'peer', true)
  local summary = with_peer(arg_str(args, 'summary', true), client_obj(peer, load_profile(peer)))
  emit(CH.user(arg_str(args, 'to', true)), 'room.joined', raw(summary))
  return obj()
end

-- room.joined to client id, with the room's summary; on a cluster a direct room's goes
-- through its peer's slot (imkit_peer_joined), where the peer's profile is.
local function emit_joined(rid, h, id, mark)
  local s, peer = room_summary(rid, h, id, mark)
  if not peer then return emit(CH.user(id), 'room.joined', s) end
  call_elsewhere(peer, 'imkit_peer_joined', fn_peer_joined, { to = id, peer = peer,
    summary = json(s) })
end

-- imkit_client_card: args id  ->  the client object a summary names a peer with (a
-- missing profile reads as a fresh one): the gateway's read for room rows on a cluster.
local function fn_client_card(args)
  local id = arg_str(args, 'id', true)
  return client_obj(id, load_profile(id))
end

-- Adds one member: role, read mark (everything before joining counts as read), and the
-- member's own room index.
local function add_member(rid, id, role, joined_at, last_seq)
  redis.call('HSET', K.members(rid), id, role .. '|' .. fmt_int(joined_at))
  redis.call('HSET', K.reads(rid), id, fmt_int(last_seq))
  elsewhere(K.user_rooms(id), 'ZADD', K.user_rooms(id), fmt_int(joined_at), rid)
end

-- imkit_direct_forget (FOLLOW_UP, in the pair's slot): args room, a, b  ->  {}. Drops the
-- key of the direct pair a, b when it still names the room.
local function fn_direct_forget(args)
  local key = K.direct(arg_str(args, 'a', true), arg_str(args, 'b', true))
  if redis.call('GET', key) == arg_str(args, 'room', true) then redis.call('DEL', key) end
  return obj()
end

-- Drops the key of a direct pair when it still names this room: once one of the pair has
-- left, opening a direct room for the pair again makes a new one.
local function forget_direct(rid, a, b)
  if bytes_less(b, a) then a, b = b, a end
  call_elsewhere(a .. '|' .. b, 'imkit_direct_forget', fn_direct_forget, { room = rid, a = a, b = b })
end

-- Deletes a room: all its keys, the room index entries of `ids` (its remaining members)
-- and the key of its direct pair. Outbox: room.deleted, the room as it was (h).
local function delete_room(rid, h, ids)
  outbox('room.deleted', room_obj(rid, h))
  if h.type == 'direct' and #ids == 2 then forget_direct(rid, ids[1], ids[2]) end
  for _, id in ipairs(ids) do
    elsewhere(K.user_rooms(id), 'ZREM', K.user_rooms(id), rid)
  end
  redis.call('DEL', K.room(rid), K.members(rid), K.reads(rid), K.log(rid), K.cids(rid),
    K.edits(rid))
end

-- Outbox member.left: one entry per room and call, listing every id that left (a removal
-- of several members is one entry), in the place of the first.
local function outbox_left(rid, id)
  if not OUTBOX then return end
  local ids = OUTBOX.left[rid]
  if not ids then
    ids = arr()
    OUTBOX.left[rid] = ids
    outbox('member.left', obj('room', rid, 'members', ids))
  end
  ids[#ids + 1] = id
end

-- Takes client id out of room rid (h: the loaded room hash, kept up to date). Events, in
-- order: room.left to the client; member.left to the room; when the owner left, the
-- longest-standing member (smallest joined_at, ties by id bytes) becomes owner and
-- room.updated goes to the room. The room's events skip the client and any other that
-- left it in this call: on a cluster they travel apart from their room.left and may reach
-- a gateway first. A room nobody is left in
-- is deleted (no member.left: nobody would get it). Returns true when the room was
-- deleted. Outbox: member.left (also for the last member), then room.updated or
-- room.deleted.
local function leave_room(rid, h, id)
  outbox_left(rid, id)
  local gone = LEFT[rid] or {}
  LEFT[rid] = gone
  gone[#gone + 1] = id
  redis.call('HDEL', K.members(rid), id)
  redis.call('HDEL', K.reads(rid), id)
  elsewhere(K.user_rooms(id), 'ZREM', K.user_rooms(id), rid)
  emit(CH.user(id), 'room.left', obj('room', rid))
  local rest = member_list(rid)
  h.members_count = fmt_int(#rest)
  if #rest == 0 then
    delete_room(rid, h, {})
    return true
  end
  redis.call('HSET', K.room(rid), 'members_count', h.members_count)
  if h.type == 'direct' then forget_direct(rid, id, rest[1].id) end
  emit_skip(CH.room(rid), gone, 'member.left', obj('room', rid, 'member', id))
  if h.owner == id then
    local heir = rest[1]
    h.owner, h.updated_at = heir.id, fmt_int(math.max(now_ms(), num(h.updated_at)))
    redis.call('HSET', K.members(rid), heir.id, 'owner|' .. fmt_int(heir.joined_at))
    redis.call('HSET', K.room(rid), 'owner', h.owner, 'updated_at', h.updated_at)
    local room = room_obj(rid, h)
    emit_skip(CH.room(rid), gone, 'room.updated', room)
    outbox('room.updated', room)
  end
  return false
end

---------------------------------------------------------------------------------------
-- 6. Messages
---------------------------------------------------------------------------------------

-- message: {"room","seq","ts","from","type","text"?,"payload"?,"cid","reply_to"?,"mentions"?,
--   "edited_at"?,"reactions"?} (the last two only in a current version: header, Message versions)
local MSG_FIELDS = { 'room', 'seq', 'ts', 'from', 'type', 'text', 'payload', 'cid', 'reply_to',
  'mentions', 'edited_at', 'reactions' }

-- A new message's JSON. Built with plain concatenation rather than obj(): this runs once
-- per message sent, the library's hottest path, and the generic encoder costs about three
-- times as much. Fields in MSG_FIELDS order; absent ones left out.
local function message_json(m)
  local out = { '{"room":', json_string(m.room), ',"seq":', fmt_int(m.seq), ',"ts":',
    fmt_int(m.ts), ',"from":', json_string(m.from), ',"type":', json_string(m.type) }
  if m.text then
    out[#out + 1] = ',"text":' .. json_string(m.text)
  end
  if m.payload then
    out[#out + 1] = ',"payload":' .. m.payload
  end
  out[#out + 1] = ',"cid":' .. json_string(m.cid)
  if m.reply_to then
    out[#out + 1] = ',"reply_to":' .. fmt_int(m.reply_to)
  end
  if m.mentions and #m.mentions > 0 then
    out[#out + 1] = ',"mentions":' .. json(arr(m.mentions))
  end
  out[#out + 1] = '}'
  return table.concat(out)
end

-- The answer to msg.send, for the first call and its retries alike.
local function send_answer(rid, seq, ts, cid)
  return raw('{"room":' .. json_string(rid) .. ',"seq":' .. fmt_int(seq) .. ',"ts":' ..
    fmt_int(ts) .. ',"cid":' .. json_string(cid) .. '}')
end

local function stream_id(seq)
  return fmt_int(seq) .. '-1'
end

-- XRANGE/XREVRANGE entries (ids <seq>-1, field m) -> the current text of each message, in
-- the entries' order: the log's text unless K.edits holds a newer version (one HMGET).
local function page_texts(rid, entries)
  local seqs, texts = {}, {}
  for i, e in ipairs(entries) do
    seqs[i] = e[1]:match('^(%d+)')
    local fields = e[2]
    for k = 1, #fields, 2 do
      if fields[k] == 'm' then texts[i] = fields[k + 1] end
    end
  end
  if #seqs > 0 then
    local current = redis.call('HMGET', K.edits(rid), unpack(seqs))
    for i = 1, #seqs do
      if current[i] then texts[i] = current[i] end
    end
  end
  return texts
end

-- The members of message seq's current version (json_members values: raw JSON text), or
-- not_found.
local function must_message(rid, seq)
  local text
  if seq >= 1 then
    local id = stream_id(seq)
    text = page_texts(rid, redis.call('XRANGE', K.log(rid), id, id))[1]
  end
  if not text then
    fail('not_found', 'message ' .. fmt_int(seq) .. ' not found in room ' .. rid)
  end
  local _, m = json_members(text)
  return m
end

-- Members (raw JSON values) -> message object, fields in the contract's order.
local function message_from_members(m)
  local o = obj()
  for _, k in ipairs(MSG_FIELDS) do
    if m[k] ~= nil then put(o, k, raw(m[k])) end
  end
  return o
end

-- Stores a message's new current version (and the room's last_msg when it is the last).
local function set_current(rid, h, seq, text)
  redis.call('HSET', K.edits(rid), fmt_int(seq), text)
  if seq == num(h.last_seq) then redis.call('HSET', K.room(rid), 'last_msg', text) end
end

local function is_recalled(m)
  return cjson.decode(m.type) == 'recalled'
end

-- reactions {"<emoji>":[ids in the order they reacted]}, raw text (or nil) -> the emoji in
-- order and emoji -> list of ids.
local function parse_reactions(text)
  if not text then return {}, {} end
  local emojis, vals = json_members(text)
  local who = {}
  for _, e in ipairs(emojis) do who[e] = cjson.decode(vals[e]) end
  return emojis, who
end

-- The reactions object; an emoji nobody is left on is left out.
local function reactions_obj(emojis, who)
  local o = obj()
  for _, e in ipairs(emojis) do
    if #who[e] > 0 then put(o, e, arr(who[e])) end
  end
  return o
end

---------------------------------------------------------------------------------------
-- 7a. Functions: authentication and clients
---------------------------------------------------------------------------------------

-- Sets the given profile fields that differ from the stored ones.
local function update_profile(id, prof, fields)
  local set = {}
  for _, f in ipairs({ 'name', 'avatar', 'meta' }) do
    local v = fields[f]
    if v ~= nil and v ~= prof[f] then
      set[#set + 1] = f
      set[#set + 1] = v
      prof[f] = v
    end
  end
  if #set > 0 then redis.call('HSET', K.user(id), unpack(set)) end
end

-- Who a token names (the gateway verified a JWT, or found an opaque token's client and
-- issue time), refused when revoked: the common part of imkit_auth and imkit_auth_check.
-- Returns the id, the token's name and avatar, and the raw profile hash (nil when none).
local function auth_identity(args)
  local id = arg_str(args, 'sub')
  if not id then fail('bad_request', 'sub: required') end
  local iat = arg_int(args, 'iat')
  local name, avatar = arg_str(args, 'name'), arg_str(args, 'avatar')

  -- Revocation: tokens issued at or before the revocation second are refused; a token
  -- without iat is refused once any revocation happened. Deleting a client revokes its
  -- tokens (its hash keeps the mark), so a token from before the deletion is refused and
  -- one issued after it recreates the client.
  local prof = load_hash(K.user(id))
  local valid_after = prof and tonumber(prof.tokens_valid_after)
  if (valid_after or (prof and prof.deleted)) and (iat == nil or iat <= (valid_after or 0)) then
    fail('unauthenticated', 'token revoked')
  end
  return id, name, avatar, prof
end

-- imkit_auth: args sub, iat?, name?, avatar?  ->  client
local function fn_auth(args)
  local id, name, avatar, raw = auth_identity(args)
  local prof = ensure_read_profile(id, name, raw)
  update_profile(id, prof, { name = name, avatar = avatar })
  return client_obj(id, prof)
end

-- imkit_auth_check: imkit_auth's arguments  ->  client, when the auth would write
-- nothing (the profile exists and the token's name and avatar are already its own); else
-- the error `write_needed`, and the gateway sends the auth as a job. Most connections are
-- returning clients: they authenticate with one read, no job and no worker.
local function fn_auth_check(args)
  local id, name, avatar, prof = auth_identity(args)
  if prof == nil or prof.deleted or (name and name ~= prof.name) or
      (avatar and avatar ~= prof.avatar) then
    fail('write_needed', 'imkit_auth must run as a job')
  end
  return client_obj(id, prof)
end

local CLEARABLE = { name = true, avatar = true, meta = true }

-- Sets and clears profile fields (name?, avatar?, meta?, clear?); creates the profile.
local function put_client(id, args)
  local fields = { name = arg_str(args, 'name'), avatar = arg_str(args, 'avatar'),
    meta = arg_str(args, 'meta') }
  local clear = arg_ids(args, 'clear')
  for _, f in ipairs(clear) do
    if not CLEARABLE[f] then fail('bad_request', 'clear: unknown field ' .. f) end
  end

  local prof = ensure_profile(id, fields.name)
  update_profile(id, prof, fields)
  for _, f in ipairs(clear) do
    if f == 'name' then -- a client without a name is named by its id
      update_profile(id, prof, { name = id })
    elseif prof[f] ~= nil then
      redis.call('HDEL', K.user(id), f)
      prof[f] = nil
    end
  end
  return client_obj(id, prof)
end

-- imkit_client_put: args id, name?, avatar?, meta?, clear?  ->  client
local function fn_client_put(args)
  local id = arg_str(args, 'id') or (FROM ~= '' and FROM or nil)
  if not id then fail('bad_request', 'id: required') end
  if FROM ~= '' and id ~= FROM then fail('forbidden', 'a client can only update itself') end
  return put_client(id, args)
end

-- imkit_me_update: from = the client; args name?, avatar?, meta?, clear?  ->  client
local function fn_me_update(args)
  if FROM == '' then fail('bad_request', 'from: me.update acts for a client') end
  -- a session of a deleted client, not yet closed, must not bring its profile back
  if redis.call('HEXISTS', K.user(FROM), 'deleted') == 1 then
    fail('unauthenticated', 'client ' .. FROM .. ' was deleted')
  end
  return put_client(FROM, args)
end

-- imkit_token_create: args id, hash, ttl (s), iat (s)  ->  {"expires_at"}
local function fn_token_create(args)
  local id = arg_str(args, 'id', true)
  local hash = arg_str(args, 'hash', true)
  local ttl = arg_int(args, 'ttl', true)
  local iat = arg_int(args, 'iat', true)
  if FROM ~= '' and FROM ~= id then fail('forbidden', 'a client can only get its own tokens') end
  if ttl <= 0 then fail('bad_request', 'ttl: must be positive') end

  elsewhere(K.token(hash), 'SET', K.token(hash), id .. ' ' .. fmt_int(iat), 'EX', fmt_int(ttl))
  ensure_profile(id)
  return obj('expires_at', now_ms() + ttl * 1000)
end

-- imkit_client_get: args ids  ->  {"clients":[client + "online","last_seen"]}
local function fn_client_get(args)
  local clients = arr()
  for _, id in ipairs(arg_ids(args, 'ids', true)) do
    local prof = load_profile(id)
    if prof then -- unknown (and deleted) ids are left out
      local online, last_seen = presence_of(id)
      clients[#clients + 1] = put(put(client_obj(id, prof), 'online', online),
        'last_seen', last_seen or NULL)
    end
  end
  return obj('clients', clients)
end

-- Revokes every token of client id issued up to this second (kept if already later).
local function revoke_tokens(id)
  local mark = math.max(math.floor(now_ms() / 1000),
    num(redis.call('HGET', K.user(id), 'tokens_valid_after')))
  redis.call('HSET', K.user(id), 'tokens_valid_after', fmt_int(mark))
  return mark
end

-- The control event that makes gateways close the client's connections with 4403 (they
-- never forward it).
local function emit_revoked(id)
  emit(CH.user(id), 'session.revoked', obj('code', 4403))
end

-- imkit_tokens_revoke (admin): args id  ->  {}
local function fn_tokens_revoke(args)
  if FROM ~= '' then fail('forbidden', 'only the admin API may revoke tokens') end
  local id = arg_str(args, 'id', true)
  if not load_profile(id) then fail('not_found', 'client ' .. id .. ' not found') end
  revoke_tokens(id)
  emit_revoked(id)
  return obj()
end

-- imkit_member_gone (FOLLOW_UP): args room, id  ->  {}. A deleted client leaves the room
-- as imkit_room_leave does (direct rooms too); nothing when it is not a member.
local function fn_member_gone(args)
  local rid, id = arg_str(args, 'room', true), arg_str(args, 'id', true)
  local h = load_room(rid)
  if h and member_entry(rid, id) then leave_room(rid, h, id) end
  return obj()
end

-- imkit_client_delete (admin): args id  ->  {}. Revokes its tokens, leaves every room as
-- imkit_room_leave does (direct rooms too), deletes the profile but for the revocation
-- mark (header: Deleted clients), then session.revoked. Its messages stay.
local function fn_client_delete(args)
  if FROM ~= '' then fail('forbidden', 'only the admin API may delete a client') end
  local id = arg_str(args, 'id', true)
  if not load_profile(id) then fail('not_found', 'client ' .. id .. ' not found') end
  for _, rid in ipairs(redis.call('ZRANGE', K.user_rooms(id), 0, -1)) do
    call_elsewhere(rid, 'imkit_member_gone', fn_member_gone, { room = rid, id = id })
  end
  local mark = revoke_tokens(id)
  redis.call('DEL', K.user(id), K.user_rooms(id))
  redis.call('HSET', K.user(id), 'deleted', '1', 'tokens_valid_after', fmt_int(mark))
  emit_revoked(id)
  return obj()
end

-- imkit_presence_set (gateways, FCALL; publishes itself): args client, gw, delta  ->  {"online"}
-- Adds delta to gateway gw's count of the client's sessions; presence event on a change.
local function fn_presence_set(args)
  local id = arg_str(args, 'client', true)
  local gw = arg_str(args, 'gw', true)
  local delta = arg_int(args, 'delta', true)
  if gw == 'last_seen' then fail('bad_request', 'gw: last_seen is not a gateway id') end
  local h = load_hash(K.online(id)) or {}
  local was_online = online_in(h)
  local n = redis.call('HINCRBY', K.online(id), gw, fmt_int(delta))
  -- on a cluster gwc:<gw> is another slot: the gateway keeps it itself
  if n > 0 then
    h[gw] = fmt_int(n)
    if not CLUSTER then redis.call('SADD', K.gw_clients(gw), id) end
  else -- at 0 (or below: a decrement after imkit_gateway_gone cleaned up) the field goes
    h[gw] = nil
    redis.call('HDEL', K.online(id), gw)
    if not CLUSTER then redis.call('SREM', K.gw_clients(gw), id) end
  end
  return obj('online', presence_settle(id, was_online, h))
end

-- Drops dead gateway gw's count of client id; the client goes offline when that was its
-- last session. Returns 1 when there was a count.
local function drop_gateway_count(id, gw)
  local h = load_hash(K.online(id)) or {}
  local was_online = online_in(h)
  local cleaned = redis.call('HDEL', K.online(id), gw)
  h[gw] = nil
  presence_settle(id, was_online, h)
  return cleaned
end

-- imkit_presence_drop (gateways, on a cluster; publishes itself): args client, gw  ->
-- {"cleaned":0|1}. imkit_gateway_gone for one client, in its slot: the gateway that
-- found gw dead calls it for each client of gwc:<gw>.
local function fn_presence_drop(args)
  return obj('cleaned', drop_gateway_count(arg_str(args, 'client', true), arg_str(args, 'gw', true)))
end

-- imkit_presence_get: args ids  ->  {"clients":[{"id","online","last_seen"}]}, every id given
local function fn_presence_get(args)
  local clients = arr()
  for _, id in ipairs(arg_ids(args, 'ids', true)) do
    local online, last_seen = presence_of(id)
    clients[#clients + 1] = obj('id', id, 'online', online, 'last_seen', last_seen or NULL)
  end
  return obj('clients', clients)
end

-- imkit_gateway_gone (gateways, FCALL; publishes itself): args gw  ->  {"cleaned":n}.
-- Drops a dead gateway's counts from every client it counted (gwc:<gw>); clients left
-- with no session go offline.
local function fn_gateway_gone(args)
  local gw = arg_str(args, 'gw', true)
  local ids = redis.call('SMEMBERS', K.gw_clients(gw))
  table.sort(ids, bytes_less) -- SMEMBERS order is arbitrary; events go out in id order
  local cleaned = 0
  for _, id in ipairs(ids) do
    cleaned = cleaned + drop_gateway_count(id, gw)
  end
  redis.call('DEL', K.gw_clients(gw))
  return obj('cleaned', cleaned)
end

---------------------------------------------------------------------------------------
-- 7b. Functions: rooms
---------------------------------------------------------------------------------------

local MAX_GROUP_MEMBERS = 10000

-- Who the new room holds. A client names the others (itself dropped if listed) and is
-- added first; the admin names everyone.
local function creation_members(args)
  local listed = arg_ids(args, 'members')
  if FROM == '' then return listed end
  local all = { FROM }
  for _, id in ipairs(listed) do
    if id ~= FROM then all[#all + 1] = id end
  end
  return all
end

-- Writes a new room and its members; queues room.joined for each member, and room.created
-- for the outbox (no member.joined: as for room.joined, creation is not a join).
local function write_room(rid, fields, members, owner)
  local now = now_ms()
  local set = { 'type', fields.type, 'created_at', fmt_int(now), 'updated_at', fmt_int(now),
    'last_seq', '0', 'last_ts', fmt_int(now), 'members_count', fmt_int(#members) }
  for _, f in ipairs({ 'name', 'cover', 'meta' }) do
    if fields[f] then
      set[#set + 1] = f
      set[#set + 1] = fields[f]
    end
  end
  if owner then
    set[#set + 1] = 'owner'
    set[#set + 1] = owner
  end
  redis.call('HSET', K.room(rid), unpack(set))
  for _, id in ipairs(members) do
    ensure_member_profile(id)
    add_member(rid, id, id == owner and 'owner' or 'member', now, 0)
  end
  local h = load_room(rid)
  for _, id in ipairs(members) do
    emit_joined(rid, h, id, 0)
  end
  outbox('room.created', room_obj(rid, h)) -- after the client.created of new members
  return h
end

-- imkit_direct_open (FOLLOW_UP, in the room's slot): args room, members, name?, cover?,
-- meta?  ->  room + "created": a pair's room as it is, or written now when missing.
local function fn_direct_open(args)
  local rid = arg_str(args, 'room', true)
  local h = load_room(rid)
  if h then return put(room_obj(rid, h), 'created', false) end
  local fields = { type = 'direct', name = arg_str(args, 'name'), cover = arg_str(args, 'cover'),
    meta = arg_str(args, 'meta') }
  h = write_room(rid, fields, arg_ids(args, 'members', true), nil)
  return put(room_obj(rid, h), 'created', true)
end

local function create_direct(args, members, fields)
  if #members ~= 2 then
    fail('bad_request', 'members: a direct room takes exactly one other member')
  end
  local dkey = K.direct(members[1], members[2])
  local existing = redis.call('GET', dkey)
  if CLUSTER then -- in the pair's slot, the job's home: the room is read or made in its own
    local rid = existing or arg_str(args, 'new_id', true)
    if not existing then redis.call('SET', dkey, rid) end
    return call_elsewhere(rid, 'imkit_direct_open', fn_direct_open, { room = rid,
      members = members, name = fields.name, cover = fields.cover, meta = fields.meta }, true)
  end
  if existing then
    local h = load_room(existing)
    if h then return put(room_obj(existing, h), 'created', false) end
    -- the pair's room was deleted: make a new one below
  end
  local rid = arg_str(args, 'new_id', true)
  if load_room(rid) then fail('conflict', 'room ' .. rid .. ' already exists') end
  redis.call('SET', dkey, rid)
  local h = write_room(rid, fields, members, nil)
  return put(room_obj(rid, h), 'created', true)
end

local function create_group(args, members, fields)
  local owner
  if FROM ~= '' then
    owner = FROM
  else
    owner = arg_str(args, 'owner') or members[1]
    if not owner then fail('bad_request', 'members: a group room needs at least one member') end
    local listed = false
    for _, id in ipairs(members) do
      if id == owner then listed = true end
    end
    if not listed then table.insert(members, 1, owner) end
  end
  local max = arg_int(args, 'max_members') or MAX_GROUP_MEMBERS -- limits.members
  if #members > max then
    fail('too_large', 'members: a group room holds at most ' .. max .. ' members')
  end
  local rid = arg_str(args, 'id') or arg_str(args, 'new_id')
  if not rid then fail('bad_request', 'new_id: required when id is absent') end
  if load_room(rid) then fail('conflict', 'room ' .. rid .. ' already exists') end
  local h = write_room(rid, fields, members, owner)
  return put(room_obj(rid, h), 'created', true)
end

-- imkit_room_create: args type, members, new_id, id?, name?, cover?, meta?, owner?
--   ->  room + "created"
local function fn_room_create(args)
  local rtype = arg_str(args, 'type', true)
  local fields = { type = rtype, name = arg_str(args, 'name'), cover = arg_str(args, 'cover'),
    meta = arg_str(args, 'meta') }
  local members = creation_members(args)
  if rtype == 'direct' then return create_direct(args, members, fields) end
  if rtype == 'group' then return create_group(args, members, fields) end
  fail('bad_request', 'type: must be "direct" or "group"')
end

-- imkit_room_get: args room  ->  room + "members"
local function fn_room_get(args)
  local rid = arg_str(args, 'room', true)
  local h = must_access(rid)
  local members = arr()
  for _, m in ipairs(member_list(rid)) do
    members[#members + 1] = obj('id', m.id, 'role', m.role, 'joined_at', m.joined_at)
  end
  return put(room_obj(rid, h), 'members', members)
end

local ROOM_FIELDS = { 'name', 'cover', 'meta' }
local ROOM_CLEARABLE = { name = true, cover = true, meta = true }

-- imkit_room_update: args room, name?, cover?, meta?, clear?  ->  room
-- Group: the owner only; direct: either member. Event room.updated.
local function fn_room_update(args)
  local rid = arg_str(args, 'room', true)
  local fields = { name = arg_str(args, 'name'), cover = arg_str(args, 'cover'),
    meta = arg_str(args, 'meta') }
  local clear = arg_ids(args, 'clear')
  for _, f in ipairs(clear) do
    if not ROOM_CLEARABLE[f] then fail('bad_request', 'clear: unknown field ' .. f) end
  end
  local h = must_access(rid)
  if h.type == 'group' and FROM ~= '' and h.owner ~= FROM then
    fail('forbidden', 'only the owner may update room ' .. rid)
  end

  h.updated_at = fmt_int(math.max(now_ms(), num(h.updated_at)))
  local set = { 'updated_at', h.updated_at }
  for _, f in ipairs(ROOM_FIELDS) do
    if fields[f] then
      set[#set + 1] = f
      set[#set + 1] = fields[f]
      h[f] = fields[f]
    end
  end
  redis.call('HSET', K.room(rid), unpack(set))
  for _, f in ipairs(clear) do
    redis.call('HDEL', K.room(rid), f)
    h[f] = nil
  end
  local room = room_obj(rid, h)
  emit(CH.room(rid), 'room.updated', room)
  outbox('room.updated', room)
  return room
end

local function must_group(rid, h)
  if h.type ~= 'group' then fail('bad_request', "room: a direct room's members cannot change") end
end

-- imkit_members_add: args room, members, max_members?  ->  room
-- Any member (or the admin) adds; already-members are ignored (a retry adds nothing and
-- sends nothing). Events: room.joined to each new member, then member.joined to the room,
-- skipping the new members' sessions.
local function fn_members_add(args)
  local rid = arg_str(args, 'room', true)
  local ids = arg_ids(args, 'members', true)
  local max = arg_int(args, 'max_members') or MAX_GROUP_MEMBERS
  local h = must_access(rid)
  must_group(rid, h)
  local new = {}
  for _, id in ipairs(ids) do
    if not member_entry(rid, id) then new[#new + 1] = id end
  end
  if #new == 0 then return room_obj(rid, h) end
  local count = redis.call('HLEN', K.members(rid)) + #new
  if count > max then
    fail('too_large', 'members: a group room holds at most ' .. fmt_int(max) .. ' members')
  end

  local now, last_seq = now_ms(), num(h.last_seq)
  for _, id in ipairs(new) do
    ensure_member_profile(id)
    add_member(rid, id, 'member', now, last_seq) -- everything before joining counts as read
  end
  h.members_count = fmt_int(count)
  redis.call('HSET', K.room(rid), 'members_count', h.members_count)
  for _, id in ipairs(new) do
    emit_joined(rid, h, id, last_seq)
  end
  local joined = obj('room', rid, 'members', arr(new))
  emit_skip(CH.room(rid), new, 'member.joined', joined)
  outbox('member.joined', joined)
  return room_obj(rid, h)
end

-- imkit_members_remove: args room, members  ->  room
-- The owner (or the admin) removes; non-members are ignored. The owner cannot remove
-- itself (room.leave); the admin may remove the owner, who is then replaced as on leave.
local function fn_members_remove(args)
  local rid = arg_str(args, 'room', true)
  local ids = arg_ids(args, 'members', true)
  local h = must_access(rid)
  must_group(rid, h)
  if FROM ~= '' and h.owner ~= FROM then
    fail('forbidden', 'only the owner may remove members of room ' .. rid)
  end
  for _, id in ipairs(ids) do
    if FROM ~= '' and id == FROM then fail('bad_request', 'members: the owner leaves with room.leave') end
  end
  for _, id in ipairs(ids) do
    if member_entry(rid, id) and leave_room(rid, h, id) then break end -- the room is gone
  end
  return room_obj(rid, h)
end

-- imkit_room_leave: args room  ->  {}  (group rooms only; see leave_room)
local function fn_room_leave(args)
  if FROM == '' then fail('bad_request', 'from: only a member can leave a room') end
  local rid = arg_str(args, 'room', true)
  local h = must_access(rid)
  if h.type ~= 'group' then fail('bad_request', 'room: a direct room cannot be left') end
  leave_room(rid, h, FROM)
  return obj()
end

-- imkit_room_delete (admin): args room  ->  {}. room.left to every member.
local function fn_room_delete(args)
  if FROM ~= '' then fail('forbidden', 'only the admin API may delete a room') end
  local rid = arg_str(args, 'room', true)
  local h = must_room(rid)
  local ids = {}
  for _, m in ipairs(member_list(rid)) do
    ids[#ids + 1] = m.id
    emit(CH.user(m.id), 'room.left', obj('room', rid))
  end
  delete_room(rid, h, ids)
  return obj()
end

-- The room list cursor "<last_ts>:<room id>" names the last room of a page; the next
-- page starts right after that position in the order (last_ts desc, room id asc).
local function list_cursor(row)
  return fmt_int(row.ts) .. ':' .. row.rid
end

local function parse_list_cursor(s)
  local ts, rid = s:match('^(%d+):(.+)$')
  if not ts or #ts > 15 then fail('bad_request', 'before: bad cursor') end
  return { ts = tonumber(ts), rid = rid }
end

local function list_before(a, b) -- a comes before b in the room list
  if a.ts ~= b.ts then return a.ts > b.ts end
  return bytes_less(a.rid, b.rid)
end

-- imkit_room_list: args limit, before?  ->  {"rooms","next","unread_total"}. One Redis only
-- (a query runs with CLUSTER false, so room_summary names the peer itself); on a cluster
-- the gateway gathers the list (imkit_room_index, imkit_room_row).
local function fn_room_list(args)
  if FROM == '' then fail('bad_request', 'from: the client whose rooms to list is required') end
  local limit = clamp(arg_int(args, 'limit') or 20, 1, 100)
  local before = arg_str(args, 'before')
  local cursor = before and parse_list_cursor(before)

  -- One pass over all the client's rooms: order keys and the unread total.
  local rows, unread_total = {}, 0
  for _, rid in ipairs(redis.call('ZRANGE', K.user_rooms(FROM), 0, -1)) do
    local v = redis.call('HMGET', K.room(rid), 'last_ts', 'last_seq')
    if v[1] then -- skip a dangling index entry
      local mark = read_mark(rid, FROM)
      unread_total = unread_total + unread_of({ last_seq = v[2] }, mark)
      rows[#rows + 1] = { rid = rid, ts = num(v[1]), mark = mark }
    end
  end
  table.sort(rows, list_before)

  local first = 1
  if cursor then
    while rows[first] and not list_before(cursor, rows[first]) do first = first + 1 end
  end
  local rooms = arr()
  local last = math.min(first + limit - 1, #rows)
  for i = first, last do
    local row = rows[i]
    rooms[#rooms + 1] = room_summary(row.rid, load_room(row.rid), FROM, row.mark)
  end
  local next_cursor = NULL
  if last < #rows and last >= first then next_cursor = list_cursor(rows[last]) end
  return obj('rooms', rooms, 'next', next_cursor, 'unread_total', unread_total)
end

---------------------------------------------------------------------------------------
-- 7c. Functions: messages
---------------------------------------------------------------------------------------

local NEEDS_TEXT = { text = true }

-- The mark of the running job in its send's cid index entry: the first 8 hex digits of the
-- SHA-1 of its id ('' outside a job). Two jobs share one with a chance of 1 in 4 billion; a
-- retry taken for the job itself only publishes the message event again.
local function job_mark()
  return JOB_ID and redis.sha1hex(JOB_ID):sub(1, 8) or ''
end

-- A cid index entry "<seq>|<ts>" or "<seq>|<ts>|<mark>" -> seq, ts, mark ('' if none)
local function cid_entry(stored)
  local seq, ts, mark = stored:match('^(%d+)|(%d+)|?(%x*)$')
  return tonumber(seq), tonumber(ts), mark
end

-- The same send job again: the answer and the message event of its first run, the event
-- rebuilt from the log (left out once retention has trimmed the message). On a cluster,
-- the home's outbox entries still to move are handed back (its own among them unless moved
-- already: see write_outbox).
local function replay_msg_send(rid, seq, ts, cid)
  local entry = redis.call('XRANGE', K.log(rid), stream_id(seq), stream_id(seq))[1]
  if entry then emit(CH.room(rid), 'message', raw(entry[2][2])) end
  if OUTBOX then OUTBOX.replay = true end
  return send_answer(rid, seq, ts, cid)
end

-- imkit_msg_send: args room, cid, type, text?, payload?, reply_to?, mentions?
--   ->  {"room","seq","ts","cid"}; its record is its cid index entry (header: Jobs)
local function fn_msg_send(args)
  if FROM == '' then fail('bad_request', 'from: a message needs a sender') end
  local rid = arg_str(args, 'room', true)
  local cid = arg_str(args, 'cid', true)
  local m = { room = rid, from = FROM, cid = cid, type = arg_str(args, 'type', true),
    text = arg_str(args, 'text'), payload = arg_str(args, 'payload'),
    reply_to = arg_int(args, 'reply_to'), mentions = arg_ids(args, 'mentions') }
  if NEEDS_TEXT[m.type] and not m.text then fail('bad_request', 'text: required') end
  if not NEEDS_TEXT[m.type] and not m.payload then fail('bad_request', 'payload: required') end

  local last_seq, last_ts = must_room_fields(rid, 'last_seq', 'last_ts')
  -- A retry (same sender, same cid) answers the original seq and ts and writes nothing.
  -- Checked before membership so a job replayed after the sender left still gets the
  -- answer of the message that was stored.
  local hit = redis.call('HGET', K.cids(rid), FROM .. '|' .. cid)
  if hit then
    local seq, ts, mark = cid_entry(hit)
    if mark ~= '' and mark == job_mark() then return replay_msg_send(rid, seq, ts, cid) end
    return send_answer(rid, seq, ts, cid)
  end
  check_member(rid)
  last_seq = num(last_seq)
  if m.reply_to and (m.reply_to < 1 or m.reply_to > last_seq) then
    fail('bad_request', 'reply_to: no such message')
  end

  -- ts never goes back while seq goes forward, even if the clock does.
  m.seq = last_seq + 1
  m.ts = math.max(now_ms(), num(last_ts))
  local text = message_json(m)
  redis.call('XADD', K.log(rid), stream_id(m.seq), 'm', text)
  redis.call('HSET', K.room(rid), 'last_seq', fmt_int(m.seq), 'last_ts', fmt_int(m.ts),
    'last_msg', text)
  redis.call('HSET', K.cids(rid), FROM .. '|' .. cid,
    fmt_int(m.seq) .. '|' .. fmt_int(m.ts) .. '|' .. job_mark())
  redis.call('HSET', K.reads(rid), FROM, fmt_int(m.seq)) -- own messages are never unread
  emit(CH.room(rid), 'message', raw(text))
  outbox_message(rid, text, m.ts)
  return send_answer(rid, m.seq, m.ts, cid)
end

-- imkit_msg_history: args room, before? | after?, limit  ->  {"messages","has_more"}
local function fn_msg_history(args)
  local rid = arg_str(args, 'room', true)
  local before, after = arg_int(args, 'before'), arg_int(args, 'after')
  if before and after then fail('bad_request', 'before, after: give one, not both') end
  local limit = clamp(arg_int(args, 'limit') or 50, 1, 100)
  must_access(rid)

  -- Read one more than asked: its presence is has_more. Entries come nearest first
  -- (the oldest after `after`, the newest before `before`), messages go out ascending.
  local nearest_first, ascending
  if after then
    -- ids are <seq>-1, so "(A-1" excludes seq A and everything below it
    nearest_first = redis.call('XRANGE', K.log(rid), '(' .. stream_id(math.max(after, 0)), '+',
      'COUNT', limit + 1)
    ascending = true
  elseif before and before <= 1 then
    nearest_first = {}
  else
    -- "(B-0" is just below B-1: every seq < B and nothing else
    local hi = before and ('(' .. fmt_int(before) .. '-0') or '+'
    nearest_first = redis.call('XREVRANGE', K.log(rid), hi, '-', 'COUNT', limit + 1)
  end
  local texts = page_texts(rid, nearest_first)
  local n = math.min(#texts, limit)
  local messages = arr()
  for i = 1, n do
    messages[i] = stored_message(texts[ascending and i or (n + 1 - i)])
  end
  local has_more = #texts > limit
  return obj('messages', messages, 'has_more', has_more)
end

-- imkit_msg_edit: args room, seq, text?, payload?  ->  message (its new current version)
-- The sender (or the admin); a text message keeps a text. Event message.edited.
local function fn_msg_edit(args)
  local rid = arg_str(args, 'room', true)
  local seq = arg_int(args, 'seq', true)
  local text, payload = arg_str(args, 'text'), arg_str(args, 'payload')
  if not text and not payload then fail('bad_request', 'text, payload: give at least one') end
  local h = must_access(rid)
  local m = must_message(rid, seq)
  if FROM ~= '' and cjson.decode(m.from) ~= FROM then
    fail('forbidden', 'only the sender may edit message ' .. fmt_int(seq))
  end
  if is_recalled(m) then fail('conflict', 'message ' .. fmt_int(seq) .. ' was recalled') end
  if NEEDS_TEXT[cjson.decode(m.type)] and not text then
    fail('bad_request', 'text: required (a text message keeps a text)')
  end

  if text then m.text = json_string(text) end
  if payload then m.payload = payload end
  m.edited_at = fmt_int(now_ms())
  local current = json(message_from_members(m))
  set_current(rid, h, seq, current)
  emit(CH.room(rid), 'message.edited', raw(current))
  return raw(current)
end

-- imkit_msg_recall: args room, seq  ->  {}
-- The sender or the room's owner (or the admin). The message keeps room, seq, ts, from and
-- cid, becomes type "recalled" with text and payload null; the rest goes (reply_to,
-- mentions, edited_at, reactions). Recalling again is a success with no event.
local function fn_msg_recall(args)
  local rid = arg_str(args, 'room', true)
  local seq = arg_int(args, 'seq', true)
  local h = must_access(rid)
  local m = must_message(rid, seq)
  if FROM ~= '' and cjson.decode(m.from) ~= FROM and h.owner ~= FROM then
    fail('forbidden', 'only the sender or the owner may recall message ' .. fmt_int(seq))
  end
  if is_recalled(m) then return obj() end

  local current = json(obj('room', raw(m.room), 'seq', raw(m.seq), 'ts', raw(m.ts),
    'from', raw(m.from), 'type', 'recalled', 'text', NULL, 'payload', NULL, 'cid', raw(m.cid)))
  set_current(rid, h, seq, current)
  emit(CH.room(rid), 'message.recalled', obj('room', rid, 'seq', seq))
  return obj()
end

-- imkit_msg_react: args room, seq, emoji, on  ->  {"room","seq","reactions"}
-- Any member; ids listed in the order they reacted, an emoji appended when first used.
-- Event message.reacted only when something changed.
local function fn_msg_react(args)
  if FROM == '' then fail('bad_request', 'from: a reaction belongs to a client') end
  local rid = arg_str(args, 'room', true)
  local seq = arg_int(args, 'seq', true)
  local emoji = arg_str(args, 'emoji', true)
  local on = arg_bool(args, 'on', true)
  local h = must_access(rid)
  local m = must_message(rid, seq)
  if is_recalled(m) then fail('conflict', 'message ' .. fmt_int(seq) .. ' was recalled') end

  local emojis, who = parse_reactions(m.reactions)
  local list, at = who[emoji], nil
  for i, id in ipairs(list or {}) do
    if id == FROM then at = i end
  end
  local changed = false
  if on and not at then
    if not list then
      list = {}
      who[emoji] = list
      emojis[#emojis + 1] = emoji
    end
    list[#list + 1] = FROM
    changed = true
  elseif not on and at then
    table.remove(list, at)
    changed = true
  end
  local reactions = reactions_obj(emojis, who)
  if changed then
    m.reactions = #reactions[ORDER] > 0 and json(reactions) or nil
    set_current(rid, h, seq, json(message_from_members(m)))
    emit(CH.room(rid), 'message.reacted', obj('room', rid, 'seq', seq, 'reactions', reactions))
  end
  return obj('room', rid, 'seq', seq, 'reactions', reactions)
end

---------------------------------------------------------------------------------------
-- 7d. Functions: read marks
---------------------------------------------------------------------------------------

-- imkit_room_read: args room, seq  ->  {"room","seq","unread"}
local function fn_room_read(args)
  if FROM == '' then fail('bad_request', 'from: a read mark belongs to a client') end
  local rid = arg_str(args, 'room', true)
  local seq = arg_int(args, 'seq', true)
  local h = must_access(rid)
  local last_seq = num(h.last_seq)
  local mark = read_mark(rid, FROM)
  local target = clamp(seq, 0, last_seq)
  if target > mark then -- a read mark never moves back; events only when it moves
    mark = target
    redis.call('HSET', K.reads(rid), FROM, fmt_int(mark))
    emit(CH.room(rid), 'read', obj('room', rid, 'client', FROM, 'seq', mark))
  end
  return obj('room', rid, 'seq', mark, 'unread', unread_of(h, mark))
end

---------------------------------------------------------------------------------------
-- 7e. Functions: sync
---------------------------------------------------------------------------------------

local SYNC_PAGE = 100

-- The messages of room rid (h: its hash) after seq held, at most SYNC_PAGE, oldest first,
-- and whether more follow; nil when held is nil or nothing is newer.
local function sync_page(rid, h, held)
  if not held or num(h.last_seq) <= held then return nil end
  local entries = redis.call('XRANGE', K.log(rid), '(' .. stream_id(math.max(held, 0)), '+',
    'COUNT', SYNC_PAGE + 1)
  local texts = page_texts(rid, entries)
  local page = arr()
  for i = 1, math.min(#texts, SYNC_PAGE) do page[i] = raw(texts[i]) end
  return page, #texts > SYNC_PAGE
end

-- imkit_sync: args known? {"<room id>": last seq held}
--   ->  {"rooms":[summary…],"left":[ids],"messages":{"<rid>":[…]},"has_more":{"<rid>":bool}}
-- rooms: every room the client is in, in room.list order; left: the rooms of known it is
-- not in (byte order); messages/has_more: for the rooms of known with newer messages, up
-- to 100 after the held seq, oldest first. One Redis only, as imkit_room_list.
local function fn_sync(args)
  if FROM == '' then fail('bad_request', 'from: sync is for a client') end
  local known = args.known or {}
  if type(known) ~= 'table' then fail('bad_request', 'known: must be a map') end
  for rid, seq in pairs(known) do
    if type(rid) ~= 'string' or type(seq) ~= 'number' then
      fail('bad_request', 'known: must map room ids to seqs')
    end
  end

  local rows = {}
  for _, rid in ipairs(redis.call('ZRANGE', K.user_rooms(FROM), 0, -1)) do
    local h = load_room(rid)
    if h then rows[#rows + 1] = { rid = rid, ts = num(h.last_ts), h = h } end
  end
  table.sort(rows, list_before)

  local rooms, messages, has_more, present = arr(), obj(), obj(), {}
  for _, row in ipairs(rows) do
    local rid, h = row.rid, row.h
    present[rid] = true
    rooms[#rooms + 1] = room_summary(rid, h, FROM)
    local page, more = sync_page(rid, h, known[rid])
    if page then
      put(messages, rid, page)
      put(has_more, rid, more)
    end
  end
  local left = arr()
  for rid in pairs(known) do
    if not present[rid] then left[#left + 1] = rid end
  end
  table.sort(left, bytes_less)
  return obj('rooms', rooms, 'left', left, 'messages', messages, 'has_more', has_more)
end

-- On a Redis Cluster a client's index and its rooms are in different slots: the gateway
-- assembles room.list and sync from these two reads, sorted, paged and counted as
-- fn_room_list and fn_sync do (FUNCTIONS.md, "Queries the gateway assembles").
-- imkit_room_index: from = the client  ->  {"rooms":[room ids]}
local function fn_room_index(args)
  if FROM == '' then fail('bad_request', 'from: the client whose rooms to list is required') end
  return obj('rooms', arr(redis.call('ZRANGE', K.user_rooms(FROM), 0, -1)))
end

-- imkit_room_row: args room, held? (the seq the client holds, for sync); from = the client
--   ->  "<ts> <unread> <summary bytes> <messages bytes or -1> <has_more 0|1> <peer>\n" then
--       the summary's JSON, then the JSON array of the messages after held (sync, when the
--       room has newer ones). Not JSON: the gateway embeds both texts as they are. peer is
--       a direct room's other member, whose profile the gateway reads (imkit_client_card)
--       and adds to the summary, which leaves "peer" out; empty for other rooms.
local function fn_room_row(args)
  CLUSTER = true -- called on a cluster only: a direct room's peer is another slot
  local rid = arg_str(args, 'room', true)
  local held = arg_int(args, 'held')
  local h = load_room(rid)
  if not h then fail('not_found', 'room ' .. rid .. ' not found') end -- a dangling entry
  local mark = read_mark(rid, FROM)
  local s, peer = room_summary(rid, h, FROM, mark)
  local summary = json(s)
  local page, more = sync_page(rid, h, held)
  local messages = page and json(page) or ''
  return raw(string.format('%s %s %d %d %d %s\n', fmt_int(num(h.last_ts)),
    fmt_int(unread_of(h, mark)), #summary, messages == '' and -1 or #messages, more and 1 or 0,
    peer or '') .. summary .. messages)
end

---------------------------------------------------------------------------------------
-- 7f. Functions: the event feed
---------------------------------------------------------------------------------------

local EVENTS_PAGE, EVENTS_PAGE_MAX = 100, 1000

-- imkit_events_get (admin): args after? (an event id, exclusive; "0-0", the default, for the
-- beginning), limit? (1..1000, default 100)  ->  {"events":[{"id","type","ts","data"}…]},
-- oldest first, data embedded as stored.
local function fn_events_get(args)
  if FROM ~= '' then fail('forbidden', 'only the admin API may read the events') end
  local after = arg_str(args, 'after') or '0-0'
  local limit = clamp(arg_int(args, 'limit') or EVENTS_PAGE, 1, EVENTS_PAGE_MAX)
  local bad = 'after: an event id such as 1764115200000-0'
  if not after:match('^%d+%-%d+$') then fail('bad_request', bad) end
  local entries = redis.pcall('XRANGE', K.events(), '(' .. after, '+', 'COUNT', limit)
  if entries.err then
    if entries.err:find('invalid start ID', 1, true) then
      entries = {} -- after the greatest id there can be: nothing
    elseif entries.err:find('Invalid stream ID', 1, true) then
      fail('bad_request', bad) -- a part above 2^64 - 1
    else
      error(entries.err, 0)
    end
  end
  local events = arr()
  for _, e in ipairs(entries) do
    local f, fields = {}, e[2]
    for k = 1, #fields, 2 do f[fields[k]] = fields[k + 1] end
    events[#events + 1] = obj('id', e[1], 'type', f.type or NULL, 'ts', raw_or_null(f.ts),
      'data', raw_or_null(f.data))
  end
  return obj('events', events)
end

-- imkit_outbox_add (FOLLOW_UP, a cluster only): args home (a call's declared key), items
-- ({id, entries, members}...: the home's outbox entries in order, entries packed {type, ts,
-- data, offline?}..., members those of a message.sent, comma-separated)  ->  {}. Appends
-- the entries of every item not moved yet, in order, and hands back the trim of the home's
-- outbox up to the last (header: Outbox). An entry marked offline is message.sent, its
-- data the message without its closing brace: its members in OFFLINE complete it.
local function fn_outbox_add(args)
  local home = arg_str(args, 'home', true)
  local offline, last = {}, nil
  for c in OFFLINE:gmatch('[^,]+') do offline[c] = true end
  for _, item in ipairs(args.items or {}) do
    last = item[1]
    if redis.call('SET', K.events_done(home .. ':' .. last), '1', 'NX', 'PX', DONE_TTL_MS) then
      for _, e in ipairs(cmsgpack.unpack(item[2])) do
        local data = e[3]
        if e[4] then
          local ids = arr()
          for c in item[3]:gmatch('[^,]+') do
            if offline[c] then ids[#ids + 1] = c end
          end
          data = data .. ',"offline":' .. json(ids) .. '}'
        end
        redis.call('XADD', K.events(), '*', 'type', e[1], 'ts', e[2], 'data', data)
      end
    end
  end
  if last then -- every entry up to last is in the feed: XTRIM MINID keeps last + 1 on
    local ms, n = last:match('^(%d+)%-(%d+)$')
    elsewhere(K.home_outbox(home), 'XTRIM', K.home_outbox(home), 'MINID', ms .. '-' .. fmt_int(n + 1))
  end
  return obj()
end

---------------------------------------------------------------------------------------
-- 8. The wrapper, and registration
---------------------------------------------------------------------------------------

-- How a function is called (4th column of FUNCTIONS): a plain call (nil), a job (JOB: the
-- worker calls it, with the job id and the events flag: header, Jobs and Outbox), a
-- gateway's own bookkeeping that publishes its events itself (SELF_PUBLISH: header,
-- Reply), or a job's part in another slot on a cluster (FOLLOW_UP: header, Other slots).
local JOB, SELF_PUBLISH, FOLLOW_UP = 'job', 'self-publish', 'follow-up'

local HOME_OUTBOX_MAX = 1000   -- a home's outbox entries handed back at once
local HOME_OUTBOX_KEEP_MS = 3600000 -- and how long one is kept at most (a lost trim)

-- On a cluster: appends the call's outbox entries (entries, or nil: none) as one entry of
-- its home's outbox stream, in the call, and hands back every entry of that stream not yet
-- in the feed, oldest first, as the pair {'+' or '?', imkit_outbox_add}: '?' when one holds
-- a message.sent, and the last argument lists its members, for the worker to replace with
-- those offline (header: Outbox).
local function hand_outbox(reply, entries, members)
  local home = HOME or '{}'
  local q = K.home_outbox(home)
  if entries then
    redis.call('XADD', q, '*', 'e', cmsgpack.pack(entries), 'm', table.concat(members or {}, ','))
  end
  redis.call('XTRIM', q, 'MINID', '~', fmt_int(now_ms() - HOME_OUTBOX_KEEP_MS))
  local items, all, seen = {}, {}, {}
  for _, e in ipairs(redis.call('XRANGE', q, '-', '+', 'COUNT', HOME_OUTBOX_MAX)) do
    local f = {}
    for k = 1, #e[2], 2 do f[e[2][k]] = e[2][k + 1] end
    items[#items + 1] = { e[1], f.e or cmsgpack.pack({}), f.m or '' }
    for c in (f.m or ''):gmatch('[^,]+') do
      if not seen[c] then
        seen[c] = true
        all[#all + 1] = c
      end
    end
  end
  if #items == 0 then return end
  reply[#reply + 1] = #all > 0 and '?' or '+'
  reply[#reply + 1] = { K.events(), 'FCALL', 'imkit_outbox_add', '1', K.events(), P, '',
    cmsgpack.pack({ home = home, items = items }), '0', table.concat(all, ',') }
end

-- Writes the call's queued outbox entries: on one Redis to the feed now, on a cluster
-- through its home's outbox (hand_outbox; a replayed job hands back what is still there).
local function write_outbox(reply)
  if not OUTBOX then return end
  local entries, members = {}, nil
  for _, e in ipairs(OUTBOX) do
    local d = e.data
    if type(d) == 'function' then d = d() end
    entries[#entries + 1] = { e.type, fmt_int(e.ts or now_ms()), json(d), e.offline ~= nil }
    members = e.offline or members
  end
  if CLUSTER and (#entries > 0 or OUTBOX.replay) then
    hand_outbox(reply, #entries > 0 and entries or nil, members)
    return
  end
  for _, e in ipairs(entries) do
    redis.call('XADD', K.events(), '*', 'type', e[1], 'ts', e[2], 'data', e[3])
  end
end

-- Runs handler(args) -> data once and answers in the reply format; writes the queued
-- outbox entries when it succeeded.
local function run(handler, packed, self_publish)
  local args = {}
  if packed ~= nil and packed ~= '' then
    local ok, v = pcall(cmsgpack.unpack, packed)
    if not ok or type(v) ~= 'table' then return { 'bad_request', 'args: not a msgpack map' } end
    args = v
  end
  local ok, data = pcall(handler, args)
  if not ok then
    if getmetatable(data) == FAIL then return { data.code, data.msg } end
    error(data, 0) -- a real fault: let Redis report it
  end
  local reply = { 'ok', json(data) }
  for i = 1, #EVENTS, 2 do
    if self_publish then -- a sharded channel on a cluster, in the call's slot
      redis.call(CLUSTER and 'SPUBLISH' or 'PUBLISH', EVENTS[i], EVENTS[i + 1])
    else
      reply[#reply + 1] = EVENTS[i]
      reply[#reply + 1] = EVENTS[i + 1]
    end
  end
  for i, a in ipairs(AFTER) do -- header: Other slots
    reply[#reply + 1] = i == ANSWER_AT and '=' or ''
    reply[#reply + 1] = a
  end
  write_outbox(reply)
  return reply
end

-- Wraps a handler(args) -> data into a Redis Function callback (mode: see JOB). A job with
-- an id answers from done:<id> when it was applied already, else runs and stores its reply
-- there (cmsgpack); a handler registered OWN_RECORD keeps its own record instead (header:
-- Jobs).
local function entry(handler, mode, own_record)
  return function(keys, argv)
    if argv[1] == nil or argv[2] == nil then
      error('imkit: call as FCALL <function> <0 | 1 {<home id>}> <prefix> <from> <msgpack args>')
    end
    P, FROM, NOW, EVENTS, OUTBOX, JOB_ID, HOME = argv[1], argv[2], nil, {}, nil, nil, keys[1]
    CLUSTER = mode == FOLLOW_UP or (mode == JOB and argv[6] == '1') or
      (mode == SELF_PUBLISH and argv[4] == '1')
    AFTER, ANSWER_AT, LEFT, OFFLINE = {}, nil, {}, ''
    if mode == FOLLOW_UP then -- <events> <offline> follow the args (header: Outbox)
      if argv[4] == '1' then OUTBOX = { left = {} } end
      OFFLINE = argv[5] or ''
      return run(handler, argv[3], false)
    end
    if mode ~= JOB then return run(handler, argv[3], mode == SELF_PUBLISH) end
    JOB_ID = argv[4] ~= '' and argv[4] or nil
    if argv[5] == '1' then OUTBOX = { left = {} } end
    local record = JOB_ID and not own_record
    if record then
      local done = redis.call('GET', K.done(JOB_ID))
      if done then return cmsgpack.unpack(done) end
    end
    local reply = run(handler, argv[3], false)
    if record then
      redis.call('SET', K.done(JOB_ID), cmsgpack.pack(reply), 'PX', DONE_TTL_MS)
    end
    return reply
  end
end

local WRITE, QUERY = {}, { 'no-writes' }

local OWN_RECORD = true -- a job that keeps its own record of being applied (header: Jobs)

local FUNCTIONS = { -- name, handler, flags, mode (JOB: the worker's allow-list of job
  -- kinds), OWN_RECORD (see entry)
  { 'imkit_auth', fn_auth, WRITE, JOB },
  { 'imkit_auth_check', fn_auth_check, QUERY },
  { 'imkit_client_put', fn_client_put, WRITE, JOB },
  { 'imkit_token_create', fn_token_create, WRITE, JOB },
  { 'imkit_client_get', fn_client_get, QUERY },
  { 'imkit_room_create', fn_room_create, WRITE, JOB },
  { 'imkit_room_get', fn_room_get, QUERY },
  { 'imkit_room_list', fn_room_list, QUERY },
  { 'imkit_room_index', fn_room_index, QUERY },
  { 'imkit_room_row', fn_room_row, QUERY },
  { 'imkit_client_card', fn_client_card, QUERY },
  { 'imkit_room_read', fn_room_read, WRITE, JOB },
  { 'imkit_msg_send', fn_msg_send, WRITE, JOB, OWN_RECORD },
  { 'imkit_msg_history', fn_msg_history, QUERY },
  { 'imkit_me_update', fn_me_update, WRITE, JOB },
  { 'imkit_room_update', fn_room_update, WRITE, JOB },
  { 'imkit_members_add', fn_members_add, WRITE, JOB },
  { 'imkit_members_remove', fn_members_remove, WRITE, JOB },
  { 'imkit_room_leave', fn_room_leave, WRITE, JOB },
  { 'imkit_room_delete', fn_room_delete, WRITE, JOB },
  { 'imkit_msg_edit', fn_msg_edit, WRITE, JOB },
  { 'imkit_msg_recall', fn_msg_recall, WRITE, JOB },
  { 'imkit_msg_react', fn_msg_react, WRITE, JOB },
  { 'imkit_sync', fn_sync, QUERY },
  { 'imkit_client_delete', fn_client_delete, WRITE, JOB },
  { 'imkit_tokens_revoke', fn_tokens_revoke, WRITE, JOB },
  { 'imkit_presence_set', fn_presence_set, WRITE, SELF_PUBLISH },
  { 'imkit_presence_get', fn_presence_get, QUERY },
  { 'imkit_gateway_gone', fn_gateway_gone, WRITE, SELF_PUBLISH },
  { 'imkit_presence_drop', fn_presence_drop, WRITE, SELF_PUBLISH },
  { 'imkit_events_get', fn_events_get, QUERY },
  { 'imkit_profile_ensure', fn_profile_ensure, WRITE, FOLLOW_UP },
  { 'imkit_member_gone', fn_member_gone, WRITE, FOLLOW_UP },
  { 'imkit_direct_open', fn_direct_open, WRITE, FOLLOW_UP },
  { 'imkit_direct_forget', fn_direct_forget, WRITE, FOLLOW_UP },
  { 'imkit_peer_joined', fn_peer_joined, WRITE, FOLLOW_UP },
  { 'imkit_outbox_add', fn_outbox_add, WRITE, FOLLOW_UP },
}

for i = 1, #FUNCTIONS do -- a plain loop: ipairs is not reachable at load time
  local f = FUNCTIONS[i]
  redis.register_function{ function_name = f[1], callback = entry(f[2], f[4], f[5]), flags = f[3] }
end
