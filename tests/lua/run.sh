#!/usr/bin/env bash
# Tests of the imkit Redis Functions library (worker/lua/imkit.lua) against a real
# redis-server: starts one on a free port, loads the library, calls every function with
# redis-cli (msgpack args built by tests/lua/mp.py) and checks the replies.
# Exits non-zero when any check fails.
#
#   tests/lua/run.sh            (from anywhere; needs redis-server, redis-cli, python3)
#   VERBOSE=1 tests/lua/run.sh  also prints every passing check
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LIB=${IMKIT_LUA:-$ROOT/worker/lua/imkit.lua} # IMKIT_LUA: test another copy
PFX='imkit:'
TMP=$(mktemp -d)
# The interpreter itself, resolved once: a version-manager shim costs ~0.5 s a call.
PY=$(python3 -c 'import sys; print(sys.executable)')
py() { "$PY" -I -S "$@"; }

free_port() {
  py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=${PORT:-$(free_port)}

redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  >"$TMP/redis.log" 2>&1 &
RPID=$!
cleanup() {
  kill "$RPID" 2>/dev/null
  wait "$RPID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

rc() { redis-cli -p "$PORT" "$@"; }

for _ in $(seq 1 50); do
  [ "$(rc PING 2>/dev/null)" = PONG ] && break
  sleep 0.1
done
if [ "$(rc PING 2>/dev/null)" != PONG ]; then
  echo "redis-server did not start on port $PORT:"; cat "$TMP/redis.log"; exit 2
fi

PASS=0
FAIL=0
SECTION=''

section() { SECTION=$1; echo "== $1 ($SECONDS s)"; }

ok() { # ok DESC
  PASS=$((PASS + 1))
  [ -n "${VERBOSE:-}" ] && echo "   ok   $1"
  return 0
}

bad() { # bad DESC DETAIL
  FAIL=$((FAIL + 1))
  echo "   FAIL [$SECTION] $1: $2"
}

# check DESC ACTUAL EXPECTED
check() {
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1" "got '$2', want '$3'"; fi
}

# check_match DESC ACTUAL REGEX
check_match() {
  if [[ "$2" =~ $3 ]]; then ok "$1"; else bad "$1" "got '$2', want match of /$3/"; fi
}

# Functions flagged no-writes are called with FCALL_RO, as gateways do: this also
# checks their flags.
is_query() {
  case $1 in imkit_client_get | imkit_room_get | imkit_room_list | imkit_msg_history) return 0 ;; esac
  return 1
}

# call FN FROM JSON: runs the function; sets ST (status), BODY (answer or message),
# NEV (number of events), EVCH[i] and EVFR[i] (channel and frame of event i, from 0).
call() {
  local fn=$1 from=$2 args=$3 cmd=FCALL out
  is_query "$fn" && cmd=FCALL_RO
  py "$HERE/mp.py" pack "$args" >"$TMP/args" || { bad "$fn" "cannot pack $args"; return; }
  out=$(rc -x "$cmd" "$fn" 0 "$PFX" "$from" <"$TMP/args")
  mapfile -t LINES <<<"$out"
  ST=${LINES[0]:-}
  BODY=${LINES[1]:-}
  EVCH=()
  EVFR=()
  local i
  for ((i = 2; i + 1 < ${#LINES[@]}; i += 2)); do
    EVCH+=("${LINES[i]}")
    EVFR+=("${LINES[i + 1]}")
  done
  NEV=${#EVCH[@]}
}

# j PATH: value at PATH in BODY (see mp.py get). jf FRAME PATH: same in an event frame.
j() { py "$HERE/mp.py" get "$BODY" "$1"; }
jf() { py "$HERE/mp.py" get "$1" "$2"; }
seqs() { py "$HERE/mp.py" seqs "$BODY" "$1"; }
ids() { py "$HERE/mp.py" ids "$BODY" "$1"; }

# expect CODE DESC: the last call's status
expect() { check "$2: status" "$ST" "$1"; }

# ok_call DESC FN FROM JSON: a call that must succeed
ok_call() {
  call "$2" "$3" "$4"
  if [ "$ST" != ok ]; then bad "$1" "status '$ST' body '$BODY'"; else ok "$1"; fi
}

now_ms() { py -c 'import time; print(int(time.time() * 1000))'; }

#######################################################################################
section "load"
out=$(rc -x FUNCTION LOAD REPLACE <"$LIB")
check "FUNCTION LOAD" "$out" "imkit"
out=$(rc -x FUNCTION LOAD REPLACE <"$LIB")
check "FUNCTION LOAD REPLACE twice" "$out" "imkit"
nfun=$(rc FUNCTION LIST LIBRARYNAME imkit | grep -c '^imkit_')
check "10 functions registered" "$nfun" 10
for f in imkit_client_get imkit_room_get imkit_room_list imkit_msg_history; do
  flags=$(rc FUNCTION LIST LIBRARYNAME imkit | grep -A4 "^$f\$" | sed -n 5p)
  check "$f is no-writes" "$flags" "no-writes"
done
py "$HERE/mp.py" pack '{"room":"x","cid":"c","type":"text","text":"t"}' >"$TMP/args"
out=$(rc -x FCALL_RO imkit_msg_send 0 "$PFX" alice <"$TMP/args" 2>&1)
check_match "a write function refuses FCALL_RO" "$out" "write flag"
out=$(rc FCALL imkit_client_get 0 "$PFX" alice 'not msgpack')
check_match "garbage args are bad_request" "$out" "^bad_request"

#######################################################################################
section "auth"
call imkit_auth '' '{"sub":"alice","name":"Alice","avatar":"https://a/alice.png"}'
expect ok "JWT auth creates alice"
check "client object" "$BODY" '{"id":"alice","name":"Alice","avatar":"https://a/alice.png","meta":null}'
check "auth emits no event" "$NEV" 0
check "profile has created_at" "$(rc HEXISTS "${PFX}u:{alice}" created_at)" 1

call imkit_auth '' '{"sub":"bob"}'
expect ok "JWT auth without name"
check "a client without name is named by its id" "$(j name)" bob

call imkit_auth '' '{"sub":"bob","name":"Bob"}'
check "auth updates the name" "$(j name)" Bob
check "auth keeps the avatar absent" "$(j avatar)" null

call imkit_auth '' '{"sub":"alice"}'
check "auth without name keeps the stored one" "$(j name)" Alice

call imkit_auth '' '{"tok":"0000deadbeef"}'
expect unauthenticated "unknown opaque token"
check "message" "$BODY" "unknown or expired token"

call imkit_auth '' '{}'
expect bad_request "auth with neither sub nor tok"

T0=$(($(now_ms) / 1000))
call imkit_token_create '' "{\"id\":\"carol\",\"hash\":\"h-carol-1\",\"ttl\":60,\"iat\":$T0}"
expect ok "token_create"
exp=$(j expires_at)
now=$(now_ms)
if [ "$exp" -ge $((now + 55000)) ] && [ "$exp" -le $((now + 61000)) ]; then
  ok "expires_at is now + ttl"
else
  bad "expires_at is now + ttl" "got $exp, now $now"
fi
check "token stored as 'id iat'" "$(rc GET "${PFX}tok:h-carol-1")" "carol $T0"
ttl=$(rc TTL "${PFX}tok:h-carol-1")
check_match "token has a TTL" "$ttl" '^(5[0-9]|60)$'
check "token_create creates the profile (name = id)" "$(rc HGET "${PFX}u:{carol}" name)" carol

call imkit_token_create bob '{"id":"carol","hash":"h-x","ttl":60,"iat":1}'
expect forbidden "a client cannot get another's token"

call imkit_auth '' '{"tok":"h-carol-1","name":"Carol"}'
expect ok "opaque token auth"
check "it names the token's client" "$(j id)" carol
check "and updates the name" "$(j name)" Carol

rc HSET "${PFX}u:{carol}" tokens_valid_after "$T0" >/dev/null
call imkit_auth '' '{"tok":"h-carol-1"}'
expect unauthenticated "token issued in the revocation second"
check "message" "$BODY" "token revoked"
call imkit_auth '' '{"sub":"carol"}'
expect unauthenticated "JWT without iat after a revocation"
call imkit_auth '' "{\"sub\":\"carol\",\"iat\":$T0}"
expect unauthenticated "JWT issued at the revocation second"
call imkit_auth '' "{\"sub\":\"carol\",\"iat\":$((T0 + 1))}"
expect ok "JWT issued after the revocation"

#######################################################################################
section "client_put / client_get"
call imkit_client_put '' '{"id":"dave","name":"Dave","meta":"{\"big\":12345678901234567890,\"l\":[]}"}'
expect ok "admin creates dave"
check "meta embedded verbatim (big integer, empty list)" "$BODY" \
  '{"id":"dave","name":"Dave","avatar":null,"meta":{"big":12345678901234567890,"l":[]}}'

call imkit_client_put '' '{"id":"dave","avatar":"https://a/d.png"}'
check "PUT changes only the named fields" "$(j name)|$(j avatar)|$(j meta.big)" \
  "Dave|https://a/d.png|12345678901234567890"

call imkit_client_put '' '{"id":"dave","clear":["name","meta"]}'
expect ok "clear name and meta"
check "cleared name is the id, cleared meta is null" "$BODY" \
  '{"id":"dave","name":"dave","avatar":"https://a/d.png","meta":null}'
check "meta field removed" "$(rc HEXISTS "${PFX}u:{dave}" meta)" 0

call imkit_client_put '' '{"id":"dave","clear":["nope"]}'
expect bad_request "clear of an unknown field"

call imkit_client_put alice '{"id":"bob","name":"x"}'
expect forbidden "a client updates only itself"
call imkit_client_put alice '{"meta":"{\"v\":1}"}'
expect ok "me.update without id acts on the caller"
check "it is alice" "$(j id)|$(j meta.v)" "alice|1"

rc HSET "${PFX}online:{alice}" gw1 0 gw2 2 last_seen 1700000000123 >/dev/null
rc HSET "${PFX}online:{dave}" gw1 0 last_seen 1700000000456 >/dev/null
call imkit_client_get alice '{"ids":["dave","nobody","alice","dave"]}'
expect ok "client_get"
check "unknown ids left out, order kept, repeats once" "$(ids clients)" "dave alice"
check "dave: offline, last_seen" "$(j clients.0.online)|$(j clients.0.last_seen)" "false|1700000000456"
check "alice: online (a gateway count > 0)" "$(j clients.1.online)|$(j clients.1.last_seen)" "true|1700000000123"
call imkit_client_get '' '{"ids":["bob"]}'
check "never seen online: last_seen null" "$(j clients.0.online)|$(j clients.0.last_seen)" "false|null"
check "client fields present" "$(j clients.0)" \
  '{"id":"bob","name":"Bob","avatar":null,"meta":null,"online":false,"last_seen":null}'
call imkit_client_get '' '{"ids":[]}'
check "empty ids: empty array" "$BODY" '{"clients":[]}'

#######################################################################################
section "room_create: direct"
call imkit_room_create alice '{"type":"direct","members":["bob"],"new_id":"d-ab"}'
expect ok "alice opens a direct room with bob"
check "room object" "$(j id)|$(j type)|$(j owner)|$(j members_count)|$(j last_seq)|$(j created)" \
  "d-ab|direct|null|2|0|true"
check "name, cover, meta present as null" "$(j name)|$(j cover)|$(j meta)" "null|null|null"
check "two room.joined events" "$NEV" 2
check "first to alice's channel" "${EVCH[0]:-}" "${PFX}ch:u:{alice}"
check "second to bob's channel" "${EVCH[1]:-}" "${PFX}ch:u:{bob}"
check "event name" "$(jf "${EVFR[0]:-}" ev)" room.joined
check "alice's summary: peer bob, unread 0, no last message" \
  "$(jf "${EVFR[0]:-}" data.peer.id)|$(jf "${EVFR[0]:-}" data.peer.name)|$(jf "${EVFR[0]:-}" data.unread)|$(jf "${EVFR[0]:-}" data.last_message)" \
  "bob|Bob|0|null"
check "bob's summary: peer alice" "$(jf "${EVFR[1]:-}" data.peer.id)" alice
check "direct key (sorted pair)" "$(rc GET "${PFX}direct:{alice|bob}")" d-ab
check "both are members" "$(rc HGET "${PFX}r:{d-ab}:m" alice | cut -d'|' -f1)|$(rc HGET "${PFX}r:{d-ab}:m" bob | cut -d'|' -f1)" "member|member"
check "read marks start at 0" "$(rc HGET "${PFX}r:{d-ab}:read" alice)|$(rc HGET "${PFX}r:{d-ab}:read" bob)" "0|0"
check "rooms index of bob" "$(rc ZSCORE "${PFX}u:{bob}:rooms" d-ab)" "$(rc HGET "${PFX}r:{d-ab}" created_at)"
check "last_ts = created_at" "$(rc HGET "${PFX}r:{d-ab}" last_ts)" "$(rc HGET "${PFX}r:{d-ab}" created_at)"

call imkit_room_create bob '{"type":"direct","members":["alice"],"new_id":"d-other"}'
expect ok "bob opens the same pair"
check "same room, created false" "$(j id)|$(j created)" "d-ab|false"
check "no events the second time" "$NEV" 0
check "no second room" "$(rc EXISTS "${PFX}r:{d-other}")" 0

call imkit_room_create '' '{"type":"direct","members":["bob","alice"],"new_id":"d-adm","owner":"bob","id":"zz"}'
check "admin, same pair: same room, owner and id ignored" "$(j id)|$(j created)|$(j owner)" "d-ab|false|null"

call imkit_room_create alice '{"type":"direct","members":["alice","bob"],"new_id":"d-x"}'
check "the caller listed among members is dropped" "$ST|$(j id)" "ok|d-ab"

DB0=$(rc DBSIZE)
call imkit_room_create alice '{"type":"direct","members":["bob","carol"],"new_id":"d-3"}'
expect bad_request "direct with two others"
check "message names the field" "$BODY" "members: a direct room takes exactly one other member"
call imkit_room_create alice '{"type":"direct","members":["alice"],"new_id":"d-self"}'
expect bad_request "direct with oneself"
call imkit_room_create '' '{"type":"direct","members":["bob"],"new_id":"d-1"}'
expect bad_request "admin direct with one member"
call imkit_room_create alice '{"type":"channel","members":["bob"],"new_id":"d-t"}'
expect bad_request "unknown room type"
check "refusals wrote nothing" "$(rc DBSIZE)" "$DB0"

call imkit_room_create carol '{"type":"direct","members":["newbie"],"new_id":"d-cn"}'
expect ok "direct with a never-seen id"
check "it gets a profile named by its id" "$(rc HGET "${PFX}u:{newbie}" name)" newbie
check "peer in carol's summary" "$(jf "${EVFR[0]:-}" data.peer)" '{"id":"newbie","name":"newbie","avatar":null,"meta":null}'

#######################################################################################
section "room_create: group"
call imkit_room_create alice '{"type":"group","id":"g1","members":["bob","carol","alice","bob"],"name":"G One","meta":"{\"n\":98765432109876543210}","new_id":"ignored"}'
expect ok "alice creates g1"
check "room" "$(j id)|$(j type)|$(j name)|$(j owner)|$(j members_count)|$(j created)" "g1|group|G One|alice|3|true"
check "meta verbatim" "$(py -c 'import sys; print("98765432109876543210" in sys.argv[1])' "$BODY")" True
check "three room.joined events" "$NEV" 3
check "to alice, bob, carol" "${EVCH[*]:-}" "${PFX}ch:u:{alice} ${PFX}ch:u:{bob} ${PFX}ch:u:{carol}"
check "group summary has no peer" "$(jf "${EVFR[1]:-}" data.peer)" "<missing>"
check "summary unread and last_message" "$(jf "${EVFR[1]:-}" data.unread)|$(jf "${EVFR[1]:-}" data.last_message)" "0|null"
check "alice is owner" "$(rc HGET "${PFX}r:{g1}:m" alice | cut -d'|' -f1)" owner
check "bob is member" "$(rc HGET "${PFX}r:{g1}:m" bob | cut -d'|' -f1)" member

DB0=$(rc DBSIZE)
call imkit_room_create bob '{"type":"group","id":"g1","members":[],"new_id":"x"}'
expect conflict "an existing id"
call imkit_room_create '' '{"type":"group","members":[],"new_id":"g-empty"}'
expect bad_request "admin group with no member"
check "refusals wrote nothing" "$(rc DBSIZE)" "$DB0"

call imkit_room_create dave '{"type":"group","members":[],"new_id":"g-solo"}'
expect ok "a group of the creator alone"
check "id from new_id, one member, owner" "$(j id)|$(j members_count)|$(j owner)" "g-solo|1|dave"

call imkit_room_create '' '{"type":"group","members":["frank","gina"],"owner":"erin","new_id":"g-adm","cover":"https://c"}'
expect ok "admin group with an owner not listed"
check "owner erin, 3 members, cover" "$(j owner)|$(j members_count)|$(j cover)" "erin|3|https://c"
check "erin is owner" "$(rc HGET "${PFX}r:{g-adm}:m" erin | cut -d'|' -f1)" owner
check "never-seen members got profiles" "$(rc HGET "${PFX}u:{frank}" name)|$(rc HGET "${PFX}u:{gina}" name)" "frank|gina"

call imkit_room_create '' '{"type":"group","members":["hal","ivy"],"new_id":"g-adm2"}'
check "admin group without owner: the first member" "$(j owner)" hal

call imkit_room_create alice '{"type":"group","members":["bob"],"owner":"bob","new_id":"g-own"}'
check "a client's owner field is ignored" "$(j owner)" alice

big=$(py -c 'import json; print(json.dumps({"type":"group","new_id":"g-big","members":["m%d" % i for i in range(10001)]}))')
call imkit_room_create '' "$big"
expect too_large "10001 members"
check "nothing written" "$(rc EXISTS "${PFX}r:{g-big}" "${PFX}u:{m1}")" 0

#######################################################################################
section "room_get"
call imkit_room_get bob '{"room":"g1"}'
expect ok "a member reads g1"
check "members ordered by joined_at then id" "$(ids members)" "alice bob carol"
check "roles" "$(j members.0.role)|$(j members.1.role)" "owner|member"
check "joined_at" "$(j members.0.joined_at)" "$(rc HGET "${PFX}r:{g1}" created_at)"
check "room fields" "$(j members_count)|$(j last_seq)|$(j updated_at)" "3|0|$(rc HGET "${PFX}r:{g1}" created_at)"
call imkit_room_get dave '{"room":"g1"}'
expect forbidden "a non-member"
check "message" "$BODY" "not a member of room g1"
call imkit_room_get alice '{"room":"nope"}'
expect not_found "a missing room"
check "message" "$BODY" "room nope not found"
call imkit_room_get '' '{"room":"g1"}'
expect ok "admin reads any room"

#######################################################################################
section "msg_send"
call imkit_msg_send alice '{"room":"g1","cid":"a1","type":"text","text":"hello \"world\"\n\\/ é 😀 a/b"}'
expect ok "first message"
check "answer" "$(j room)|$(j seq)|$(j cid)" "g1|1|a1"
TS1=$(j ts)
check "one event, on the room channel" "$NEV|${EVCH[0]:-}" "1|${PFX}ch:r:{g1}"
check "event frame" "$(jf "${EVFR[0]:-}" ev)|$(jf "${EVFR[0]:-}" data.from)|$(jf "${EVFR[0]:-}" data.seq)|$(jf "${EVFR[0]:-}" data.type)" "message|alice|1|text"
check "text escaped and back" "$(jf "${EVFR[0]:-}" data.text)" "$(printf 'hello "world"\n\\/ é 😀 a/b')"
check_match "slashes written plain, backslash escaped" "${EVFR[0]:-}" 'world\\"\\n\\\\/ é 😀 a/b"' 
check "absent ? fields" "$(jf "${EVFR[0]:-}" data.payload)|$(jf "${EVFR[0]:-}" data.reply_to)|$(jf "${EVFR[0]:-}" data.mentions)" "<missing>|<missing>|<missing>"
check "ts is the event's" "$(jf "${EVFR[0]:-}" data.ts)" "$TS1"

call imkit_msg_send alice '{"room":"g1","cid":"a1","type":"text","text":"again"}'
expect ok "retry with the same cid"
check "same seq and ts" "$(j seq)|$(j ts)" "1|$TS1"
check "no event" "$NEV" 0
check "nothing stored" "$(rc HGET "${PFX}r:{g1}" last_seq)|$(rc XLEN "${PFX}r:{g1}:log")" "1|1"

call imkit_msg_send bob '{"room":"g1","cid":"a1","type":"image","payload":"{\"url\":\"u\",\"w\":12345678901234567890}","reply_to":1,"mentions":["alice","carol"]}'
expect ok "another sender may reuse the cid"
check "seq 2" "$(j seq)" 2
check "payload verbatim, reply_to, mentions" \
  "$(jf "${EVFR[0]:-}" data.payload)|$(jf "${EVFR[0]:-}" data.reply_to)|$(jf "${EVFR[0]:-}" data.mentions)" \
  '{"url":"u","w":12345678901234567890}|1|["alice","carol"]'
check "no text field" "$(jf "${EVFR[0]:-}" data.text)" "<missing>"
check "stored message = event data" "$(rc XRANGE "${PFX}r:{g1}:log" 2-1 2-1 | sed -n 3p)" "$(py -c 'import sys; f=sys.argv[1]; print(f[f.index("\"data\":")+7:-1])' "${EVFR[0]:-}")"

DB0=$(rc DBSIZE)
LS0=$(rc HGET "${PFX}r:{g1}" last_seq)
call imkit_msg_send bob '{"room":"g1","cid":"b9","type":"text","text":"x","reply_to":3}'
expect bad_request "reply_to past last_seq"
check "message" "$BODY" "reply_to: no such message"
call imkit_msg_send bob '{"room":"g1","cid":"b9","type":"text","text":"x","reply_to":0}'
expect bad_request "reply_to 0"
call imkit_msg_send dave '{"room":"g1","cid":"d1","type":"text","text":"x"}'
expect forbidden "a non-member sends"
call imkit_msg_send dave '{"room":"nope","cid":"d1","type":"text","text":"x"}'
expect not_found "send to a missing room"
call imkit_msg_send '' '{"room":"g1","cid":"z1","type":"text","text":"x"}'
expect bad_request "send without a sender"
call imkit_msg_send bob '{"room":"g1","cid":"b9","type":"text"}'
expect bad_request "text message without text"
call imkit_msg_send bob '{"room":"g1","cid":"b9","type":"image"}'
expect bad_request "image without payload"
check "refusals wrote nothing" "$(rc DBSIZE)|$(rc HGET "${PFX}r:{g1}" last_seq)" "$DB0|$LS0"

# 10 more messages, each retried once: seq 3..12 with no gap, ts never decreasing.
prev=0
mono=yes
for i in $(seq 1 10); do
  who=alice
  [ $((i % 3)) -eq 0 ] && who=carol
  call imkit_msg_send "$who" "{\"room\":\"g1\",\"cid\":\"loop-$i\",\"type\":\"text\",\"text\":\"m$i\"}"
  s1=$(j seq)
  t1=$(j ts)
  call imkit_msg_send "$who" "{\"room\":\"g1\",\"cid\":\"loop-$i\",\"type\":\"text\",\"text\":\"m$i\"}"
  check "retry of loop-$i answers the same" "$(j seq)|$(j ts)|$NEV" "$s1|$t1|0"
  check "loop-$i gets seq $((i + 2))" "$s1" "$((i + 2))"
  [ "$t1" -ge "$prev" ] || mono=no
  prev=$t1
done
check "ts never decreases" "$mono" yes
check "last_seq 12" "$(rc HGET "${PFX}r:{g1}" last_seq)" 12
check "log ids 1-1..12-1, no gap" "$(rc XRANGE "${PFX}r:{g1}:log" - + | grep -E '^[0-9]+-1$' | tr '\n' ' ')" \
  "$(for i in $(seq 1 12); do printf '%s-1 ' "$i"; done)"
check "cid entries" "$(rc HLEN "${PFX}r:{g1}:cid")" 12
check "last_msg is message 12" "$(py "$HERE/mp.py" get "$(rc HGET "${PFX}r:{g1}" last_msg)" seq)" 12

# ts never goes back: an activity stamp ahead of the clock is kept.
FUT=$(($(now_ms) + 100000))
rc HSET "${PFX}r:{g-solo}" last_ts "$FUT" >/dev/null
call imkit_msg_send dave '{"room":"g-solo","cid":"f1","type":"text","text":"x"}'
check "ts = last_ts when the clock is behind" "$(j seq)|$(j ts)" "1|$FUT"

#######################################################################################
section "unread and room_read"
# In g1: alice sent 1,3,4,6,7,9,10,12; bob sent 2; carol sent 5,8,11.
call imkit_room_list bob '{"limit":10}'
check "bob: g1 unread = 12 - 2 (his own send marked 2 read)" "$(py -c '
import json,sys; d=json.loads(sys.argv[1]); print([r["unread"] for r in d["rooms"] if r["id"]=="g1"][0])' "$BODY")" 10
call imkit_room_list carol '{"limit":10}'
check "carol: g1 unread = 12 - 11" "$(py -c '
import json,sys; d=json.loads(sys.argv[1]); print([r["unread"] for r in d["rooms"] if r["id"]=="g1"][0])' "$BODY")" 1
call imkit_room_list alice '{"limit":10}'
check "alice sent the last one: 0 unread" "$(py -c '
import json,sys; d=json.loads(sys.argv[1]); print([r["unread"] for r in d["rooms"] if r["id"]=="g1"][0])' "$BODY")" 0

call imkit_room_read bob '{"room":"g1","seq":5}'
expect ok "bob reads up to 5"
check "answer" "$BODY" '{"room":"g1","seq":5,"unread":7}'
check "read event on the room channel" "$NEV|${EVCH[0]:-}" "1|${PFX}ch:r:{g1}"
check "read event frame" "${EVFR[0]:-}" '{"ev":"read","data":{"room":"g1","client":"bob","seq":5}}'
call imkit_room_read bob '{"room":"g1","seq":3}'
check "the mark never moves back" "$BODY|$NEV" '{"room":"g1","seq":5,"unread":7}|0'
call imkit_room_read bob '{"room":"g1","seq":5}'
check "same mark: no event" "$NEV" 0
call imkit_room_read bob '{"room":"g1","seq":1000}'
check "clamped to last_seq" "$BODY|$NEV" '{"room":"g1","seq":12,"unread":0}|1'
check "stored mark" "$(rc HGET "${PFX}r:{g1}:read" bob)" 12
call imkit_room_read dave '{"room":"g1","seq":1}'
expect forbidden "a non-member reads"
call imkit_room_read bob '{"room":"nope","seq":1}'
expect not_found "read of a missing room"
call imkit_room_read '' '{"room":"g1","seq":1}'
expect bad_request "read without a client"

#######################################################################################
section "msg_history"
call imkit_msg_history bob '{"room":"g1","limit":3}'
expect ok "newest 3"
check "seqs ascending" "$(seqs messages)" "10 11 12"
check "has_more (older exist)" "$(j has_more)" true
call imkit_msg_history bob '{"room":"g1","limit":12}'
check "all 12" "$(seqs messages)|$(j has_more)" "$(seq -s ' ' 1 12)|false"
call imkit_msg_history bob '{"room":"g1","limit":100}'
check "limit above the count" "$(j 'len(messages)')|$(j has_more)" "12|false"
call imkit_msg_history bob '{"room":"g1","before":4,"limit":5}'
check "before 4, limit 5" "$(seqs messages)|$(j has_more)" "1 2 3|false"
call imkit_msg_history bob '{"room":"g1","before":4,"limit":2}'
check "before 4, limit 2" "$(seqs messages)|$(j has_more)" "2 3|true"
call imkit_msg_history bob '{"room":"g1","before":4,"limit":3}'
check "before 4, limit 3: exactly the rest" "$(seqs messages)|$(j has_more)" "1 2 3|false"
call imkit_msg_history bob '{"room":"g1","before":1,"limit":3}'
check "before 1: nothing" "$BODY" '{"messages":[],"has_more":false}'
call imkit_msg_history bob '{"room":"g1","after":9,"limit":5}'
check "after 9" "$(seqs messages)|$(j has_more)" "10 11 12|false"
call imkit_msg_history bob '{"room":"g1","after":0,"limit":2}'
check "after 0, limit 2" "$(seqs messages)|$(j has_more)" "1 2|true"
call imkit_msg_history bob '{"room":"g1","after":10,"limit":2}'
check "after 10, limit 2: exactly the rest" "$(seqs messages)|$(j has_more)" "11 12|false"
call imkit_msg_history bob '{"room":"g1","after":12,"limit":2}'
check "after the last" "$BODY" '{"messages":[],"has_more":false}'
# Page backwards through everything with before = oldest seq of the previous page.
all=''
call imkit_msg_history bob '{"room":"g1","limit":5}'
pages=1
while :; do
  all="$(seqs messages) $all"
  [ "$(j has_more)" = true ] || break
  oldest=$(j messages.0.seq)
  call imkit_msg_history bob "{\"room\":\"g1\",\"before\":$oldest,\"limit\":5}"
  pages=$((pages + 1))
done
check "paging back returns 1..12 once" "$(echo $all)|$pages" "$(seq -s ' ' 1 12)|3"
call imkit_msg_history bob '{"room":"g1","before":5,"after":2,"limit":5}'
expect bad_request "before and after"
call imkit_msg_history dave '{"room":"g1","limit":5}'
expect forbidden "a non-member"
call imkit_msg_history dave '{"room":"nope","limit":5}'
expect not_found "a missing room"
call imkit_msg_history '' '{"room":"g1","limit":1}'
check "admin reads any room" "$ST|$(seqs messages)" "ok|12"
call imkit_msg_history alice '{"room":"d-ab","limit":5}'
check "empty room" "$BODY" '{"messages":[],"has_more":false}'
call imkit_msg_history bob '{"room":"g1","limit":1,"before":3}'
check "message object" "$(j messages.0)" \
  '{"room":"g1","seq":2,"ts":'"$(rc HGET "${PFX}r:{g1}:cid" 'bob|a1' | cut -d'|' -f2)"',"from":"bob","type":"image","payload":{"url":"u","w":12345678901234567890},"cid":"a1","reply_to":1,"mentions":["alice","carol"]}'

#######################################################################################
section "room_list"
# lena is in 8 rooms; their activity stamps are set by hand to get ties.
for r in L1 L2 L3 L4 L5 t-1 tA t_1; do
  call imkit_room_create '' "{\"type\":\"group\",\"id\":\"$r\",\"members\":[\"lena\",\"poster\"]}"
  [ "$ST" = ok ] || bad "create $r" "$ST $BODY"
done
for kv in L1:1000 L2:3000 L3:2000 L4:3000 L5:2000 t-1:2500 tA:2500 t_1:2500; do
  rc HSET "${PFX}r:{${kv%%:*}}" last_ts "${kv#*:}" >/dev/null
done
# expected: ts desc, then room id in byte order ('-' < 'A' < '_')
EXPECT="L2 L4 t-1 tA t_1 L3 L5 L1"
call imkit_room_list lena '{"limit":100}'
expect ok "one page"
check "order by activity, ties by id bytes" "$(ids rooms)" "$EXPECT"
check "next null on the last page" "$(j next)" null
check "unread_total 0" "$(j unread_total)" 0
check "summary fields" "$(py -c '
import json,sys; r=json.loads(sys.argv[1])["rooms"][0]; print(",".join(r.keys()))' "$BODY")" \
  "id,type,name,cover,meta,owner,members_count,created_at,updated_at,last_seq,last_message,unread"

got=''
cursor=''
pages=0
while :; do
  if [ -z "$cursor" ]; then
    call imkit_room_list lena '{"limit":3}'
  else
    call imkit_room_list lena "{\"limit\":3,\"before\":\"$cursor\"}"
  fi
  pages=$((pages + 1))
  got="$got $(ids rooms)"
  cursor=$(j next)
  [ "$cursor" = null ] && break
  [ $pages -gt 10 ] && break
done
check "paging by 3: every room once, in order" "$(echo $got)|$pages" "$EXPECT|3"
call imkit_room_list lena '{"limit":2}'
check "first page next cursor" "$(ids rooms)|$(j next)" "L2 L4|3000:L4"
call imkit_room_list lena '{"limit":2,"before":"2500:tA"}'
check "a page after a tie" "$(ids rooms)|$(j next)" "t_1 L3|2000:L3"
call imkit_room_list lena '{"limit":8}'
check "exact fit: next null" "$(j 'len(rooms)')|$(j next)" "8|null"
call imkit_room_list lena '{"limit":5,"before":"1000:L1"}'
check "after the last room: empty" "$BODY" '{"rooms":[],"next":null,"unread_total":0}'
call imkit_room_list lena '{"limit":2,"before":"2500:t-0"}'
check "a cursor of a room that moved still pages on" "$(ids rooms)" "t-1 tA"
for c in 'garbage' ':L1' '12:' 'x:L1'; do
  call imkit_room_list lena "{\"limit\":2,\"before\":\"$c\"}"
  check "bad cursor '$c'" "$ST|$BODY" "bad_request|before: bad cursor"
done
call imkit_room_list '' '{"limit":2}'
expect bad_request "room_list without a client"

# Activity: poster writes in L1 (2) and L3 (1): they come first, newest first.
call imkit_msg_send poster '{"room":"L1","cid":"p1","type":"text","text":"1"}'
call imkit_msg_send poster '{"room":"L1","cid":"p2","type":"text","text":"2"}'
L1TS=$(j ts)
sleep 0.01 # so L3's activity is a later millisecond than L1's
call imkit_msg_send poster '{"room":"L3","cid":"p3","type":"text","text":"3"}'
L3TS=$(j ts)
call imkit_room_list lena '{"limit":2}'
check "recent activity first" "$(ids rooms)" "L3 L1"
check "unread_total over all rooms" "$(j unread_total)" 3
check "unread of each" "$(j rooms.0.unread)|$(j rooms.1.unread)" "1|2"
check "last_message" "$(j rooms.0.last_message.seq)|$(j rooms.0.last_message.text)|$(j rooms.0.last_message.from)" "1|3|poster"
check "next cursor" "$(j next)" "$L1TS:L1"
call imkit_room_list lena '{"limit":1,"before":"'"$L3TS"':L3"}'
check "unread_total does not depend on the page" "$(ids rooms)|$(j unread_total)" "L1|3"
call imkit_room_read lena '{"room":"L1","seq":2}'
call imkit_room_list lena '{"limit":1}'
check "after reading L1" "$(j unread_total)" 1
call imkit_room_list poster '{"limit":1}'
check "own messages are not unread" "$(j unread_total)" 0

call imkit_room_list nobody '{"limit":5}'
check "a client with no rooms" "$BODY" '{"rooms":[],"next":null,"unread_total":0}'

call imkit_room_list alice '{"limit":10}'
check "direct summary in a list carries the peer" "$(py -c '
import json,sys; d=json.loads(sys.argv[1]); print([r["peer"]["id"] for r in d["rooms"] if r["id"]=="d-ab"][0])' "$BODY")" bob

#######################################################################################
section "prefix"
call imkit_auth '' '{"sub":"zed"}'
PFX0=$PFX
PFX='other:'
call imkit_client_get '' '{"ids":["zed"]}'
check "keys follow the prefix" "$BODY" '{"clients":[]}'
PFX=$PFX0

#######################################################################################
echo
echo "passed: $PASS  failed: $FAIL"
[ "$FAIL" -eq 0 ]
