#!lua name=imkit
--[[
IMKit: the Redis Functions library that applies every change to the chat's state.

The contract with workers and gateways is docs/FUNCTIONS.md; the objects, operations and
rules are the wire contract (PROTOCOL.md sections 1-2). Conventions of this file:

Calling
  FCALL[_RO] <function> 0 <prefix> <from> <args>
  prefix  key prefix (e.g. "imkit:"); every key and channel is built from it (K.*, CH.*).
  from    the acting client id, or '' for the admin API ("acting as the system": no
          membership checks).
  args    one msgpack map. Strings must be packed as msgpack str (Redis' cmsgpack cannot
          decode bin). Users' JSON (meta, payload) arrives as JSON text and is stored and
          embedded verbatim, never decoded: this keeps big integers exact.

Reply
  { 'ok', <JSON data>, channel1, frame1, channel2, frame2, ... }   events to publish, in order
  { <error code>, <human message> }                                nothing was written

Failures
  fail(code, msg) throws a marked error that entry() turns into the error reply. Every
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
  1. JSON encoder            5. rooms: load, membership, objects, summaries
  2. call context, replies   6. messages
  3. keys and channels       7. functions, one section per family
  4. clients (profiles)      8. registration
]]

---------------------------------------------------------------------------------------
-- 1. JSON encoder
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

---------------------------------------------------------------------------------------
-- 2. Call context, argument checks, replies
---------------------------------------------------------------------------------------

-- State of the running call, reset by entry(). Redis runs one function at a time.
local P = ''       -- key prefix
local FROM = ''    -- acting client, '' = admin
local NOW = nil    -- ms, read once per call so one call sees one instant
local EVENTS = {}  -- flat list: channel, frame, channel, frame, ...

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
  EVENTS[#EVENTS + 1] = json(obj('ev', ev, 'data', data))
end

-- Wraps a handler(args) -> data into a Redis Function callback speaking the reply format.
local function entry(handler)
  return function(keys, argv)
    if argv[1] == nil or argv[2] == nil then
      error('imkit: call as FCALL <function> 0 <prefix> <from> <msgpack args>')
    end
    P, FROM, NOW, EVENTS = argv[1], argv[2], nil, {}
    local args = {}
    if argv[3] ~= nil and argv[3] ~= '' then
      local ok, v = pcall(cmsgpack.unpack, argv[3])
      if not ok or type(v) ~= 'table' then return { 'bad_request', 'args: not a msgpack map' } end
      args = v
    end
    local ok, data = pcall(handler, args)
    if not ok then
      if getmetatable(data) == FAIL then return { data.code, data.msg } end
      error(data, 0) -- a real fault: let Redis report it
    end
    local reply = { 'ok', json(data) }
    for _, x in ipairs(EVENTS) do reply[#reply + 1] = x end
    return reply
  end
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
function K.user(id) return P .. 'u:{' .. id .. '}' end
function K.user_rooms(id) return P .. 'u:{' .. id .. '}:rooms' end -- zset rid, joined_at
function K.token(hash) return P .. 'tok:' .. hash end
function K.online(id) return P .. 'online:{' .. id .. '}' end
function K.direct(a, b) -- the pair in byte order, so both sides find the same key
  if bytes_less(b, a) then a, b = b, a end
  return P .. 'direct:{' .. a .. '|' .. b .. '}'
end

local CH = {}
function CH.room(rid) return P .. 'ch:r:{' .. rid .. '}' end
function CH.user(id) return P .. 'ch:u:{' .. id .. '}' end

-- HGETALL as a Lua table, or nil when the key does not exist.
local function load_hash(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

---------------------------------------------------------------------------------------
-- 4. Clients (profiles)
---------------------------------------------------------------------------------------

-- client: {"id","name","avatar","meta"}; a missing profile reads as a fresh one.
local function client_obj(id, prof)
  prof = prof or {}
  return obj('id', id, 'name', prof.name or id, 'avatar', prof.avatar or NULL,
    'meta', raw_or_null(prof.meta))
end

-- Creates the profile when missing (name = given name, else the id: PROTOCOL.md
-- "Ids that never connected may be named as members"). Returns the profile and
-- whether it was created.
local function ensure_profile(id, name)
  local prof = load_hash(K.user(id))
  if prof then return prof, false end
  prof = { name = name or id, created_at = fmt_int(now_ms()) }
  redis.call('HSET', K.user(id), 'name', prof.name, 'created_at', prof.created_at)
  return prof, true
end

-- Presence from the gateways' counters: online when any gateway holds a connection.
local function presence_of(id)
  local h = load_hash(K.online(id)) or {}
  local online = false
  for field, count in pairs(h) do
    if field ~= 'last_seen' and (tonumber(count) or 0) > 0 then online = true end
  end
  return online, tonumber(h.last_seen)
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

-- Hook for how a stored message reads back (issue 3: edits, recalls, reactions).
local function stored_message(text)
  return raw_or_null(text)
end

-- summary: room + "last_message" + "unread" + "peer" (direct rooms), as seen by client id.
local function room_summary(rid, h, id, mark)
  local s = room_obj(rid, h)
  put(s, 'last_message', stored_message(h.last_msg))
  put(s, 'unread', unread_of(h, mark or read_mark(rid, id)))
  if h.type == 'direct' then
    local peer = direct_peer(rid, id)
    put(s, 'peer', peer and client_obj(peer, load_hash(K.user(peer))) or NULL)
  end
  return s
end

-- Adds one member: role, read mark (everything before joining counts as read), and the
-- member's own room index.
local function add_member(rid, id, role, joined_at, last_seq)
  redis.call('HSET', K.members(rid), id, role .. '|' .. fmt_int(joined_at))
  redis.call('HSET', K.reads(rid), id, fmt_int(last_seq))
  redis.call('ZADD', K.user_rooms(id), fmt_int(joined_at), rid)
end

---------------------------------------------------------------------------------------
-- 6. Messages
---------------------------------------------------------------------------------------

-- message: {"room","seq","ts","from","type","text"?,"payload"?,"cid","reply_to"?,"mentions"?}
local function message_obj(m)
  return obj('room', m.room, 'seq', m.seq, 'ts', m.ts, 'from', m.from, 'type', m.type,
    'text', m.text, 'payload', m.payload and raw(m.payload), 'cid', m.cid,
    'reply_to', m.reply_to, 'mentions', m.mentions and #m.mentions > 0 and arr(m.mentions) or nil)
end

-- The answer to msg.send, for the first call and its retries alike.
local function send_answer(rid, seq, ts, cid)
  return obj('room', rid, 'seq', seq, 'ts', ts, 'cid', cid)
end

local function stream_id(seq)
  return fmt_int(seq) .. '-1'
end

-- XRANGE/XREVRANGE entries -> list of the stored message texts (field m).
local function entry_texts(entries)
  local out = {}
  for _, e in ipairs(entries) do
    local fields = e[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'm' then out[#out + 1] = fields[i + 1] end
    end
  end
  return out
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

-- imkit_auth: args sub? | tok?, iat?, name?, avatar?  ->  client
local function fn_auth(args)
  local id, iat
  local tok = arg_str(args, 'tok')
  if tok then
    local v = redis.call('GET', K.token(tok))
    if not v then fail('unauthenticated', 'unknown or expired token') end
    local tid, tiat = v:match('^(%S+) (%d+)$')
    if not tid then fail('unauthenticated', 'unknown or expired token') end
    id, iat = tid, tonumber(tiat)
  else
    id = arg_str(args, 'sub')
    if not id then fail('bad_request', 'sub: required (or tok)') end
    iat = arg_int(args, 'iat')
  end
  local name, avatar = arg_str(args, 'name'), arg_str(args, 'avatar')

  -- Revocation: tokens issued at or before the revocation second are refused; a token
  -- without iat is refused once any revocation happened.
  local prof = load_hash(K.user(id))
  local valid_after = prof and tonumber(prof.tokens_valid_after)
  if valid_after and (iat == nil or iat <= valid_after) then
    fail('unauthenticated', 'token revoked')
  end

  prof = ensure_profile(id, name)
  update_profile(id, prof, { name = name, avatar = avatar })
  return client_obj(id, prof)
end

local CLEARABLE = { name = true, avatar = true, meta = true }

-- imkit_client_put: args id, name?, avatar?, meta?, clear?  ->  client
local function fn_client_put(args)
  local id = arg_str(args, 'id') or (FROM ~= '' and FROM or nil)
  if not id then fail('bad_request', 'id: required') end
  if FROM ~= '' and id ~= FROM then fail('forbidden', 'a client can only update itself') end
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

-- imkit_token_create: args id, hash, ttl (s), iat (s)  ->  {"expires_at"}
local function fn_token_create(args)
  local id = arg_str(args, 'id', true)
  local hash = arg_str(args, 'hash', true)
  local ttl = arg_int(args, 'ttl', true)
  local iat = arg_int(args, 'iat', true)
  if FROM ~= '' and FROM ~= id then fail('forbidden', 'a client can only get its own tokens') end
  if ttl <= 0 then fail('bad_request', 'ttl: must be positive') end

  redis.call('SET', K.token(hash), id .. ' ' .. fmt_int(iat), 'EX', fmt_int(ttl))
  ensure_profile(id)
  return obj('expires_at', now_ms() + ttl * 1000)
end

-- imkit_client_get: args ids  ->  {"clients":[client + "online","last_seen"]}
local function fn_client_get(args)
  local clients = arr()
  for _, id in ipairs(arg_ids(args, 'ids', true)) do
    local prof = load_hash(K.user(id))
    if prof then -- unknown ids are left out
      local online, last_seen = presence_of(id)
      clients[#clients + 1] = put(put(client_obj(id, prof), 'online', online),
        'last_seen', last_seen or NULL)
    end
  end
  return obj('clients', clients)
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

-- Writes a new room and its members; queues room.joined for each member.
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
    ensure_profile(id)
    add_member(rid, id, id == owner and 'owner' or 'member', now, 0)
  end
  local h = load_room(rid)
  for _, id in ipairs(members) do
    emit(CH.user(id), 'room.joined', room_summary(rid, h, id, 0))
  end
  return h
end

local function create_direct(args, members, fields)
  if #members ~= 2 then
    fail('bad_request', 'members: a direct room takes exactly one other member')
  end
  local dkey = K.direct(members[1], members[2])
  local existing = redis.call('GET', dkey)
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
  if #members > MAX_GROUP_MEMBERS then
    fail('too_large', 'members: a group room holds at most ' .. MAX_GROUP_MEMBERS .. ' members')
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

-- imkit_room_list: args limit, before?  ->  {"rooms","next","unread_total"}
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

-- imkit_msg_send: args room, cid, type, text?, payload?, reply_to?, mentions?
--   ->  {"room","seq","ts","cid"}
local function fn_msg_send(args)
  if FROM == '' then fail('bad_request', 'from: a message needs a sender') end
  local rid = arg_str(args, 'room', true)
  local cid = arg_str(args, 'cid', true)
  local m = { room = rid, from = FROM, cid = cid, type = arg_str(args, 'type', true),
    text = arg_str(args, 'text'), payload = arg_str(args, 'payload'),
    reply_to = arg_int(args, 'reply_to'), mentions = arg_ids(args, 'mentions') }
  if NEEDS_TEXT[m.type] and not m.text then fail('bad_request', 'text: required') end
  if not NEEDS_TEXT[m.type] and not m.payload then fail('bad_request', 'payload: required') end

  local h = must_room(rid)
  -- A retry (same sender, same cid) answers the original seq and ts and writes nothing.
  -- Checked before membership so a job replayed after the sender left still gets the
  -- answer of the message that was stored.
  local hit = redis.call('HGET', K.cids(rid), FROM .. '|' .. cid)
  if hit then
    local seq, ts = hit:match('^(%d+)|(%d+)$')
    return send_answer(rid, tonumber(seq), tonumber(ts), cid)
  end
  check_member(rid)
  local last_seq = num(h.last_seq)
  if m.reply_to and (m.reply_to < 1 or m.reply_to > last_seq) then
    fail('bad_request', 'reply_to: no such message')
  end

  -- ts never goes back while seq goes forward, even if the clock does.
  m.seq = last_seq + 1
  m.ts = math.max(now_ms(), num(h.last_ts))
  local text = json(message_obj(m))
  redis.call('XADD', K.log(rid), stream_id(m.seq), 'm', text)
  redis.call('HSET', K.room(rid), 'last_seq', fmt_int(m.seq), 'last_ts', fmt_int(m.ts),
    'last_msg', text)
  redis.call('HSET', K.cids(rid), FROM .. '|' .. cid, fmt_int(m.seq) .. '|' .. fmt_int(m.ts))
  redis.call('HSET', K.reads(rid), FROM, fmt_int(m.seq)) -- own messages are never unread
  emit(CH.room(rid), 'message', raw(text))
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
  local texts = entry_texts(nearest_first)
  local n = math.min(#texts, limit)
  local messages = arr()
  for i = 1, n do
    messages[i] = stored_message(texts[ascending and i or (n + 1 - i)])
  end
  local has_more = #texts > limit
  return obj('messages', messages, 'has_more', has_more)
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
-- 8. Registration
---------------------------------------------------------------------------------------

local WRITE, QUERY = {}, { 'no-writes' }

local FUNCTIONS = {
  { 'imkit_auth', fn_auth, WRITE },
  { 'imkit_client_put', fn_client_put, WRITE },
  { 'imkit_token_create', fn_token_create, WRITE },
  { 'imkit_client_get', fn_client_get, QUERY },
  { 'imkit_room_create', fn_room_create, WRITE },
  { 'imkit_room_get', fn_room_get, QUERY },
  { 'imkit_room_list', fn_room_list, QUERY },
  { 'imkit_room_read', fn_room_read, WRITE },
  { 'imkit_msg_send', fn_msg_send, WRITE },
  { 'imkit_msg_history', fn_msg_history, QUERY },
}

for i = 1, #FUNCTIONS do -- a plain loop: ipairs is not reachable at load time
  local f = FUNCTIONS[i]
  redis.register_function{ function_name = f[1], callback = entry(f[2]), flags = f[3] }
end
