/* IMKit's wire protocol (docs/PROTOCOL.md): {"id","op","data"} requests, {"id","ok",...}
 * answers and {"ev","data"} events; message frames are scanned without a JSON parser. */
#include "proto.h"
#include "scan.h"
#include "wsconn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int lg_proto_sendf(lg_client_t *c, const char *fmt, ...)
{
    char frame[LG_FRAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(frame, sizeof(frame), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(frame)) {
        return -1;
    }
    return lg_ws_send(c->ws, frame, (size_t)n);
}

static void imkit_path(const lg_client_t *c, char *out, size_t n)
{
    (void)c;
    snprintf(out, n, "/ws");
}

static int imkit_auth(lg_client_t *c, uint32_t id, const char *token)
{
    return lg_proto_sendf(c, "{\"id\":%u,\"op\":\"auth\",\"data\":{\"token\":\"%s\"}}", id, token);
}

static int imkit_request(lg_client_t *c, uint32_t id, const char *op, const char *data, size_t len)
{
    return lg_proto_sendf(c, "{\"id\":%u,\"op\":\"%s\",\"data\":%.*s}", id, op, (int)len, data);
}

static int imkit_message(lg_client_t *c, uint32_t id, int64_t key, const char *text, size_t len)
{
    return lg_proto_sendf(c,
                          "{\"id\":%u,\"op\":\"msg.send\",\"data\":{\"room\":\"%s\",\"cid\":"
                          "\"k%lld\",\"type\":\"text\",\"text\":\"%.*s\"}}",
                          id, c->room_id, (long long)key, (int)len, text);
}

/* Fills in->key and the text's fields from a message object. */
static void read_message(const char *data, size_t len, lg_in_t *in)
{
    const char *text;
    size_t text_len;
    in->kind = LG_IN_IGNORE;
    if (lg_scan_int(data, len, "\"seq\":", &in->key) &&
        lg_scan_str(data, len, "\"text\":\"", &text, &text_len)) {
        int64_t key;
        if (lg_text_parse(text, text_len, &key, &in->t_us, &in->sender)) {
            in->kind = LG_IN_MESSAGE;
        }
    }
}

/* {"ev":"<name>","data":<data>} */
static void decode_event(const char *msg, size_t len, lg_in_t *in)
{
    static const char head[] = "{\"ev\":\"";
    const char *name = msg + sizeof(head) - 1;
    const char *quote = memchr(name, '"', len - (sizeof(head) - 1));
    static const char data[] = ",\"data\":";
    if (quote == NULL || (size_t)(msg + len - quote) < sizeof(data) + 1 ||
        memcmp(quote + 1, data, sizeof(data) - 1) != 0) {
        return;
    }
    in->ev = name;
    in->ev_len = (size_t)(quote - name);
    in->body = quote + sizeof(data);
    in->body_len = (size_t)(msg + len - 1 - in->body); /* less the closing brace */
    if (in->ev_len == 7 && memcmp(name, "message", 7) == 0) {
        read_message(in->body, in->body_len, in);
    } else {
        in->kind = LG_IN_EVENT;
    }
}

/* {"id":N,"ok":true,"data":<data>} or {"id":N,"ok":false,"error":<error>} */
static void decode_answer(const char *msg, size_t len, lg_in_t *in)
{
    const char *p = msg + 6, *end = msg + len;
    in->id = (uint32_t)lg_scan_digits(&p, end);
    static const char ok[] = ",\"ok\":true,\"data\":";
    static const char bad[] = ",\"ok\":false,\"error\":";
    if ((size_t)(end - p) > sizeof(ok) && memcmp(p, ok, sizeof(ok) - 1) == 0) {
        in->ok = true;
        in->body = p + sizeof(ok) - 1;
    } else if ((size_t)(end - p) > sizeof(bad) && memcmp(p, bad, sizeof(bad) - 1) == 0) {
        in->ok = false;
        in->body = p + sizeof(bad) - 1;
    } else {
        return;
    }
    in->body_len = (size_t)(end - 1 - in->body);
    in->kind = LG_IN_ANSWER;
}

static void imkit_decode(lg_client_t *c, const char *msg, size_t len, lg_in_t *in)
{
    (void)c;
    memset(in, 0, sizeof(*in));
    if (len > 8 && memcmp(msg, "{\"ev\":\"", 7) == 0) {
        decode_event(msg, len, in);
    } else if (len > 8 && memcmp(msg, "{\"id\":", 6) == 0 && msg[6] >= '0' && msg[6] <= '9') {
        decode_answer(msg, len, in);
    }
}

const lg_proto_ops_t lg_proto_imkit = {
    .name = "imkit",
    .subprotocol = "imkit.v1",
    .needs_auth = true,
    .auth_on_open = true,
    .server_seq = true,
    .path = imkit_path,
    .auth = imkit_auth,
    .request = imkit_request,
    .message = imkit_message,
    .decode = imkit_decode,
};
