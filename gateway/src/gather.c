/* room.list and sync gathered from per-slot reads (gather.h). */
#include "gather.h"
#include "imkit/err.h"
#include "imkit/ids.h"
#include "imkit/job.h"
#include "imkit/keys.h"
#include "imkit/log.h"
#include "imkit/text.h"
#include "link.h"
#include "pending.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT_DEFAULT 20
#define LIMIT_MAX 100
#define CURSOR_TS_DIGITS 15 /* as imkit_room_list: longer is a bad cursor */

/* One room: its activity, unread count, summary and (sync) messages, as JSON texts. */
struct row {
    int64_t ts;
    int64_t unread;
    char *rid;
    char *text; /* the summary, then the messages */
    size_t summary_len;
    int64_t messages_len; /* -1: none */
    bool has_more;
    char peer_id[IMK_ID_MAX + 1]; /* a direct room's other member; empty: none */
    char *peer;                   /* its client object, once read */
};

/* A room the client says it holds (sync's known), and up to which seq. */
struct held {
    char rid[IMK_ID_MAX + 1];
    int64_t seq;
    bool present; /* the room is in the index: not left */
};

/* What is gathered: a client's rooms (room.list, sync), or clients one by one (client.get,
 * presence.watch: imkit_client_get, imkit_presence_get). */
enum gather_kind { GATHER_LIST, GATHER_SYNC, GATHER_CLIENTS };

/* A query being gathered: what was asked, and the rows read so far. */
struct gather {
    imk_gateway_t *gw;
    uint64_t req;
    enum gather_kind kind;
    const char *function; /* GATHER_CLIENTS: the one asked, a static string */
    char from[IMK_ID_MAX + 1];
    int64_t limit;
    char *before;       /* room.list's cursor as given, or NULL */
    struct held *known; /* sync's known; GATHER_CLIENTS: the ids asked, in order */
    size_t nknown;
    size_t expected;
    size_t received;
    struct row *rows;
    size_t nrows;
    const char *failure; /* "unavailable" or "internal": a read failed; NULL */
    bool peers_asked;    /* the answered rows' peers are asked for (or none was needed) */
};

/* The callback argument of one row's read. */
struct row_read {
    struct gather *g;
    char rid[IMK_ID_MAX + 1];
    size_t index; /* GATHER_CLIENTS: the id's place in the answer */
};

static void gather_free(struct gather *g)
{
    for (size_t i = 0; i < g->nrows; i++) {
        free(g->rows[i].rid);
        free(g->rows[i].text);
        free(g->rows[i].peer);
    }
    free(g->rows);
    free(g->known);
    free(g->before);
    free(g);
}

static void answer(struct gather *g, const char *status, const char *body, size_t body_len)
{
    imk_pending_answer(g->gw->pending, g->req, status, strlen(status), body, body_len);
}

static void answer_text(struct gather *g, const char *status, const char *message)
{
    answer(g, status, message, strlen(message));
}

static bool is_result(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
           r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING;
}

static bool status_ok(const redisReply *r)
{
    return r->element[0]->len == 2 && memcmp(r->element[0]->str, "ok", 2) == 0;
}

static bool key_is(const msgpack_object *k, const char *name)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(name) &&
           memcmp(k->via.str.ptr, name, k->via.str.size) == 0;
}

/* sync's known: a map of room id to seq (checked by the gateway's build). */
static int read_known(struct gather *g, const msgpack_object *v)
{
    if (v->type != MSGPACK_OBJECT_MAP || v->via.map.size == 0) {
        return 0;
    }
    g->known = calloc(v->via.map.size, sizeof(*g->known));
    if (g->known == NULL) {
        return IMK_ENOMEM;
    }
    for (uint32_t i = 0; i < v->via.map.size; i++) {
        const msgpack_object *k = &v->via.map.ptr[i].key, *seq = &v->via.map.ptr[i].val;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size <= IMK_ID_MAX &&
            seq->type == MSGPACK_OBJECT_POSITIVE_INTEGER && seq->via.u64 <= INT64_MAX) {
            struct held *h = &g->known[g->nknown++];
            memcpy(h->rid, k->via.str.ptr, k->via.str.size);
            h->seq = (int64_t)seq->via.u64;
        }
    }
    return 0;
}

/* client.get's and presence.watch's ids (checked by the gateway's build), in order. */
static int read_ids(struct gather *g, const msgpack_object *v)
{
    if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size == 0) {
        return 0;
    }
    g->known = calloc(v->via.array.size, sizeof(*g->known));
    if (g->known == NULL) {
        return IMK_ENOMEM;
    }
    for (uint32_t i = 0; i < v->via.array.size; i++) {
        const msgpack_object *id = &v->via.array.ptr[i];
        if (id->type == MSGPACK_OBJECT_STR && id->via.str.size <= IMK_ID_MAX) {
            memcpy(g->known[g->nknown++].rid, id->via.str.ptr, id->via.str.size);
        }
    }
    return 0;
}

/* Reads the query's arguments: room.list's limit (clamped as on one Redis) and before,
 * sync's known. */
static int read_args(struct gather *g, const imk_buf_t *args)
{
    g->limit = LIMIT_DEFAULT;
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);
    int rc = 0;
    if (args->len > 0 &&
        msgpack_unpack_next(&msg, args->data, args->len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        msg.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *map = &msg.data.via.map;
        for (uint32_t i = 0; i < map->size && rc == 0; i++) {
            const msgpack_object *k = &map->ptr[i].key, *v = &map->ptr[i].val;
            if (key_is(k, "limit") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                g->limit = v->via.u64 > LIMIT_MAX ? LIMIT_MAX : (int64_t)v->via.u64;
            } else if (key_is(k, "before") && v->type == MSGPACK_OBJECT_STR) {
                g->before = strndup(v->via.str.ptr, v->via.str.size);
                rc = g->before != NULL ? 0 : IMK_ENOMEM;
            } else if (key_is(k, "known")) {
                rc = read_known(g, v);
            } else if (key_is(k, "ids")) {
                rc = read_ids(g, v);
            }
        }
    }
    msgpack_unpacked_destroy(&msg);
    g->limit = g->limit < 1 ? 1 : g->limit;
    return rc;
}

static struct held *held_of(struct gather *g, const char *rid)
{
    for (size_t i = 0; i < g->nknown; i++) {
        if (strcmp(g->known[i].rid, rid) == 0) {
            return &g->known[i];
        }
    }
    return NULL;
}

/* The cursor "<ts>:<room id>" (at most CURSOR_TS_DIGITS digits, a non-empty id), as
 * imkit_room_list reads it; out->rid borrows from s. Returns 0 or IMK_EINVAL. */
static int parse_cursor(const char *s, struct row *out)
{
    const char *colon = strchr(s, ':');
    size_t digits = colon != NULL ? (size_t)(colon - s) : 0;
    if (digits == 0 || digits > CURSOR_TS_DIGITS || colon[1] == '\0' ||
        imk_parse_decimal(s, digits, 0, INT64_MAX, &out->ts) != 0) {
        return IMK_EINVAL;
    }
    out->rid = (char *)(uintptr_t)(colon + 1);
    return 0;
}

/* a comes before b: later activity first, then room id bytes. */
static bool list_before(const struct row *a, const struct row *b)
{
    if (a->ts != b->ts) {
        return a->ts > b->ts;
    }
    return strcmp(a->rid, b->rid) < 0;
}

static int compare_rows(const void *x, const void *y)
{
    const struct row *a = x, *b = y;
    return list_before(a, b) ? -1 : list_before(b, a) ? 1 : 0;
}

static int compare_held(const void *x, const void *y)
{
    return strcmp(((const struct held *)x)->rid, ((const struct held *)y)->rid);
}

/* A row's summary; a peer read apart goes in last, as "peer" (the summary left it out). */
static void append_summary(const struct row *r, imk_buf_t *out)
{
    if (r->peer == NULL) {
        imk_buf_append(out, r->text, r->summary_len);
        return;
    }
    imk_buf_append(out, r->text, r->summary_len - 1);
    imk_buf_append_str(out, ",\"peer\":");
    imk_buf_append_str(out, r->peer);
    imk_buf_append(out, "}", 1);
}

static void append_summaries(const struct gather *g, size_t first, size_t last, imk_buf_t *out)
{
    for (size_t i = first; i < last; i++) {
        if (i > first) {
            imk_buf_append(out, ",", 1);
        }
        append_summary(&g->rows[i], out);
    }
}

/* A room id as a JSON string: ids are [A-Za-z0-9_.@:-], nothing to escape. */
static void append_id(imk_buf_t *out, const char *rid)
{
    imk_buf_append(out, "\"", 1);
    imk_buf_append(out, rid, strlen(rid));
    imk_buf_append(out, "\"", 1);
}

/* The rows the answer holds, [*first, *last) of the sorted rows: room.list's page after
 * the cursor, or every row. */
static void answered_rows(const struct gather *g, size_t *first, size_t *last)
{
    *first = 0;
    *last = g->nrows;
    if (g->kind != GATHER_LIST) {
        return;
    }
    struct row cursor;
    if (g->before != NULL && parse_cursor(g->before, &cursor) == 0) {
        while (*first < g->nrows && !list_before(&cursor, &g->rows[*first])) {
            (*first)++;
        }
    }
    *last = *first + (size_t)g->limit < g->nrows ? *first + (size_t)g->limit : g->nrows;
}

/* room.list: {"rooms":[...],"next":cursor|null,"unread_total":n}, the page after the
 * cursor. */
static void render_list(const struct gather *g, imk_buf_t *out)
{
    int64_t unread_total = 0;
    for (size_t i = 0; i < g->nrows; i++) {
        unread_total += g->rows[i].unread;
    }
    size_t first, last;
    answered_rows(g, &first, &last);
    imk_buf_append(out, "{\"rooms\":[", 10);
    append_summaries(g, first, last, out);
    imk_buf_append(out, "],\"next\":", 9);
    if (last < g->nrows && last > first) {
        char ts[24];
        int n = snprintf(ts, sizeof(ts), "\"%" PRId64 ":", g->rows[last - 1].ts);
        imk_buf_append(out, ts, (size_t)n);
        imk_buf_append(out, g->rows[last - 1].rid, strlen(g->rows[last - 1].rid));
        imk_buf_append(out, "\"", 1);
    } else {
        imk_buf_append(out, "null", 4);
    }
    char tail[48];
    int n = snprintf(tail, sizeof(tail), ",\"unread_total\":%" PRId64 "}", unread_total);
    imk_buf_append(out, tail, (size_t)n);
}

static void append_messages(const struct row *r, imk_buf_t *out)
{
    imk_buf_append(out, r->text + r->summary_len, (size_t)r->messages_len);
}

static void append_has_more(const struct row *r, imk_buf_t *out)
{
    imk_buf_append(out, r->has_more ? "true" : "false", r->has_more ? 4 : 5);
}

/* {"<room id>":value,...} over the rows that have messages (sync's messages, has_more). */
static void append_row_map(const struct gather *g, imk_buf_t *out,
                           void (*value)(const struct row *, imk_buf_t *))
{
    imk_buf_append(out, "{", 1);
    bool comma = false;
    for (size_t i = 0; i < g->nrows; i++) {
        const struct row *r = &g->rows[i];
        if (r->messages_len >= 0) {
            imk_buf_append(out, comma ? ",\"" : "\"", comma ? 2 : 1);
            imk_buf_append(out, r->rid, strlen(r->rid));
            imk_buf_append(out, "\":", 2);
            value(r, out);
            comma = true;
        }
    }
    imk_buf_append(out, "}", 1);
}

/* sync: {"rooms":[...],"left":[...],"messages":{...},"has_more":{...}}. */
static void render_sync(struct gather *g, imk_buf_t *out)
{
    imk_buf_append(out, "{\"rooms\":[", 10);
    append_summaries(g, 0, g->nrows, out);
    imk_buf_append(out, "],\"left\":[", 10);
    if (g->nknown > 1) {
        qsort(g->known, g->nknown, sizeof(*g->known), compare_held);
    }
    bool comma = false;
    for (size_t i = 0; i < g->nknown; i++) {
        if (!g->known[i].present) {
            imk_buf_append(out, comma ? "," : "", comma);
            append_id(out, g->known[i].rid);
            comma = true;
        }
    }
    imk_buf_append(out, "],\"messages\":", 13);
    append_row_map(g, out, append_messages);
    imk_buf_append(out, ",\"has_more\":", 12);
    append_row_map(g, out, append_has_more);
    imk_buf_append(out, "}", 1);
}

/* client.get, presence.watch: {"clients":[...]}, each id's entry in the order asked. */
static void render_clients(const struct gather *g, imk_buf_t *out)
{
    imk_buf_append(out, "{\"clients\":[", 12);
    bool comma = false;
    for (size_t i = 0; i < g->nknown; i++) {
        const struct row *r = &g->rows[i];
        if (r->summary_len > 0) {
            imk_buf_append(out, ",", comma);
            imk_buf_append(out, r->text, r->summary_len);
            comma = true;
        }
    }
    imk_buf_append(out, "]}", 2);
}

static int read_peer(struct gather *g, size_t index);
static void fail(struct gather *g, const redisReply *reply, const char *what);
static void row_done(struct gather *g);

/* Asks for the peers of the direct rooms the answer holds (room.list: only its page). */
static void ask_peers(struct gather *g)
{
    size_t first, last;
    answered_rows(g, &first, &last);
    for (size_t i = first; i < last && g->failure == NULL; i++) {
        if (g->rows[i].peer_id[0] != '\0' && read_peer(g, i) != 0) {
            fail(g, NULL, "imkit_client_card");
        }
    }
}

/* Every row is in: answers, once the peers of the rows it holds are in too. */
static void finish(struct gather *g)
{
    if (g->kind != GATHER_CLIENTS && !g->peers_asked && g->failure == NULL) {
        if (g->nrows > 1) { /* qsort of NULL is undefined */
            qsort(g->rows, g->nrows, sizeof(*g->rows), compare_rows);
        }
        g->peers_asked = true;
        g->expected++; /* held while sending, so no reply can finish early */
        ask_peers(g);
        row_done(g);
        return;
    }
    if (g->failure != NULL) {
        bool gone = strcmp(g->failure, "unavailable") == 0;
        answer_text(g, g->failure, gone ? "storage unreachable; safe to retry" : "internal error");
        gather_free(g);
        return;
    }
    imk_buf_t out = IMK_BUF_INIT;
    if (g->kind == GATHER_SYNC) {
        render_sync(g, &out);
    } else if (g->kind == GATHER_LIST) {
        render_list(g, &out);
    } else {
        render_clients(g, &out);
    }
    if (out.data != NULL) {
        answer(g, "ok", out.data, out.len);
    } else {
        answer_text(g, "internal", "internal error");
    }
    imk_buf_deinit(&out);
    gather_free(g);
}

int imk_gather_parse_row(const char *body, size_t len, imk_gather_row_t *out)
{
    int64_t head[5]; /* ts, unread, summary bytes, messages bytes (-1: none), has_more */
    const char *p = body, *end = body + len;
    for (int i = 0; i < 5; i++) {
        bool none = i == 3 && end - p >= 2 && p[0] == '-' && p[1] == '1';
        const char *stop = p + (none ? 2 : 0);
        while (!none && stop < end && *stop >= '0' && *stop <= '9') {
            stop++;
        }
        if (stop == end || *stop != ' ' ||
            (!none && imk_parse_decimal(p, (size_t)(stop - p), 0, INT64_MAX, &head[i]) != 0)) {
            return IMK_EINVAL;
        }
        head[i] = none ? -1 : head[i];
        p = stop + 1;
    }
    const char *peer = p;
    const char *line_end = memchr(p, '\n', (size_t)(end - p));
    if (line_end == NULL || (line_end > peer && !imk_id_valid(peer, (size_t)(line_end - peer)))) {
        return IMK_EINVAL;
    }
    p = line_end + 1;
    size_t text_len = (size_t)(end - p);
    int64_t summary_len = head[2], messages_len = head[3];
    bool fits = messages_len == -1 ? summary_len == (int64_t)text_len
                                   : messages_len >= 2 && summary_len >= 2 &&
                                         summary_len + messages_len == (int64_t)text_len;
    if (summary_len < 2 || !fits || head[4] > 1) {
        return IMK_EINVAL;
    }
    *out = (imk_gather_row_t){head[0],      head[1], (size_t)summary_len,       messages_len,
                              head[4] == 1, peer,    (size_t)(line_end - peer), p,
                              text_len};
    return 0;
}

/* Keeps one row of room rid from its reply's body. */
static int keep_row(struct gather *g, const char *rid, const redisReply *body)
{
    imk_gather_row_t parsed;
    if (imk_gather_parse_row(body->str, body->len, &parsed) != 0 ||
        (parsed.peer_len > 0 && parsed.text[parsed.summary_len - 1] != '}')) {
        return IMK_EINVAL;
    }
    size_t text_len = parsed.text_len;
    struct row *r = &g->rows[g->nrows];
    r->text = malloc(text_len);
    r->rid = strdup(rid);
    if (r->text == NULL || r->rid == NULL) {
        free(r->text);
        free(r->rid);
        return IMK_ENOMEM;
    }
    memcpy(r->text, parsed.text, text_len);
    r->ts = parsed.ts;
    r->unread = parsed.unread;
    r->summary_len = parsed.summary_len;
    r->messages_len = parsed.messages_len;
    r->has_more = parsed.has_more;
    memcpy(r->peer_id, parsed.peer, parsed.peer_len);
    r->peer_id[parsed.peer_len] = '\0';
    g->nrows++;
    struct held *h = held_of(g, rid);
    if (h != NULL) {
        h->present = true;
    }
    return 0;
}

/* A row is in (or will never be): the last one finishes. */
static void row_done(struct gather *g)
{
    if (++g->received == g->expected) {
        finish(g);
    }
}

/* Notes why the query cannot be answered, the first reason only. */
static void fail(struct gather *g, const redisReply *reply, const char *what)
{
    if (g->failure != NULL) {
        return;
    }
    if (reply == NULL) {
        g->failure = "unavailable";
        return;
    }
    IMK_ERROR("redis_reply", "req=%llu kind=%s error=\"%s\"", (unsigned long long)g->req, what,
              reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    g->failure = imk_link_no_function(reply) ? "unavailable" : "internal";
}

static void on_row(redisReply *reply, void *arg)
{
    struct row_read *rr = arg;
    struct gather *g = rr->g;
    if (!is_result(reply)) {
        fail(g, reply, "imkit_room_row");
    } else if (status_ok(reply) && keep_row(g, rr->rid, reply->element[1]) != 0) {
        fail(g, reply, "imkit_room_row");
    } /* any other status: not_found, an index entry of a room deleted a moment ago */
    free(rr);
    row_done(g);
}

/* FCALL_RO <function> 1 {<id>} <prefix> <from> <args> on id's master. */
static int send_read(struct gather *g, const char *function, const char *id, const char *args,
                     size_t args_len, imk_link_reply_fn *fn, void *arg)
{
    imk_link_fcall_t call = {function, true, id, g->from, args, args_len, NULL};
    return imk_link_fcall(g->gw->link, &call, fn, arg);
}

/* A peer's client object is in: kept for its row's summary. */
static void on_peer(redisReply *reply, void *arg)
{
    struct row_read *rr = arg;
    struct gather *g = rr->g;
    if (!is_result(reply) || !status_ok(reply)) {
        fail(g, reply, "imkit_client_card");
    } else if ((g->rows[rr->index].peer =
                    strndup(reply->element[1]->str, reply->element[1]->len)) == NULL) {
        g->failure = "internal";
    }
    free(rr);
    row_done(g);
}

/* Sends the read of the client object of row index's peer, in the peer's slot: one more
 * reply to wait for. */
static int read_peer(struct gather *g, size_t index)
{
    const char *id = g->rows[index].peer_id;
    struct row_read *rr = calloc(1, sizeof(*rr));
    imk_buf_t args = IMK_BUF_INIT;
    imk_mp_t mp;
    imk_mp_init(&mp, &args);
    imk_mp_map(&mp, 1);
    imk_mp_cstr(&mp, "id");
    imk_mp_cstr(&mp, id);
    int rc = IMK_ENOMEM;
    if (rr != NULL && mp.err == 0) {
        rr->g = g;
        rr->index = index;
        rc = send_read(g, "imkit_client_card", id, args.data, args.len, on_peer, rr);
    }
    imk_buf_deinit(&args);
    if (rc != 0) {
        free(rr);
        return rc;
    }
    g->expected++;
    return 0;
}

/* Sends the read of room rid's row (with the seq the client holds, for sync); 0, or an
 * error (nothing will call back). */
static int send_row(struct gather *g, const char *rid)
{
    if (rid == NULL || strlen(rid) > IMK_ID_MAX) {
        return IMK_EINVAL;
    }
    const struct held *h = g->kind == GATHER_SYNC ? held_of(g, rid) : NULL;
    struct row_read *rr = calloc(1, sizeof(*rr));
    imk_buf_t args = IMK_BUF_INIT;
    imk_mp_t mp;
    imk_mp_init(&mp, &args);
    imk_mp_map(&mp, h != NULL ? 2 : 1);
    imk_mp_cstr(&mp, "room");
    imk_mp_cstr(&mp, rid);
    if (h != NULL) {
        imk_mp_cstr(&mp, "held");
        imk_mp_int(&mp, h->seq);
    }
    int rc = IMK_ENOMEM;
    if (rr != NULL && args.data != NULL) {
        rr->g = g;
        memcpy(rr->rid, rid, strlen(rid) + 1);
        rc = send_read(g, "imkit_room_row", rid, args.data, args.len, on_row, rr);
    }
    imk_buf_deinit(&args);
    if (rc != 0) {
        free(rr);
    }
    return rc;
}

/* One client's entry: {"clients":[<entry>]} from the function asked with that one id; an
 * unknown client's is {"clients":[]}. Kept in the row of the id's place. */
static void on_client(redisReply *reply, void *arg)
{
    struct row_read *rr = arg;
    struct gather *g = rr->g;
    static const char head[] = "{\"clients\":[";
    size_t head_len = sizeof(head) - 1;
    if (!is_result(reply) || !status_ok(reply)) {
        fail(g, reply, g->function); /* a refusal too: the one id was checked already */
    } else {
        const redisReply *body = reply->element[1];
        struct row *r = &g->rows[rr->index];
        if (body->len < head_len + 2 || memcmp(body->str, head, head_len) != 0) {
            fail(g, reply, g->function);
        } else if (body->len > head_len + 2) {
            r->summary_len = body->len - head_len - 2;
            r->text = malloc(r->summary_len);
            if (r->text == NULL) {
                r->summary_len = 0;
                g->failure = "internal";
            } else {
                memcpy(r->text, body->str + head_len, r->summary_len);
            }
        }
    }
    free(rr);
    row_done(g);
}

/* The reply of a read that answers the whole query as it is. */
static void on_whole(redisReply *reply, void *arg)
{
    struct gather *g = arg;
    if (is_result(reply)) {
        answer(g, reply->element[0]->str, reply->element[1]->str, reply->element[1]->len);
        gather_free(g);
        return;
    }
    fail(g, reply, g->function);
    g->expected = 1;
    row_done(g);
}

/* The arguments {"ids":[id]}, or {"ids":[]} for id NULL, into args. */
static void ids_args(imk_buf_t *args, const char *id)
{
    imk_mp_t mp;
    imk_mp_init(&mp, args);
    imk_mp_map(&mp, 1);
    imk_mp_cstr(&mp, "ids");
    imk_mp_array(&mp, id != NULL ? 1 : 0);
    if (id != NULL) {
        imk_mp_cstr(&mp, id);
    }
}

/* Sends one read per client asked, all at once, each with that one id. Returns 0, or
 * IMK_EREDIS when none could be sent (then nothing will answer). */
static int read_clients(struct gather *g)
{
    g->rows = g->nknown > 0 ? calloc(g->nknown, sizeof(*g->rows)) : NULL;
    g->nrows = g->rows != NULL ? g->nknown : 0;
    g->expected = 1;
    for (size_t i = 0; i < g->nrows; i++) {
        const char *id = g->known[i].rid;
        struct row_read *rr = calloc(1, sizeof(*rr));
        imk_buf_t args = IMK_BUF_INIT;
        ids_args(&args, id);
        int rc = IMK_ENOMEM;
        if (rr != NULL && args.data != NULL) {
            rr->g = g;
            rr->index = i;
            rc = send_read(g, g->function, id, args.data, args.len, on_client, rr);
        }
        imk_buf_deinit(&args);
        if (rc == 0) {
            g->expected++;
        } else {
            free(rr);
            fail(g, NULL, g->function);
        }
    }
    if (g->expected == 1 && g->nknown > 0) {
        return g->rows != NULL ? IMK_EREDIS : IMK_ENOMEM;
    }
    if (g->nknown == 0) { /* no id: the function reads no key, anywhere will do */
        imk_buf_t args = IMK_BUF_INIT;
        ids_args(&args, NULL);
        int rc = args.data != NULL
                     ? send_read(g, g->function, g->from, args.data, args.len, on_whole, g)
                     : IMK_ENOMEM;
        imk_buf_deinit(&args);
        return rc;
    }
    row_done(g); /* the replies are still to come: never the last one here */
    return 0;
}

/* Sends one row read per room of the index, all at once. One extra expected row, done
 * last, keeps the gather alive while they are sent and finishes one with no room. */
static void read_rows(struct gather *g, const json_t *rooms)
{
    size_t n = json_array_size(rooms);
    g->rows = n > 0 ? calloc(n, sizeof(*g->rows)) : NULL;
    g->expected = 1;
    if (n > 0 && g->rows == NULL) {
        g->failure = "internal";
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (send_row(g, json_string_value(json_array_get(rooms, i))) == 0) {
            g->expected++;
        } else {
            fail(g, NULL, "imkit_room_row");
        }
    }
    row_done(g);
}

static void on_index(redisReply *reply, void *arg)
{
    struct gather *g = arg;
    if (is_result(reply) && !status_ok(reply)) { /* a refusal of the library, as it is */
        answer(g, reply->element[0]->str, reply->element[1]->str, reply->element[1]->len);
        gather_free(g);
        return;
    }
    struct row cursor;
    if (is_result(reply) && g->before != NULL && parse_cursor(g->before, &cursor) != 0) {
        answer_text(g, "bad_request", "before: bad cursor");
        gather_free(g);
        return;
    }
    json_t *index = is_result(reply)
                        ? json_loadb(reply->element[1]->str, reply->element[1]->len, 0, NULL)
                        : NULL;
    json_t *rooms = json_object_get(index, "rooms");
    if (json_is_array(rooms)) {
        read_rows(g, rooms);
    } else {
        fail(g, reply, "imkit_room_index");
        g->expected = 1;
        row_done(g);
    }
    json_decref(index);
}

/* The kind of gather a query's function needs, or -1 for none. */
static int kind_of(const char *function)
{
    static const struct {
        const char *function;
        enum gather_kind kind;
    } kinds[] = {
        {"imkit_room_list", GATHER_LIST},
        {"imkit_sync", GATHER_SYNC},
        {"imkit_client_get", GATHER_CLIENTS},
        {"imkit_presence_get", GATHER_CLIENTS},
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(kinds[i].function, function) == 0) {
            return (int)kinds[i].kind;
        }
    }
    return -1;
}

bool imk_gather_wanted(const imk_gateway_t *gw, const imk_call_t *call)
{
    return call->query && gw->cfg->redis_cluster[0] != '\0' && kind_of(call->function) >= 0;
}

int imk_gather_send(imk_gateway_t *gw, uint64_t req, const imk_call_t *call)
{
    struct gather *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return IMK_ENOMEM;
    }
    g->gw = gw;
    g->req = req;
    g->kind = (enum gather_kind)kind_of(call->function);
    g->function = call->function;
    snprintf(g->from, sizeof(g->from), "%s", call->from);
    int rc = read_args(g, call->args);
    if (rc == 0 && g->kind == GATHER_CLIENTS) {
        rc = read_clients(g);
    } else if (rc == 0) {
        rc = send_read(g, "imkit_room_index", g->from, "", 0, on_index, g);
    }
    if (rc != 0) {
        gather_free(g);
    }
    return rc;
}
