/* The client protocol on one connection: frame parsing, `auth`, `ping`, and every other
 * operation through ops.c and dispatch.c; answers and events written back as JSON text. */
#include "session.h"
#include "admission.h"
#include "dispatch.h"
#include "fanout.h"
#include "imkit/err.h"
#include "imkit/ids.h"
#include "imkit/job.h"
#include "imkit/keys.h"
#include "imkit/log.h"
#include "imkit/text.h"
#include "json_arena.h"
#include "link.h"
#include "ops.h"
#include "pending.h"
#include "ws.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#define NO_ID (-1) /* a request whose id could not be read: answered with "id": null */
#define TYPING_INTERVAL_MS 1000
#define ABUSE_WINDOW_MS 10000
#define ANSWER_STORAGE 512 /* the stack an answer frame is built in, past which it allocates */

static void send_error(imk_session_t *s, int64_t id, const char *code, const char *message)
{
    imk_stats_end(&s->gw->stats, &s->req, code, strlen(code));
    if (id == 0) {
        return; /* a request without id gets no answer */
    }
    imk_buf_t out = IMK_BUF_INIT;
    if (id == NO_ID) {
        imk_buf_append_str(&out, "{\"id\":null");
    } else {
        imk_buf_printf(&out, "{\"id\":%lld", (long long)id);
    }
    imk_buf_printf(&out, ",\"ok\":false,\"error\":{\"code\":\"%s\",\"message\":", code);
    imk_json_quote(&out, message, strlen(message));
    imk_buf_append_str(&out, "}}");
    imk_session_send(s, out.data, out.len);
    imk_buf_deinit(&out);
}

static void send_ok(imk_session_t *s, int64_t id, const char *data, size_t len)
{
    imk_stats_end(&s->gw->stats, &s->req, "ok", 2);
    if (id <= 0) {
        return;
    }
    char storage[ANSWER_STORAGE];
    imk_buf_t out;
    imk_buf_init_on(&out, storage, sizeof(storage));
    imk_buf_printf(&out, "{\"id\":%lld,\"ok\":true,\"data\":", (long long)id);
    imk_buf_append(&out, data, len);
    imk_buf_append(&out, "}", 1);
    imk_session_send(s, out.data, out.len);
    imk_buf_deinit(&out);
}

/* The answer of an operation: status "ok" with data, or an error code with a message. */
static void on_answer(void *ctx, uint64_t tag, const char *status, size_t status_len,
                      const char *body, size_t body_len)
{
    imk_session_t *s = ctx;
    s->waiting--;
    if (status_len == 2 && memcmp(status, "ok", 2) == 0) {
        send_ok(s, (int64_t)tag, body, body_len);
        return;
    }
    char code[32], message[512];
    snprintf(code, sizeof(code), "%.*s", (int)status_len, status);
    snprintf(message, sizeof(message), "%.*s", (int)body_len, body);
    send_error(s, (int64_t)tag, code, message);
}

static void answer_dispatch_failure(imk_session_t *s, int64_t id, int rc)
{
    send_error(s, id, rc == IMK_ENOMEM ? "internal" : "unavailable",
               rc == IMK_ENOMEM ? "out of memory" : "storage unreachable; safe to retry");
}

/* Validates an operation's data into its arguments; answers the failure itself. Returns 0
 * or -1. */
static int build_op(imk_session_t *s, int64_t id, const imk_op_t *op, json_t *data, imk_buf_t *args,
                    imk_op_route_t *route)
{
    imk_op_ctx_t ctx = {s->gw->cfg, false, s->client};
    imk_op_error_t err;
    if (op->build(&ctx, data, args, route, &err) != 0) {
        send_error(s, id, err.code, err.message);
        return -1;
    }
    return 0;
}

/* Sends built arguments on their way; the answer comes to on_answer. */
static void dispatch_op(imk_session_t *s, int64_t id, const imk_op_t *op, const imk_buf_t *args,
                        const imk_op_route_t *route)
{
    imk_call_t call = {op->function, op->query, s->client, route->partition, s->id, args, &s->req};
    int rc = imk_dispatch(s->gw, &call, on_answer, s, (uint64_t)(id > 0 ? id : 0));
    if (rc == 0) {
        s->waiting++;
    } else {
        answer_dispatch_failure(s, id, rc);
    }
}

static void run_op(imk_session_t *s, int64_t id, const imk_op_t *op, json_t *data)
{
    char storage[IMK_OP_ARGS_STORAGE];
    imk_buf_t args;
    imk_buf_init_on(&args, storage, sizeof(storage));
    imk_op_route_t route = {0};
    if (build_op(s, id, op, data, &args, &route) == 0) {
        dispatch_op(s, id, op, &args, &route);
    }
    imk_buf_deinit(&args);
}

/* On a Redis Cluster the set of clients this gateway counts, gwc:<gateway>, is another
 * slot than the client's: the gateway keeps it, adding the client with its first local
 * session (before the count goes up) and removing it with its last (after the count went
 * down), on the set's one connection, so that the set always holds every client it counts
 * for imkit_presence_drop after this gateway dies. */
static void track_counted(imk_session_t *s, int delta)
{
    size_t local = imk_fanout_client_sessions(s->gw->fanout, s->client);
    if (s->gw->cfg->redis_cluster[0] == '\0' || (delta > 0 ? local != 1 : local != 0)) {
        return;
    }
    char set[IMK_KEY_MAX];
    imk_key_gateway_clients(set, sizeof(set), s->gw->cfg->redis_prefix, s->gw->id);
    const char *argv[] = {delta > 0 ? "SADD" : "SREM", set, s->client};
    size_t lens[] = {4, strlen(set), strlen(s->client)};
    imk_link_command(s->gw->link, set, NULL, NULL, 3, argv, lens);
}

/* Presence: the function counts this gateway's connections of the client and publishes a
 * presence event when the client comes online or goes offline anywhere. Called after the
 * session joined or left its client's local group. */
static void presence_change(imk_session_t *s, int delta)
{
    bool cluster = s->gw->cfg->redis_cluster[0] != '\0';
    if (delta > 0) {
        track_counted(s, delta);
    }
    imk_buf_t args = IMK_BUF_INIT;
    imk_mp_t mp;
    imk_mp_init(&mp, &args);
    imk_mp_map(&mp, 3);
    imk_mp_cstr(&mp, "client");
    imk_mp_cstr(&mp, s->client);
    imk_mp_cstr(&mp, "gw");
    imk_mp_cstr(&mp, s->gw->id);
    imk_mp_cstr(&mp, "delta");
    imk_mp_int(&mp, delta);
    imk_link_fcall_t call = {"imkit_presence_set", false, s->client, "", args.data, args.len,
                             cluster ? "1" : "0"};
    if (mp.err == 0) {
        imk_link_fcall(s->gw->link, &call, NULL, NULL);
    }
    imk_buf_deinit(&args);
    if (delta < 0) {
        track_counted(s, delta);
    }
}

/* Looks a session up by id: callbacks that outlive a request hold ids, not pointers. */
static imk_session_t *session_by_id(imk_gateway_t *gw, uint64_t id)
{
    return imk_map_get_u64(gw->sessions, id);
}

static void on_token_expired(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    imk_session_t *s = arg;
    imk_session_close(s, 4401, s->authenticated ? "token expired" : "no auth in time");
}

/* Closes the session 4401 in ms milliseconds, when its token expires. */
static void arm_expiry(imk_session_t *s, int64_t ms)
{
    struct timeval tv = {ms > 0 ? ms / 1000 : 0, ms > 0 ? (ms % 1000) * 1000 : 0};
    evtimer_add(s->deadline, &tv);
}

struct expiry_ref {
    imk_gateway_t *gw;
    uint64_t session;
};

static void on_token_ttl(struct redisReply *reply, void *arg)
{
    struct expiry_ref *ref = arg;
    imk_session_t *s = imk_map_get_u64(ref->gw->sessions, ref->session);
    /* -2: the key expired since the auth read it; -1 (no expiry) is never written */
    if (s != NULL && reply != NULL && reply->type == REDIS_REPLY_INTEGER &&
        (reply->integer > 0 || reply->integer == -2)) {
        arm_expiry(s, reply->integer);
    }
    free(ref);
}

/* An opaque token's lifetime is its key's: read it, so the session ends with the token. */
static void watch_opaque_expiry(imk_session_t *s)
{
    struct expiry_ref *ref = malloc(sizeof(*ref));
    if (ref == NULL) {
        return;
    }
    ref->gw = s->gw;
    ref->session = s->id;
    char key[IMK_KEY_MAX];
    imk_key_token(key, sizeof(key), s->gw->cfg->redis_prefix, s->token_hash);
    const char *argv[] = {"PTTL", key};
    size_t lens[] = {4, strlen(key)};
    if (imk_link_command(s->gw->link, key, on_token_ttl, ref, 2, argv, lens) != 0) {
        free(ref);
    }
}

/* What the last step of a successful auth needs once the client's rooms are read. */
struct auth_done {
    imk_gateway_t *gw;
    uint64_t session;
    int64_t request;
    char *client_json;
};

static void on_rooms_loaded(struct redisReply *reply, void *arg)
{
    struct auth_done *done = arg;
    imk_session_t *s = session_by_id(done->gw, done->session);
    if (s != NULL) {
        for (size_t i = 0; reply != NULL && reply->type == REDIS_REPLY_ARRAY && i < reply->elements;
             i++) {
            imk_fanout_join(s->gw->fanout, s, reply->element[i]->str, reply->element[i]->len);
        }
        imk_buf_t data = IMK_BUF_INIT;
        imk_buf_printf(&data, "{\"client\":%s,\"session\":\"%s.%llu\",\"server_time\":%lld}",
                       done->client_json, s->gw->id, (unsigned long long)s->id,
                       (long long)imk_now_ms());
        send_ok(s, done->request, data.data, data.len);
        imk_buf_deinit(&data);
    }
    free(done->client_json);
    free(done);
}

/* The client exists and its token is good: become that client, receive its events, count it
 * online, then answer with its profile once its rooms are subscribed. */
static void become_client(imk_session_t *s, int64_t request, const char *body, size_t len,
                          int64_t token_exp_s)
{
    json_t *client = json_loadb(body, len, 0, NULL);
    const char *id = json_string_value(json_object_get(client, "id"));
    struct auth_done *done = calloc(1, sizeof(*done));
    if (id == NULL || done == NULL || (done->client_json = strndup(body, len)) == NULL) {
        free(done);
        json_decref(client);
        send_error(s, request, "internal", "bad auth answer");
        return;
    }
    snprintf(s->client, sizeof(s->client), "%s", id);
    json_decref(client);
    s->authenticated = true;
    imk_fanout_add_client(s->gw->fanout, s);
    presence_change(s, 1);
    IMK_INFO("auth", "session=%llu client=%s", (unsigned long long)s->id, s->client);

    evtimer_del(s->deadline);
    if (token_exp_s > 0) {
        arm_expiry(s, token_exp_s * 1000 - imk_now_ms());
    } else if (s->token_hash[0] != '\0') {
        watch_opaque_expiry(s);
    }

    done->gw = s->gw;
    done->session = s->id;
    done->request = request;
    char key[IMK_KEY_MAX];
    imk_key_client_rooms(key, sizeof(key), s->gw->cfg->redis_prefix, s->client);
    const char *argv[] = {"ZRANGE", key, "0", "-1"};
    size_t lens[] = {6, strlen(key), 1, 2};
    if (imk_link_command(s->gw->link, key, on_rooms_loaded, done, 4, argv, lens) != 0) {
        on_rooms_loaded(NULL, done);
    }
}

static void auth_failed(imk_session_t *s, int64_t id, const char *code, const char *message)
{
    send_error(s, id, code, message);
    if (strcmp(code, "unauthenticated") == 0 &&
        ++s->auth_failures >= s->gw->cfg->limits_auth_failures) {
        imk_session_close(s, 4401, "too many failed auth attempts");
    }
}

/* An auth in two steps: first imkit_auth_check, a read (FCALL_RO) that authenticates a
 * returning client whose token changes nothing; only when it answers `write_needed` (a new
 * client, a new name or avatar, a deleted one) does the auth go as an imkit_auth job. What
 * the second step needs is kept here meanwhile. */
struct imk_auth_step {
    imk_buf_t args;      /* the functions' arguments (auth_args) */
    imk_stats_req_t req; /* the auth request, counted once when finally answered */
    char from[IMK_ID_MAX + 1];
};

static void auth_step_free(imk_session_t *s)
{
    if (s->auth != NULL) {
        imk_buf_deinit(&s->auth->args);
        free(s->auth);
        s->auth = NULL;
    }
}

static bool status_is(const char *status, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(status, want, len) == 0;
}

/* tag packs the JWT's expiry (high 32 bits, seconds) and the request id (low 32 bits). */
static void on_auth_answer(void *ctx, uint64_t tag, const char *status, size_t status_len,
                           const char *body, size_t body_len)
{
    imk_session_t *s = ctx;
    s->waiting--;
    s->auth_in_flight = false;
    if (s->auth != NULL) { /* answered by the check: count the request here */
        imk_stats_end(&s->gw->stats, &s->auth->req, status, status_len);
        auth_step_free(s);
    }
    int64_t exp_s = (int64_t)(tag >> 32);
    int64_t request = (int64_t)(tag & 0xffffffffu);
    if (status_is(status, status_len, "ok")) {
        become_client(s, request, body, body_len, exp_s);
        return;
    }
    char code[32], message[256];
    snprintf(code, sizeof(code), "%.*s", (int)status_len, status);
    snprintf(message, sizeof(message), "%.*s", (int)body_len, body);
    auth_failed(s, request, code, message);
}

/* The second step: the auth as a job, counted by the pending table. */
static void send_auth_job(imk_session_t *s, uint64_t tag)
{
    struct imk_auth_step *a = s->auth;
    imk_call_t call = {"imkit_auth", false, a->from, a->from, s->id, &a->args, &a->req};
    s->auth = NULL; /* the job's answer is final */
    int rc = imk_dispatch(s->gw, &call, on_auth_answer, s, tag);
    if (rc == 0) {
        s->waiting++;
    } else {
        s->auth_in_flight = false;
        s->req = a->req; /* counted by the answer */
        answer_dispatch_failure(s, (int64_t)(tag & 0xffffffffu), rc);
    }
    imk_buf_deinit(&a->args);
    free(a);
}

static void on_auth_checked(void *ctx, uint64_t tag, const char *status, size_t status_len,
                            const char *body, size_t body_len)
{
    imk_session_t *s = ctx;
    /* write_needed, or anything but a verdict on the token (a library without the check,
     * Redis busy): the job decides. */
    if (status_is(status, status_len, "ok") || status_is(status, status_len, "unauthenticated") ||
        status_is(status, status_len, "bad_request")) {
        on_auth_answer(ctx, tag, status, status_len, body, body_len);
        return;
    }
    s->waiting--;
    send_auth_job(s, tag);
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)data, len, digest);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
    }
}

/* The functions' arguments of an auth: the client, when the token was issued (iat < 0:
 * unknown), and the JWT's name and avatar (NULL: none). Returns 0, or -1 out of memory. */
static int auth_args(imk_buf_t *args, const char *sub, int64_t iat, const char *name,
                     const char *avatar)
{
    imk_mp_t mp;
    imk_mp_init(&mp, args);
    imk_mp_map(&mp, 1 + (iat >= 0) + (name != NULL) + (avatar != NULL));
    imk_mp_cstr(&mp, "sub");
    imk_mp_cstr(&mp, sub);
    if (iat >= 0) {
        imk_mp_cstr(&mp, "iat");
        imk_mp_int(&mp, iat);
    }
    if (name != NULL) {
        imk_mp_cstr(&mp, "name");
        imk_mp_cstr(&mp, name);
    }
    if (avatar != NULL) {
        imk_mp_cstr(&mp, "avatar");
        imk_mp_cstr(&mp, avatar);
    }
    return mp.err == 0 ? 0 : -1;
}

/* Holds the auth request's stats in a new step (s->auth) until its final answer. Returns
 * it, or NULL (out of memory: nothing changed). */
static struct imk_auth_step *begin_auth_step(imk_session_t *s)
{
    struct imk_auth_step *a = calloc(1, sizeof(*a));
    if (a != NULL) {
        a->req = s->req;
        s->req.op = IMK_STATS_OP_NONE;
        s->auth = a;
        s->auth_in_flight = true;
    }
    return a;
}

/* Ends s->auth's step unanswered by Redis: the request is counted by the failure answered. */
static void abandon_auth_step(imk_session_t *s, int64_t id, int rc)
{
    s->req = s->auth->req;
    auth_step_free(s);
    s->auth_in_flight = false;
    answer_dispatch_failure(s, id, rc);
}

/* Runs the auth of a verified identity in s->auth's step: the check first
 * (imkit_auth_check), then maybe the job. tag as on_auth_answer's (exp_s 0: an opaque
 * token). */
static void check_auth(imk_session_t *s, uint64_t tag, const char *sub, int64_t iat,
                       const char *name, const char *avatar)
{
    struct imk_auth_step *a = s->auth;
    snprintf(a->from, sizeof(a->from), "%s", sub);
    imk_call_t check = {"imkit_auth_check", true, a->from, NULL, s->id, &a->args, NULL};
    int rc = auth_args(&a->args, sub, iat, name, avatar) != 0
                 ? IMK_ENOMEM
                 : imk_dispatch(s->gw, &check, on_auth_checked, s, tag);
    if (rc == 0) {
        s->waiting++;
    } else {
        abandon_auth_step(s, (int64_t)(tag & 0xffffffffu), rc);
    }
}

static const char unknown_token[] = "unknown or expired token";

/* "<client id> <iat>", an opaque token's key's value: 0, or -1 when it is not that. */
static int parse_token_value(const char *v, size_t len, char sub[IMK_ID_MAX + 1], int64_t *iat)
{
    const char *space = memchr(v, ' ', len);
    if (space == NULL || !imk_id_valid(v, (size_t)(space - v)) ||
        imk_parse_decimal(space + 1, len - (size_t)(space - v) - 1, 0, INT64_MAX, iat) != 0) {
        return -1;
    }
    memcpy(sub, v, (size_t)(space - v));
    sub[space - v] = '\0';
    return 0;
}

/* The opaque token's key, read: "ok" with its value, or why not. tag: the request id. */
static void on_token_found(void *ctx, uint64_t tag, const char *status, size_t status_len,
                           const char *body, size_t body_len)
{
    imk_session_t *s = ctx;
    char sub[IMK_ID_MAX + 1];
    int64_t iat;
    if (!status_is(status, status_len, "ok")) {
        on_auth_answer(s, tag, status, status_len, body, body_len);
    } else if (parse_token_value(body, body_len, sub, &iat) != 0) {
        on_auth_answer(s, tag, "unauthenticated", 15, unknown_token, sizeof(unknown_token) - 1);
    } else {
        s->waiting--;
        check_auth(s, tag, sub, iat, NULL, NULL);
    }
}

/* The callback argument of the token key's GET: its pending request. */
struct token_read {
    imk_gateway_t *gw;
    uint64_t req;
};

static void on_token_read(struct redisReply *reply, void *arg)
{
    struct token_read *t = arg;
    static const char gone[] = "storage unreachable; safe to retry";
    if (reply != NULL && reply->type == REDIS_REPLY_STRING) {
        imk_pending_answer(t->gw->pending, t->req, "ok", 2, reply->str, reply->len);
    } else if (reply != NULL && reply->type == REDIS_REPLY_NIL) {
        imk_pending_answer(t->gw->pending, t->req, "unauthenticated", 15, unknown_token,
                           sizeof(unknown_token) - 1);
    } else {
        imk_pending_answer(t->gw->pending, t->req, "unavailable", 11, gone, sizeof(gone) - 1);
    }
    free(t);
}

/* Reads an opaque token's key, in its own slot, as a pending request (answered
 * `unavailable` past gateway.request_timeout_ms); the auth goes on in on_token_found. The
 * step (s->auth) is begun. */
static void find_opaque_token(imk_session_t *s, int64_t id, const char *token, size_t len)
{
    uint64_t tag = (uint64_t)(id > 0 ? id : 0) & 0xffffffffu;
    struct token_read *t = malloc(sizeof(*t));
    uint64_t req = t != NULL ? imk_pending_add(s->gw->pending, on_token_found, s, tag) : 0;
    int rc = IMK_ENOMEM;
    if (req != 0) {
        *t = (struct token_read){s->gw, req};
        sha256_hex(token, len, s->token_hash);
        char key[IMK_KEY_MAX];
        imk_key_token(key, sizeof(key), s->gw->cfg->redis_prefix, s->token_hash);
        const char *argv[] = {"GET", key};
        size_t lens[] = {3, strlen(key)};
        rc = imk_link_command(s->gw->link, key, on_token_read, t, 2, argv, lens);
    }
    if (rc == 0) {
        s->waiting++;
        return;
    }
    if (req != 0) {
        imk_pending_forget_req(s->gw->pending, req);
    }
    free(t);
    abandon_auth_step(s, id, rc);
}

/* A JWT is verified here, in memory; an opaque token (no dot) is looked up in Redis. */
static void do_auth(imk_session_t *s, int64_t id, json_t *data)
{
    json_t *token = data != NULL ? json_object_get(data, "token") : NULL;
    if (s->auth_in_flight) {
        send_error(s, id, "bad_request", "auth already in progress");
        return;
    }
    if (!json_is_string(token) || json_string_length(token) == 0 ||
        json_string_length(token) > 8192) {
        auth_failed(s, id, "bad_request", "token: required, a string of at most 8192 bytes");
        return;
    }
    const char *text = json_string_value(token);
    size_t len = json_string_length(token);
    if (memchr(text, '.', len) == NULL) {
        if (begin_auth_step(s) == NULL) {
            send_error(s, id, "internal", "out of memory");
            return;
        }
        find_opaque_token(s, id, text, len);
        return;
    }
    imk_jwt_claims_t claims;
    int rc = imk_jwt_verify(s->gw->jwt, text, len, imk_now_ms() / 1000, &claims);
    if (rc != 0) {
        auth_failed(s, id, "unauthenticated", imk_jwt_strerror(rc));
        return;
    }
    if (begin_auth_step(s) == NULL) {
        send_error(s, id, "internal", "out of memory");
    } else {
        uint64_t tag = ((uint64_t)claims.exp << 32) | ((uint64_t)(id > 0 ? id : 0) & 0xffffffffu);
        check_auth(s, tag, claims.sub, claims.iat, claims.name, claims.avatar);
    }
    imk_jwt_claims_deinit(&claims);
}

/* Reads the envelope {id, op, data}; answers malformed frames itself. Returns 0 or -1. */
static int parse_frame(imk_session_t *s, json_t *frame, int64_t *id, const char **op, json_t **data)
{
    if (!json_is_object(frame)) {
        send_error(s, NO_ID, "bad_request", "malformed frame: expected a JSON object");
        return -1;
    }
    json_t *idv = json_object_get(frame, "id");
    *id = 0;
    if (idv != NULL && (!json_is_integer(idv) || json_integer_value(idv) <= 0 ||
                        json_integer_value(idv) > 0xffffffffLL)) {
        send_error(s, NO_ID, "bad_request", "id: must be a positive integer below 2^32");
        return -1;
    }
    if (idv != NULL) {
        *id = json_integer_value(idv);
    }
    *op = json_string_value(json_object_get(frame, "op"));
    if (*op == NULL) {
        send_error(s, *id, "bad_request", "op: required, a string");
        return -1;
    }
    *data = json_object_get(frame, "data");
    if (json_is_null(*data)) {
        *data = NULL;
    }
    if (*data != NULL && !json_is_object(*data)) {
        send_error(s, *id, "bad_request", "data: must be an object");
        return -1;
    }
    return 0;
}

/* The answer of the room.get that stands in for a typing by a non-member. */
static void on_typing_checked(void *ctx, uint64_t tag, const char *status, size_t status_len,
                              const char *body, size_t body_len)
{
    if (status_len == 2 && memcmp(status, "ok", 2) == 0) {
        imk_session_t *s = ctx;
        s->waiting--;
        send_ok(s, (int64_t)tag, "{}", 2);
    } else {
        on_answer(ctx, tag, status, status_len, body, body_len);
    }
}

/* typing: not stored, not a job. Membership is known locally (the session receives the
 * room's events only as a member), so the event is published straight to the room channel,
 * skipping the typer's own sessions, at most once a second per session. */
static void do_typing(imk_session_t *s, int64_t id, json_t *data)
{
    json_t *room = data != NULL ? json_object_get(data, "room") : NULL;
    if (!json_is_string(room) || !imk_id_valid(json_string_value(room), json_string_length(room))) {
        send_error(s, id, "bad_request", "room: must be 1-64 bytes of [A-Za-z0-9_.@:-]");
        return;
    }
    if (s->rooms == NULL ||
        imk_map_get(s->rooms, json_string_value(room), json_string_length(room)) == NULL) {
        /* Not a member as far as this gateway knows: room.get tells forbidden from
         * not_found (and a member whose room.joined is still on its way gets {}). */
        imk_buf_t args = IMK_BUF_INIT;
        imk_op_route_t route = {0};
        const imk_op_t *get = imk_op_find("room.get");
        if (id != 0 && build_op(s, id, get, data, &args, &route) == 0) {
            imk_call_t call = {get->function, true,  s->client, route.partition,
                               s->id,         &args, &s->req};
            int rc = imk_dispatch(s->gw, &call, on_typing_checked, s, (uint64_t)id);
            if (rc == 0) {
                s->waiting++;
            } else {
                answer_dispatch_failure(s, id, rc);
            }
        }
        imk_buf_deinit(&args);
        return;
    }
    int64_t now = imk_now_ms();
    if (now - s->typing_at >= TYPING_INTERVAL_MS) {
        s->typing_at = now;
        char channel[IMK_KEY_MAX];
        imk_channel_room(channel, sizeof(channel), s->gw->cfg->redis_prefix,
                         json_string_value(room));
        imk_buf_t ev = IMK_BUF_INIT;
        imk_buf_printf(&ev,
                       "!skip %s\n{\"ev\":\"typing\",\"data\":{\"room\":\"%s\",\"client\":\"%s\"}}",
                       s->client, json_string_value(room), s->client);
        imk_link_publish(s->gw->link, channel, strlen(channel), ev.data, ev.len);
        imk_buf_deinit(&ev);
    }
    send_ok(s, id, "{}", 2);
}

/* presence.watch: the watched set is this session's (replaced by each call); the answer is
 * the watched clients' current presence. */
static void do_presence_watch(imk_session_t *s, int64_t id, const imk_op_t *op, json_t *data)
{
    imk_buf_t args = IMK_BUF_INIT;
    imk_op_route_t route = {0};
    if (build_op(s, id, op, data, &args, &route) != 0) {
        /* answered */
    } else if (imk_fanout_watch(s->gw->fanout, s, json_object_get(data, "ids")) != 0) {
        send_error(s, id, "internal", "out of memory");
    } else {
        dispatch_op(s, id, op, &args, &route);
    }
    imk_buf_deinit(&args);
}

/* Token bucket: limits.rate requests a second, bursts of limits.burst. A client refused
 * limits.rate_abuse times within ABUSE_WINDOW_MS is closed 4429, however it paces itself.
 * Returns whether to serve. */
static bool within_rate(imk_session_t *s)
{
    const imk_config_t *cfg = s->gw->cfg;
    int64_t now = imk_now_ms();
    s->tokens += (double)(now - s->tokens_at) * cfg->limits_rate / 1000.0;
    if (s->tokens > cfg->limits_burst) {
        s->tokens = cfg->limits_burst;
    }
    s->tokens_at = now;
    if (s->tokens >= 1.0) {
        s->tokens -= 1.0;
        return true;
    }
    if (now - s->refused_since > ABUSE_WINDOW_MS) {
        s->refused_since = now;
        s->refused = 0;
    }
    if (++s->refused >= cfg->limits_rate_abuse) {
        imk_session_close(s, 4429, "rate limit abuse");
    }
    return false;
}

static void handle_text(imk_session_t *s, const char *text, size_t len)
{
    imk_stats_begin(&s->req);
    if (!within_rate(s)) {
        s->gw->stats.rate_limited++;
        json_t *frame = json_loadb(text, len, 0, NULL);
        imk_stats_name(&s->req, json_string_value(json_object_get(frame, "op")));
        json_t *idv = json_object_get(frame, "id");
        int64_t id = json_is_integer(idv) && json_integer_value(idv) > 0 ? json_integer_value(idv)
                     : idv == NULL                                       ? 0
                                                                         : NO_ID;
        send_error(s, id, "rate_limited", "too many requests; slow down");
        json_decref(frame);
        return;
    }
    json_t *frame = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    int64_t id;
    const char *op;
    json_t *data;
    if (parse_frame(s, frame, &id, &op, &data) != 0) {
        json_decref(frame);
        return;
    }
    imk_stats_name(&s->req, op);
    const imk_op_t *spec = strncmp(op, "admin.", 6) != 0 ? imk_op_find(op) : NULL;
    if (strcmp(op, "auth") == 0) {
        if (s->authenticated) {
            send_error(s, id, "bad_request", "already authenticated");
        } else {
            do_auth(s, id, data);
        }
    } else if (!s->authenticated) {
        send_error(s, id, "unauthenticated", "authenticate first with auth");
    } else if (strcmp(op, "typing") == 0) {
        do_typing(s, id, data);
    } else if (strcmp(op, "presence.watch") == 0) {
        do_presence_watch(s, id, spec, data);
    } else if (strcmp(op, "ping") == 0) {
        char ts[48];
        int n = snprintf(ts, sizeof(ts), "{\"ts\":%lld}", (long long)imk_now_ms());
        send_ok(s, id, ts, (size_t)n);
    } else if (spec != NULL) {
        run_op(s, id, spec, data);
    } else {
        char message[128];
        snprintf(message, sizeof(message), "op: unknown operation '%.64s'", op);
        send_error(s, id, "bad_request", message);
    }
    json_decref(frame);
    /* Neither answered nor waiting for an answer (a typing without id): done now. */
    imk_stats_end(&s->gw->stats, &s->req, "ok", 2);
}

/* A client's frame: its JSON lives in the arena only while it is handled (json_arena.h). */
static void on_text(void *arg, const char *text, size_t len)
{
    imk_json_arena_open();
    handle_text(arg, text, len);
    imk_json_arena_close();
}

static void session_destroy(imk_session_t *s)
{
    imk_map_remove_u64(s->gw->sessions, s->id);
    imk_admission_leave(s->gw->admission, s->peer);
    if (s->waiting > 0) {
        imk_pending_forget(s->gw->pending, s);
    }
    imk_fanout_remove_session(s->gw->fanout, s);
    if (s->authenticated) {
        presence_change(s, -1);
    }
    auth_step_free(s);
    event_free(s->deadline);
    imk_map_destroy(s->rooms);
    imk_map_destroy(s->watching);
    imk_ws_destroy(s->ws);
    free(s);
}

static void on_closed(void *arg)
{
    session_destroy(arg);
}

imk_session_t *imk_session_create(imk_gateway_t *gw, struct bufferevent *bev, const char *peer)
{
    static const imk_ws_callbacks_t callbacks = {on_text, on_closed};
    imk_session_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->gw = gw;
    s->id = ++gw->next_session_id;
    snprintf(s->peer, sizeof(s->peer), "%s", peer);
    s->deadline = evtimer_new(gw->base, on_token_expired, s);
    s->tokens = gw->cfg->limits_burst;
    s->tokens_at = imk_now_ms();
    /* rooms and watching are created by fanout.c when first needed: an idle session holds
     * neither. */
    if (s->deadline == NULL || imk_map_put_u64(gw->sessions, s->id, s) != 0) {
        goto fail;
    }
    const imk_ws_limits_t limits = {
        (size_t)gw->cfg->limits_ws_message, (size_t)gw->cfg->limits_slow_reader_bytes,
        gw->cfg->limits_ping_interval_ms,   gw->cfg->limits_ping_misses,
        gw->cfg->limits_message_timeout_ms,
    };
    s->ws = imk_ws_create(bev, &limits, &callbacks, s);
    if (s->ws == NULL) {
        imk_map_remove_u64(gw->sessions, s->id);
        goto fail;
    }
    int ms = gw->cfg->limits_auth_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(s->deadline, &tv);
    return s;
fail:
    if (s->deadline != NULL) {
        event_free(s->deadline);
    }
    imk_map_destroy(s->rooms);
    imk_map_destroy(s->watching);
    free(s);
    return NULL;
}

void imk_session_send(imk_session_t *s, const char *data, size_t len)
{
    imk_ws_send_text(s->ws, data, len);
}

void imk_session_send_shared(imk_session_t *s, struct imk_ws_shared *m)
{
    imk_ws_send_shared(s->ws, m);
}

void imk_session_close(imk_session_t *s, uint16_t code, const char *reason)
{
    imk_ws_close(s->ws, code, reason);
}

static void close_going_away(const char *key, size_t len, void *value, void *arg)
{
    (void)key;
    (void)len;
    (void)arg;
    imk_session_close(value, 1001, "server shutting down");
}

void imk_session_close_all(imk_gateway_t *gw)
{
    imk_map_foreach(gw->sessions, close_going_away, NULL);
}

static void collect_session(const char *key, size_t len, void *value, void *arg)
{
    (void)key;
    (void)len;
    imk_session_t ***next = arg;
    *(*next)++ = value;
}

void imk_session_destroy_all(imk_gateway_t *gw)
{
    size_t n = imk_map_size(gw->sessions);
    imk_session_t **all = calloc(n + 1, sizeof(*all));
    if (all == NULL) {
        return;
    }
    imk_session_t **next = all;
    imk_map_foreach(gw->sessions, collect_session, &next);
    for (size_t i = 0; i < n; i++) {
        session_destroy(all[i]);
    }
    free(all);
}
