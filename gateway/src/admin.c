/* Admin REST API: authentication, routing, JSON bodies in, operations out, answers mapped to
 * HTTP statuses; GET /healthz, and GET /metrics through scrape.c. */
#include "admin.h"
#include "dispatch.h"
#include "imkit/b64url.h"
#include "imkit/err.h"
#include "imkit/ids.h"
#include "imkit/log.h"
#include "imkit/text.h"
#include "link.h"
#include "listen_addr.h"
#include "ops.h"
#include "scrape.h"
#include "tls.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#define BODY_MAX (64 * 1024)
#define MAX_SEGMENTS 8
#define MAX_API_KEYS 16

struct imk_admin {
    imk_gateway_t *gw;
    struct evhttp *http;
    char *keys[MAX_API_KEYS];
    size_t nkeys;
};

/* How an operation's answer becomes the HTTP answer. */
enum answer_shape {
    SHAPE_PLAIN,        /* 200 with the data */
    SHAPE_CREATED,      /* 201 with the data */
    SHAPE_ROOM_CREATED, /* 201, or 200 when "created" is false */
    SHAPE_FIRST_CLIENT, /* the first of "clients", 404 when none */
    SHAPE_TOKEN,        /* 201 with the token added */
    SHAPE_NO_CONTENT,   /* 204 */
};

/* A request waiting for its answer. */
struct admin_req {
    imk_admin_t *admin;
    struct evhttp_request *req;
    enum answer_shape shape;
    char token[48];
    bool gone; /* the connection closed: libevent freed req */
};

static int status_of(const char *code)
{
    static const struct {
        const char *code;
        int status;
    } map[] = {
        {"bad_request", 400}, {"unauthenticated", 401}, {"forbidden", 403},    {"not_found", 404},
        {"conflict", 409},    {"too_large", 413},       {"rate_limited", 429}, {"unavailable", 503},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(map[i].code, code) == 0) {
            return map[i].status;
        }
    }
    return 500;
}

static void reply_json(struct evhttp_request *req, int status, const char *body, size_t len)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", "application/json");
    struct evbuffer *out = evbuffer_new();
    if (out != NULL) {
        evbuffer_add(out, body, len);
    }
    evhttp_send_reply(req, status, NULL, status == 204 ? NULL : out);
    if (out != NULL) {
        evbuffer_free(out);
    }
}

static void reply_error(struct evhttp_request *req, const char *code, const char *message)
{
    imk_buf_t body = IMK_BUF_INIT;
    imk_buf_printf(&body, "{\"error\":{\"code\":\"%s\",\"message\":", code);
    imk_json_quote(&body, message, strlen(message));
    imk_buf_append_str(&body, "}}");
    reply_json(req, status_of(code), body.data, body.len);
    imk_buf_deinit(&body);
}

/* Reshapes a successful answer for HTTP; returns the status. */
static int shape_answer(struct admin_req *ar, const char *body, size_t len, imk_buf_t *out)
{
    if (ar->shape == SHAPE_NO_CONTENT) {
        return 204;
    }
    if (ar->shape == SHAPE_PLAIN || ar->shape == SHAPE_CREATED) {
        imk_buf_append(out, body, len);
        return ar->shape == SHAPE_PLAIN ? 200 : 201;
    }
    json_t *data = json_loadb(body, len, 0, NULL);
    int status = 200;
    if (ar->shape == SHAPE_ROOM_CREATED) {
        status = json_is_false(json_object_get(data, "created")) ? 200 : 201;
        imk_buf_append(out, body, len);
    } else if (ar->shape == SHAPE_FIRST_CLIENT) {
        json_t *first = json_array_get(json_object_get(data, "clients"), 0);
        char *text = first != NULL ? json_dumps(first, JSON_COMPACT) : NULL;
        status = text != NULL ? 200 : 404;
        imk_buf_append_str(out, text != NULL ? text
                                             : "{\"error\":{\"code\":\"not_found\","
                                               "\"message\":\"no such client\"}}");
        free(text);
    } else if (ar->shape == SHAPE_TOKEN) {
        json_object_set_new(data, "token", json_string(ar->token));
        char *text = json_dumps(data, JSON_COMPACT);
        imk_buf_append_str(out, text != NULL ? text : "{}");
        free(text);
        status = 201;
    }
    json_decref(data);
    return status;
}

static void on_answer(void *ctx, uint64_t tag, const char *status, size_t status_len,
                      const char *body, size_t body_len)
{
    (void)tag;
    struct admin_req *ar = ctx;
    if (ar->gone) {
        free(ar);
        return;
    }
    evhttp_connection_set_closecb(evhttp_request_get_connection(ar->req), NULL, NULL);
    if (status_len == 2 && memcmp(status, "ok", 2) == 0) {
        imk_buf_t out = IMK_BUF_INIT;
        int http_status = shape_answer(ar, body, body_len, &out);
        reply_json(ar->req, http_status, out.data != NULL ? out.data : "", out.len);
        imk_buf_deinit(&out);
    } else {
        char code[32], message[512];
        snprintf(code, sizeof(code), "%.*s", (int)status_len, status);
        snprintf(message, sizeof(message), "%.*s", (int)body_len, body);
        reply_error(ar->req, code, message);
    }
    OPENSSL_cleanse(ar->token, sizeof(ar->token));
    free(ar);
}

static void on_connection_closed(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    struct admin_req *ar = arg;
    ar->gone = true;
}

/* Validates data for op and sends it; the answer arrives in on_answer. */
static void run(imk_admin_t *a, struct evhttp_request *req, const char *op_name, json_t *data,
                enum answer_shape shape, const char *token)
{
    const imk_op_t *op = imk_op_find(op_name);
    imk_op_ctx_t ctx = {a->gw->cfg, true, NULL};
    imk_op_route_t route = {0};
    imk_op_error_t err;
    imk_buf_t args = IMK_BUF_INIT;
    if (op->build(&ctx, data, &args, &route, &err) != 0) {
        reply_error(req, err.code, err.message);
        imk_buf_deinit(&args);
        return;
    }
    struct admin_req *ar = calloc(1, sizeof(*ar));
    if (ar == NULL) {
        reply_error(req, "internal", "out of memory");
        imk_buf_deinit(&args);
        return;
    }
    ar->admin = a;
    ar->req = req;
    ar->shape = shape;
    snprintf(ar->token, sizeof(ar->token), "%s", token != NULL ? token : "");
    const char *from = route.acting != NULL ? route.acting : "";
    const char *partition = route.partition != NULL ? route.partition : "admin";
    imk_call_t call = {op->function, op->query, from, partition, 0, &args, NULL};
    int rc = imk_dispatch(a->gw, &call, on_answer, ar, 0);
    if (rc != 0) {
        free(ar);
        reply_error(req, rc == IMK_ENOMEM ? "internal" : "unavailable",
                    "storage unreachable; safe to retry");
    } else {
        evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_connection_closed, ar);
    }
    imk_buf_deinit(&args);
}

/* The JSON object body of a request, or NULL after answering 400. An empty body is {}. */
static json_t *read_body(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len == 0) {
        return json_object();
    }
    const char *data = (const char *)evbuffer_pullup(in, -1);
    json_t *body = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        reply_error(req, "bad_request", "body: expected a JSON object");
        return NULL;
    }
    return body;
}

static bool authorized(const imk_admin_t *a, struct evhttp_request *req)
{
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0) {
        return false;
    }
    const char *key = auth + 7;
    size_t len = strlen(key);
    bool ok = false;
    for (size_t i = 0; i < a->nkeys; i++) {
        /* Constant time over the key's bytes; lengths are not secret. */
        ok |= strlen(a->keys[i]) == len && CRYPTO_memcmp(a->keys[i], key, len) == 0;
    }
    return ok;
}

/* A new opaque token: 32 random bytes in base64url; only its SHA-256 is stored. */
static int new_token(char token[48], char hash[65])
{
    unsigned char raw[32], digest[SHA256_DIGEST_LENGTH];
    size_t len;
    if (RAND_bytes(raw, sizeof(raw)) != 1 ||
        imk_b64url_encode(raw, sizeof(raw), token, 48, &len) != 0) {
        return IMK_EIO;
    }
    SHA256((const unsigned char *)token, strlen(token), digest);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        snprintf(hash + 2 * i, 3, "%02x", digest[i]);
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

/* Splits the path into percent-decoded segments. Returns the count, or -1. */
static int split_path(const char *path, char **segs)
{
    int n = 0;
    const char *p = path;
    while (*p == '/') {
        p++;
    }
    while (*p != '\0') {
        const char *end = strchr(p, '/');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n == MAX_SEGMENTS || len == 0) {
            return -1;
        }
        char *raw = strndup(p, len);
        size_t dlen = 0;
        segs[n] = raw != NULL ? evhttp_uridecode(raw, 0, &dlen) : NULL;
        free(raw);
        if (segs[n] == NULL || strlen(segs[n]) != dlen) {
            free(segs[n]);
            return -1;
        }
        n++;
        p += len;
        if (*p == '/') {
            p++;
        }
    }
    return n;
}

static bool seg_is(char **segs, int n, int i, const char *s)
{
    return i < n && strcmp(segs[i], s) == 0;
}

/* Copies the query string's parameters into data: numbers as integers, anything else as
 * strings, so that the operation's validation names a bad one. */
static void query_into(struct evhttp_request *req, json_t *data)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq query;
    TAILQ_INIT(&query);
    if (q == NULL || evhttp_parse_query_str(q, &query) != 0) {
        return;
    }
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, &query, next)
    {
        char *end;
        long long n = strtoll(kv->value, &end, 10);
        bool integer = kv->value[0] != '\0' && *end == '\0';
        json_object_set_new(data, kv->key, integer ? json_integer(n) : json_string(kv->value));
    }
    evhttp_clear_headers(&query);
}

/* 405 with the contract's error body. */
static void reply_method_not_allowed(struct evhttp_request *req)
{
    static const char body[] =
        "{\"error\":{\"code\":\"bad_request\",\"message\":\"method not allowed\"}}";
    reply_json(req, 405, body, sizeof(body) - 1);
}

static void handle_clients(imk_admin_t *a, struct evhttp_request *req, char **segs, int n,
                           enum evhttp_cmd_type method, json_t *body)
{
    const char *id = segs[2];
    if (n == 3 && method == EVHTTP_REQ_PUT) {
        json_object_set_new(body, "id", json_string(id));
        run(a, req, "admin.client.put", body, SHAPE_PLAIN, NULL);
    } else if (n == 3 && method == EVHTTP_REQ_DELETE) {
        json_object_set_new(body, "id", json_string(id));
        run(a, req, "admin.client.delete", body, SHAPE_NO_CONTENT, NULL);
    } else if (n == 4 && seg_is(segs, n, 3, "tokens") && method == EVHTTP_REQ_DELETE) {
        json_object_set_new(body, "id", json_string(id));
        run(a, req, "admin.tokens.revoke", body, SHAPE_NO_CONTENT, NULL);
    } else if (n == 3 && method == EVHTTP_REQ_GET) {
        json_t *data = json_pack("{s:[s]}", "ids", id);
        run(a, req, "client.get", data, SHAPE_FIRST_CLIENT, NULL);
        json_decref(data);
    } else if (n == 4 && seg_is(segs, n, 3, "tokens") && method == EVHTTP_REQ_POST) {
        char token[48], hash[65];
        if (new_token(token, hash) != 0) {
            reply_error(req, "internal", "no randomness");
            return;
        }
        json_object_set_new(body, "id", json_string(id));
        json_object_set_new(body, "hash", json_string(hash));
        json_object_set_new(body, "iat", json_integer(imk_now_ms() / 1000));
        run(a, req, "admin.token.create", body, SHAPE_TOKEN, token);
        OPENSSL_cleanse(token, sizeof(token));
    } else if (n == 4 && seg_is(segs, n, 3, "rooms") && method == EVHTTP_REQ_GET) {
        json_t *data = json_pack("{s:s}", "client", id);
        query_into(req, data);
        run(a, req, "room.list", data, SHAPE_PLAIN, NULL);
        json_decref(data);
    } else if (n == 3 ||
               (n == 4 && (seg_is(segs, n, 3, "tokens") || seg_is(segs, n, 3, "rooms")))) {
        reply_method_not_allowed(req);
    } else {
        reply_error(req, "not_found", "no such endpoint");
    }
}

static void handle_rooms(imk_admin_t *a, struct evhttp_request *req, char **segs, int n,
                         enum evhttp_cmd_type method, json_t *body)
{
    if (n == 2 && method == EVHTTP_REQ_POST) {
        run(a, req, "room.create", body, SHAPE_ROOM_CREATED, NULL);
    } else if (n == 3 && method == EVHTTP_REQ_GET) {
        json_t *data = json_pack("{s:s}", "room", segs[2]);
        run(a, req, "room.get", data, SHAPE_PLAIN, NULL);
        json_decref(data);
    } else if (n == 3 && method == EVHTTP_REQ_PATCH) {
        json_object_set_new(body, "room", json_string(segs[2]));
        run(a, req, "room.update", body, SHAPE_PLAIN, NULL);
    } else if (n == 3 && method == EVHTTP_REQ_DELETE) {
        json_t *data = json_pack("{s:s}", "room", segs[2]);
        run(a, req, "admin.room.delete", data, SHAPE_NO_CONTENT, NULL);
        json_decref(data);
    } else if (n == 4 && seg_is(segs, n, 3, "members") && method == EVHTTP_REQ_POST) {
        json_object_set_new(body, "room", json_string(segs[2]));
        run(a, req, "room.members.add", body, SHAPE_PLAIN, NULL);
    } else if (n == 5 && seg_is(segs, n, 3, "members") && method == EVHTTP_REQ_DELETE) {
        json_t *data = json_pack("{s:s,s:[s]}", "room", segs[2], "members", segs[4]);
        run(a, req, "room.members.remove", data, SHAPE_NO_CONTENT, NULL);
        json_decref(data);
    } else if (n == 4 && seg_is(segs, n, 3, "messages") && method == EVHTTP_REQ_POST) {
        json_object_set_new(body, "room", json_string(segs[2]));
        run(a, req, "msg.send", body, SHAPE_CREATED, NULL);
    } else if (n == 4 && seg_is(segs, n, 3, "messages") && method == EVHTTP_REQ_GET) {
        json_t *data = json_pack("{s:s}", "room", segs[2]);
        query_into(req, data);
        run(a, req, "msg.history", data, SHAPE_PLAIN, NULL);
        json_decref(data);
    } else if (n == 2 || n == 3 ||
               (n == 4 && (seg_is(segs, n, 3, "messages") || seg_is(segs, n, 3, "members"))) ||
               (n == 5 && seg_is(segs, n, 3, "members"))) {
        reply_method_not_allowed(req);
    } else {
        reply_error(req, "not_found", "no such endpoint");
    }
}

static void on_request(struct evhttp_request *req, void *arg)
{
    imk_admin_t *a = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (path != NULL && strcmp(path, "/healthz") == 0) {
        bool ok = imk_link_healthy(a->gw->link) && !a->gw->stopping;
        const char *body = ok ? "{\"status\":\"ok\"}" : "{\"status\":\"unavailable\"}";
        reply_json(req, ok ? 200 : 503, body, strlen(body));
        return;
    }
    if (path != NULL && strcmp(path, "/metrics") == 0) {
        imk_scrape_serve(a->gw, req);
        return;
    }
    if (path == NULL || strncmp(path, "/v1/", 4) != 0) {
        reply_error(req, "not_found", "no such endpoint");
        return;
    }
    a->gw->stats.admin_requests++;
    if (!authorized(a, req)) {
        reply_error(req, "unauthenticated", "a valid API key is required");
        return;
    }
    char *segs[MAX_SEGMENTS] = {0};
    int n = split_path(path, segs);
    json_t *body = n > 0 ? read_body(req) : NULL;
    if (n <= 0) {
        reply_error(req, "not_found", "no such endpoint");
    } else if (body == NULL) {
        /* read_body answered */
    } else if (n >= 3 && seg_is(segs, n, 1, "clients")) {
        if (!imk_id_valid(segs[2], strlen(segs[2]))) {
            reply_error(req, "bad_request", "id: must be 1-64 bytes of [A-Za-z0-9_.@:-]");
        } else {
            handle_clients(a, req, segs, n, method, body);
        }
    } else if (n >= 2 && seg_is(segs, n, 1, "rooms")) {
        handle_rooms(a, req, segs, n, method, body);
    } else if (n == 2 && seg_is(segs, n, 1, "events")) {
        if (method == EVHTTP_REQ_GET) {
            json_t *data = json_object();
            query_into(req, data);
            run(a, req, "admin.events.get", data, SHAPE_PLAIN, NULL);
            json_decref(data);
        } else {
            reply_method_not_allowed(req);
        }
    } else {
        reply_error(req, "not_found", "no such endpoint");
    }
    json_decref(body);
    for (int i = 0; i < MAX_SEGMENTS; i++) {
        free(segs[i]);
    }
}

static int parse_keys(imk_admin_t *a, const char *spec)
{
    char *copy = strdup(spec);
    if (copy == NULL) {
        return IMK_ENOMEM;
    }
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL && a->nkeys < MAX_API_KEYS;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') {
            tok++;
        }
        if (*tok != '\0') {
            a->keys[a->nkeys++] = strdup(tok);
        }
    }
    OPENSSL_cleanse(copy, strlen(copy));
    free(copy);
    return 0;
}

imk_admin_t *imk_admin_create(imk_gateway_t *gw)
{
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[256];
    int port;
    if (imk_listen_addr_parse(gw->cfg->gateway_admin_listen, &addr, &addrlen, host, sizeof(host),
                              &port) != 0) {
        IMK_ERROR("listen", "listener=admin addr=%s error=\"bad address\"",
                  gw->cfg->gateway_admin_listen);
        return NULL;
    }
    imk_admin_t *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return NULL;
    }
    a->gw = gw;
    a->http = evhttp_new(gw->base);
    if (a->http == NULL || parse_keys(a, gw->cfg->admin_api_keys) != 0 ||
        evhttp_bind_socket_with_handle(a->http, host, (ev_uint16_t)port) == NULL) {
        IMK_ERROR("listen", "listener=admin addr=%s error=\"cannot bind\"",
                  gw->cfg->gateway_admin_listen);
        imk_admin_destroy(a);
        return NULL;
    }
    if (gw->tls != NULL) {
        evhttp_set_bevcb(a->http, imk_tls_evhttp_bev, gw->tls);
    }
    evhttp_set_max_body_size(a->http, BODY_MAX);
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(a->http, on_request, a);
    if (a->nkeys == 0) {
        IMK_WARN("admin_no_keys", "note=\"admin.api_keys is empty: every /v1 request gets 401\"");
    }
    IMK_INFO("listen", "listener=admin addr=%s", gw->cfg->gateway_admin_listen);
    return a;
}

void imk_admin_destroy(imk_admin_t *a)
{
    if (a == NULL) {
        return;
    }
    if (a->http != NULL) {
        evhttp_free(a->http);
    }
    for (size_t i = 0; i < a->nkeys; i++) {
        OPENSSL_cleanse(a->keys[i], strlen(a->keys[i]));
        free(a->keys[i]);
    }
    free(a);
}
