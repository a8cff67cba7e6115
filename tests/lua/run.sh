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
PSUB=''
cleanup() {
  [ -n "$PSUB" ] && kill "$PSUB" 2>/dev/null
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

# Functions that gateways call directly publish their events themselves (SELF_PUBLISH in
# the library): a background subscriber records what goes out on presence channels.
rc --raw PSUBSCRIBE "${PFX}ch:p:*" >"$TMP/psub" 2>/dev/null &
PSUB=$!
for _ in $(seq 1 50); do
  [ "$(wc -l <"$TMP/psub")" -ge 3 ] && break
  sleep 0.1
done
PSEEN=3 # lines of $TMP/psub already read (the subscription confirmation)
MARK=0

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
  case $1 in
  imkit_client_get | imkit_room_get | imkit_room_list | imkit_msg_history | imkit_sync | \
    imkit_presence_get | imkit_events_get | imkit_auth_check | imkit_room_index | imkit_room_row | \
    imkit_client_card)
    return 0 ;;
  esac
  return 1
}

self_publishing() {
  case $1 in imkit_presence_set | imkit_gateway_gone | imkit_presence_drop) return 0 ;; esac
  return 1
}

# published: the messages published on presence channels since the last time, into
# NEV, EVCH, EVFR. A marker published afterwards bounds them (Redis keeps the order).
published() {
  MARK=$((MARK + 1))
  rc PUBLISH "${PFX}ch:p:{~mark}" "mark-$MARK" >/dev/null
  local i
  for i in $(seq 1 100); do
    grep -qx "mark-$MARK" "$TMP/psub" && break
    sleep 0.02
  done
  mapfile -t PUBL < <(tail -n +$((PSEEN + 1)) "$TMP/psub")
  PSEEN=$((PSEEN + ${#PUBL[@]}))
  EVCH=()
  EVFR=()
  for ((i = 0; i + 3 < ${#PUBL[@]}; i += 4)); do
    [ "${PUBL[i + 2]}" = "${PFX}ch:p:{~mark}" ] && continue
    EVCH+=("${PUBL[i + 2]}")
    EVFR+=("${PUBL[i + 3]}")
  done
  NEV=${#EVCH[@]}
}

# call FN FROM JSON [JOB [EVENTS]]: runs the function; sets ST (status), BODY (answer or
# message), NEV (number of events), EVCH[i] and EVFR[i] (channel and frame of event i, from
# 0); for a self-publishing function, the events it published, and RNEV the events in its
# reply. JOB and EVENTS, when given, follow the args as a worker passes them (the job id,
# the events flag). The reply's strings are split on \x1e (redis-cli -d), not on lines: a
# frame published with a skip prefix holds a newline.
call() {
  local fn=$1 from=$2 args=$3 cmd=FCALL out
  is_query "$fn" && cmd=FCALL_RO
  if [ $# -gt 3 ]; then # arguments after the packed args: a command line on stdin
    py "$HERE/mp.py" line "$cmd" "$fn" "$PFX" "$from" "$args" "${@:4}" >"$TMP/line" ||
      { bad "$fn" "cannot pack $args"; return; }
    out=$(rc -d $'\x1e' <"$TMP/line")
  else
    py "$HERE/mp.py" pack "$args" >"$TMP/args" || { bad "$fn" "cannot pack $args"; return; }
    out=$(rc -d $'\x1e' -x "$cmd" "$fn" 0 "$PFX" "$from" <"$TMP/args")
  fi
  mapfile -t -d $'\x1e' LINES < <(printf '%s' "$out")
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
  RNEV=$NEV
  if self_publishing "$fn"; then published; fi
}

# j PATH: value at PATH in BODY (see mp.py get). jf FRAME PATH: same in an event frame
# (a skip prefix "!skip …\n" is dropped first).
j() { py "$HERE/mp.py" get "$BODY" "$1"; }
jf() { py "$HERE/mp.py" get "${1#*$'\n'}" "$2"; }
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

# evs: the last call's events as "<channel> <ev>", joined by "; " (skip prefix dropped).
evs() {
  local i f out=''
  for ((i = 0; i < NEV; i++)); do
    f=${EVFR[i]#*$'\n'}
    [[ $f =~ ^\{\"ev\":\"([^\"]+)\" ]] && f=${BASH_REMATCH[1]}
    out="$out${out:+; }${EVCH[i]} $f"
  done
  printf '%s' "$out"
}

# evdata I: the "data" of event I as compact JSON.
evdata() { jf "${EVFR[$1]:-}" data; }

# outbox_read: the entries added to the outbox stream (<prefix>events) since the last
# time, into NOB, OBID[i], OBTYPE[i], OBTS[i], OBDATA[i] (data as stored, byte for byte).
OBLAST='0-0'
outbox_read() {
  local out i k
  out=$(rc -d $'\x1e' XRANGE "${PFX}events" "($OBLAST" +)
  mapfile -t -d $'\x1e' OBL < <(printf '%s' "$out")
  OBID=()
  OBTYPE=()
  OBTS=()
  OBDATA=()
  for ((i = 0; i + 6 < ${#OBL[@]}; i += 7)); do # id, then the fields type, ts, data
    OBID+=("${OBL[i]}")
    for ((k = i + 1; k < i + 7; k += 2)); do
      case ${OBL[k]} in
      type) OBTYPE+=("${OBL[k + 1]}") ;;
      ts) OBTS+=("${OBL[k + 1]}") ;;
      data) OBDATA+=("${OBL[k + 1]}") ;;
      esac
    done
  done
  NOB=${#OBID[@]}
  if [ "$NOB" -gt 0 ]; then OBLAST=${OBID[NOB - 1]}; fi
}

# bulk_send ROOM FROM N TAG: N text messages "TAG-i" (cid TAG-i) in one redis-cli --pipe.
bulk_send() {
  py -B -c '
import sys
sys.path.insert(0, sys.argv[1])
import mp
pfx, room, frm, n, tag = sys.argv[2:7]
out = sys.stdout.buffer
for i in range(1, int(n) + 1):
    parts = []
    mp.pack({"room": room, "cid": "%s-%d" % (tag, i), "type": "text", "text": "%s-%d" % (tag, i)}, parts)
    args = [b"FCALL", b"imkit_msg_send", b"0", pfx.encode(), frm.encode(), b"".join(parts)]
    out.write(b"*%d\r\n" % len(args))
    for a in args:
        out.write(b"$%d\r\n%s\r\n" % (len(a), a))
' "$HERE" "$PFX" "$@" >"$TMP/pipe"
  rc --pipe <"$TMP/pipe" >/dev/null
}

#######################################################################################
section "load"
out=$(rc -x FUNCTION LOAD REPLACE <"$LIB")
check "FUNCTION LOAD" "$out" "imkit"
out=$(rc -x FUNCTION LOAD REPLACE <"$LIB")
check "FUNCTION LOAD REPLACE twice" "$out" "imkit"
nfun=$(rc FUNCTION LIST LIBRARYNAME imkit | grep -c '^imkit_')
check "37 functions registered" "$nfun" 37
for f in imkit_client_get imkit_client_card imkit_room_get imkit_room_list imkit_room_index imkit_room_row imkit_msg_history imkit_sync imkit_presence_get \
  imkit_events_get imkit_auth_check; do
  flags=$(rc FUNCTION LIST LIBRARYNAME imkit | grep -A4 "^$f\$" | sed -n 5p)
  check "$f is no-writes" "$flags" "no-writes"
done
for f in imkit_me_update imkit_room_update imkit_members_add imkit_members_remove imkit_room_leave \
  imkit_room_delete imkit_msg_edit imkit_msg_recall imkit_msg_react imkit_client_delete \
  imkit_tokens_revoke imkit_presence_set imkit_gateway_gone; do
  flags=$(rc FUNCTION LIST LIBRARYNAME imkit | grep -A4 "^$f\$" | sed -n 5p)
  check "$f is a write function" "$flags" ""
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

call imkit_auth '' '{}'
expect bad_request "auth without sub"
check "message" "$BODY" "sub: required"

# auth_check: the read-only auth of a returning client whose token changes nothing.
call imkit_auth_check '' '{"sub":"alice"}'
expect ok "auth_check of an existing client"
check "the same client object as auth" "$BODY" '{"id":"alice","name":"Alice","avatar":"https://a/alice.png","meta":null}'
call imkit_auth_check '' '{"sub":"alice","name":"Alice","avatar":"https://a/alice.png"}'
expect ok "auth_check with the stored name and avatar"
call imkit_auth_check '' '{"sub":"alice","name":"Alicia"}'
expect write_needed "auth_check with a new name"
check "auth_check wrote nothing" "$(rc HGET "${PFX}u:{alice}" name)" Alice
call imkit_auth_check '' '{"sub":"alice","avatar":"https://a/other.png"}'
expect write_needed "auth_check with a new avatar"
call imkit_auth_check '' '{"sub":"newcomer"}'
expect write_needed "auth_check of a client without a profile"
check "auth_check created no profile" "$(rc EXISTS "${PFX}u:{newcomer}")" 0
call imkit_auth_check '' '{}'
expect bad_request "auth_check without sub"

# A TTL longer than the whole suite: a key expiring midway would break its DBSIZE checks.
T0=$(($(now_ms) / 1000))
call imkit_token_create '' "{\"id\":\"carol\",\"hash\":\"h-carol-1\",\"ttl\":600,\"iat\":$T0}"
expect ok "token_create"
exp=$(j expires_at)
now=$(now_ms)
if [ "$exp" -ge $((now + 595000)) ] && [ "$exp" -le $((now + 601000)) ]; then
  ok "expires_at is now + ttl"
else
  bad "expires_at is now + ttl" "got $exp, now $now"
fi
check "token stored as 'id iat'" "$(rc GET "${PFX}tok:h-carol-1")" "carol $T0"
ttl=$(rc TTL "${PFX}tok:h-carol-1")
check_match "token has a TTL" "$ttl" '^(59[0-9]|600)$'
check "token_create creates the profile (name = id)" "$(rc HGET "${PFX}u:{carol}" name)" carol

call imkit_token_create bob '{"id":"carol","hash":"h-x","ttl":60,"iat":1}'
expect forbidden "a client cannot get another's token"

# The gateway reads an opaque token's key and authenticates its client with the token's iat.
call imkit_auth '' "{\"sub\":\"carol\",\"iat\":$T0,\"name\":\"Carol\"}"
expect ok "auth of a token's client"
check "it updates the name" "$(j name)" Carol

rc HSET "${PFX}u:{carol}" tokens_valid_after "$T0" >/dev/null
call imkit_auth '' "{\"sub\":\"carol\",\"iat\":$T0}"
expect unauthenticated "token issued in the revocation second"
check "message" "$BODY" "token revoked"
call imkit_auth '' '{"sub":"carol"}'
expect unauthenticated "JWT without iat after a revocation"
call imkit_auth_check '' "{\"sub\":\"carol\",\"iat\":$T0}"
expect unauthenticated "auth_check: token issued at the revocation second"
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

# On a cluster the peer's profile is read in the peer's slot: room_row names the peer in its
# header and leaves it out of the summary, the gateway adds imkit_client_card's object, and
# room.joined goes out from imkit_peer_joined.
call imkit_room_row alice '{"room":"d-ab"}'
check "room_row of a direct room: the peer in the header" "$(head -1 <<<"$BODY" | cut -d' ' -f4-)" "-1 0 bob"
check "and no peer in the summary" "$(tail -n +2 <<<"$BODY" | py -c 'import json,sys; s=json.load(sys.stdin); print(s["id"], "peer" in s)')" "d-ab False"
call imkit_room_row alice '{"room":"g-nosuch"}'
expect not_found "room_row of no room"
call imkit_client_card '' '{"id":"bob"}'
check "client_card: the client object" "$BODY" '{"id":"bob","name":"Bob","avatar":null,"meta":null}'
call imkit_client_card '' '{"id":"never-seen"}'
check "client_card of a client without profile: named by its id" "$BODY" '{"id":"never-seen","name":"never-seen","avatar":null,"meta":null}'
call imkit_client_card '' '{}'
expect bad_request "client_card without id"
call imkit_peer_joined '' '{"to":"alice","peer":"bob","summary":"{\"id\":\"d-ab\",\"unread\":0}"}'
expect ok "peer_joined"
check "it sends room.joined to the client, with the peer's profile last" "$NEV|${EVCH[0]:-}|${EVFR[0]:-}" \
  "1|${PFX}ch:u:{alice}|{\"ev\":\"room.joined\",\"data\":{\"id\":\"d-ab\",\"unread\":0,\"peer\":{\"id\":\"bob\",\"name\":\"Bob\",\"avatar\":null,\"meta\":null}}}"

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

# A cluster's room list, assembled by the gateway: the index, then one row per room.
call imkit_room_index lena '{}'
check "room_index: every room of the index" "$(py -c '
import json,sys; print(" ".join(sorted(json.loads(sys.argv[1])["rooms"])))' "$BODY")" "L1 L2 L3 L4 L5 t-1 tA t_1"
call imkit_room_index '' '{}'
expect bad_request "room_index without a client"
call imkit_room_row lena '{"room":"L2"}'
expect ok "room_row"
check "room_row: ts, unread, the summary's length, no messages; then the summary" \
  "$(head -1 <<<"$BODY")|$(tail -n +2 <<<"$BODY" | py -c 'import json,sys; print(json.load(sys.stdin)["id"])')" \
  "3000 0 $(($(tail -n +2 <<<"$BODY" | wc -c) - 1)) -1 0 |L2"
call imkit_room_row lena '{"room":"nosuch"}'
check "room_row of a dangling entry" "$ST" not_found

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
section "me_update"
call imkit_me_update mu '{"name":"Mu","avatar":"https://a/mu.png","meta":"{\"k\":12345678901234567890}"}'
expect ok "me_update creates and sets the caller's profile"
check "client object" "$BODY" '{"id":"mu","name":"Mu","avatar":"https://a/mu.png","meta":{"k":12345678901234567890}}'
check "no event" "$NEV" 0
call imkit_me_update mu '{"name":"Mu 2"}'
check "changes only the named fields" "$(j name)|$(j avatar)|$(j meta.k)" "Mu 2|https://a/mu.png|12345678901234567890"
call imkit_me_update mu '{"clear":["avatar","meta","name"]}'
check "clear: null fields, name back to the id" "$BODY" '{"id":"mu","name":"mu","avatar":null,"meta":null}'
check "fields removed" "$(rc HEXISTS "${PFX}u:{mu}" avatar)|$(rc HEXISTS "${PFX}u:{mu}" meta)" "0|0"
call imkit_me_update mu '{"id":"bob","name":"x"}'
check "an id argument is ignored: acts on the caller" "$ST|$(j id)|$(rc HGET "${PFX}u:{bob}" name)" "ok|mu|Bob"
call imkit_me_update mu '{"clear":["created_at"]}'
expect bad_request "clear of an unknown field"
call imkit_me_update '' '{"name":"x"}'
expect bad_request "me_update without a client"

#######################################################################################
section "room_update"
call imkit_room_create uo '{"type":"group","id":"u1","members":["ua","ub"],"name":"U","cover":"https://c/1","meta":"{\"a\":1}"}'
U1C=$(j created_at)
call imkit_room_update uo '{"room":"u1","name":"U one","meta":"{\"big\":98765432109876543210}"}'
expect ok "the owner updates u1"
check "room fields" "$(j id)|$(j name)|$(j cover)|$(j owner)|$(j members_count)" "u1|U one|https://c/1|uo|3"
check "meta verbatim" "$(py -c 'import sys; print("98765432109876543210" in sys.argv[1])' "$BODY")" True
U1U=$(j updated_at)
[ "$U1U" -ge "$U1C" ] && ok "updated_at >= created_at" || bad "updated_at" "$U1U < $U1C"
check "updated_at stored" "$(rc HGET "${PFX}r:{u1}" updated_at)" "$U1U"
check "one room.updated on the room channel" "$(evs)" "${PFX}ch:r:{u1} room.updated"
check "event data = answer" "$(evdata 0)" "$BODY"
call imkit_room_update uo '{"room":"u1","clear":["cover","meta"]}'
check "clear cover and meta" "$(j cover)|$(j meta)|$(j name)" "null|null|U one"
check "fields removed" "$(rc HEXISTS "${PFX}r:{u1}" cover)|$(rc HEXISTS "${PFX}r:{u1}" meta)" "0|0"
call imkit_room_update uo '{"room":"u1","clear":["name"]}'
check "clear name: null" "$(j name)" null
DB0=$(rc DBSIZE)
UPD0=$(rc HGET "${PFX}r:{u1}" updated_at)
call imkit_room_update ua '{"room":"u1","name":"mine"}'
expect forbidden "a member who is not the owner"
check "message" "$BODY" "only the owner may update room u1"
call imkit_room_update zz '{"room":"u1","name":"x"}'
check "a non-member" "$ST|$BODY" "forbidden|not a member of room u1"
call imkit_room_update uo '{"room":"nope","name":"x"}'
check "a missing room" "$ST|$BODY" "not_found|room nope not found"
call imkit_room_update uo '{"room":"u1","clear":["owner"]}'
check "clear of an unknown field" "$ST|$BODY" "bad_request|clear: unknown field owner"
check "refusals wrote nothing, sent nothing" "$(rc DBSIZE)|$(rc HGET "${PFX}r:{u1}" updated_at)|$NEV" "$DB0|$UPD0|0"
call imkit_room_update '' '{"room":"u1","name":"by admin"}'
check "the admin updates any room" "$ST|$(j name)|$(evs)" "ok|by admin|${PFX}ch:r:{u1} room.updated"
call imkit_room_create ua '{"type":"direct","members":["ub"],"new_id":"d-uab"}'
call imkit_room_update ub '{"room":"d-uab","name":"our chat"}'
check "either member updates a direct room" "$ST|$(j name)|$(j owner)|$(evs)" "ok|our chat|null|${PFX}ch:r:{d-uab} room.updated"

#######################################################################################
section "members_add"
call imkit_room_create o2 '{"type":"group","id":"g2","members":["m1"]}'
call imkit_msg_send o2 '{"room":"g2","cid":"x1","type":"text","text":"one"}'
call imkit_msg_send m1 '{"room":"g2","cid":"x2","type":"text","text":"two"}'
call imkit_msg_send o2 '{"room":"g2","cid":"x3","type":"text","text":"three"}'
call imkit_members_add m1 '{"room":"g2","members":["n1","n2","m1","n1"],"max_members":10000}'
expect ok "any member adds"
check "answer: the room" "$(j id)|$(j members_count)|$(j owner)|$(j last_seq)" "g2|4|o2|3"
check "events: room.joined to each new member, then member.joined to the room" "$(evs)" \
  "${PFX}ch:u:{n1} room.joined; ${PFX}ch:u:{n2} room.joined; ${PFX}ch:r:{g2} member.joined"
check "member.joined frame skips the new members" "${EVFR[2]:-}" \
  $'!skip n1,n2\n{"ev":"member.joined","data":{"room":"g2","members":["n1","n2"]}}'
check "room.joined summary: all read, last message, count" \
  "$(jf "${EVFR[0]:-}" data.id)|$(jf "${EVFR[0]:-}" data.unread)|$(jf "${EVFR[0]:-}" data.last_message.seq)|$(jf "${EVFR[0]:-}" data.members_count)|$(jf "${EVFR[0]:-}" data.peer)" \
  "g2|0|3|4|<missing>"
check "read mark at join = last_seq" "$(rc HGET "${PFX}r:{g2}:read" n1)|$(rc HGET "${PFX}r:{g2}:read" n2)" "3|3"
N1J=$(rc HGET "${PFX}r:{g2}:m" n1)
check_match "role member, joined_at" "$N1J" '^member\|[0-9]{13}$'
check "rooms index score = joined_at" "$(rc ZSCORE "${PFX}u:{n1}:rooms" g2)" "${N1J#member|}"
check "a never-seen member gets a profile" "$(rc HGET "${PFX}u:{n2}" name)" n2
check "members_count stored" "$(rc HGET "${PFX}r:{g2}" members_count)" 4
call imkit_room_list n1 '{"limit":5}'
check "the new member has nothing unread" "$(ids rooms)|$(j unread_total)" "g2|0"
call imkit_msg_send o2 '{"room":"g2","cid":"x4","type":"text","text":"four"}'
call imkit_room_list n1 '{"limit":5}'
check "a message after joining is unread" "$(j unread_total)" 1

call imkit_members_add m1 '{"room":"g2","members":["n1","n2"]}'
check "a retry: the room, no event" "$ST|$(j members_count)|$NEV" "ok|4|0"
check "joined_at unchanged" "$(rc HGET "${PFX}r:{g2}:m" n1)" "$N1J"

DB0=$(rc DBSIZE)
call imkit_members_add m1 '{"room":"g2","members":["p1","p2","p3"],"max_members":6}'
check "over max_members" "$ST|$BODY" "too_large|members: a group room holds at most 6 members"
call imkit_members_add zz '{"room":"g2","members":["p1"]}'
check "a non-member adds" "$ST|$BODY" "forbidden|not a member of room g2"
call imkit_members_add m1 '{"room":"nope","members":["p1"]}'
expect not_found "add to a missing room"
call imkit_members_add ua '{"room":"d-uab","members":["p1"]}'
check "add to a direct room" "$ST|$BODY" "bad_request|room: a direct room's members cannot change"
check "refusals wrote nothing, sent nothing" "$(rc DBSIZE)|$(rc HGET "${PFX}r:{g2}" members_count)|$NEV" "$DB0|4|0"
call imkit_members_add m1 '{"room":"g2","members":["p1","p2"],"max_members":6}'
check "exactly max_members is accepted" "$ST|$(j members_count)" "ok|6"
call imkit_members_add '' '{"room":"g2","members":["p3"]}'
check "the admin adds" "$ST|$(j members_count)|$(evs)" "ok|7|${PFX}ch:u:{p3} room.joined; ${PFX}ch:r:{g2} member.joined"
check "the admin's member.joined skips p3" "${EVFR[1]:-}" $'!skip p3\n{"ev":"member.joined","data":{"room":"g2","members":["p3"]}}'
check "p3's read mark = 4" "$(rc HGET "${PFX}r:{g2}:read" p3)" 4

# Without max_members the limit is 10 000: gm holds 9 999 (all but one written by hand).
call imkit_room_create gm0 '{"type":"group","id":"gm","members":[]}'
rc HSET "${PFX}r:{gm}:m" $(for i in $(seq 1 9998); do printf 'fake%d member|1 ' "$i"; done) >/dev/null
call imkit_members_add gm0 '{"room":"gm","members":["gm1","gm2"]}'
check "10 001 members" "$ST|$BODY" "too_large|members: a group room holds at most 10000 members"
call imkit_members_add gm0 '{"room":"gm","members":["gm1"]}'
check "10 000 members" "$ST|$(j members_count)" "ok|10000"

#######################################################################################
section "members_remove"
# g2: o2 (owner), m1, n1, n2, p1, p2, p3
DB0=$(rc DBSIZE)
call imkit_members_remove m1 '{"room":"g2","members":["n1"]}'
check "a member who is not the owner" "$ST|$BODY" "forbidden|only the owner may remove members of room g2"
call imkit_members_remove zz '{"room":"g2","members":["n1"]}'
expect forbidden "a non-member"
call imkit_members_remove o2 '{"room":"nope","members":["n1"]}'
expect not_found "a missing room"
call imkit_members_remove o2 '{"room":"g2","members":["n1","o2"]}'
check "the owner removing itself" "$ST|$BODY" "bad_request|members: the owner leaves with room.leave"
call imkit_members_remove ua '{"room":"d-uab","members":["ub"]}'
check "a direct room" "$ST|$BODY" "bad_request|room: a direct room's members cannot change"
check "refusals wrote nothing, sent nothing" "$(rc DBSIZE)|$(rc HLEN "${PFX}r:{g2}:m")|$NEV" "$DB0|7|0"

call imkit_members_remove o2 '{"room":"g2","members":["n1","stranger"]}'
expect ok "the owner removes n1 (and a non-member, ignored)"
check "answer: the room" "$(j id)|$(j members_count)|$(j owner)" "g2|6|o2"
check "events: room.left to n1, then member.left to the room" "$(evs)" \
  "${PFX}ch:u:{n1} room.left; ${PFX}ch:r:{g2} member.left"
check "room.left frame" "${EVFR[0]:-}" '{"ev":"room.left","data":{"room":"g2"}}'
check "member.left frame, skipping the removed member" "${EVFR[1]:-}" $'!skip n1\n{"ev":"member.left","data":{"room":"g2","member":"n1"}}'
check "membership, read mark, index gone" \
  "$(rc HEXISTS "${PFX}r:{g2}:m" n1)|$(rc HEXISTS "${PFX}r:{g2}:read" n1)|$(rc ZSCORE "${PFX}u:{n1}:rooms" g2)" "0|0|"
check "members_count stored" "$(rc HGET "${PFX}r:{g2}" members_count)" 6
call imkit_room_get n1 '{"room":"g2"}'
expect forbidden "the removed member reads the room"
call imkit_members_remove o2 '{"room":"g2","members":["n1"]}'
check "removing again: the room, no event" "$ST|$(j members_count)|$NEV" "ok|6|0"
call imkit_members_remove o2 '{"room":"g2","members":["n2","p1"]}'
check "two at once: each one's room.left then member.left" "$(evs)" \
  "${PFX}ch:u:{n2} room.left; ${PFX}ch:r:{g2} member.left; ${PFX}ch:u:{p1} room.left; ${PFX}ch:r:{g2} member.left"
check "members named" "$(jf "${EVFR[1]:-}" data.member)|$(jf "${EVFR[3]:-}" data.member)|$(j members_count)" "n2|p1|4"
check "each member.left skips every member removed so far" "${EVFR[1]%%$'\n'*}|${EVFR[3]%%$'\n'*}" "!skip n2|!skip n2,p1"
call imkit_members_remove '' '{"room":"g2","members":["p2"]}'
check "the admin removes" "$ST|$(j members_count)|$(evs)" "ok|3|${PFX}ch:u:{p2} room.left; ${PFX}ch:r:{g2} member.left"
# The admin may remove the owner: the longest-standing member takes over (m1 joined
# at creation, p3 later).
call imkit_members_remove '' '{"room":"g2","members":["o2"]}'
check "the admin removes the owner: hand-over" "$ST|$(j owner)|$(j members_count)|$(evs)" \
  "ok|m1|2|${PFX}ch:u:{o2} room.left; ${PFX}ch:r:{g2} member.left; ${PFX}ch:r:{g2} room.updated"
check "room.updated names the new owner" "$(jf "${EVFR[2]:-}" data.owner)|$(jf "${EVFR[2]:-}" data.members_count)" "m1|2"
check "the room's events skip the removed owner" "${EVFR[1]%%$'\n'*}|${EVFR[2]%%$'\n'*}" "!skip o2|!skip o2"
check "m1's role" "$(rc HGET "${PFX}r:{g2}:m" m1 | cut -d'|' -f1)" owner
#######################################################################################
section "room_leave"
# g3: lz (owner), la, lB, lc, all joined at creation. Byte order of ids: lB < la < lc < lz
# (a locale order would put la before lB).
call imkit_room_create lz '{"type":"group","id":"g3","members":["la","lB","lc"]}'
call imkit_msg_send la '{"room":"g3","cid":"c1","type":"text","text":"hi"}'
call imkit_msg_react lB '{"room":"g3","seq":1,"emoji":"+1","on":true}'
call imkit_room_leave lc '{"room":"g3"}'
expect ok "a member leaves"
check "answer {}" "$BODY" '{}'
check "events: room.left to lc, member.left to the room" "$(evs)" \
  "${PFX}ch:u:{lc} room.left; ${PFX}ch:r:{g3} member.left"
check "frames (member.left skips the leaver)" "${EVFR[0]:-}|${EVFR[1]:-}" \
  $'{"ev":"room.left","data":{"room":"g3"}}|!skip lc\n{"ev":"member.left","data":{"room":"g3","member":"lc"}}'
check "lc is out" "$(rc HEXISTS "${PFX}r:{g3}:m" lc)|$(rc HEXISTS "${PFX}r:{g3}:read" lc)|$(rc ZSCORE "${PFX}u:{lc}:rooms" g3)|$(rc HGET "${PFX}r:{g3}" members_count)" "0|0||3"
call imkit_room_leave lc '{"room":"g3"}'
check "leaving again" "$ST|$BODY" "forbidden|not a member of room g3"
call imkit_room_leave lz '{"room":"nope"}'
expect not_found "leave a missing room"
call imkit_room_leave ua '{"room":"d-uab"}'
check "leave a direct room" "$ST|$BODY" "bad_request|room: a direct room cannot be left"
call imkit_room_leave '' '{"room":"g3"}'
expect bad_request "leave without a client"

LZJ=$(rc HGET "${PFX}r:{g3}:m" lB | cut -d'|' -f2)
call imkit_room_leave lz '{"room":"g3"}'
expect ok "the owner leaves"
check "events: room.left, member.left, room.updated" "$(evs)" \
  "${PFX}ch:u:{lz} room.left; ${PFX}ch:r:{g3} member.left; ${PFX}ch:r:{g3} room.updated"
check "owner: the longest-standing, ties by id bytes" "$(jf "${EVFR[2]:-}" data.owner)|$(jf "${EVFR[2]:-}" data.members_count)" "lB|2"
check "stored owner, role, joined_at kept" "$(rc HGET "${PFX}r:{g3}" owner)|$(rc HGET "${PFX}r:{g3}:m" lB)" "lB|owner|$LZJ"
check "room.updated carries the new updated_at" "$(jf "${EVFR[2]:-}" data.updated_at)" "$(rc HGET "${PFX}r:{g3}" updated_at)"
call imkit_room_get la '{"room":"g3"}'
check "room_get after hand-over" "$(j owner)|$(ids members)|$(j members.0.role)" "lB|lB la|owner"

# Joined later but with a smaller id: l0 must not win over la.
sleep 0.01
call imkit_members_add lB '{"room":"g3","members":["l0"]}'
call imkit_room_leave lB '{"room":"g3"}'
check "owner: smallest joined_at first" "$(jf "${EVFR[2]:-}" data.owner)" la
call imkit_room_leave la '{"room":"g3"}'
check "then l0" "$(jf "${EVFR[2]:-}" data.owner)|$(rc HGET "${PFX}r:{g3}" owner)" "l0|l0"
check "keys exist before the last leaves" "$(rc EXISTS "${PFX}r:{g3}" "${PFX}r:{g3}:m" "${PFX}r:{g3}:read" "${PFX}r:{g3}:log" "${PFX}r:{g3}:cid" "${PFX}r:{g3}:edit")" 6
call imkit_room_leave l0 '{"room":"g3"}'
expect ok "the last member leaves"
check "only room.left (nobody remains)" "$(evs)" "${PFX}ch:u:{l0} room.left"
check "the room is deleted, all its keys" "$(rc EXISTS "${PFX}r:{g3}" "${PFX}r:{g3}:m" "${PFX}r:{g3}:read" "${PFX}r:{g3}:log" "${PFX}r:{g3}:cid" "${PFX}r:{g3}:edit")" 0
check "and l0's index entry" "$(rc ZSCORE "${PFX}u:{l0}:rooms" g3)" ""
call imkit_room_get '' '{"room":"g3"}'
expect not_found "the deleted room"

#######################################################################################
section "room_delete"
call imkit_room_create d0 '{"type":"group","id":"g4","members":["d2","d1"]}'
call imkit_msg_send d1 '{"room":"g4","cid":"c1","type":"text","text":"x"}'
DB0=$(rc DBSIZE)
call imkit_room_delete d0 '{"room":"g4"}'
check "a client (even the owner)" "$ST|$BODY" "forbidden|only the admin API may delete a room"
call imkit_room_delete '' '{"room":"nope"}'
check "a missing room" "$ST|$BODY" "not_found|room nope not found"
check "refusals wrote nothing" "$(rc DBSIZE)" "$DB0"
call imkit_room_delete '' '{"room":"g4"}'
expect ok "the admin deletes g4"
check "answer {}" "$BODY" '{}'
check "room.left to every member (joined_at, then id)" "$(evs)" \
  "${PFX}ch:u:{d0} room.left; ${PFX}ch:u:{d1} room.left; ${PFX}ch:u:{d2} room.left"
check "frame" "${EVFR[1]:-}" '{"ev":"room.left","data":{"room":"g4"}}'
check "keys gone" "$(rc EXISTS "${PFX}r:{g4}" "${PFX}r:{g4}:m" "${PFX}r:{g4}:read" "${PFX}r:{g4}:log" "${PFX}r:{g4}:cid")" 0
check "members' indexes" "$(rc ZSCORE "${PFX}u:{d0}:rooms" g4)|$(rc ZSCORE "${PFX}u:{d2}:rooms" g4)" "|"
call imkit_room_delete '' '{"room":"g4"}'
expect not_found "deleting again"

call imkit_room_create d0 '{"type":"direct","members":["d1"],"new_id":"dd-1"}'
call imkit_room_delete '' '{"room":"dd-1"}'
check "a direct room" "$ST|$(evs)" "ok|${PFX}ch:u:{d0} room.left; ${PFX}ch:u:{d1} room.left"
check "its pair key is gone" "$(rc EXISTS "${PFX}direct:{d0|d1}")" 0
call imkit_room_create d1 '{"type":"direct","members":["d0"],"new_id":"dd-2"}'
check "the pair gets a new room" "$(j id)|$(j created)" "dd-2|true"
#######################################################################################
section "msg_edit"
# e1: eo (owner), es, ex. 1: es text, 2: es image, 3: eo text (the last).
call imkit_room_create eo '{"type":"group","id":"e1","members":["es","ex"]}'
call imkit_msg_send es '{"room":"e1","cid":"c1","type":"text","text":"v1","mentions":["ex"]}'
E1TS=$(j ts)
call imkit_msg_send es '{"room":"e1","cid":"c2","type":"image","payload":"{\"url\":\"u\",\"n\":12345678901234567890}","reply_to":1}'
E2TS=$(j ts)
call imkit_msg_send eo '{"room":"e1","cid":"c3","type":"text","text":"last"}'
LOG1=$(rc XRANGE "${PFX}r:{e1}:log" 1-1 1-1 | sed -n 3p)

call imkit_msg_edit es '{"room":"e1","seq":1,"text":"v2 \"q\" a/b é"}'
expect ok "the sender edits its text"
EDAT=$(j edited_at)
check "the message, edited: fields in order" "$BODY" \
  '{"room":"e1","seq":1,"ts":'"$E1TS"',"from":"es","type":"text","text":"v2 \"q\" a/b é","cid":"c1","mentions":["ex"],"edited_at":'"$EDAT"'}'
[ "$EDAT" -ge "$E1TS" ] && ok "edited_at >= ts" || bad "edited_at" "$EDAT < $E1TS"
check "message.edited on the room channel" "$(evs)" "${PFX}ch:r:{e1} message.edited"
check "event data = answer" "$(evdata 0)" "$BODY"
check "the log is untouched" "$(rc XRANGE "${PFX}r:{e1}:log" 1-1 1-1 | sed -n 3p)" "$LOG1"
check "the current version in the edit hash" "$(rc HGET "${PFX}r:{e1}:edit" 1)" "$BODY"
call imkit_msg_history eo '{"room":"e1","limit":10}'
check "history shows the edit" "$(j messages.0.text)|$(j messages.0.edited_at)|$(seqs messages)" "v2 \"q\" a/b é|$EDAT|1 2 3"
call imkit_msg_history eo '{"room":"e1","after":0,"limit":1}'
check "history after= too" "$(j messages.0.text)" "v2 \"q\" a/b é"

call imkit_msg_edit es '{"room":"e1","seq":2,"payload":"{\"url\":\"u2\",\"n\":98765432109876543210}"}'
expect ok "edit an image's payload"
check "payload verbatim, reply_to kept" "$(j payload)|$(j reply_to)|$(j type)|$(j text)" '{"url":"u2","n":98765432109876543210}|1|image|<missing>'
call imkit_msg_edit es '{"room":"e1","seq":2,"text":"a caption"}'
check "an image gains a text; payload kept" "$(py -c 'import json,sys; print(",".join(json.loads(sys.argv[1]).keys()))' "$BODY")|$(j payload.url)" \
  "room,seq,ts,from,type,text,payload,cid,reply_to,edited_at|u2"
check "big integer still exact" "$(py -c 'import sys; print("98765432109876543210" in sys.argv[1])' "$BODY")" True

DB0=$(rc DBSIZE)
EH0=$(rc HGETALL "${PFX}r:{e1}:edit" | md5sum)
call imkit_msg_edit ex '{"room":"e1","seq":1,"text":"hack"}'
check "another member" "$ST|$BODY" "forbidden|only the sender may edit message 1"
call imkit_msg_edit eo '{"room":"e1","seq":1,"text":"hack"}'
check "even the owner" "$ST" forbidden
call imkit_msg_edit zz '{"room":"e1","seq":1,"text":"x"}'
check "a non-member" "$ST|$BODY" "forbidden|not a member of room e1"
call imkit_msg_edit es '{"room":"nope","seq":1,"text":"x"}'
expect not_found "a missing room"
call imkit_msg_edit es '{"room":"e1","seq":99,"text":"x"}'
check "a missing seq" "$ST|$BODY" "not_found|message 99 not found in room e1"
call imkit_msg_edit es '{"room":"e1","seq":0,"text":"x"}'
expect not_found "seq 0"
call imkit_msg_edit es '{"room":"e1","seq":-3,"text":"x"}'
expect not_found "a negative seq"
call imkit_msg_edit es '{"room":"e1","seq":1}'
check "neither text nor payload" "$ST|$BODY" "bad_request|text, payload: give at least one"
call imkit_msg_edit es '{"room":"e1","seq":1,"payload":"{}"}'
check "a text message keeps a text" "$ST|$BODY" "bad_request|text: required (a text message keeps a text)"
check "refusals wrote nothing, sent nothing" "$(rc DBSIZE)|$(rc HGETALL "${PFX}r:{e1}:edit" | md5sum)|$NEV" "$DB0|$EH0|0"

call imkit_msg_edit '' '{"room":"e1","seq":1,"text":"by admin"}'
check "the admin edits" "$ST|$(j text)|$(j from)" "ok|by admin|es"

call imkit_msg_edit eo '{"room":"e1","seq":3,"text":"last, edited"}'
expect ok "edit the last message"
check "last_msg follows" "$(rc HGET "${PFX}r:{e1}" last_msg)" "$BODY"
call imkit_room_list ex '{"limit":1}'
check "room list last_message is the edit" "$(j rooms.0.id)|$(j rooms.0.last_message.text)|$(j rooms.0.last_message.edited_at)" "e1|last, edited|$(rc HGET "${PFX}r:{e1}:edit" 3 | py -c 'import json,sys; print(json.load(sys.stdin)["edited_at"])')"
call imkit_msg_edit eo '{"room":"e1","seq":3,"text":"last, edited"}'
check "an edit retried: same text" "$ST|$(j text)|$NEV" "ok|last, edited|1"

#######################################################################################
section "msg_react"
call imkit_msg_send es '{"room":"e1","cid":"c4","type":"image","payload":"{\"big\":12345678901234567890}"}'
call imkit_msg_react ex '{"room":"e1","seq":4,"emoji":"👍","on":true}'
expect ok "ex reacts"
check "answer" "$BODY" '{"room":"e1","seq":4,"reactions":{"👍":["ex"]}}'
check "message.reacted on the room channel" "$(evs)" "${PFX}ch:r:{e1} message.reacted"
check "event data = answer" "$(evdata 0)" "$BODY"
call imkit_msg_react es '{"room":"e1","seq":4,"emoji":"👍","on":true}'
call imkit_msg_react eo '{"room":"e1","seq":4,"emoji":"a\"/\\b","on":true}'
check "ids in reaction order, emoji in first-use order" "$BODY" \
  '{"room":"e1","seq":4,"reactions":{"👍":["ex","es"],"a\"/\\b":["eo"]}}'
call imkit_msg_react ex '{"room":"e1","seq":4,"emoji":"👍","on":true}'
check "reacting again: no change, no event" "$BODY|$NEV" \
  '{"room":"e1","seq":4,"reactions":{"👍":["ex","es"],"a\"/\\b":["eo"]}}|0'
call imkit_msg_history ex '{"room":"e1","after":3,"limit":1}'
check "history carries reactions, payload verbatim" "$(j messages.0)" \
  '{"room":"e1","seq":4,"ts":'"$(j messages.0.ts)"',"from":"es","type":"image","payload":{"big":12345678901234567890},"cid":"c4","reactions":{"👍":["ex","es"],"a\"/\\b":["eo"]}}'
check "room list last_message carries them too" "$(py "$HERE/mp.py" get "$(rc HGET "${PFX}r:{e1}" last_msg)" reactions)" \
  '{"👍":["ex","es"],"a\"/\\b":["eo"]}'
call imkit_msg_react ex '{"room":"e1","seq":4,"emoji":"👍","on":false}'
check "off" "$BODY|$NEV" '{"room":"e1","seq":4,"reactions":{"👍":["es"],"a\"/\\b":["eo"]}}|1'
call imkit_msg_react es '{"room":"e1","seq":4,"emoji":"👍","on":false}'
check "an emoji nobody is left on disappears" "$BODY" '{"room":"e1","seq":4,"reactions":{"a\"/\\b":["eo"]}}'
call imkit_msg_react es '{"room":"e1","seq":4,"emoji":"👍","on":false}'
check "off again: no change, no event" "$ST|$NEV" "ok|0"
call imkit_msg_react ex '{"room":"e1","seq":4,"emoji":"🎉","on":false}'
check "off on an unused emoji" "$ST|$NEV|$(j reactions)" 'ok|0|{"a\"/\\b":["eo"]}'
call imkit_msg_react eo '{"room":"e1","seq":4,"emoji":"a\"/\\b","on":false}'
check "the last one off: reactions {}" "$BODY|$(evdata 0)" \
  '{"room":"e1","seq":4,"reactions":{}}|{"room":"e1","seq":4,"reactions":{}}'
call imkit_msg_history ex '{"room":"e1","after":3,"limit":1}'
check "no reactions field when empty" "$(j messages.0.reactions)" "<missing>"

call imkit_msg_react ex '{"room":"e1","seq":1,"emoji":"👍","on":true}'
call imkit_msg_edit es '{"room":"e1","seq":1,"text":"v3"}'
check "an edit keeps the reactions" "$(j text)|$(j reactions)" 'v3|{"👍":["ex"]}'
call imkit_msg_react es '{"room":"e1","seq":1,"emoji":"👍","on":true}'
call imkit_msg_history ex '{"room":"e1","before":2,"limit":1}'
check "a reaction keeps the edit" "$(j messages.0.text)|$(j messages.0.reactions)|$(j messages.0.mentions)" 'v3|{"👍":["ex","es"]}|["ex"]'

DB0=$(rc DBSIZE)
call imkit_msg_react zz '{"room":"e1","seq":4,"emoji":"x","on":true}'
check "a non-member" "$ST|$BODY" "forbidden|not a member of room e1"
call imkit_msg_react ex '{"room":"nope","seq":4,"emoji":"x","on":true}'
expect not_found "a missing room"
call imkit_msg_react ex '{"room":"e1","seq":50,"emoji":"x","on":true}'
check "a missing seq" "$ST|$BODY" "not_found|message 50 not found in room e1"
call imkit_msg_react '' '{"room":"e1","seq":4,"emoji":"x","on":true}'
check "the admin cannot react" "$ST|$BODY" "bad_request|from: a reaction belongs to a client"
call imkit_msg_react ex '{"room":"e1","seq":4,"emoji":"x"}'
check "on is required" "$ST|$BODY" "bad_request|on: required"
call imkit_msg_react ex '{"room":"e1","seq":4,"emoji":"x","on":"yes"}'
check "on is a boolean" "$ST|$BODY" "bad_request|on: must be a boolean"
check "refusals wrote nothing" "$(rc DBSIZE)" "$DB0"

#######################################################################################
section "msg_recall"
call imkit_msg_recall ex '{"room":"e1","seq":1}'
check "another member" "$ST|$BODY" "forbidden|only the sender or the owner may recall message 1"
call imkit_msg_recall zz '{"room":"e1","seq":1}'
expect forbidden "a non-member"
call imkit_msg_recall es '{"room":"e1","seq":77}'
check "a missing seq" "$ST|$BODY" "not_found|message 77 not found in room e1"
call imkit_msg_recall es '{"room":"nope","seq":1}'
expect not_found "a missing room"

call imkit_msg_recall es '{"room":"e1","seq":2}'
expect ok "the sender recalls"
check "answer {}" "$BODY" '{}'
check "message.recalled on the room channel" "$(evs)|${EVFR[0]:-}" \
  "${PFX}ch:r:{e1} message.recalled|"'{"ev":"message.recalled","data":{"room":"e1","seq":2}}'
call imkit_msg_history ex '{"room":"e1","after":1,"limit":1}'
check "history: recalled keeps room, seq, ts, from, cid; text and payload null" "$(j messages.0)" \
  '{"room":"e1","seq":2,"ts":'"$E2TS"',"from":"es","type":"recalled","text":null,"payload":null,"cid":"c2"}'
call imkit_msg_recall es '{"room":"e1","seq":2}'
check "recalling twice: ok, no event" "$ST|$BODY|$NEV" "ok|{}|0"
call imkit_msg_edit es '{"room":"e1","seq":2,"text":"x"}'
check "edit a recalled message" "$ST|$BODY" "conflict|message 2 was recalled"
call imkit_msg_react ex '{"room":"e1","seq":2,"emoji":"x","on":true}'
check "react to a recalled message" "$ST|$BODY" "conflict|message 2 was recalled"

call imkit_msg_recall eo '{"room":"e1","seq":1}'
check "the owner recalls another's message (reactions dropped)" "$ST|$NEV" "ok|1"
call imkit_msg_history ex '{"room":"e1","before":2,"limit":1}'
check "reactions, mentions, edited_at gone" "$(j messages.0.type)|$(j messages.0.reactions)|$(j messages.0.mentions)|$(j messages.0.edited_at)" \
  "recalled|<missing>|<missing>|<missing>"
call imkit_msg_send es '{"room":"e1","cid":"c5","type":"text","text":"oops"}'
call imkit_msg_recall '' '{"room":"e1","seq":5}'
check "the admin recalls the last message" "$ST|$NEV" "ok|1"
call imkit_room_list ex '{"limit":1}'
check "room list last_message is recalled" "$(j rooms.0.last_message.seq)|$(j rooms.0.last_message.type)|$(j rooms.0.last_message.text)" "5|recalled|null"

# The stored message is split, not decoded: a payload with strings holding brackets,
# quotes and backslashes, whitespace, nesting and numbers of every kind stays byte for byte.
PL='{ "s" : "}]\\\\\\\"{[,:" , "n":[1, {"c":"x"}, -1.5e3, 12345678901234567890], "t":true,"f":null }'
call imkit_room_create es '{"type":"group","id":"e2","members":["ex"]}'
call imkit_msg_send es "{\"room\":\"e2\",\"cid\":\"pl\",\"type\":\"custom\",\"payload\":$(py -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$PL")}"
PLSEQ=$(j seq)
call imkit_msg_edit es "{\"room\":\"e2\",\"seq\":$PLSEQ,\"text\":\"} \\\"x\\\" {\"}"
check "edit keeps the payload verbatim" "$ST|$(py -c 'import sys; print(sys.argv[2] in sys.argv[1])' "$BODY" "$PL")|$(j text)|$(j cid)" \
  'ok|True|} "x" {|pl'
call imkit_msg_react ex "{\"room\":\"e2\",\"seq\":$PLSEQ,\"emoji\":\"}\",\"on\":true}"
call imkit_msg_history ex "{\"room\":\"e2\",\"after\":$((PLSEQ - 1)),\"limit\":1}"
check "so does a reaction" "$(py -c 'import sys; print(sys.argv[2] in sys.argv[1])' "$BODY" "$PL")|$(j messages.0.text)|$(j messages.0.reactions)" \
  'True|} "x" {|{"}":["ex"]}'
call imkit_msg_recall es "{\"room\":\"e2\",\"seq\":$PLSEQ}"
call imkit_msg_history ex "{\"room\":\"e2\",\"after\":$((PLSEQ - 1)),\"limit\":1}"
check "and a recall" "$(j messages.0.type)|$(j messages.0.payload)|$(j messages.0.cid)" "recalled|null|pl"

call imkit_room_create es '{"type":"direct","members":["ex"],"new_id":"d-esx"}'
call imkit_msg_send es '{"room":"d-esx","cid":"c1","type":"text","text":"x"}'
call imkit_msg_recall ex '{"room":"d-esx","seq":1}'
expect forbidden "a direct room has no owner: only the sender recalls"

#######################################################################################
section "sync"
# sy is in s1 (130 messages from sp), s2 (5), s3 (a direct room, no message); it was in
# s4 (removed) and holds s-gone, a room that never existed.
call imkit_room_create sp '{"type":"group","id":"s1","members":["sy"]}'
call imkit_room_create sp '{"type":"group","id":"s2","members":["sy"]}'
call imkit_room_create sp '{"type":"group","id":"s4","members":["sy"]}'
call imkit_room_create sy '{"type":"direct","members":["sp"],"new_id":"s3"}'
bulk_send s1 sp 130 b
bulk_send s2 sp 5 q
check "130 messages in s1" "$(rc HGET "${PFX}r:{s1}" last_seq)|$(rc HGET "${PFX}r:{s2}" last_seq)" "130|5"
call imkit_members_remove sp '{"room":"s4","members":["sy"]}'
call imkit_msg_edit sp '{"room":"s1","seq":12,"text":"b-12 edited"}'
call imkit_msg_recall sp '{"room":"s1","seq":13}'
call imkit_msg_react sy '{"room":"s1","seq":14,"emoji":"ok","on":true}'
call imkit_msg_edit sp '{"room":"s1","seq":130,"text":"b-130 edited"}'
# activity order: s1 then s2 newest; set by hand to make the expected order certain
rc HSET "${PFX}r:{s1}" last_ts 3000 >/dev/null
rc HSET "${PFX}r:{s2}" last_ts 2000 >/dev/null
rc HSET "${PFX}r:{s3}" last_ts 2000 >/dev/null

call imkit_sync sy '{"known":{"s1":10,"s2":5,"s4":2,"s-gone":3}}'
expect ok "sync"
check "rooms: every room sy is in, room list order" "$(ids rooms)" "s1 s2 s3"
check "summaries" "$(j rooms.0.unread)|$(j rooms.0.last_message.seq)|$(j rooms.0.last_message.text)|$(j rooms.2.peer.id)" "130|130|b-130 edited|sp"
check "left: the known rooms sy is not in, byte order" "$(j left)" '["s-gone","s4"]'
check "messages only for rooms behind" "$(py -c 'import json,sys; print(",".join(json.loads(sys.argv[1])["messages"]))' "$BODY")" "s1"
check "100 messages after 10, oldest first" "$(j 'len(messages.s1)')|$(j messages.s1.0.seq)|$(j messages.s1.99.seq)" "100|11|110"
check "has_more" "$(j has_more)" '{"s1":true}'
check "edits, recalls, reactions show" "$(j messages.s1.1.text)|$(j messages.s1.2.type)|$(j messages.s1.3.reactions)" \
  'b-12 edited|recalled|{"ok":["sy"]}'
check "body keys" "$(py -c 'import json,sys; print(",".join(json.loads(sys.argv[1])))' "$BODY")" "rooms,left,messages,has_more"
# The same read, one room at a time, as the gateway assembles sync on a cluster.
call imkit_room_row sy '{"room":"s1","held":10}'
head1=$(head -1 <<<"$BODY")
read -r rts runread rslen rmlen rmore <<<"$head1"
rest=$(tail -n +2 <<<"$BODY")
check "room_row with held: ts, unread, lengths, has_more" "$rts|$runread|$rmore|$((${#rest} - rslen))" "3000|130|1|$rmlen"
check "room_row with held: the summary, then the page of messages after held" \
  "$(py -c 'import json,sys; print(json.loads(sys.argv[1][:int(sys.argv[2])])["id"])' "$rest" "$rslen")|$(py -c '
import json,sys; m=json.loads(sys.argv[1][int(sys.argv[2]):]); print(len(m), m[0]["seq"], m[-1]["seq"], m[1]["text"])' "$rest" "$rslen")" \
  "s1|100 11 110 b-12 edited"
call imkit_room_row sy '{"room":"s2","held":5}'
check "room_row of a room not behind: no messages" "$(head -1 <<<"$BODY" | cut -d' ' -f4,5)" "-1 0"
call imkit_sync sy '{"known":{"s1":110}}'
check "the rest" "$(j 'len(messages.s1)')|$(j messages.s1.0.seq)|$(j messages.s1.19.seq)|$(j has_more)|$(j messages.s1.19.text)" \
  '20|111|130|{"s1":false}|b-130 edited'
call imkit_sync sy '{"known":{"s1":30}}'
check "exactly 100 missed: has_more false" "$(j 'len(messages.s1)')|$(j has_more)" '100|{"s1":false}'
call imkit_sync sy '{"known":{"s1":29}}'
check "101 missed: has_more true" "$(j 'len(messages.s1)')|$(j messages.s1.99.seq)|$(j has_more)" '100|129|{"s1":true}'
call imkit_sync sy '{"known":{"s1":130,"s2":5,"s3":0}}'
check "up to date: empty objects" "$(j left)|$(py -c 'import sys; b=sys.argv[1]; print(b[b.index(",\"left\""):])' "$BODY")" \
  '[]|,"left":[],"messages":{},"has_more":{}}'
call imkit_sync sy '{"known":{}}'
check "empty known" "$(ids rooms)|$(py -c 'import sys; b=sys.argv[1]; print(b[b.index(",\"left\""):])' "$BODY")" \
  's1 s2 s3|,"left":[],"messages":{},"has_more":{}}'
call imkit_sync sy '{}'
check "known absent" "$ST|$(ids rooms)|$(j messages)" 'ok|s1 s2 s3|{}'
call imkit_sync sy '{"known":{"s2":0}}'
check "known 0: from the first" "$(seqs messages.s2)|$(j has_more)" '1 2 3 4 5|{"s2":false}'
call imkit_sync nobody '{"known":{"s1":1}}'
check "a client in no room" "$BODY" '{"rooms":[],"left":["s1"],"messages":{},"has_more":{}}'
call imkit_sync '' '{"known":{}}'
check "sync without a client" "$ST|$BODY" "bad_request|from: sync is for a client"
call imkit_sync sy '{"known":"s1"}'
check "known not a map" "$ST|$BODY" "bad_request|known: must be a map"
call imkit_sync sy '{"known":{"s1":"x"}}'
check "known with a bad seq" "$ST|$BODY" "bad_request|known: must map room ids to seqs"

#######################################################################################
section "tokens_revoke"
call imkit_auth '' '{"sub":"tr","name":"TR"}'
call imkit_tokens_revoke tr '{"id":"tr"}'
check "a client" "$ST|$BODY" "forbidden|only the admin API may revoke tokens"
call imkit_tokens_revoke '' '{"id":"nobody-tr"}'
check "an unknown client" "$ST|$BODY" "not_found|client nobody-tr not found"
check "nothing written for it" "$(rc EXISTS "${PFX}u:{nobody-tr}")" 0
B=$(($(now_ms) / 1000))
call imkit_tokens_revoke '' '{"id":"tr"}'
A=$(($(now_ms) / 1000))
expect ok "the admin revokes"
check "answer {}" "$BODY" '{}'
check "session.revoked on the client's channel" "$(evs)|${EVFR[0]:-}" \
  "${PFX}ch:u:{tr} session.revoked|"'{"ev":"session.revoked","data":{"code":4403}}'
TVA=$(rc HGET "${PFX}u:{tr}" tokens_valid_after)
[ "$TVA" -ge "$B" ] && [ "$TVA" -le "$A" ] && ok "tokens_valid_after = this second" || bad "tokens_valid_after" "$TVA not in $B..$A"
call imkit_auth '' "{\"sub\":\"tr\",\"iat\":$TVA}"
expect unauthenticated "a JWT of the revocation second"
call imkit_auth '' "{\"sub\":\"tr\",\"iat\":$((TVA + 1))}"
check "a later JWT; profile intact" "$ST|$(j name)" "ok|TR"
rc HSET "${PFX}u:{tr}" tokens_valid_after $((TVA + 1000)) >/dev/null
call imkit_tokens_revoke '' '{"id":"tr"}'
check "the mark never moves back" "$(rc HGET "${PFX}u:{tr}" tokens_valid_after)" "$((TVA + 1000))"

#######################################################################################
section "client_delete"
# cd owns cg1 (with cm1, cm2), is alone in cg2, and has a direct room dcp with cp.
call imkit_auth '' '{"sub":"cd","name":"CD","avatar":"https://a/cd.png"}'
call imkit_room_create cd '{"type":"group","id":"cg1","members":["cm2","cm1"]}'
call imkit_room_create cd '{"type":"group","id":"cg2","members":[]}'
call imkit_room_create cd '{"type":"direct","members":["cp"],"new_id":"dcp"}'
call imkit_msg_send cd '{"room":"cg1","cid":"c1","type":"text","text":"mine"}'
rc ZADD "${PFX}u:{cd}:rooms" XX 1 cg1 2 cg2 3 dcp >/dev/null # a known leaving order
TB=$(($(now_ms) / 1000 - 5))
call imkit_token_create '' "{\"id\":\"cd\",\"hash\":\"h-cd\",\"ttl\":600,\"iat\":$TB}"
call imkit_auth '' "{\"sub\":\"cd\",\"iat\":$TB}"
check "the token (its client and iat) works before" "$ST" ok

DB0=$(rc DBSIZE)
call imkit_client_delete cd '{"id":"cd"}'
check "a client" "$ST|$BODY" "forbidden|only the admin API may delete a client"
call imkit_client_delete '' '{"id":"nobody-cd"}'
check "an unknown client" "$ST|$BODY" "not_found|client nobody-cd not found"
check "refusals wrote nothing" "$(rc DBSIZE)" "$DB0"

call imkit_client_delete '' '{"id":"cd"}'
expect ok "the admin deletes cd"
check "answer {}" "$BODY" '{}'
check "events: each room left as room.leave would, then session.revoked" "$(evs)" \
  "${PFX}ch:u:{cd} room.left; ${PFX}ch:r:{cg1} member.left; ${PFX}ch:r:{cg1} room.updated; ${PFX}ch:u:{cd} room.left; ${PFX}ch:u:{cd} room.left; ${PFX}ch:r:{dcp} member.left; ${PFX}ch:u:{cd} session.revoked"
check "frames" "$(evdata 0)|$(evdata 1)|$(jf "${EVFR[2]:-}" data.owner)|$(evdata 3)|$(evdata 5)|${EVFR[6]:-}" \
  '{"room":"cg1"}|{"room":"cg1","member":"cd"}|cm1|{"room":"cg2"}|{"room":"dcp","member":"cd"}|{"ev":"session.revoked","data":{"code":4403}}'
check "cg2 (left by its last member) is deleted" "$(rc EXISTS "${PFX}r:{cg2}" "${PFX}r:{cg2}:m")" 0
check "dcp stays with cp" "$(rc HKEYS "${PFX}r:{dcp}:m")|$(rc HGET "${PFX}r:{dcp}" members_count)" "cp|1"
check "the pair key is gone" "$(rc EXISTS "${PFX}direct:{cd|cp}")" 0
check "cd's messages stay" "$(rc XLEN "${PFX}r:{cg1}:log")" 1
check "profile: only the revocation mark" "$(rc HKEYS "${PFX}u:{cd}" | sort | tr '\n' ' ')" "deleted tokens_valid_after "
check "rooms index gone" "$(rc EXISTS "${PFX}u:{cd}:rooms")" 0
CDM=$(rc HGET "${PFX}u:{cd}" tokens_valid_after)
call imkit_client_get '' '{"ids":["cd","cp"]}'
check "client_get leaves cd out" "$(ids clients)" cp
call imkit_room_list cp '{"limit":5}'
check "cp's direct summary: no peer" "$(j rooms.0.id)|$(j rooms.0.peer)|$(j rooms.0.members_count)" "dcp|null|1"
call imkit_room_get cm2 '{"room":"cg1"}'
check "cg1 without cd, cm1 owner" "$(ids members)|$(j owner)" "cm1 cm2|cm1"

check "the token's key stays (it expires)" "$(rc GET "${PFX}tok:h-cd")" "cd $TB"
call imkit_auth '' "{\"sub\":\"cd\",\"iat\":$TB}"
check "the old opaque token is refused" "$ST|$BODY" "unauthenticated|token revoked"
call imkit_auth '' "{\"sub\":\"cd\",\"iat\":$CDM}"
expect unauthenticated "a JWT of the deletion second"
call imkit_auth '' '{"sub":"cd"}'
expect unauthenticated "a JWT without iat"
call imkit_me_update cd '{"name":"back"}'
check "a late me.update of the deleted client" "$ST|$BODY" "unauthenticated|client cd was deleted"
check "refusals did not recreate it" "$(rc HKEYS "${PFX}u:{cd}" | sort | tr '\n' ' ')" "deleted tokens_valid_after "
call imkit_client_delete '' '{"id":"cd"}'
expect not_found "deleting again"
call imkit_tokens_revoke '' '{"id":"cd"}'
expect not_found "revoking a deleted client"

call imkit_auth '' "{\"sub\":\"cd\",\"iat\":$((CDM + 1)),\"name\":\"CD 2\"}"
check "a token issued after the deletion recreates cd" "$ST|$BODY" 'ok|{"id":"cd","name":"CD 2","avatar":null,"meta":null}'
check "not deleted any more, mark kept" "$(rc HEXISTS "${PFX}u:{cd}" deleted)|$(rc HGET "${PFX}u:{cd}" tokens_valid_after)" "0|$CDM"
call imkit_client_get '' '{"ids":["cd"]}'
check "client_get finds it" "$(ids clients)" cd
call imkit_room_create cp '{"type":"direct","members":["cd"],"new_id":"dcp2"}'
check "the pair gets a new direct room" "$(j id)|$(j created)|$(j members_count)" "dcp2|true|2"

call imkit_room_leave cp '{"room":"dcp"}'
expect bad_request "cp cannot leave the direct room itself"
call imkit_client_delete '' '{"id":"cp"}'
check "deleting cp: dcp (left by both) is deleted" "$(rc EXISTS "${PFX}r:{dcp}" "${PFX}r:{dcp}:m")|$(evs | tr ';' '\n' | grep -c 'room.left')" "0|2"
check "dcp2 keeps cd" "$(rc HKEYS "${PFX}r:{dcp2}:m")|$(rc EXISTS "${PFX}direct:{cd|cp}")" "cd|0"

call imkit_members_add cm1 '{"room":"cg1","members":["cp"]}'
check "a deleted id named as a member gets a profile again" "$ST|$(rc HGET "${PFX}u:{cp}" name)|$(rc HEXISTS "${PFX}u:{cp}" deleted)" "ok|cp|0"

#######################################################################################
section "presence"
call imkit_presence_set '' '{"client":"pz","gw":"gw1","delta":1}'
expect ok "first session"
check "answer" "$BODY" '{"online":true}'
check "the reply carries no event: it was published" "$RNEV" 0
check "presence event on the presence channel" "$(evs)|${EVFR[0]:-}" \
  "${PFX}ch:p:{pz} presence|"'{"ev":"presence","data":{"client":"pz","online":true,"last_seen":null}}'
check "online hash, gateway set" "$(rc HGET "${PFX}online:{pz}" gw1)|$(rc SISMEMBER "${PFX}gwc:gw1" pz)" "1|1"
call imkit_presence_set '' '{"client":"pz","gw":"gw1","delta":1}'
check "a second session: no event" "$BODY|$NEV|$(rc HGET "${PFX}online:{pz}" gw1)" '{"online":true}|0|2'
call imkit_presence_set '' '{"client":"pz","gw":"gw2","delta":1}'
check "another gateway: no event" "$NEV" 0
call imkit_presence_set '' '{"client":"pz","gw":"gw1","delta":-1}'
call imkit_presence_set '' '{"client":"pz","gw":"gw1","delta":-1}'
check "gw1 at 0: field dropped, still online" "$BODY|$NEV|$(rc HEXISTS "${PFX}online:{pz}" gw1)|$(rc SISMEMBER "${PFX}gwc:gw1" pz)" \
  '{"online":true}|0|0|0'
B=$(now_ms)
call imkit_presence_set '' '{"client":"pz","gw":"gw2","delta":-1}'
A=$(now_ms)
check "the last session: offline" "$BODY|$(evs)" "{\"online\":false}|${PFX}ch:p:{pz} presence"
LS=$(jf "${EVFR[0]:-}" data.last_seen)
check "event data" "$(jf "${EVFR[0]:-}" data.client)|$(jf "${EVFR[0]:-}" data.online)" "pz|false"
[ "$LS" -ge "$B" ] && [ "$LS" -le "$A" ] && ok "last_seen = now" || bad "last_seen" "$LS not in $B..$A"
check "last_seen stored, no gateway left" "$(rc HGETALL "${PFX}online:{pz}" | tr '\n' ' ')" "last_seen $LS "
call imkit_presence_set '' '{"client":"pz","gw":"gw3","delta":-1}'
check "a stray decrement: nothing" "$BODY|$NEV|$(rc HEXISTS "${PFX}online:{pz}" gw3)" '{"online":false}|0|0'
call imkit_presence_set '' '{"client":"pz","gw":"gw1","delta":1}'
check "back online: last_seen is the previous one" "$(evdata 0)" "{\"client\":\"pz\",\"online\":true,\"last_seen\":$LS}"
call imkit_presence_set '' '{"client":"pz","gw":"gw1"}'
check "delta required" "$ST|$BODY" "bad_request|delta: required"
call imkit_presence_set '' '{"gw":"gw1","delta":1}'
expect bad_request "client required"

call imkit_presence_get alice '{"ids":["pz","nobody","pz"]}'
expect ok "presence_get"
check "every id given, unknown ones offline" "$BODY" \
  "{\"clients\":[{\"id\":\"pz\",\"online\":true,\"last_seen\":$LS},{\"id\":\"nobody\",\"online\":false,\"last_seen\":null}]}"
call imkit_presence_get '' '{"ids":[]}'
check "no ids" "$BODY" '{"clients":[]}'

#######################################################################################
section "gateway_gone"
# gwA counts pa (2 sessions), pb and pz; pb is also on gwB.
call imkit_presence_set '' '{"client":"pb","gw":"gwA","delta":1}'
call imkit_presence_set '' '{"client":"pa","gw":"gwA","delta":1}'
call imkit_presence_set '' '{"client":"pa","gw":"gwA","delta":1}'
call imkit_presence_set '' '{"client":"pb","gw":"gwB","delta":1}'
call imkit_presence_set '' '{"client":"pz","gw":"gwA","delta":1}'
B=$(now_ms)
call imkit_gateway_gone '' '{"gw":"gwA"}'
A=$(now_ms)
expect ok "gateway_gone"
check "cleaned" "$BODY" '{"cleaned":3}'
check "pa goes offline (pb is on gwB, pz on gw1)" "$(evs)|$RNEV" "${PFX}ch:p:{pa} presence|0"
LS=$(jf "${EVFR[0]:-}" data.last_seen)
check "event" "$(jf "${EVFR[0]:-}" data.client)|$(jf "${EVFR[0]:-}" data.online)" "pa|false"
[ "$LS" -ge "$B" ] && [ "$LS" -le "$A" ] && ok "last_seen = now" || bad "last_seen" "$LS not in $B..$A"
check "fields dropped, set gone" "$(rc HEXISTS "${PFX}online:{pa}" gwA)|$(rc HEXISTS "${PFX}online:{pb}" gwA)|$(rc HGET "${PFX}online:{pb}" gwB)|$(rc EXISTS "${PFX}gwc:gwA")" "0|0|1|0"
call imkit_presence_get '' '{"ids":["pa","pb","pz"]}'
check "presence after" "$(j clients.0.online)|$(j clients.1.online)|$(j clients.2.online)" "false|true|true"
call imkit_gateway_gone '' '{"gw":"gwA"}'
check "again: nothing" "$BODY|$NEV" '{"cleaned":0}|0'
call imkit_presence_set '' '{"client":"pa","gw":"gwA","delta":-1}'
check "a late decrement from the dead gateway: nothing" "$BODY|$NEV|$(rc HEXISTS "${PFX}online:{pa}" gwA)" '{"online":false}|0|0'
call imkit_gateway_gone '' '{}'
expect bad_request "gw required"

# A cluster's way, one client at a time in its slot (the gateway reads gwc:<gw> itself).
call imkit_presence_set '' '{"client":"pq","gw":"gwC","delta":1}'
call imkit_presence_drop '' '{"client":"pq","gw":"gwC"}'
check "presence_drop: the count dropped, offline" "$BODY|$(evs)|$(rc HEXISTS "${PFX}online:{pq}" gwC)" \
  "{\"cleaned\":1}|${PFX}ch:p:{pq} presence|0"
call imkit_presence_drop '' '{"client":"pq","gw":"gwC"}'
check "presence_drop again: nothing" "$BODY|$NEV" '{"cleaned":0}|0'

#######################################################################################
section "jobs: exactly-once replies"
# A job's reply is stored in done:<job id>; the same job again answers it unchanged,
# events included, and changes nothing.
call imkit_room_create jo '{"type":"group","members":["jm"],"new_id":"gj1","name":"J"}' j-rc-1
expect ok "a job creates a group without id (new_id)"
check "created" "$(j id)|$(j created)" "gj1|true"
R1=$BODY
E1=$(evs)
F1=${EVFR[*]:-}
PT=$(rc PTTL "${PFX}done:j-rc-1")
[ "$PT" -gt 86390000 ] && [ "$PT" -le 86400000 ] && ok "the reply is kept 24 h" || bad "the reply is kept 24 h" "PTTL $PT"
DB0=$(rc DBSIZE)
H0=$(rc HGETALL "${PFX}r:{gj1}" | md5sum)
call imkit_room_create jo '{"type":"group","members":["jm"],"new_id":"gj1","name":"J"}' j-rc-1
check "the same job again: the same reply (not a conflict), the same events" \
  "$ST|$BODY|$(evs)|${EVFR[*]:-}" "ok|$R1|$E1|$F1"
check "nothing written" "$(rc DBSIZE)|$(rc HGETALL "${PFX}r:{gj1}" | md5sum)" "$DB0|$H0"
call imkit_room_create jo '{"type":"group","members":["jm"],"new_id":"gj1","name":"J"}' j-rc-2
check "another job: a conflict, as always" "$ST|$BODY|$NEV" "conflict|room gj1 already exists|0"
check "an error reply is stored too" "$(rc EXISTS "${PFX}done:j-rc-2")" 1
call imkit_room_create jo '{"type":"group","members":["jm"],"new_id":"gj1","name":"J"}'
check "a plain call (no job id): a conflict, nothing stored" "$ST|$(rc KEYS "${PFX}done:*" | wc -l)" "conflict|2"
call imkit_room_create jo '{"type":"group","members":["jm"],"new_id":"gj1","name":"J"}' ''
check "an empty job id is no job id" "$ST|$(rc KEYS "${PFX}done:*" | wc -l)" "conflict|2"

call imkit_msg_send jo '{"room":"gj1","cid":"jc1","type":"text","text":"once"}' j-ms-1
expect ok "a job sends"
S1="$(j seq)|$(j ts)|$NEV|${EVFR[0]:-}"
A1="$(j seq)|$(j ts)"
call imkit_msg_send jo '{"room":"gj1","cid":"jc1","type":"text","text":"once"}' j-ms-1
check "replayed: the same seq and ts, the message event again (clients drop it by seq)" \
  "$(j seq)|$(j ts)|$NEV|${EVFR[0]:-}" "$S1"
check "stored once" "$(rc XLEN "${PFX}r:{gj1}:log")|$(rc HGET "${PFX}r:{gj1}" last_seq)" "1|1"
check "a send keeps no done record: its cid index entry is seq|ts|mark (the job id's SHA-1, 8 hex)" \
  "$(rc EXISTS "${PFX}done:j-ms-1")|$(rc HGET "${PFX}r:{gj1}:cid" 'jo|jc1')" \
  "0|$A1|$(printf %s j-ms-1 | sha1sum | cut -c1-8)"
call imkit_msg_edit jo '{"room":"gj1","seq":1,"text":"edited"}' j-me-1
call imkit_msg_send jo '{"room":"gj1","cid":"jc1","type":"text","text":"once"}' j-ms-1
check "replayed after an edit: the first run's answer and event, byte for byte" \
  "$(j seq)|$(j ts)|$NEV|${EVFR[0]:-}" "$S1"
rc XTRIM "${PFX}r:{gj1}:log" MAXLEN 0 >/dev/null
call imkit_msg_send jo '{"room":"gj1","cid":"jc1","type":"text","text":"once"}' j-ms-1
check "replayed once retention trimmed the message: the answer, no event" \
  "$ST|$(j seq)|$(j ts)|$NEV" "ok|$A1|0"
call imkit_msg_send jo '{"room":"gj1","cid":"jc1","type":"text","text":"once"}' j-ms-3
check "another job with the same cid: the cid retry (same seq, no event)" "$(j seq)|$NEV" "1|0"
rc HSET "${PFX}r:{gj1}:cid" 'jo|jc0' "1|$(j ts)" >/dev/null
call imkit_msg_send jo '{"room":"gj1","cid":"jc0","type":"text","text":"once"}' j-ms-0
check "an entry written before the mark (seq|ts): answered as a retry, no event, nothing written" \
  "$ST|$(j seq)|$NEV|$(rc XLEN "${PFX}r:{gj1}:log")|$(rc HGET "${PFX}r:{gj1}:cid" 'jo|jc0')" "ok|1|0|0|1|$(j ts)"
call imkit_msg_send jo '{"room":"gj1","cid":"jc2","type":"text","text":"twice"}' j-ms-2
check "another job: the next seq" "$ST|$(j seq)|$NEV" "ok|2|1"
JOB_HOME='{gj1}' call imkit_room_update jo '{"room":"gj1","name":"J home"}' j-uh-1
check "a job that declares its home (as workers do): its done record in the home's slot" \
  "$ST|$(rc EXISTS "${PFX}done:{gj1}:j-uh-1")|$(rc EXISTS "${PFX}done:j-uh-1")" "ok|1|0"
JOB_HOME='{gj1}' call imkit_msg_send jo '{"room":"gj1","cid":"jh1","type":"text","text":"home"}' j-mh-1
H1="$ST|$(j seq)|$NEV|$(rc XLEN "${PFX}r:{gj1}:log")"
JOB_HOME='{gj1}' call imkit_msg_send jo '{"room":"gj1","cid":"jh1","type":"text","text":"home"}' j-mh-1
check "replayed with its home: the same answer and event, nothing stored" \
  "$ST|$(j seq)|$NEV|$(rc XLEN "${PFX}r:{gj1}:log")" "$H1"

call imkit_room_leave jm '{"room":"gj1"}' j-rl-1
expect ok "a job leaves"
E1=$(evs)
check "answer {}, events" "$BODY|$E1" "{}|${PFX}ch:u:{jm} room.left; ${PFX}ch:r:{gj1} member.left"
call imkit_room_leave jm '{"room":"gj1"}' j-rl-1
check "replayed: {} again, the same events (not forbidden)" "$ST|$BODY|$(evs)" "ok|{}|$E1"
call imkit_room_leave jm '{"room":"gj1"}' j-rl-2
check "another job: not a member any more" "$ST|$BODY" "forbidden|not a member of room gj1"
call imkit_members_add jo '{"room":"gj1","members":["jm"]}' j-ma-1
call imkit_room_leave jm '{"room":"gj1"}' j-rl-2
check "a stored refusal answers the same even when it would now succeed" "$ST|$NEV|$(rc HEXISTS "${PFX}r:{gj1}:m" jm)" "forbidden|0|1"

# A fault (a Lua error) is not a reply: not stored, the retry runs for real.
rc SET "${PFX}r:{jbad}" x >/dev/null
call imkit_room_update jo '{"room":"jbad","name":"x"}' j-f-1
check_match "a fault is a Redis error" "$ST" "WRONGTYPE"
check "it is not stored" "$(rc EXISTS "${PFX}done:j-f-1")" 0
rc DEL "${PFX}r:{jbad}" >/dev/null
call imkit_room_update jo '{"room":"jbad","name":"x"}' j-f-1
check "the retry runs" "$ST|$(rc EXISTS "${PFX}done:j-f-1")" "not_found|1"

# A refused send records nothing: run again, it is judged on the room as it then is.
call imkit_room_create jo '{"type":"group","id":"gjr","members":["jx"]}'
call imkit_msg_send jy '{"room":"gjr","cid":"r1","type":"text","text":"x"}' j-rs-1
check "a refused send: no record" "$ST|$(rc EXISTS "${PFX}done:j-rs-1")|$(rc HLEN "${PFX}r:{gjr}:cid")" "forbidden|0|0"
call imkit_members_add jo '{"room":"gjr","members":["jy"]}'
call imkit_msg_send jy '{"room":"gjr","cid":"r1","type":"text","text":"x"}' j-rs-1
check "run again once the sender is a member: stored, once" "$ST|$(j seq)|$(rc XLEN "${PFX}r:{gjr}:log")" "ok|1|1"
call imkit_room_delete '' '{"room":"gjr"}'
call imkit_msg_send jy '{"room":"gjr","cid":"r1","type":"text","text":"x"}' j-rs-1
check "a send run again after its room was deleted: not_found (its cid index went with it)" "$ST" "not_found"

call imkit_room_get jo '{"room":"gj1"}' j-q-1
check "a query (FCALL_RO) ignores a job id" "$ST|$(rc EXISTS "${PFX}done:j-q-1")" "ok|0"
call imkit_presence_set '' '{"client":"jz","gw":"gwj","delta":1}' j-p-1 1
check "so does a gateway's function, and the events flag" "$ST|$(rc EXISTS "${PFX}done:j-p-1")|$(rc EXISTS "${PFX}events")" "ok|0|0"
call imkit_presence_set '' '{"client":"jz","gw":"gwj","delta":-1}'

#######################################################################################
section "outbox"
# The event feed for the website's backend: jobs called with the events flag "1" append
# to the stream <prefix>events. Nothing before this section passed it.
outbox_read
check "no outbox without the flag" "$NOB|$(rc EXISTS "${PFX}events")" "0|0"

B=$(now_ms)
call imkit_auth '' '{"sub":"ob1","name":"OB 1","avatar":"https://a/ob1.png"}' j-ob-1 1
A=$(now_ms)
expect ok "auth of a new client"
R1=$BODY
outbox_read
check "client.created" "$NOB|${OBTYPE[*]:-}" "1|client.created"
check "data: the client as the call left it (avatar set after creation)" "${OBDATA[0]:-}" \
  '{"id":"ob1","name":"OB 1","avatar":"https://a/ob1.png","meta":null}'
TS=${OBTS[0]:-0}
[ "$TS" -ge "$B" ] && [ "$TS" -le "$A" ] && ok "ts = the call's time" || bad "ts" "$TS not in $B..$A"
check_match "an entry id of the stream" "${OBID[0]:-}" '^[0-9]+-[0-9]+$'
call imkit_auth '' '{"sub":"ob1"}' j-ob-1 1
outbox_read
check "the same job again: its reply, no second entry" "$BODY|$NOB" "$R1|0"
call imkit_auth '' '{"sub":"ob1","name":"OB 1b"}' j-ob-2 1
outbox_read
check "auth of a known client: nothing" "$ST|$NOB" "ok|0"

call imkit_client_put '' '{"id":"ob2","name":"OB 2","meta":"{\"k\":12345678901234567890}"}' '' 1
outbox_read
check "client_put of a new client (no job id, feed on)" "${OBTYPE[*]:-}|${OBDATA[0]:-}" "client.created|$BODY"
call imkit_client_put '' '{"id":"ob2","clear":["meta"]}' '' 1
outbox_read
check "client_put of a known one: nothing" "$ST|$NOB" "ok|0"
call imkit_token_create '' '{"id":"ob3","hash":"h-ob3","ttl":600,"iat":1}' '' 1
outbox_read
check "token_create for a new client" "${OBTYPE[*]:-}|${OBDATA[0]:-}" \
  'client.created|{"id":"ob3","name":"ob3","avatar":null,"meta":null}'
call imkit_me_update ob4 '{"avatar":"https://a/ob4.png"}' '' 1
outbox_read
check "me_update of a new client" "${OBTYPE[*]:-}|${OBDATA[0]:-}" "client.created|$BODY"

call imkit_room_create ob1 '{"type":"group","id":"go1","members":["ob2","ob4","obn"],"name":"O"}' j-ob-3 1
expect ok "a group with a never-seen member"
outbox_read
check "client.created of the new member, then room.created" "${OBTYPE[*]:-}" "client.created room.created"
check "client.created data" "${OBDATA[0]:-}" '{"id":"obn","name":"obn","avatar":null,"meta":null}'
check "room.created data: the room" "${OBDATA[1]:-}" "${BODY/,\"created\":true/}"
call imkit_room_create ob1 '{"type":"group","id":"go1","members":["ob2"]}' j-ob-3b 1
outbox_read
check "a refused call writes no entry" "$ST|$NOB" "conflict|0"
call imkit_room_create ob1 '{"type":"direct","members":["ob2"],"new_id":"do1"}' '' 1
outbox_read
check "a direct room: room.created" "${OBTYPE[*]:-}|${OBDATA[0]:-}" "room.created|${BODY/,\"created\":true/}"
call imkit_room_create ob2 '{"type":"direct","members":["ob1"],"new_id":"do2"}' '' 1
outbox_read
check "the pair's existing room: nothing" "$(j created)|$NOB" "false|0"

# Presence: ob1 online with a last_seen (2 fields), ob2 offline with a last_seen (1),
# ob4 online on one gateway, never offline (1), obn never connected (no hash).
call imkit_presence_set '' '{"client":"ob1","gw":"gwo","delta":1}'
call imkit_presence_set '' '{"client":"ob1","gw":"gwo","delta":-1}'
call imkit_presence_set '' '{"client":"ob1","gw":"gwo","delta":1}'
call imkit_presence_set '' '{"client":"ob2","gw":"gwo","delta":1}'
call imkit_presence_set '' '{"client":"ob2","gw":"gwo","delta":-1}'
call imkit_presence_set '' '{"client":"ob4","gw":"gwp","delta":2}'
check "the online hashes" "$(rc HLEN "${PFX}online:{ob1}")|$(rc HLEN "${PFX}online:{ob2}")|$(rc HLEN "${PFX}online:{ob4}")|$(rc EXISTS "${PFX}online:{obn}")" \
  "2|1|1|0"
call imkit_msg_send ob1 '{"room":"go1","cid":"o1","type":"text","text":"hi \"all\" a/b","mentions":["ob2"]}' j-ob-4 1
expect ok "ob1 sends"
outbox_read
check "message.sent" "$NOB|${OBTYPE[*]:-}" "1|message.sent"
check "ts = the message's ts" "${OBTS[0]:-}" "$(j ts)"
MSG=${EVFR[0]#'{"ev":"message","data":'}
MSG=${MSG%\}}
check "data: the message byte for byte, then the members with no connection" "${OBDATA[0]:-}" \
  "${MSG%\}},\"offline\":[\"ob2\",\"obn\"]}"
call imkit_msg_send ob1 '{"room":"go1","cid":"o1","type":"text","text":"hi \"all\" a/b","mentions":["ob2"]}' j-ob-4 1
outbox_read
check "the same job again: no second entry" "$(j seq)|$NOB" "1|0"
call imkit_msg_send ob1 '{"room":"go1","cid":"o1","type":"text","text":"hi \"all\" a/b","mentions":["ob2"]}' j-ob-5 1
outbox_read
check "a retry with the same cid (another job): no entry" "$(j seq)|$NEV|$NOB" "1|0|0"
call imkit_msg_send obn '{"room":"go1","cid":"o2","type":"image","payload":"{\"n\":98765432109876543210}"}' '' 1
outbox_read
check "a sender with no connection (the admin API sends as a client) is listed too" \
  "$(py "$HERE/mp.py" get "${OBDATA[0]:-}" offline)|$(py "$HERE/mp.py" get "${OBDATA[0]:-}" seq)" '["ob2","obn"]|2'
check "payload verbatim" "$(py -c 'import sys; print("98765432109876543210" in sys.argv[1])' "${OBDATA[0]:-}")" True
call imkit_gateway_gone '' '{"gw":"gwp"}'
call imkit_msg_send ob1 '{"room":"go1","cid":"o3","type":"text","text":"x"}' '' 1
outbox_read
check "after ob4's gateway died" "$(py "$HERE/mp.py" get "${OBDATA[0]:-}" offline)" '["ob2","ob4","obn"]'
call imkit_presence_set '' '{"client":"ob4","gw":"gwp","delta":1}'

call imkit_room_update ob1 '{"room":"go1","name":"O 2"}' '' 1
outbox_read
check "room.updated: the room" "${OBTYPE[*]:-}|${OBDATA[0]:-}" "room.updated|$BODY"

call imkit_members_add ob2 '{"room":"go1","members":["ob5","ob6","ob3"]}' '' 1
outbox_read
check "members_add: client.created of the new ids, then one member.joined" "${OBTYPE[*]:-}" \
  "client.created client.created member.joined"
check "member.joined: every new member" "${OBDATA[2]:-}" '{"room":"go1","members":["ob5","ob6","ob3"]}'
call imkit_members_add ob2 '{"room":"go1","members":["ob5","ob6"]}' '' 1
outbox_read
check "nobody new: nothing" "$NOB" 0

call imkit_members_remove ob1 '{"room":"go1","members":["ob5","ob6","stranger"]}' '' 1
outbox_read
check "members_remove: one member.left with every id" "${OBTYPE[*]:-}|${OBDATA[0]:-}" \
  'member.left|{"room":"go1","members":["ob5","ob6"]}'
call imkit_members_remove '' '{"room":"go1","members":["ob1","ob3"]}' '' 1
outbox_read
check "removing the owner: member.left (both), then room.updated" "${OBTYPE[*]:-}|${OBDATA[0]:-}" \
  'member.left room.updated|{"room":"go1","members":["ob1","ob3"]}'
check "room.updated: as the room event" "${OBDATA[1]:-}|$(py "$HERE/mp.py" get "${OBDATA[1]:-}" owner)" "$(evdata 2)|ob2"

call imkit_room_leave ob4 '{"room":"go1"}' '' 1
outbox_read
check "room_leave: member.left" "${OBTYPE[*]:-}|${OBDATA[0]:-}" 'member.left|{"room":"go1","members":["ob4"]}'
call imkit_room_leave obn '{"room":"go1"}' '' 1
outbox_read
check "ob2 (owner) stays alone" "${OBTYPE[*]:-}" "member.left"
call imkit_room_leave ob2 '{"room":"go1"}' '' 1
outbox_read
check "the last member leaves: member.left, room.deleted" "${OBTYPE[*]:-}|${OBDATA[0]:-}" \
  'member.left room.deleted|{"room":"go1","members":["ob2"]}'
check "room.deleted: the room as it was, nobody left" \
  "$(for f in id type name owner members_count last_seq; do py "$HERE/mp.py" get "${OBDATA[1]:-}" $f; done | tr '\n' ' ')" \
  "go1 group O 2 ob2 0 3 "

call imkit_room_create '' '{"type":"group","id":"go2","members":["ob1","ob2"],"meta":"{\"m\":12345678901234567890}"}' '' 1
outbox_read
check "an admin room: room.created" "${OBTYPE[*]:-}" "room.created"
call imkit_room_get '' '{"room":"go2"}'
ROOM="${BODY%,\"members\":*}}"
call imkit_room_delete '' '{"room":"go2"}' '' 1
outbox_read
check "room_delete: room.deleted, the room as it was" "${OBTYPE[*]:-}|${OBDATA[0]:-}" "room.deleted|$ROOM"

call imkit_client_delete '' '{"id":"ob1"}' '' 1
outbox_read
check "client_delete: member.left of each room it was in" "${OBTYPE[*]:-}|${OBDATA[0]:-}" \
  'member.left|{"room":"do1","members":["ob1"]}'

call imkit_room_create ob2 '{"type":"group","id":"go3","members":["ob3"]}' '' 1
call imkit_msg_send ob2 '{"room":"go3","cid":"c1","type":"text","text":"x"}' '' 1
outbox_read
check "room.created, message.sent" "${OBTYPE[*]:-}" "room.created message.sent"
call imkit_msg_edit ob2 '{"room":"go3","seq":1,"text":"y"}' '' 1
call imkit_msg_react ob3 '{"room":"go3","seq":1,"emoji":"ok","on":true}' '' 1
call imkit_room_read ob3 '{"room":"go3","seq":1}' '' 1
call imkit_msg_recall ob2 '{"room":"go3","seq":1}' '' 1
call imkit_tokens_revoke '' '{"id":"ob3"}' '' 1
outbox_read
check "edit, react, read, recall, revoke: no entry" "$ST|$NOB" "ok|0"

L0=$(rc XLEN "${PFX}events")
call imkit_auth '' '{"sub":"of1","name":"OF"}' j-of-1 0
call imkit_room_create of1 '{"type":"group","id":"gof","members":["of2"]}' j-of-2 0
call imkit_msg_send of1 '{"room":"gof","cid":"c1","type":"text","text":"x"}' j-of-3 0
call imkit_msg_send of1 '{"room":"gof","cid":"c1","type":"text","text":"x"}' j-of-3 1
check "a send done with the feed off, replayed with it on: its answer, no entry" \
  "$ST|$(j seq)|$(rc XLEN "${PFX}events")" "ok|1|$L0"
call imkit_members_add of1 '{"room":"gof","members":["of3"]}' '' 0
call imkit_room_update of1 '{"room":"gof","name":"N"}' '' 0
call imkit_members_remove of1 '{"room":"gof","members":["of3"]}' '' 0
call imkit_room_leave of2 '{"room":"gof"}'
call imkit_room_delete '' '{"room":"gof"}' j-of-4
check "the flag \"0\" or absent: no entry" "$ST|$(rc XLEN "${PFX}events")" "ok|$L0"
call imkit_room_create of1 '{"type":"group","id":"gof","members":["of2"]}' j-of-2 1
check "a job done with the feed off, replayed with it on: its reply, no entry" \
  "$ST|$(j id)|$(rc XLEN "${PFX}events")" "ok|gof|$L0"

#######################################################################################
section "outbox on a cluster"
# A job called with the cluster flag cannot write the stream (another slot): it appends its
# entries to its home's outbox ob:{home} and hands back imkit_outbox_add with every entry
# of it not yet moved; the worker runs that in the stream's slot (for message.sent with the
# last argument, the members, replaced by those offline), then the trim it hands back.
# mp.py worker plays the worker's part.
wk() { # wk OFFLINE FN FROM JSON JOB: a job as a cluster's worker applies it (home JOB_HOME)
  local offline=$1 fn=$2 from=$3 args=$4 job=$5
  mapfile -t WK < <(py "$HERE/mp.py" worker "$PORT" "$offline" "$fn" "$PFX" "$from" "$args" "$job" 2>&1)
}
outbox_read
JOB_HOME='{oc1}' call imkit_room_create occ '{"type":"group","id":"oc1","members":["ocm"]}' j-oc-0 1 1
check "a cluster job: no entry in the feed from its call" "$ST|$(rc XLEN "${PFX}events")" "ok|$(rc XLEN "${PFX}events")"
outbox_read
check "nothing in the feed before the worker's write" "$NOB" 0
check "its entry waits in its home's outbox" "$(rc XLEN "${PFX}ob:{oc1}")" 1
check_match "handed back: channel '+', imkit_outbox_add in the stream's slot" \
  "${LINES[*]}" "oc1 [+] ${PFX}events FCALL imkit_outbox_add 1 ${PFX}events ${PFX} "
JOB_HOME='{oc1}' wk 'occ,ocm' imkit_msg_send occ '{"room":"oc1","cid":"c1","type":"text","text":"x"}' j-oc-1
outbox_read
check "the next job hands back both, the message's marked '?' with the members" \
  "${WK[*]}" "ok ? occ,ocm ok"
check "the worker's write: room.created, then message.sent" "${OBTYPE[*]:-}" "room.created message.sent"
check "offline: the members the worker found offline" \
  "$(py "$HERE/mp.py" get "${OBDATA[1]:-}" offline)|$(py "$HERE/mp.py" get "${OBDATA[1]:-}" seq)" '["occ","ocm"]|1'
check "the home's outbox trimmed once in the feed" "$(rc XLEN "${PFX}ob:{oc1}")" 0
check "each entry recorded as moved, 24 h" \
  "$(rc --scan --pattern "${PFX}events:done:*{oc1}*" | wc -l)|$(( $(rc PTTL "$(rc --scan --pattern "${PFX}events:done:*{oc1}*" | head -1)") > 86390000 ))" "2|1"
JOB_HOME='{oc1}' wk 'ocm' imkit_msg_send occ '{"room":"oc1","cid":"c1","type":"text","text":"x"}' j-oc-1
outbox_read
check "the same job again (replayed): nothing pending, nothing written" "${WK[*]}|$NOB" "ok|0"
JOB_HOME='{oc1}' call imkit_msg_send occ '{"room":"oc1","cid":"c2","type":"text","text":"y"}' j-oc-2 1 1
JOB_HOME='{oc1}' call imkit_msg_send occ '{"room":"oc1","cid":"c3","type":"text","text":"z"}' j-oc-3 1 1
check "two jobs whose writes have not run: both wait" "$(rc XLEN "${PFX}ob:{oc1}")" 2
JOB_HOME='{oc1}' wk 'ocm' imkit_msg_send occ '{"room":"oc1","cid":"c2","type":"text","text":"y"}' j-oc-2
outbox_read
check "the first one's worker comes late (replayed): it moves both, in order" \
  "${WK[*]}|$NOB|$(py "$HERE/mp.py" get "${OBDATA[0]:-}" seq) $(py "$HERE/mp.py" get "${OBDATA[1]:-}" seq)|$(py "$HERE/mp.py" get "${OBDATA[1]:-}" offline)" \
  'ok ? occ,ocm ok|2|2 3|["ocm"]'
JOB_HOME='{oc1}' wk '' imkit_msg_send occ '{"room":"oc1","cid":"c3","type":"text","text":"z"}' j-oc-3
outbox_read
check "the second one's worker: nothing more" "${WK[*]}|$NOB" "ok|0"
JOB_HOME='{oc1}' call imkit_members_add occ '{"room":"oc1","members":["ocn"]}' j-oc-4 1 1
for ((i = 0; i < ${#LINES[@]}; i++)); do [ "${LINES[i]}" = imkit_profile_ensure ] && break; done
check "a member's profile is made in its slot, with the feed flag" "${LINES[*]:i:3}|${LINES[*]:i+6:1}" \
  "imkit_profile_ensure 1 {ocn}|1"
JOB_HOME='{oc1}' wk '' imkit_members_add occ '{"room":"oc1","members":["ocn"]}' j-oc-4
outbox_read
check "its client.created (a deeper write) goes before the call's member.joined" \
  "${WK[*]}|${OBTYPE[*]:-}" "ok + - ok + - ok|client.created member.joined"
call imkit_outbox_add '' '{"items":[]}' '' 0
check "imkit_outbox_add needs home" "$ST" "bad_request"
call imkit_msg_send occ '{"room":"oc1","cid":"c4","type":"text","text":"w"}' j-oc-5 1 0
outbox_read
check "the feed on, one Redis: written in the call, nothing handed back" "$ST|${#LINES[@]}|$NOB" "ok|4|1"

#######################################################################################
section "events_get"
OBLAST='0-0'
outbox_read
ALL="${OBID[*]:-}"
NALL=$NOB
call imkit_events_get '' '{"after":"0-0","limit":1000}'
expect ok "every event"
check "in order, each once" "$(ids events)" "$ALL"
check "an event's fields" "$(py -c 'import json,sys; print(",".join(json.loads(sys.argv[1])["events"][0]))' "$BODY")" "id,type,ts,data"
check "type and ts" "$(j events.0.type)|$(j events.0.ts)|$(j events.4.type)|$(j events.4.ts)" \
  "${OBTYPE[0]}|${OBTS[0]}|${OBTYPE[4]}|${OBTS[4]}"
same=yes
for ((i = 0; i < NOB; i++)); do
  [[ $BODY == *"{\"id\":\"${OBID[i]}\",\"type\":\"${OBTYPE[i]}\",\"ts\":${OBTS[i]},\"data\":${OBDATA[i]}}"* ]] || same=no
done
check "data embedded as stored, byte for byte" "$same" yes
call imkit_events_get '' '{}'
check "no args: from the beginning" "$(ids events)" "$ALL"
got=''
after='0-0'
pages=0
while :; do
  call imkit_events_get '' "{\"after\":\"$after\",\"limit\":3}"
  n=$(j 'len(events)')
  [ "$n" -gt 0 ] || break
  pages=$((pages + 1))
  got="$got $(ids events)"
  after=$(j "events.$((n - 1)).id")
  [ $pages -gt 100 ] && break
done
check "paging by 3 with after: every event once, in order" "$(echo $got)|$pages" "$ALL|$(((NALL + 2) / 3))"
call imkit_events_get '' "{\"after\":\"${OBID[1]}\",\"limit\":2}"
check "after is exclusive" "$(ids events)" "${OBID[2]} ${OBID[3]}"
call imkit_events_get '' "{\"after\":\"${OBID[NOB - 1]}\",\"limit\":10}"
check "after the last: none" "$BODY" '{"events":[]}'
call imkit_events_get '' '{"after":"0-0","limit":0}'
check "limit below 1: 1" "$(ids events)" "${OBID[0]}"
call imkit_events_get '' '{"after":"0-0","limit":5000}'
check "limit above 1000: clamped" "$(j 'len(events)')" "$NALL"
call imkit_events_get '' '{"after":"18446744073709551615-18446744073709551615","limit":10}'
check "after the greatest id there can be: none" "$ST|$BODY" 'ok|{"events":[]}'
for a in 'x' '12' '1-2-3' '-1-0' '99999999999999999999-0'; do
  call imkit_events_get '' "{\"after\":\"$a\",\"limit\":10}"
  check "bad after '$a'" "$ST|$BODY" "bad_request|after: an event id such as 1764115200000-0"
done
call imkit_events_get ob2 '{"limit":10}'
check "a client" "$ST|$BODY" "forbidden|only the admin API may read the events"

#######################################################################################
section "prefix"
call imkit_auth '' '{"sub":"zed"}'
PFX0=$PFX
PFX='other:'
call imkit_client_get '' '{"ids":["zed"]}'
check "keys follow the prefix" "$BODY" '{"clients":[]}'
call imkit_events_get '' '{"limit":10}'
check "so does the outbox" "$BODY" '{"events":[]}'
PFX=$PFX0

#######################################################################################
echo
echo "passed: $PASS  failed: $FAIL"
[ "$FAIL" -eq 0 ]
