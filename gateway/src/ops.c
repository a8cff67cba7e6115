/* Validation of every operation's fields, and their msgpack arguments. The Redis Functions
 * trust these checks (types, alphabets, sizes) and check only what needs state. */
#include "ops.h"
#include "imkit/ids.h"
#include "imkit/job.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NAME_MAX_BYTES 256
#define URL_MAX_BYTES 2048
#define CURSOR_MAX_BYTES 256
#define EMOJI_MAX_BYTES 32

int imk_op_fail(imk_op_error_t *err, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    err->code = code;
    return -1;
}

/* The arguments map under construction: fields are counted as they are written, and the
 * map header is written in front at the end. */
struct args {
    imk_buf_t body;
    imk_mp_t mp;
    uint32_t n;
    char storage[IMK_OP_ARGS_STORAGE];
};

static void args_init(struct args *a)
{
    imk_buf_init_on(&a->body, a->storage, sizeof(a->storage));
    imk_mp_init(&a->mp, &a->body);
    a->n = 0;
}

static void args_key(struct args *a, const char *key)
{
    imk_mp_cstr(&a->mp, key);
    a->n++;
}

static void args_str(struct args *a, const char *key, const char *value, size_t len)
{
    args_key(a, key);
    imk_mp_str(&a->mp, value, len);
}

static void args_int(struct args *a, const char *key, int64_t value)
{
    args_key(a, key);
    imk_mp_int(&a->mp, value);
}

static int args_finish(struct args *a, imk_buf_t *out, imk_op_error_t *err)
{
    imk_mp_t head;
    imk_mp_init(&head, out);
    imk_mp_map(&head, a->n);
    int rc = a->mp.err != 0 || head.err != 0 || imk_buf_append(out, a->body.data, a->body.len);
    imk_buf_deinit(&a->body);
    return rc == 0 ? 0 : imk_op_fail(err, "internal", "out of memory");
}

/* Field readers: each returns 0 (value or absence stored), or -1 with err naming the field.
 * A JSON null counts as absent, except where a reader says otherwise. */

static json_t *field(json_t *data, const char *name)
{
    json_t *v = data != NULL ? json_object_get(data, name) : NULL;
    return json_is_null(v) ? NULL : v;
}

static int read_id(json_t *data, const char *name, bool required, const char **out,
                   imk_op_error_t *err)
{
    json_t *v = field(data, name);
    *out = NULL;
    if (v == NULL) {
        return required ? imk_op_fail(err, "bad_request", "%s: required", name) : 0;
    }
    if (!json_is_string(v) || !imk_id_valid(json_string_value(v), json_string_length(v))) {
        return imk_op_fail(err, "bad_request", "%s: must be 1-64 bytes of [A-Za-z0-9_.@:-]", name);
    }
    *out = json_string_value(v);
    return 0;
}

static int read_string(json_t *data, const char *name, size_t max, bool required, const char **out,
                       size_t *len, imk_op_error_t *err)
{
    json_t *v = field(data, name);
    *out = NULL;
    *len = 0;
    if (v == NULL) {
        return required ? imk_op_fail(err, "bad_request", "%s: required", name) : 0;
    }
    if (!json_is_string(v)) {
        return imk_op_fail(err, "bad_request", "%s: must be a string", name);
    }
    if (json_string_length(v) > max) {
        return imk_op_fail(err, "too_large", "%s: over %zu bytes", name, max);
    }
    if (memchr(json_string_value(v), '\0', json_string_length(v)) != NULL) {
        return imk_op_fail(err, "bad_request", "%s: must not hold NUL characters", name);
    }
    *out = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

static int read_int(json_t *data, const char *name, int64_t min, int64_t max, bool required,
                    bool *present, int64_t *out, imk_op_error_t *err)
{
    json_t *v = field(data, name);
    *present = v != NULL;
    if (v == NULL) {
        return required ? imk_op_fail(err, "bad_request", "%s: required", name) : 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        return imk_op_fail(err, "bad_request", "%s: must be an integer in %lld..%lld", name,
                           (long long)min, (long long)max);
    }
    *out = json_integer_value(v);
    return 0;
}

/* A JSON object given by a user (meta, payload), as compact JSON text (caller frees). */
static int read_object_text(json_t *data, const char *name, size_t max, bool required, char **out,
                            imk_op_error_t *err)
{
    json_t *v = field(data, name);
    *out = NULL;
    if (v == NULL) {
        return required ? imk_op_fail(err, "bad_request", "%s: required", name) : 0;
    }
    if (!json_is_object(v)) {
        return imk_op_fail(err, "bad_request", "%s: must be an object", name);
    }
    /* Dumped into a buffer of our own: json_dumps would allocate it in the frame's arena
     * (json_arena.h), which the caller's free() must not see. */
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT);
    if (n > max) {
        return imk_op_fail(err, "too_large", "%s: over %zu bytes of JSON", name, max);
    }
    *out = malloc(n + 1);
    if (n == 0 || *out == NULL || json_dumpb(v, *out, n, JSON_COMPACT) != n) {
        free(*out);
        *out = NULL;
        return imk_op_fail(err, "internal", "out of memory");
    }
    (*out)[n] = '\0';
    return 0;
}

/* An array of distinct ids, at most max. */
static int read_ids(json_t *data, const char *name, size_t max, bool required, json_t **out,
                    imk_op_error_t *err)
{
    json_t *v = field(data, name);
    *out = NULL;
    if (v == NULL) {
        return required ? imk_op_fail(err, "bad_request", "%s: required", name) : 0;
    }
    if (!json_is_array(v)) {
        return imk_op_fail(err, "bad_request", "%s: must be an array of ids", name);
    }
    if (json_array_size(v) > max) {
        return imk_op_fail(err, "too_large", "%s: at most %zu ids", name, max);
    }
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item) ||
            !imk_id_valid(json_string_value(item), json_string_length(item))) {
            return imk_op_fail(err, "bad_request",
                               "%s[%zu]: must be 1-64 bytes of "
                               "[A-Za-z0-9_.@:-]",
                               name, i);
        }
        for (size_t k = 0; k < i; k++) { /* at most limits.ids ids: quadratic is fine */
            if (json_equal(json_array_get(v, k), item)) {
                return imk_op_fail(err, "bad_request", "%s[%zu]: duplicate of %s[%zu]", name, i,
                                   name, k);
            }
        }
    }
    *out = v;
    return 0;
}

static void args_ids(struct args *a, const char *key, json_t *ids)
{
    args_key(a, key);
    imk_mp_array(&a->mp, (uint32_t)json_array_size(ids));
    size_t i;
    json_t *item;
    json_array_foreach(ids, i, item)
    {
        imk_mp_str(&a->mp, json_string_value(item), json_string_length(item));
    }
}

static void args_opt_str(struct args *a, const char *key, const char *value, size_t len)
{
    if (value != NULL) {
        args_str(a, key, value, len);
    }
}

static void args_opt_text(struct args *a, const char *key, const char *value)
{
    if (value != NULL) {
        args_str(a, key, value, strlen(value));
    }
}

static int limit_of(json_t *data, int64_t def, int64_t *out, imk_op_error_t *err)
{
    bool present;
    json_t *v = field(data, "limit");
    if (v != NULL && !json_is_integer(v)) {
        return imk_op_fail(err, "bad_request", "limit: must be an integer");
    }
    if (read_int(data, "limit", INT64_MIN, INT64_MAX, false, &present, out, err) != 0) {
        return -1;
    }
    /* Out of range is clamped, as the contract says, not refused. */
    *out = !present ? def : *out < 1 ? 1 : *out > 100 ? 100 : *out;
    return 0;
}

/* Operations. */

static int build_client_get(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                            imk_op_route_t *route, imk_op_error_t *err)
{
    (void)route;
    json_t *ids;
    if (read_ids(data, "ids", (size_t)ctx->cfg->limits_ids, true, &ids, err) != 0) {
        return -1;
    }
    struct args a;
    args_init(&a);
    args_ids(&a, "ids", ids);
    return args_finish(&a, out, err);
}

/* An operation on one room or one client, named by field; its job goes to that id's
 * stream. */
static int build_one_id(json_t *data, imk_buf_t *out, imk_op_route_t *route, imk_op_error_t *err,
                        const char *field)
{
    const char *id;
    if (read_id(data, field, true, &id, err) != 0) {
        return -1;
    }
    route->partition = id;
    struct args a;
    args_init(&a);
    args_str(&a, field, id, strlen(id));
    return args_finish(&a, out, err);
}

static int build_room_only(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                           imk_op_route_t *route, imk_op_error_t *err)
{
    (void)ctx;
    return build_one_id(data, out, route, err, "room");
}

/* name, cover, meta: the profile fields of rooms and clients. */
struct profile_fields {
    const char *name;
    size_t name_len;
    const char *image; /* cover or avatar */
    size_t image_len;
    char *meta;
};

static int read_profile(const imk_op_ctx_t *ctx, json_t *data, const char *image_field,
                        struct profile_fields *p, imk_op_error_t *err)
{
    memset(p, 0, sizeof(*p));
    if (read_string(data, "name", NAME_MAX_BYTES, false, &p->name, &p->name_len, err) != 0 ||
        read_string(data, image_field, URL_MAX_BYTES, false, &p->image, &p->image_len, err) != 0 ||
        read_object_text(data, "meta", (size_t)ctx->cfg->limits_payload, false, &p->meta, err) !=
            0) {
        return -1;
    }
    return 0;
}

/* The profile fields given, and under "clear" those given as null (an update clears them;
 * creation ignores the list). */
static void args_profile(struct args *a, const char *image_field, const struct profile_fields *p,
                         json_t *data)
{
    const char *const fields[] = {"name", image_field, "meta"};
    uint32_t nclear = 0;
    args_opt_str(a, "name", p->name, p->name_len);
    args_opt_str(a, image_field, p->image, p->image_len);
    args_opt_text(a, "meta", p->meta);
    for (size_t i = 0; data != NULL && i < 3; i++) {
        nclear += json_is_null(json_object_get(data, fields[i]));
    }
    if (nclear == 0) {
        return;
    }
    args_key(a, "clear");
    imk_mp_array(&a->mp, nclear);
    for (size_t i = 0; i < 3; i++) {
        if (json_is_null(json_object_get(data, fields[i]))) {
            imk_mp_cstr(&a->mp, fields[i]);
        }
    }
}

/* A direct room's pair "<a>|<b>" in byte order (as the pair's key direct:{<a>|<b>}) into
 * out: the caller and the one other member it names, or the admin API's two members.
 * NULL when the members make no pair (the function refuses them). */
static const char *direct_pair(const imk_op_ctx_t *ctx, json_t *members, char *out, size_t len)
{
    const char *ids[2] = {ctx->admin ? NULL : ctx->client, NULL};
    int n = ids[0] != NULL;
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m)
    {
        const char *id = json_string_value(m);
        if (n > 0 && strcmp(id, ids[0]) == 0) {
            continue; /* the caller listed itself */
        }
        if (n == 2) {
            return NULL; /* a third member */
        }
        ids[n++] = id;
    }
    if (n != 2) {
        return NULL;
    }
    bool swap = strcmp(ids[1], ids[0]) < 0;
    snprintf(out, len, "%s|%s", ids[swap ? 1 : 0], ids[swap ? 0 : 1]);
    return out;
}

static int build_room_create(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                             imk_op_route_t *route, imk_op_error_t *err)
{
    const char *type, *id, *owner = NULL;
    size_t type_len;
    json_t *members;
    struct profile_fields p;
    if (read_string(data, "type", 16, true, &type, &type_len, err) != 0) {
        return -1;
    }
    if (strcmp(type, "direct") != 0 && strcmp(type, "group") != 0) {
        return imk_op_fail(err, "bad_request", "type: must be \"direct\" or \"group\"");
    }
    if (read_ids(data, "members", (size_t)ctx->cfg->limits_ids, true, &members, err) != 0 ||
        read_id(data, "id", false, &id, err) != 0 ||
        (ctx->admin && read_id(data, "owner", false, &owner, err) != 0)) {
        return -1;
    }
    if (read_profile(ctx, data, "cover", &p, err) != 0) {
        return -1;
    }
    char new_id[17];
    if (imk_id_random(new_id) != 0) {
        free(p.meta);
        return imk_op_fail(err, "internal", "no randomness");
    }
    /* The function's home: a group room (its id, or the one made for it), or a direct
     * room's pair, whose key says which room the pair has. */
    if (strcmp(type, "group") == 0) {
        route->partition = id != NULL ? id : memcpy(route->home, new_id, sizeof(new_id));
    } else {
        route->partition = direct_pair(ctx, members, route->home, sizeof(route->home));
    }
    struct args a;
    args_init(&a);
    args_str(&a, "type", type, type_len);
    args_ids(&a, "members", members);
    args_str(&a, "new_id", new_id, 16);
    args_opt_text(&a, "id", id);
    args_opt_text(&a, "owner", owner);
    args_int(&a, "max_members", ctx->cfg->limits_members);
    args_profile(&a, "cover", &p, NULL);
    free(p.meta);
    return args_finish(&a, out, err);
}

static bool valid_message_type(const char *type)
{
    static const char *const types[] = {"text", "image", "file", "location", "sticker", "custom"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(type, types[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int build_msg_send(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                          imk_op_route_t *route, imk_op_error_t *err)
{
    const char *room, *cid, *type, *text, *from = NULL;
    size_t type_len, text_len;
    int64_t reply_to = 0;
    bool has_reply_to;
    json_t *mentions;
    char *payload = NULL;
    char generated_cid[17];
    if (read_id(data, "room", true, &room, err) != 0 ||
        (ctx->admin && read_id(data, "from", true, &from, err) != 0) ||
        read_id(data, "cid", !ctx->admin, &cid, err) != 0 ||
        read_string(data, "type", 16, true, &type, &type_len, err) != 0) {
        return -1;
    }
    if (!valid_message_type(type)) {
        return imk_op_fail(err, "bad_request",
                           "type: must be text, image, file, location, sticker or custom");
    }
    if (read_string(data, "text", (size_t)ctx->cfg->limits_text, strcmp(type, "text") == 0, &text,
                    &text_len, err) != 0 ||
        read_int(data, "reply_to", 1, INT64_MAX, false, &has_reply_to, &reply_to, err) != 0 ||
        read_ids(data, "mentions", (size_t)ctx->cfg->limits_ids, false, &mentions, err) != 0 ||
        read_object_text(data, "payload", (size_t)ctx->cfg->limits_payload,
                         strcmp(type, "text") != 0, &payload, err) != 0) {
        return -1;
    }
    if (cid == NULL) { /* the admin API may leave cid out: each call is then a new message */
        if (imk_id_random(generated_cid) != 0) {
            free(payload);
            return imk_op_fail(err, "internal", "no randomness");
        }
        cid = generated_cid;
    }
    route->partition = room;
    route->acting = from;
    struct args a;
    args_init(&a);
    args_str(&a, "room", room, strlen(room));
    args_str(&a, "cid", cid, strlen(cid));
    args_str(&a, "type", type, type_len);
    args_opt_str(&a, "text", text, text_len);
    args_opt_text(&a, "payload", payload);
    if (has_reply_to) {
        args_int(&a, "reply_to", reply_to);
    }
    if (mentions != NULL) {
        args_ids(&a, "mentions", mentions);
    }
    free(payload);
    return args_finish(&a, out, err);
}

static int build_msg_history(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                             imk_op_route_t *route, imk_op_error_t *err)
{
    (void)ctx;
    const char *room;
    int64_t before = 0, after = 0, limit;
    bool has_before, has_after;
    if (read_id(data, "room", true, &room, err) != 0 ||
        read_int(data, "before", 1, INT64_MAX, false, &has_before, &before, err) != 0 ||
        read_int(data, "after", 0, INT64_MAX, false, &has_after, &after, err) != 0 ||
        limit_of(data, 50, &limit, err) != 0) {
        return -1;
    }
    if (has_before && has_after) {
        return imk_op_fail(err, "bad_request", "before, after: give one, not both");
    }
    struct args a;
    args_init(&a);
    args_str(&a, "room", room, strlen(room));
    args_int(&a, "limit", limit);
    if (has_before) {
        args_int(&a, "before", before);
    }
    if (has_after) {
        args_int(&a, "after", after);
    }
    route->partition = room; /* the room's slot: on a cluster, the query runs there */
    return args_finish(&a, out, err);
}

static int build_room_list(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                           imk_op_route_t *route, imk_op_error_t *err)
{
    const char *before, *client = NULL;
    size_t before_len;
    int64_t limit;
    if ((ctx->admin && read_id(data, "client", true, &client, err) != 0) ||
        limit_of(data, 20, &limit, err) != 0 ||
        read_string(data, "before", CURSOR_MAX_BYTES, false, &before, &before_len, err) != 0) {
        return -1;
    }
    route->acting = client;
    struct args a;
    args_init(&a);
    args_int(&a, "limit", limit);
    args_opt_str(&a, "before", before, before_len);
    return args_finish(&a, out, err);
}

/* The profile fields of a client or a room, set or (given as null) cleared: PUT
 * /v1/clients/{id} (id_field "id", the admin layer puts the path's id into data),
 * room.update and PATCH /v1/rooms/{rid} ("room"), me.update (no id: the caller). */
static int build_profile_change(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                                imk_op_route_t *route, imk_op_error_t *err, const char *id_field,
                                const char *image_field)
{
    const char *id = NULL;
    struct profile_fields p;
    if ((id_field != NULL && read_id(data, id_field, true, &id, err) != 0) ||
        read_profile(ctx, data, image_field, &p, err) != 0) {
        return -1;
    }
    route->partition = id;
    struct args a;
    args_init(&a);
    if (id != NULL) {
        args_str(&a, id_field, id, strlen(id));
    }
    args_profile(&a, image_field, &p, data);
    free(p.meta);
    return args_finish(&a, out, err);
}

static int build_client_put(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                            imk_op_route_t *route, imk_op_error_t *err)
{
    return build_profile_change(ctx, data, out, route, err, "id", "avatar");
}

static int build_me_update(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                           imk_op_route_t *route, imk_op_error_t *err)
{
    return build_profile_change(ctx, data, out, route, err, NULL, "avatar");
}

static int build_room_update(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                             imk_op_route_t *route, imk_op_error_t *err)
{
    return build_profile_change(ctx, data, out, route, err, "room", "cover");
}

/* Admin: POST /v1/clients/{id}/tokens; the admin layer adds id and the token's hash. */
static int build_token_create(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                              imk_op_route_t *route, imk_op_error_t *err)
{
    const char *id, *hash;
    size_t hash_len;
    int64_t ttl = ctx->cfg->limits_token_ttl, iat;
    bool present;
    if (read_id(data, "id", true, &id, err) != 0 ||
        read_string(data, "hash", 64, true, &hash, &hash_len, err) != 0 ||
        read_int(data, "ttl", 1, 31536000, false, &present, &ttl, err) != 0 ||
        read_int(data, "iat", 0, INT64_MAX, true, &present, &iat, err) != 0) {
        return -1;
    }
    if (!present) {
        ttl = ctx->cfg->limits_token_ttl;
    }
    route->partition = id;
    struct args a;
    args_init(&a);
    args_str(&a, "id", id, strlen(id));
    args_str(&a, "hash", hash, hash_len);
    args_int(&a, "ttl", ttl);
    args_int(&a, "iat", iat);
    return args_finish(&a, out, err);
}

/* room.members.add and room.members.remove: a room and the ids to add or remove. */
static int build_members(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                         imk_op_route_t *route, imk_op_error_t *err)
{
    const char *room;
    json_t *members;
    if (read_id(data, "room", true, &room, err) != 0 ||
        read_ids(data, "members", (size_t)ctx->cfg->limits_ids, true, &members, err) != 0) {
        return -1;
    }
    if (json_array_size(members) == 0) {
        return imk_op_fail(err, "bad_request", "members: at least one id");
    }
    route->partition = room;
    struct args a;
    args_init(&a);
    args_str(&a, "room", room, strlen(room));
    args_ids(&a, "members", members);
    args_int(&a, "max_members", ctx->cfg->limits_members);
    return args_finish(&a, out, err);
}

/* msg.recall, and the room and seq that msg.edit and msg.react start with. */
static int read_message_ref(json_t *data, const char **room, int64_t *seq, imk_op_error_t *err)
{
    bool present;
    return read_id(data, "room", true, room, err) != 0 ||
                   read_int(data, "seq", 1, INT64_MAX, true, &present, seq, err) != 0
               ? -1
               : 0;
}

/* A room and a seq: room.read (seq >= 0: nothing read) and msg.recall (seq >= 1). */
static int build_room_seq(json_t *data, imk_buf_t *out, imk_op_route_t *route, imk_op_error_t *err,
                          int64_t min_seq)
{
    const char *room;
    int64_t seq;
    bool present;
    if (read_id(data, "room", true, &room, err) != 0 ||
        read_int(data, "seq", min_seq, INT64_MAX, true, &present, &seq, err) != 0) {
        return -1;
    }
    route->partition = room;
    struct args a;
    args_init(&a);
    args_str(&a, "room", room, strlen(room));
    args_int(&a, "seq", seq);
    return args_finish(&a, out, err);
}

static int build_room_read(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                           imk_op_route_t *route, imk_op_error_t *err)
{
    (void)ctx;
    return build_room_seq(data, out, route, err, 0);
}

static int build_msg_recall(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                            imk_op_route_t *route, imk_op_error_t *err)
{
    (void)ctx;
    return build_room_seq(data, out, route, err, 1);
}

static int build_msg_edit(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                          imk_op_route_t *route, imk_op_error_t *err)
{
    const char *room, *text;
    size_t text_len;
    int64_t seq;
    char *payload = NULL;
    if (read_message_ref(data, &room, &seq, err) != 0 ||
        read_string(data, "text", (size_t)ctx->cfg->limits_text, false, &text, &text_len, err) !=
            0 ||
        read_object_text(data, "payload", (size_t)ctx->cfg->limits_payload, false, &payload, err) !=
            0) {
        return -1;
    }
    if (text == NULL && payload == NULL) {
        return imk_op_fail(err, "bad_request", "text, payload: give at least one");
    }
    route->partition = room;
    struct args a;
    args_init(&a);
    args_str(&a, "room", room, strlen(room));
    args_int(&a, "seq", seq);
    args_opt_str(&a, "text", text, text_len);
    args_opt_text(&a, "payload", payload);
    free(payload);
    return args_finish(&a, out, err);
}

static int build_msg_react(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                           imk_op_route_t *route, imk_op_error_t *err)
{
    (void)ctx;
    const char *room, *emoji;
    size_t emoji_len;
    int64_t seq;
    json_t *on = field(data, "on");
    if (read_message_ref(data, &room, &seq, err) != 0 ||
        read_string(data, "emoji", EMOJI_MAX_BYTES, true, &emoji, &emoji_len, err) != 0) {
        return -1;
    }
    if (emoji_len == 0) {
        return imk_op_fail(err, "bad_request", "emoji: 1-%d bytes", EMOJI_MAX_BYTES);
    }
    if (!json_is_boolean(on)) {
        return imk_op_fail(err, "bad_request", "on: required, a boolean");
    }
    route->partition = room;
    struct args a;
    args_init(&a);
    args_str(&a, "room", room, strlen(room));
    args_int(&a, "seq", seq);
    args_str(&a, "emoji", emoji, emoji_len);
    args_key(&a, "on");
    imk_mp_bool(&a.mp, json_is_true(on));
    return args_finish(&a, out, err);
}

/* sync: known is {"<room id>": last seq held}. */
static int build_sync(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out, imk_op_route_t *route,
                      imk_op_error_t *err)
{
    (void)ctx;
    (void)route;
    json_t *known = field(data, "known");
    if (known != NULL && !json_is_object(known)) {
        return imk_op_fail(err, "bad_request", "known: must be an object of room id to seq");
    }
    const char *room;
    json_t *seq;
    json_object_foreach(known, room, seq)
    {
        if (!imk_id_valid(room, strlen(room))) {
            return imk_op_fail(err, "bad_request",
                               "known: room ids must be 1-64 bytes of "
                               "[A-Za-z0-9_.@:-]");
        }
        if (!json_is_integer(seq) || json_integer_value(seq) < 0) {
            return imk_op_fail(err, "bad_request", "known.%s: must be an integer >= 0", room);
        }
    }
    struct args a;
    args_init(&a);
    args_key(&a, "known");
    imk_mp_map(&a.mp, (uint32_t)json_object_size(known));
    json_object_foreach(known, room, seq)
    {
        imk_mp_cstr(&a.mp, room);
        imk_mp_int(&a.mp, json_integer_value(seq));
    }
    return args_finish(&a, out, err);
}

/* Admin operations on one client: the admin layer puts the path's id into data. */
static int build_client_id(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                           imk_op_route_t *route, imk_op_error_t *err)
{
    (void)ctx;
    return build_one_id(data, out, route, err, "id");
}

/* Admin: GET /v1/events?after=&limit=: after is an event id ("<ms>-<n>"), exclusive. Routed
 * to the outbox stream's slot: "{<prefix>events}" hashes as "<prefix>events" does. */
static int build_events_get(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                            imk_op_route_t *route, imk_op_error_t *err)
{
    snprintf(route->home, sizeof(route->home), "%sevents", ctx->cfg->redis_prefix);
    route->partition = route->home;
    const char *after;
    size_t after_len;
    bool present;
    int64_t limit = 100;
    json_t *after_v = field(data, "after");
    char after_text[48] = "0-0";
    if (json_is_integer(after_v)) { /* a bare millisecond time from the query string */
        snprintf(after_text, sizeof(after_text), "%lld-0", (long long)json_integer_value(after_v));
    } else {
        if (read_string(data, "after", 41, false, &after, &after_len, err) != 0) {
            return -1;
        }
        unsigned long long ms, n;
        char tail;
        if (after != NULL && sscanf(after, "%llu-%llu%c", &ms, &n, &tail) != 2) {
            return imk_op_fail(err, "bad_request", "after: an event id such as 1764115200000-0");
        }
        if (after != NULL) {
            snprintf(after_text, sizeof(after_text), "%s", after);
        }
    }
    if (read_int(data, "limit", 1, INT64_MAX, false, &present, &limit, err) != 0) {
        return -1;
    }
    limit = !present ? 100 : limit > 1000 ? 1000 : limit;
    struct args a;
    args_init(&a);
    args_str(&a, "after", after_text, strlen(after_text));
    args_int(&a, "limit", limit);
    return args_finish(&a, out, err);
}

/* presence.watch's query: ids to report on. */
static int build_presence_get(const imk_op_ctx_t *ctx, json_t *data, imk_buf_t *out,
                              imk_op_route_t *route, imk_op_error_t *err)
{
    return build_client_get(ctx, data, out, route, err);
}

static const imk_op_t ops[] = {
    {"client.get", "imkit_client_get", true, build_client_get},
    {"room.create", "imkit_room_create", false, build_room_create},
    {"room.get", "imkit_room_get", true, build_room_only},
    {"room.list", "imkit_room_list", true, build_room_list},
    {"room.read", "imkit_room_read", false, build_room_read},
    {"msg.send", "imkit_msg_send", false, build_msg_send},
    {"msg.history", "imkit_msg_history", true, build_msg_history},
    {"me.update", "imkit_me_update", false, build_me_update},
    {"room.update", "imkit_room_update", false, build_room_update},
    {"room.members.add", "imkit_members_add", false, build_members},
    {"room.members.remove", "imkit_members_remove", false, build_members},
    {"room.leave", "imkit_room_leave", false, build_room_only},
    {"msg.edit", "imkit_msg_edit", false, build_msg_edit},
    {"msg.recall", "imkit_msg_recall", false, build_msg_recall},
    {"msg.react", "imkit_msg_react", false, build_msg_react},
    {"sync", "imkit_sync", true, build_sync},
    {"presence.watch", "imkit_presence_get", true, build_presence_get},
    {"admin.client.put", "imkit_client_put", false, build_client_put},
    {"admin.client.delete", "imkit_client_delete", false, build_client_id},
    {"admin.tokens.revoke", "imkit_tokens_revoke", false, build_client_id},
    {"admin.token.create", "imkit_token_create", false, build_token_create},
    {"admin.room.delete", "imkit_room_delete", false, build_room_only},
    {"admin.events.get", "imkit_events_get", true, build_events_get},
};

const imk_op_t *imk_op_at(size_t i)
{
    return i < sizeof(ops) / sizeof(ops[0]) ? &ops[i] : NULL;
}

const imk_op_t *imk_op_find(const char *name)
{
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strcmp(ops[i].name, name) == 0) {
            return &ops[i];
        }
    }
    return NULL;
}
