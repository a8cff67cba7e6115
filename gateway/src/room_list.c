/* The room list assembled from per-slot reads (room_list.h). */
#include "room_list.h"
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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT_DEFAULT 20
#define LIMIT_MAX 100
#define CURSOR_TS_DIGITS 15 /* as imkit_room_list: longer is a bad cursor */

/* One room of the list: its activity, its unread count, its summary's JSON text. */
struct row {
    int64_t ts;
    int64_t unread;
    char *rid;
    char *summary;
    size_t summary_len;
};

/* A room list being assembled: what was asked, and the rows read so far. */
struct listing {
    imk_gateway_t *gw;
    uint64_t req;
    char from[IMK_ID_MAX + 1];
    int64_t limit;
    char *before; /* the cursor as given, or NULL */
    size_t expected;
    size_t received;
    struct row *rows;
    size_t nrows;
    const char *failure; /* a row could not be read: the answer's status, or NULL */
};

/* The callback argument of one row's read. */
struct row_read {
    struct listing *l;
    char rid[IMK_ID_MAX + 1];
};

static void listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->nrows; i++) {
        free(l->rows[i].rid);
        free(l->rows[i].summary);
    }
    free(l->rows);
    free(l->before);
    free(l);
}

static void answer(struct listing *l, const char *status, const char *body, size_t body_len)
{
    imk_pending_answer(l->gw->pending, l->req, status, strlen(status), body, body_len);
}

static void answer_text(struct listing *l, const char *status, const char *message)
{
    answer(l, status, message, strlen(message));
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

/* Reads room.list's arguments: limit (clamped as on one Redis) and before. */
static int read_args(struct listing *l, const imk_buf_t *args)
{
    l->limit = LIMIT_DEFAULT;
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);
    int rc = 0;
    if (args->len > 0 &&
        msgpack_unpack_next(&msg, args->data, args->len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        msg.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *map = &msg.data.via.map;
        for (uint32_t i = 0; i < map->size && rc == 0; i++) {
            const msgpack_object *k = &map->ptr[i].key, *v = &map->ptr[i].val;
            if (k->type != MSGPACK_OBJECT_STR) {
                continue;
            }
            if (k->via.str.size == 5 && memcmp(k->via.str.ptr, "limit", 5) == 0 &&
                v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                l->limit = v->via.u64 > LIMIT_MAX ? LIMIT_MAX : (int64_t)v->via.u64;
            } else if (k->via.str.size == 6 && memcmp(k->via.str.ptr, "before", 6) == 0 &&
                       v->type == MSGPACK_OBJECT_STR) {
                l->before = strndup(v->via.str.ptr, v->via.str.size);
                rc = l->before != NULL ? 0 : IMK_ENOMEM;
            }
        }
    }
    msgpack_unpacked_destroy(&msg);
    l->limit = l->limit < 1 ? 1 : l->limit;
    return rc;
}

/* The cursor "<ts>:<room id>" (at most CURSOR_TS_DIGITS digits, a non-empty id), as
 * imkit_room_list reads it. Returns 0 or IMK_EINVAL. */
static int parse_cursor(const char *s, struct row *out)
{
    const char *colon = strchr(s, ':');
    size_t digits = colon != NULL ? (size_t)(colon - s) : 0;
    if (digits == 0 || digits > CURSOR_TS_DIGITS || colon[1] == '\0') {
        return IMK_EINVAL;
    }
    if (imk_parse_decimal(s, digits, 0, INT64_MAX, &out->ts) != 0) {
        return IMK_EINVAL;
    }
    out->rid = (char *)(uintptr_t)(colon + 1); /* borrowed from s */
    return 0;
}

/* a comes before b in the list: later activity first, then room id bytes. */
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

/* Appends the answer {"rooms":[...],"next":cursor|null,"unread_total":n} of rows
 * [first, last) to out. */
static void render(const struct listing *l, size_t first, size_t last, int64_t unread_total,
                   imk_buf_t *out)
{
    imk_buf_append(out, "{\"rooms\":[", 10);
    for (size_t i = first; i < last; i++) {
        if (i > first) {
            imk_buf_append(out, ",", 1);
        }
        imk_buf_append(out, l->rows[i].summary, l->rows[i].summary_len);
    }
    imk_buf_append(out, "],\"next\":", 9);
    char *next = NULL;
    if (last < l->nrows && last > first) {
        char cursor[32 + IMK_ID_MAX];
        snprintf(cursor, sizeof(cursor), "%" PRId64 ":%s", l->rows[last - 1].ts,
                 l->rows[last - 1].rid);
        json_t *s = json_string(cursor);
        next = s != NULL ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
        json_decref(s);
    }
    imk_buf_append(out, next != NULL ? next : "null", next != NULL ? strlen(next) : 4);
    free(next);
    char tail[48];
    int n = snprintf(tail, sizeof(tail), ",\"unread_total\":%" PRId64 "}", unread_total);
    imk_buf_append(out, tail, (size_t)n);
}

/* Every row is in: sorts, pages from the cursor and answers. */
static void finish(struct listing *l)
{
    if (l->failure != NULL) {
        answer_text(l, l->failure,
                    strcmp(l->failure, "unavailable") == 0 ? "storage unreachable; safe to retry"
                                                           : "internal error");
        listing_free(l);
        return;
    }
    qsort(l->rows, l->nrows, sizeof(*l->rows), compare_rows);
    int64_t unread_total = 0;
    for (size_t i = 0; i < l->nrows; i++) {
        unread_total += l->rows[i].unread;
    }
    size_t first = 0;
    struct row cursor;
    if (l->before != NULL && parse_cursor(l->before, &cursor) == 0) {
        while (first < l->nrows && !list_before(&cursor, &l->rows[first])) {
            first++;
        }
    }
    size_t last = first + (size_t)l->limit < l->nrows ? first + (size_t)l->limit : l->nrows;
    imk_buf_t out = IMK_BUF_INIT;
    render(l, first, last, unread_total, &out);
    if (out.data != NULL) {
        answer(l, "ok", out.data, out.len);
    } else {
        answer_text(l, "internal", "internal error");
    }
    imk_buf_deinit(&out);
    listing_free(l);
}

/* Keeps one row's reply: {"ts":n,"unread":n,"summary":{...}}, fields in that order. */
static int keep_row(struct listing *l, const char *rid, const redisReply *body)
{
    long long ts, unread;
    int offset = -1;
    if (sscanf(body->str, "{\"ts\":%lld,\"unread\":%lld,\"summary\":%n", &ts, &unread, &offset) <
            2 ||
        offset < 0 || (size_t)offset + 1 >= body->len || body->str[body->len - 1] != '}') {
        return IMK_EINVAL;
    }
    struct row *r = &l->rows[l->nrows];
    r->summary_len = body->len - (size_t)offset - 1;
    r->summary = malloc(r->summary_len);
    r->rid = strdup(rid);
    if (r->summary == NULL || r->rid == NULL) {
        free(r->summary);
        free(r->rid);
        return IMK_ENOMEM;
    }
    memcpy(r->summary, body->str + offset, r->summary_len);
    r->ts = ts;
    r->unread = unread;
    l->nrows++;
    return 0;
}

/* A row is in (or will never be): the last one finishes the listing. */
static void row_done(struct listing *l)
{
    if (++l->received == l->expected) {
        finish(l);
    }
}

/* Notes why the list cannot be answered, the first reason only. */
static void fail(struct listing *l, const redisReply *reply, const char *what)
{
    if (l->failure != NULL) {
        return;
    }
    if (reply == NULL) {
        l->failure = "unavailable";
        return;
    }
    IMK_ERROR("redis_reply", "req=%llu kind=%s error=\"%s\"", (unsigned long long)l->req, what,
              reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    l->failure = "internal";
}

static void on_row(redisReply *reply, void *arg)
{
    struct row_read *rr = arg;
    struct listing *l = rr->l;
    if (!is_result(reply)) {
        fail(l, reply, "imkit_room_row");
    } else if (status_ok(reply) && keep_row(l, rr->rid, reply->element[1]) != 0) {
        fail(l, reply, "imkit_room_row");
    } /* any other status: not_found, an index entry of a room deleted a moment ago */
    free(rr);
    row_done(l);
}

/* FCALL_RO <function> 1 {<id>} <prefix> <from> <args> on id's master. */
static int send_read(struct listing *l, const char *function, const char *id, const char *args,
                     size_t args_len, imk_link_reply_fn *fn, void *arg)
{
    char route[IMK_ID_MAX + 3];
    if (imk_key_tag(route, sizeof(route), id, strlen(id)) <= 0) {
        return IMK_EINVAL;
    }
    const char *prefix = l->gw->cfg->redis_prefix;
    const char *argv[] = {"FCALL_RO", function, "1", route, prefix, l->from, args};
    size_t lens[] = {8,       strlen(function), 1, strlen(route), strlen(prefix), strlen(l->from),
                     args_len};
    return imk_link_command(l->gw->link, route, fn, arg, 7, argv, lens);
}

/* Sends the read of room rid's row; 0, or an error (nothing will call back). */
static int send_row(struct listing *l, const char *rid)
{
    if (rid == NULL || strlen(rid) > IMK_ID_MAX) {
        return IMK_EINVAL;
    }
    struct row_read *rr = calloc(1, sizeof(*rr));
    imk_buf_t args = IMK_BUF_INIT;
    imk_mp_t mp;
    imk_mp_init(&mp, &args);
    imk_mp_map(&mp, 1);
    imk_mp_cstr(&mp, "room");
    imk_mp_cstr(&mp, rid);
    int rc = IMK_ENOMEM;
    if (rr != NULL && args.data != NULL) {
        rr->l = l;
        memcpy(rr->rid, rid, strlen(rid) + 1);
        rc = send_read(l, "imkit_room_row", rid, args.data, args.len, on_row, rr);
    }
    imk_buf_deinit(&args);
    if (rc != 0) {
        free(rr);
    }
    return rc;
}

/* Sends one row read per room of the index, all at once. One extra expected row, done
 * last, keeps the listing alive while they are sent and finishes an empty one. */
static void read_rows(struct listing *l, const json_t *rooms)
{
    size_t n = json_array_size(rooms);
    l->rows = n > 0 ? calloc(n, sizeof(*l->rows)) : NULL;
    l->expected = 1;
    for (size_t i = 0; i < n && (l->rows != NULL || n == 0); i++) {
        if (send_row(l, json_string_value(json_array_get(rooms, i))) == 0) {
            l->expected++;
        } else {
            fail(l, NULL, "imkit_room_row");
        }
    }
    if (n > 0 && l->rows == NULL) {
        l->failure = "internal";
    }
    row_done(l);
}

static void on_index(redisReply *reply, void *arg)
{
    struct listing *l = arg;
    if (!is_result(reply)) {
        fail(l, reply, "imkit_room_index");
    } else if (!status_ok(reply)) { /* a refusal of the library: answered as it is */
        answer(l, reply->element[0]->str, reply->element[1]->str, reply->element[1]->len);
        listing_free(l);
        return;
    }
    struct row cursor;
    if (l->failure == NULL && l->before != NULL && parse_cursor(l->before, &cursor) != 0) {
        answer_text(l, "bad_request", "before: bad cursor");
        listing_free(l);
        return;
    }
    json_t *index = NULL;
    if (l->failure == NULL) {
        index = json_loadb(reply->element[1]->str, reply->element[1]->len, 0, NULL);
    }
    json_t *rooms = json_object_get(index, "rooms");
    if (l->failure == NULL && !json_is_array(rooms)) {
        fail(l, reply, "imkit_room_index");
    }
    if (l->failure != NULL) {
        l->expected = 1;
        row_done(l);
    } else {
        read_rows(l, rooms);
    }
    json_decref(index);
}

int imk_room_list_send(imk_gateway_t *gw, uint64_t req, const char *from, const imk_buf_t *args)
{
    struct listing *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return IMK_ENOMEM;
    }
    l->gw = gw;
    l->req = req;
    snprintf(l->from, sizeof(l->from), "%s", from);
    int rc = read_args(l, args);
    if (rc == 0) {
        rc = send_read(l, "imkit_room_index", from, "", 0, on_index, l);
    }
    if (rc != 0) {
        listing_free(l);
    }
    return rc;
}
