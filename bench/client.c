/* One simulated chat user (see client.h): state machine from connect to ready, message
 * sends with their answers, deliveries checked by room and seq, storm re-sync. */
#define _GNU_SOURCE /* memmem */
#include "client.h"
#include "proto.h"
#include "scan.h"
#include "jwt.h"
#include "wsconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ADD_BATCH 100 /* ids per room.create / room.members.add (limits.ids) */
#define MAX_RETRIES 5

static void client_id(const lg_ctx_t *ctx, int idx, char *out, size_t n)
{
    snprintf(out, n, "%s-c%d", ctx->opts->run_id, idx);
}

static bool in_window(const lg_ctx_t *ctx, int64_t t_us)
{
    int64_t start = atomic_load_explicit(&ctx->win_start_us, memory_order_relaxed);
    int64_t end = atomic_load_explicit(&ctx->win_end_us, memory_order_relaxed);
    return start > 0 && t_us >= start && (end == 0 || t_us < end);
}

static void fail(lg_client_t *c, const char *what, const char *detail, size_t len)
{
    if (c->state == LG_C_FAILED) {
        return;
    }
    lg_error(c->w, "client %d: %s: %.*s", c->idx, what, (int)(len > 150 ? 150 : len), detail);
    if (c->state == LG_C_CONNECTING || c->state == LG_C_AUTH) {
        c->w->connecting--;
    }
    c->state = LG_C_FAILED;
    atomic_fetch_add_explicit(&c->w->c.failed, 1, memory_order_relaxed);
}

int lg_client_init(lg_client_t *c, lg_worker_t *w, int idx)
{
    const lg_opts_t *o = w->ctx->opts;
    memset(c, 0, sizeof(*c));
    c->w = w;
    c->idx = idx;
    c->room = -1;
    c->next_id = 2; /* 1 is the auth request */
    int local = idx - o->index_offset;
    if (o->room_size > 0) {
        c->room = local / o->room_size;
        c->member = local % o->room_size;
        c->sender = c->member < o->senders;
    }
    if (o->proto == LG_NCHAN) {
        /* Nchan has no rooms to create: the channel is named after the room (or, when idle,
         * the client, as IMKit subscribes each client's own channel). */
        if (c->room >= 0) {
            snprintf(c->room_id, sizeof(c->room_id), "%s", w->ctx->rooms[c->room].id);
        } else {
            client_id(w->ctx, idx, c->room_id, sizeof(c->room_id));
        }
    }
    if (c->sender) {
        c->reqs = calloc(LG_REQ_RING, sizeof(*c->reqs));
        if (c->reqs == NULL) {
            return -1;
        }
    }
    return 0;
}

void lg_client_deinit(lg_client_t *c)
{
    lg_ws_free(c->ws);
    c->ws = NULL;
    free(c->reqs);
    lg_bitmap_deinit(&c->recv);
}

static void send_auth(lg_client_t *c)
{
    char sub[LG_ID_MAX], token[1024];
    client_id(c->w->ctx, c->idx, sub, sizeof(sub));
    int64_t now = (int64_t)time(NULL);
    if (lg_jwt_sign(c->w->ctx->opts->secret, sub, now, now + 3600, token, sizeof(token)) < 0 ||
        c->w->ctx->proto->auth(c, 1, token) != 0) {
        fail(c, "auth", "cannot send", 11);
        return;
    }
    c->setup_id = 1;
    c->setup_kind = LG_REQ_AUTH;
}

static void send_sync(lg_client_t *c)
{
    char data[LG_ID_MAX + 64];
    int n =
        snprintf(data, sizeof(data), "{\"known\":{\"%s\":%lld}}", c->room_id, (long long)c->known);
    c->setup_id = c->next_id++;
    c->setup_kind = LG_REQ_SYNC;
    c->state = LG_C_SYNC;
    if (c->w->ctx->proto->request(c, c->setup_id, "sync", data, (size_t)n) != 0) {
        fail(c, "sync", "cannot send", 11);
    }
}

/* Connected and authenticated: count it; in a storm, catch up at once. */
static void on_authed(lg_client_t *c)
{
    lg_worker_t *w = c->w;
    int64_t now = lg_now_us();
    w->connecting--;
    c->state = LG_C_AUTHED;
    lg_hist_add(&w->s.connect, now - c->t_start);
    if (now > w->s.last_ready_us) {
        w->s.last_ready_us = now;
    }
    atomic_fetch_add_explicit(&w->c.ready, 1, memory_order_relaxed);
    if (w->phase == LG_PH_RECONNECT) {
        if (c->room >= 0) {
            send_sync(c);
        } else {
            c->state = LG_C_SYNCED;
            atomic_fetch_add_explicit(&w->c.synced, 1, memory_order_relaxed);
        }
    }
}

static void on_ws_open(void *arg)
{
    lg_client_t *c = arg;
    const lg_proto_ops_t *p = c->w->ctx->proto;
    c->state = LG_C_AUTH;
    if (!p->needs_auth) {
        on_authed(c);
    } else if (p->auth_on_open) {
        send_auth(c);
    }
}

static void on_ws_close(void *arg, const char *why)
{
    lg_client_t *c = arg;
    lg_ws_free(c->ws);
    c->ws = NULL;
    if (c->state == LG_C_CONNECTING) {
        c->w->s.connect_errors++;
    } else if (c->state != LG_C_FAILED) {
        c->w->s.closed++;
    }
    fail(c, "connection", why, strlen(why));
}

static void be_joined(lg_client_t *c)
{
    c->state = LG_C_READY;
    atomic_fetch_add_explicit(&c->w->c.joined, 1, memory_order_relaxed);
}

/* Writes {"type":..,"members":[...]} or {"room":..,"members":[...]} naming the next batch
 * of the room's members after the creator. Returns the length, or -1. */
static int members_request(lg_client_t *c, char *out, size_t n, bool create)
{
    const lg_opts_t *o = c->w->ctx->opts;
    const lg_room_t *room = &c->w->ctx->rooms[c->room];
    int len;
    if (create && o->room_size == 2) {
        len = snprintf(out, n, "{\"type\":\"direct\",\"members\":[");
    } else if (create) {
        len = snprintf(out, n, "{\"type\":\"group\",\"id\":\"%s\",\"members\":[", room->id);
    } else {
        len = snprintf(out, n, "{\"room\":\"%s\",\"members\":[", c->room_id);
    }
    int first = c->idx + 1 + c->added;
    int last = c->idx + o->room_size - 1;
    for (int i = 0; i < ADD_BATCH && first + i <= last && len > 0 && (size_t)len < n; i++) {
        char id[LG_ID_MAX];
        client_id(c->w->ctx, first + i, id, sizeof(id));
        len += snprintf(out + len, n - (size_t)len, "%s\"%s\"", i ? "," : "", id);
        c->added++;
    }
    if (len < 0 || (size_t)len + 3 >= n) {
        return -1;
    }
    len += snprintf(out + len, n - (size_t)len, "]}");
    return len;
}

static void send_members(lg_client_t *c, bool create)
{
    char data[LG_FRAME_MAX / 2];
    int len = members_request(c, data, sizeof(data), create);
    c->setup_id = c->next_id++;
    c->setup_kind = create ? LG_REQ_CREATE : LG_REQ_ADD;
    if (len < 0 ||
        c->w->ctx->proto->request(c, c->setup_id, create ? "room.create" : "room.members.add", data,
                                  (size_t)len) != 0) {
        fail(c, "room", "cannot send", 11);
    }
}

void lg_client_setup_room(lg_client_t *c)
{
    if (c->state != LG_C_AUTHED) {
        return;
    }
    c->state = LG_C_SETUP;
    if (c->room < 0 || c->room_id[0] != '\0') {
        be_joined(c); /* Nchan, or a member whose room.joined came early */
    } else if (c->member == 0) {
        send_members(c, true);
    }
}

/* The creator's room.create or room.members.add answer: name more members or be ready. */
static void on_room_answer(lg_client_t *c, uint8_t kind, const char *body, size_t len)
{
    if (kind == LG_REQ_CREATE) {
        const char *id;
        size_t id_len;
        if (!lg_scan_str(body, len, "\"id\":\"", &id, &id_len) || id_len >= LG_ID_MAX) {
            fail(c, "room.create", body, len);
            return;
        }
        snprintf(c->room_id, sizeof(c->room_id), "%.*s", (int)id_len, id);
        snprintf(c->w->ctx->rooms[c->room].id, LG_ID_MAX, "%s", c->room_id);
    }
    if (c->added < c->w->ctx->opts->room_size - 1) {
        send_members(c, false);
    } else {
        be_joined(c);
    }
}

/* room.joined: a member learns its room (the creator learns it from its answer). */
static void on_room_joined(lg_client_t *c, const char *data, size_t len)
{
    if (c->room < 0 || c->member == 0 || c->room_id[0] != '\0') {
        return;
    }
    json_t *room = json_loadb(data, len, 0, NULL);
    const char *id = json_string_value(json_object_get(room, "id"));
    if (id != NULL) {
        snprintf(c->room_id, sizeof(c->room_id), "%s", id);
        if (c->state == LG_C_SETUP) {
            be_joined(c);
        }
    }
    json_decref(room);
}

/* The storm's sync answer must hold every message after the seq the client claimed. */
static void on_sync_answer(lg_client_t *c, const char *body, size_t len)
{
    lg_worker_t *w = c->w;
    json_t *data = json_loadb(body, len, 0, NULL);
    json_t *msgs = json_object_get(json_object_get(data, "messages"), c->room_id);
    size_t n = json_array_size(msgs);
    json_t *last = json_array_get(msgs, n > 0 ? n - 1 : 0);
    int64_t last_seq = n > 0 ? json_integer_value(json_object_get(last, "seq")) : c->known;
    if ((int64_t)n != c->max_key - c->known || last_seq != c->max_key) {
        w->s.sync_incomplete++;
        lg_error(w, "client %d: sync returned %zu messages up to %lld, expected %lld up to %lld",
                 c->idx, n, (long long)last_seq, (long long)(c->max_key - c->known),
                 (long long)c->max_key);
    }
    json_decref(data);
    c->state = LG_C_SYNCED;
    lg_hist_add(&w->s.storm, lg_now_us() - atomic_load(&w->ctx->drop_us));
    atomic_fetch_add_explicit(&w->c.synced, 1, memory_order_relaxed);
}

/* A message's answer (or, on Nchan, the sender's own delivery) for request slot r. */
static void on_message_answer(lg_client_t *c, lg_req_t *r, bool ok, int64_t seq, const char *body,
                              size_t len)
{
    lg_worker_t *w = c->w;
    int64_t now = lg_now_us();
    if (in_window(w->ctx, r->t_us)) {
        lg_hist_add(&w->s.ack, now - r->t_us);
        w->s.acked_window++;
    }
    if (in_window(w->ctx, now)) {
        w->s.acks_in_window++;
    }
    r->kind = LG_REQ_NONE;
    c->inflight--;
    atomic_fetch_sub_explicit(&w->c.inflight, 1, memory_order_relaxed);
    if (ok && lg_bitmap_set(&w->acked[c->room], seq) >= 0) {
        w->s.acked++;
        atomic_fetch_add_explicit(&w->c.expected, w->ctx->opts->room_size, memory_order_relaxed);
    } else {
        w->s.ack_errors++;
        lg_error(w, "client %d: msg.send: %.*s", c->idx, (int)(len > 150 ? 150 : len), body);
    }
    if (w->phase == LG_PH_RUN && w->ctx->opts->rate <= 0) {
        lg_client_fill_window(c);
    }
}

/* `unavailable` is safe to retry (PROTOCOL.md), as a real client would: the auth or sync
 * is sent again, a few times. Returns whether it was. */
static bool retry_setup(lg_client_t *c, uint8_t kind, const char *body, size_t len)
{
    static const char code[] = "unavailable";
    if ((kind != LG_REQ_AUTH && kind != LG_REQ_SYNC) || c->retries >= MAX_RETRIES ||
        memmem(body, len, code, sizeof(code) - 1) == NULL) {
        return false;
    }
    c->retries++;
    c->w->s.retries++;
    if (kind == LG_REQ_AUTH) {
        send_auth(c);
    } else {
        send_sync(c);
    }
    return true;
}

static void on_answer(lg_client_t *c, const lg_in_t *in)
{
    if (c->setup_kind != LG_REQ_NONE && in->id == c->setup_id) {
        uint8_t kind = c->setup_kind;
        c->setup_kind = LG_REQ_NONE;
        if (!in->ok && retry_setup(c, kind, in->body, in->body_len)) {
            return;
        }
        if (!in->ok) {
            if (kind == LG_REQ_AUTH) {
                c->w->s.auth_errors++;
            }
            fail(c, kind == LG_REQ_AUTH ? "auth" : "setup", in->body, in->body_len);
        } else if (kind == LG_REQ_AUTH) {
            on_authed(c);
        } else if (kind == LG_REQ_SYNC) {
            on_sync_answer(c, in->body, in->body_len);
        } else {
            on_room_answer(c, kind, in->body, in->body_len);
        }
        return;
    }
    lg_req_t *r = c->reqs != NULL ? &c->reqs[in->id % LG_REQ_RING] : NULL;
    if (r != NULL && r->kind == LG_REQ_SEND && r->id == in->id) {
        int64_t seq = -1;
        lg_scan_int(in->body, in->body_len, "\"seq\":", &seq);
        on_message_answer(c, r, in->ok && seq > 0, seq, in->body, in->body_len);
    }
}

static void on_delivery(lg_client_t *c, const lg_in_t *in)
{
    lg_worker_t *w = c->w;
    if (c->room < 0) {
        return;
    }
    int fresh = lg_bitmap_set(&c->recv, in->key);
    if (fresh > 0) {
        atomic_fetch_add_explicit(&w->c.delivered, 1, memory_order_relaxed);
        int64_t now = lg_now_us();
        if (in_window(w->ctx, in->t_us)) {
            lg_hist_add(&w->s.e2e, now - in->t_us);
            w->s.delivered_window++;
        }
        if (in_window(w->ctx, now)) {
            w->s.deliveries_in_window++;
        }
        if (in->key > c->max_key) {
            c->max_key = in->key;
        }
    } else if (fresh == 0) {
        w->s.dups++;
    }
    if (!w->ctx->proto->server_seq && in->sender == c->idx && c->reqs != NULL) {
        lg_req_t *r = &c->reqs[in->key % LG_REQ_RING];
        if (r->kind == LG_REQ_SEND && r->id == (uint32_t)in->key) {
            on_message_answer(c, r, true, in->key, "", 0);
        }
    }
}

static void on_ws_text(void *arg, const char *msg, size_t len)
{
    lg_client_t *c = arg;
    lg_in_t in;
    c->w->ctx->proto->decode(c, msg, len, &in);
    switch (in.kind) {
    case LG_IN_MESSAGE:
        on_delivery(c, &in);
        break;
    case LG_IN_ANSWER:
        on_answer(c, &in);
        break;
    case LG_IN_OPEN:
        send_auth(c);
        break;
    case LG_IN_EVENT:
        if (in.ev_len == 11 && memcmp(in.ev, "room.joined", 11) == 0) {
            on_room_joined(c, in.body, in.body_len);
        }
        break;
    case LG_IN_IGNORE:
        break;
    }
}

static const lg_ws_callbacks_t ws_callbacks = {on_ws_open, on_ws_text, on_ws_close};

int lg_client_start(lg_client_t *c)
{
    lg_worker_t *w = c->w;
    const lg_opts_t *o = w->ctx->opts;
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl((127u << 24) | (uint32_t)(o->src_first + c->idx % o->src_count));
    const struct sockaddr_in *dst = &o->targets[c->idx % o->ntargets];
    char path[LG_ID_MAX + 64];
    w->ctx->proto->path(c, path, sizeof(path));
    c->t_start = lg_now_us();
    if (w->s.first_connect_us == 0) {
        w->s.first_connect_us = c->t_start;
    }
    c->state = LG_C_CONNECTING;
    w->connecting++;
    c->ws = lg_ws_connect(w->base, &src, dst, path, w->ctx->proto->subprotocol, &ws_callbacks, c);
    if (c->ws == NULL) {
        w->s.connect_errors++;
        fail(c, "connect", strerror(errno), strlen(strerror(errno)));
        return -1;
    }
    return 0;
}

void lg_client_drop(lg_client_t *c)
{
    lg_ws_free(c->ws);
    c->ws = NULL;
    if (c->state == LG_C_CONNECTING || c->state == LG_C_AUTH) {
        c->w->connecting--;
    }
    c->state = LG_C_IDLE;
    c->setup_kind = LG_REQ_NONE;
}

void lg_client_forget_recent(lg_client_t *c)
{
    int64_t backlog = c->w->ctx->opts->storm_backlog;
    c->known = c->max_key > backlog ? c->max_key - backlog : 0;
    lg_client_drop(c);
}

int lg_client_send(lg_client_t *c, int64_t t_us)
{
    lg_worker_t *w = c->w;
    const lg_opts_t *o = w->ctx->opts;
    if (!c->sender || c->state != LG_C_READY || (o->cap > 0 && c->sent >= (uint64_t)o->cap)) {
        return -1;
    }
    int64_t key =
        atomic_fetch_add_explicit(&w->ctx->rooms[c->room].next_key, 1, memory_order_relaxed) + 1;
    /* Nchan has no answers: its slot is found again by the key in the sender's own copy. */
    uint32_t id = w->ctx->proto->server_seq ? c->next_id++ : (uint32_t)key;
    if (id == 0) {
        id = c->next_id++;
    }
    lg_req_t *r = &c->reqs[id % LG_REQ_RING];
    if (r->kind != LG_REQ_NONE) {
        w->s.skipped++;
        return -1;
    }
    char text[LG_FRAME_MAX / 2];
    size_t len = lg_text_make(text, sizeof(text), key, t_us, c->idx, o->msg_size);
    if (w->ctx->proto->message(c, id, key, text, len) != 0) {
        fail(c, "msg.send", "cannot send", 11);
        return -1;
    }
    *r = (lg_req_t){id, LG_REQ_SEND, t_us};
    c->sent++;
    c->inflight++;
    if (o->cap > 0 && c->sent == (uint64_t)o->cap) {
        atomic_fetch_add_explicit(&w->c.senders_done, 1, memory_order_relaxed);
    }
    w->s.sent++;
    if (in_window(w->ctx, t_us)) {
        w->s.sent_window++;
    }
    atomic_fetch_add_explicit(&w->c.inflight, 1, memory_order_relaxed);
    return 0;
}

void lg_client_fill_window(lg_client_t *c)
{
    while (c->inflight < c->w->ctx->opts->window && lg_client_send(c, lg_now_us()) == 0) {
    }
}
