/* Socket.IO v5 over Engine.IO v4 on a plain WebSocket (no polling): "0{..}" open, "40"
 * connect with the token as auth, "42[ev,data]" events, "42<id>[..]" / "43<id>[..]"
 * requests with acks, "2" ping answered "3". The baseline server (bench/baselines/socketio)
 * answers {"ok","data"|"error"} like IMKit, so client.c treats both alike. */
#include "proto.h"
#include "scan.h"
#include "wsconn.h"

#include <stdio.h>
#include <string.h>

static void sio_path(const lg_client_t *c, char *out, size_t n)
{
    (void)c;
    snprintf(out, n, "/socket.io/?EIO=4&transport=websocket");
}

static int sio_auth(lg_client_t *c, uint32_t id, const char *token)
{
    (void)id; /* the connect packet has no id: "40" answers it */
    return lg_proto_sendf(c, "40{\"token\":\"%s\"}", token);
}

static int sio_request(lg_client_t *c, uint32_t id, const char *op, const char *data, size_t len)
{
    return lg_proto_sendf(c, "42%u[\"%s\",%.*s]", id, op, (int)len, data);
}

static int sio_message(lg_client_t *c, uint32_t id, int64_t key, const char *text, size_t len)
{
    return lg_proto_sendf(c,
                          "42%u[\"msg.send\",{\"room\":\"%s\",\"cid\":\"k%lld\",\"type\":"
                          "\"text\",\"text\":\"%.*s\"}]",
                          id, c->room_id, (long long)key, (int)len, text);
}

/* 42["<name>",<data>] */
static void decode_event(const char *msg, size_t len, lg_in_t *in)
{
    const char *name = msg + 4, *end = msg + len;
    const char *quote = memchr(name, '"', (size_t)(end - name));
    if (quote == NULL || end - quote < 4 || quote[1] != ',') {
        return;
    }
    in->ev = name;
    in->ev_len = (size_t)(quote - name);
    in->body = quote + 2;
    in->body_len = (size_t)(end - 1 - in->body); /* less the closing bracket */
    in->kind = LG_IN_EVENT;
    if (in->ev_len == 7 && memcmp(name, "message", 7) == 0) {
        const char *text;
        size_t text_len;
        int64_t key;
        in->kind = LG_IN_IGNORE;
        if (lg_scan_int(in->body, in->body_len, "\"seq\":", &in->key) &&
            lg_scan_str(in->body, in->body_len, "\"text\":\"", &text, &text_len) &&
            lg_text_parse(text, text_len, &key, &in->t_us, &in->sender)) {
            in->kind = LG_IN_MESSAGE;
        }
    }
}

/* 43<id>[{"ok":true,"data":<data>}] or 43<id>[{"ok":false,"error":<error>}] */
static void decode_ack(const char *msg, size_t len, lg_in_t *in)
{
    const char *p = msg + 2, *end = msg + len;
    in->id = (uint32_t)lg_scan_digits(&p, end);
    static const char ok[] = "[{\"ok\":true,\"data\":";
    static const char bad[] = "[{\"ok\":false,\"error\":";
    if ((size_t)(end - p) > sizeof(ok) && memcmp(p, ok, sizeof(ok) - 1) == 0) {
        in->ok = true;
        in->body = p + sizeof(ok) - 1;
    } else if ((size_t)(end - p) > sizeof(bad) && memcmp(p, bad, sizeof(bad) - 1) == 0) {
        in->body = p + sizeof(bad) - 1;
    } else {
        return;
    }
    in->body_len = (size_t)(end - 2 - in->body); /* less "}]" */
    in->kind = LG_IN_ANSWER;
}

static void sio_decode(lg_client_t *c, const char *msg, size_t len, lg_in_t *in)
{
    memset(in, 0, sizeof(*in));
    if (len == 1 && msg[0] == '2') {
        lg_proto_sendf(c, "3");
    } else if (len > 1 && msg[0] == '0') {
        in->kind = LG_IN_OPEN;
    } else if (len >= 2 && msg[0] == '4' && (msg[1] == '0' || msg[1] == '4')) {
        in->kind = LG_IN_ANSWER; /* the connect packet answers the auth, request 1 */
        in->id = 1;
        in->ok = msg[1] == '0';
        in->body = msg + 2;
        in->body_len = len - 2;
    } else if (len > 5 && memcmp(msg, "42[\"", 4) == 0) {
        decode_event(msg, len, in);
    } else if (len > 3 && memcmp(msg, "43", 2) == 0) {
        decode_ack(msg, len, in);
    }
}

const lg_proto_ops_t lg_proto_sio = {
    .name = "socketio",
    .subprotocol = NULL,
    .needs_auth = true,
    .auth_on_open = false,
    .server_seq = true,
    .path = sio_path,
    .auth = sio_auth,
    .request = sio_request,
    .message = sio_message,
    .decode = sio_decode,
};
