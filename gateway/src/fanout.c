/* Room and client registries of local sessions, and their channel subscriptions. */
#include "fanout.h"
#include "event_scan.h"
#include "imkit/err.h"
#include "imkit/keys.h"
#include "imkit/log.h"
#include "imkit/job.h"
#include "link.h"
#include "ws.h"

#include <hiredis/hiredis.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define CATCH_UP_OVERLAP_MS 10000 /* see caught_up_already */

/* The local sessions of one room or one client. */
struct group {
    imk_session_t **items;
    size_t n;
    size_t cap;
    /* A room subscribed because of a room.joined: messages sent between the join and the
     * subscription taking effect are fetched from history once Redis confirms it; live
     * events arriving until then wait in held (each as a size_t length and its bytes). */
    bool catching_up;
    bool fetching;
    int64_t after_seq;    /* catching up: the room's last seq at the join; then: the last
                           * message the catch-up delivered */
    int64_t caught_up_ms; /* when the catch-up ended (0: not recently), see caught_up_already */
    imk_buf_t held;
};

struct imk_fanout {
    imk_gateway_t *gw;
    imk_map_t *rooms;   /* room id -> group */
    imk_map_t *clients; /* client id -> group */
    imk_map_t *watched; /* client id -> group of sessions watching its presence */
};

imk_fanout_t *imk_fanout_create(imk_gateway_t *gw)
{
    imk_fanout_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    f->gw = gw;
    f->rooms = imk_map_create();
    f->clients = imk_map_create();
    f->watched = imk_map_create();
    if (f->rooms == NULL || f->clients == NULL || f->watched == NULL) {
        imk_fanout_destroy(f);
        return NULL;
    }
    return f;
}

static void free_group(const char *key, size_t len, void *value, void *arg)
{
    (void)key;
    (void)len;
    (void)arg;
    struct group *g = value;
    imk_buf_deinit(&g->held);
    free(g->items);
    free(g);
}

void imk_fanout_destroy(imk_fanout_t *f)
{
    if (f == NULL) {
        return;
    }
    if (f->rooms != NULL) {
        imk_map_foreach(f->rooms, free_group, NULL);
    }
    if (f->clients != NULL) {
        imk_map_foreach(f->clients, free_group, NULL);
    }
    if (f->watched != NULL) {
        imk_map_foreach(f->watched, free_group, NULL);
    }
    imk_map_destroy(f->rooms);
    imk_map_destroy(f->clients);
    imk_map_destroy(f->watched);
    free(f);
}

typedef int channel_name_fn(char *out, size_t outlen, const char *prefix, const char *id);

static void channel_of(imk_fanout_t *f, channel_name_fn *name, const char *id, size_t len,
                       char *out)
{
    char copy[IMK_ID_MAX + 1];
    snprintf(copy, sizeof(copy), "%.*s", (int)len, id);
    name(out, IMK_KEY_MAX, f->gw->cfg->redis_prefix, copy);
}

/* Adds s to the group of id in map, creating it (and subscribing) for the first session. */
static int group_add(imk_fanout_t *f, imk_map_t *map, channel_name_fn *name, const char *id,
                     size_t len, imk_session_t *s)
{
    struct group *g = imk_map_get(map, id, len);
    if (g == NULL) {
        g = calloc(1, sizeof(*g));
        if (g == NULL || imk_map_put(map, id, len, g) != 0) {
            free(g);
            return IMK_ENOMEM;
        }
        char channel[IMK_KEY_MAX];
        channel_of(f, name, id, len, channel);
        imk_link_subscribe(f->gw->link, channel, strlen(channel));
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 4;
        imk_session_t **items = realloc(g->items, cap * sizeof(*items));
        if (items == NULL) {
            return IMK_ENOMEM;
        }
        g->items = items;
        g->cap = cap;
    }
    g->items[g->n++] = s;
    return 0;
}

static void group_remove(imk_fanout_t *f, imk_map_t *map, channel_name_fn *name, const char *id,
                         size_t len, imk_session_t *s)
{
    struct group *g = imk_map_get(map, id, len);
    if (g == NULL) {
        return;
    }
    for (size_t i = 0; i < g->n; i++) {
        if (g->items[i] == s) {
            g->items[i] = g->items[--g->n];
            break;
        }
    }
    if (g->n == 0) {
        imk_map_remove(map, id, len);
        free_group(NULL, 0, g, NULL);
        char channel[IMK_KEY_MAX];
        channel_of(f, name, id, len, channel);
        imk_link_unsubscribe(f->gw->link, channel, strlen(channel));
    }
}

size_t imk_fanout_client_sessions(const imk_fanout_t *f, const char *client)
{
    const struct group *g = imk_map_get(f->clients, client, strlen(client));
    return g != NULL ? g->n : 0;
}

int imk_fanout_add_client(imk_fanout_t *f, imk_session_t *s)
{
    return group_add(f, f->clients, imk_channel_client, s->client, strlen(s->client), s);
}

int imk_fanout_join(imk_fanout_t *f, imk_session_t *s, const char *room, size_t len)
{
    if (s->rooms == NULL && (s->rooms = imk_map_create()) == NULL) {
        return IMK_ENOMEM; /* created with the first room: an idle session holds no map */
    }
    if (imk_map_get(s->rooms, room, len) != NULL) {
        return 0;
    }
    if (imk_map_put(s->rooms, room, len, s) != 0) {
        return IMK_ENOMEM;
    }
    return group_add(f, f->rooms, imk_channel_room, room, len, s);
}

void imk_fanout_leave(imk_fanout_t *f, imk_session_t *s, const char *room, size_t len)
{
    if (s->rooms != NULL && imk_map_remove(s->rooms, room, len) != NULL) {
        group_remove(f, f->rooms, imk_channel_room, room, len, s);
    }
}

struct leave_all {
    imk_fanout_t *f;
    imk_session_t *s;
};

static void leave_one(const char *key, size_t len, void *value, void *arg)
{
    (void)value;
    struct leave_all *la = arg;
    group_remove(la->f, la->f->rooms, imk_channel_room, key, len, la->s);
}

static void unwatch_one(const char *key, size_t len, void *value, void *arg)
{
    (void)value;
    struct leave_all *la = arg;
    group_remove(la->f, la->f->watched, imk_channel_presence, key, len, la->s);
}

/* Empties s->watching, leaving every presence group it was in. */
static void unwatch_all(imk_fanout_t *f, imk_session_t *s)
{
    struct leave_all la = {f, s};
    if (s->watching != NULL) {
        imk_map_foreach(s->watching, unwatch_one, &la);
        imk_map_destroy(s->watching);
        s->watching = NULL;
    }
}

int imk_fanout_watch(imk_fanout_t *f, imk_session_t *s, const json_t *ids)
{
    unwatch_all(f, s);
    if (json_array_size(ids) == 0) {
        return 0; /* watching nobody: no map */
    }
    if ((s->watching = imk_map_create()) == NULL) {
        return IMK_ENOMEM;
    }
    size_t i;
    const json_t *id;
    json_array_foreach(ids, i, id)
    {
        const char *name = json_string_value(id);
        size_t len = json_string_length(id);
        if (imk_map_get(s->watching, name, len) != NULL) {
            continue;
        }
        if (imk_map_put(s->watching, name, len, s) != 0 ||
            group_add(f, f->watched, imk_channel_presence, name, len, s) != 0) {
            return IMK_ENOMEM;
        }
    }
    return 0;
}

void imk_fanout_remove_session(imk_fanout_t *f, imk_session_t *s)
{
    struct leave_all la = {f, s};
    if (s->rooms != NULL) {
        imk_map_foreach(s->rooms, leave_one, &la);
    }
    if (s->watching != NULL) {
        imk_map_foreach(s->watching, unwatch_one, &la);
    }
    if (s->authenticated) {
        group_remove(f, f->clients, imk_channel_client, s->client, strlen(s->client), s);
    }
}

/* Sends payload to s, framed once for every session it goes to: *shared is created by the
 * first call of a delivery (NULL on no memory: then each session gets its own copy). */
static void send_one(imk_session_t *s, imk_ws_shared_t **shared, bool *tried, const char *payload,
                     size_t len)
{
    if (!*tried) {
        *tried = true;
        *shared = imk_ws_shared_create(payload, len);
    }
    if (*shared != NULL) {
        imk_session_send_shared(s, *shared);
    } else {
        imk_session_send(s, payload, len);
    }
    s->gw->stats.deliveries++;
}

static void send_to_group(struct group *g, const char *payload, size_t len)
{
    if (g != NULL && g->n == 1) {
        imk_session_send(g->items[0], payload, len); /* nothing to share */
        g->items[0]->gw->stats.deliveries++;
        return;
    }
    imk_ws_shared_t *shared = NULL;
    bool tried = false;
    for (size_t i = 0; g != NULL && i < g->n; i++) {
        send_one(g->items[i], &shared, &tried, payload, len);
    }
    imk_ws_shared_release(shared);
}

/* Whether client is in the comma-separated list skip[0..len). */
static bool skipped(const char *skip, size_t len, const char *client)
{
    size_t n = strlen(client);
    for (const char *p = skip, *end = skip + len; p < end;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma != NULL ? comma : end;
        if ((size_t)(stop - p) == n && memcmp(p, client, n) == 0) {
            return true;
        }
        p = stop + 1;
    }
    return false;
}

/* A room event, minus the sessions of the clients its "!skip" line names. */
static void send_to_room(struct group *g, const char *payload, size_t len)
{
    static const char marker[] = "!skip ";
    if (len < sizeof(marker) || memcmp(payload, marker, sizeof(marker) - 1) != 0) {
        send_to_group(g, payload, len);
        return;
    }
    const char *list = payload + sizeof(marker) - 1;
    const char *nl = memchr(list, '\n', len - (sizeof(marker) - 1));
    if (nl == NULL) {
        return;
    }
    const char *frame = nl + 1;
    size_t frame_len = len - (size_t)(frame - payload);
    imk_ws_shared_t *shared = NULL;
    bool tried = false;
    for (size_t i = 0; g != NULL && i < g->n; i++) {
        if (!skipped(list, (size_t)(nl - list), g->items[i]->client)) {
            send_one(g->items[i], &shared, &tried, frame, frame_len);
        }
    }
    imk_ws_shared_release(shared);
}

/* Personal events that change what a client's sessions receive: room.joined subscribes
 * them to the room, room.left unsubscribes, session.revoked closes them. Returns whether
 * the event is for the client too (control events are not). */
static bool follow_membership(imk_fanout_t *f, struct group *g, const char *payload, size_t len)
{
    json_t *ev = json_loadb(payload, len, 0, NULL);
    const char *name = json_string_value(json_object_get(ev, "ev"));
    json_t *data = json_object_get(ev, "data");
    bool forward = true;
    if (name != NULL && g != NULL && strcmp(name, "session.revoked") == 0) {
        json_int_t code = json_integer_value(json_object_get(data, "code"));
        for (size_t i = 0; i < g->n; i++) {
            imk_session_close(g->items[i], code >= 4000 && code < 5000 ? (uint16_t)code : 4403,
                              "tokens revoked");
        }
        forward = false;
    } else if (name != NULL && g != NULL) {
        bool joined = strcmp(name, "room.joined") == 0;
        bool left = strcmp(name, "room.left") == 0;
        json_t *room = json_object_get(data, joined ? "id" : "room");
        bool fresh =
            joined && json_is_string(room) &&
            imk_map_get(f->rooms, json_string_value(room), json_string_length(room)) == NULL;
        for (size_t i = 0; (joined || left) && json_is_string(room) && i < g->n; i++) {
            if (joined) {
                imk_fanout_join(f, g->items[i], json_string_value(room), json_string_length(room));
            } else {
                imk_fanout_leave(f, g->items[i], json_string_value(room), json_string_length(room));
            }
        }
        struct group *rg =
            fresh ? imk_map_get(f->rooms, json_string_value(room), json_string_length(room)) : NULL;
        if (rg != NULL) {
            rg->catching_up = true;
            rg->after_seq = json_integer_value(json_object_get(data, "last_seq"));
        }
    }
    json_decref(ev);
    return forward;
}

/* "ch:r:{id}" or "ch:u:{id}" after the prefix: the kind letter and the id. */
static int parse_channel(const char *name, size_t len, char *kind, const char **id, size_t *id_len)
{
    if (len < 8 || memcmp(name, "ch:", 3) != 0 || name[4] != ':' || name[5] != '{' ||
        name[len - 1] != '}') {
        return IMK_EINVAL;
    }
    *kind = name[3];
    *id = name + 6;
    *id_len = len - 7;
    return 0;
}

static int64_t message_seq(const char *payload, size_t len);

/* Whether payload is a message the catch-up already delivered from history. A worker
 * publishes a message after its call has stored it, so a history read can see a message
 * whose event comes after the catch-up ended; for CATCH_UP_OVERLAP_MS after it, message
 * events up to the last seq it delivered are dropped (the only time live events are parsed
 * here). */
static bool caught_up_already(struct group *g, const char *payload, size_t len)
{
    if (g->caught_up_ms == 0) {
        return false;
    }
    if (imk_now_ms() - g->caught_up_ms > CATCH_UP_OVERLAP_MS) {
        g->caught_up_ms = 0;
        return false;
    }
    int64_t seq = message_seq(payload, len);
    return seq > 0 && seq <= g->after_seq;
}

void imk_fanout_deliver(imk_fanout_t *f, const char *channel, size_t channel_len,
                        const char *payload, size_t payload_len)
{
    size_t plen = strlen(f->gw->cfg->redis_prefix);
    char kind;
    const char *id;
    size_t id_len;
    if (channel_len <= plen ||
        parse_channel(channel + plen, channel_len - plen, &kind, &id, &id_len) != 0) {
        IMK_WARN("unknown_channel", "channel=%.*s", (int)channel_len, channel);
        return;
    }
    if (kind == 'r') {
        struct group *g = imk_map_get(f->rooms, id, id_len);
        if (g != NULL && g->catching_up) {
            imk_buf_append(&g->held, &payload_len, sizeof(payload_len));
            imk_buf_append(&g->held, payload, payload_len);
        } else if (g == NULL || !caught_up_already(g, payload, payload_len)) {
            send_to_room(g, payload, payload_len);
        }
    } else if (kind == 'u') {
        struct group *g = imk_map_get(f->clients, id, id_len);
        if (follow_membership(f, g, payload, payload_len)) {
            send_to_group(g, payload, payload_len);
        }
    } else if (kind == 'p') {
        send_to_group(imk_map_get(f->watched, id, id_len), payload, payload_len);
    }
}

/* What the history reply of a catch-up needs: the fan-out and the room (copied: the group
 * may be gone by the time the reply comes). */
struct catch_up {
    imk_fanout_t *f;
    char room[IMK_ID_MAX + 1];
};

/* The seq of a held message event, or 0 for any other event. */
static int64_t message_seq(const char *payload, size_t len)
{
    const char *nl = len > 0 && payload[0] == '!' ? memchr(payload, '\n', len) : NULL;
    const char *frame = nl != NULL ? nl + 1 : payload;
    int64_t scanned = imk_event_message_seq(frame, len - (size_t)(frame - payload));
    if (scanned >= 0) {
        return scanned;
    }
    json_t *ev = json_loadb(frame, len - (size_t)(frame - payload), 0, NULL);
    int64_t seq = 0;
    if (json_is_string(json_object_get(ev, "ev")) &&
        strcmp(json_string_value(json_object_get(ev, "ev")), "message") == 0) {
        seq = json_integer_value(json_object_get(json_object_get(ev, "data"), "seq"));
    }
    json_decref(ev);
    return seq;
}

/* Delivers the fetched messages, then the held events that are not among them. */
static void finish_catch_up(struct group *g, json_t *messages)
{
    int64_t last = g->after_seq;
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m)
    {
        char *text = json_dumps(m, JSON_COMPACT);
        if (text != NULL) {
            imk_buf_t frame = IMK_BUF_INIT;
            imk_buf_printf(&frame, "{\"ev\":\"message\",\"data\":%s}", text);
            send_to_group(g, frame.data, frame.len);
            imk_buf_deinit(&frame);
            free(text);
        }
        json_int_t seq = json_integer_value(json_object_get(m, "seq"));
        last = seq > last ? seq : last;
    }
    g->catching_up = false;
    g->fetching = false;
    for (size_t off = 0; off + sizeof(size_t) <= g->held.len;) {
        size_t len;
        memcpy(&len, g->held.data + off, sizeof(len));
        const char *payload = g->held.data + off + sizeof(len);
        int64_t seq = message_seq(payload, len);
        if (seq == 0 || seq > last) {
            send_to_room(g, payload, len);
        }
        last = seq > last ? seq : last;
        off += sizeof(len) + len;
    }
    imk_buf_deinit(&g->held);
    g->after_seq = last;
    g->caught_up_ms = imk_now_ms();
}

static void on_history(struct redisReply *reply, void *arg)
{
    struct catch_up *cu = arg;
    struct group *g = imk_map_get(cu->f->rooms, cu->room, strlen(cu->room));
    if (g != NULL && g->catching_up) {
        json_t *body = NULL;
        if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 &&
            strcmp(reply->element[0]->str, "ok") == 0) {
            body = json_loadb(reply->element[1]->str, reply->element[1]->len, 0, NULL);
        }
        finish_catch_up(g, json_object_get(body, "messages"));
        json_decref(body);
    }
    free(cu);
}

void imk_fanout_on_subscribed(imk_fanout_t *f, const char *channel, size_t channel_len)
{
    size_t plen = strlen(f->gw->cfg->redis_prefix);
    char kind;
    const char *id;
    size_t id_len;
    if (channel_len <= plen ||
        parse_channel(channel + plen, channel_len - plen, &kind, &id, &id_len) != 0 ||
        kind != 'r') {
        return;
    }
    struct group *g = imk_map_get(f->rooms, id, id_len);
    struct catch_up *cu = g != NULL && g->catching_up && !g->fetching ? malloc(sizeof(*cu)) : NULL;
    if (cu == NULL) {
        return;
    }
    cu->f = f;
    snprintf(cu->room, sizeof(cu->room), "%.*s", (int)id_len, id);
    imk_buf_t args = IMK_BUF_INIT;
    imk_mp_t mp;
    imk_mp_init(&mp, &args);
    imk_mp_map(&mp, 3);
    imk_mp_cstr(&mp, "room");
    imk_mp_cstr(&mp, cu->room);
    imk_mp_cstr(&mp, "after");
    imk_mp_int(&mp, g->after_seq);
    imk_mp_cstr(&mp, "limit");
    imk_mp_int(&mp, 100);
    /* As the system (from ""): the joined client's membership is a fact already. */
    imk_link_fcall_t call = {"imkit_msg_history", true, cu->room, "", args.data, args.len, NULL};
    g->fetching = true;
    if (mp.err != 0 || imk_link_fcall(f->gw->link, &call, on_history, cu) != 0) {
        free(cu);
        finish_catch_up(g, NULL);
    }
    imk_buf_deinit(&args);
}
