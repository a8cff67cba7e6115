/* Unit tests of gateway/src/ops.c through ops.h: for every operation of the table, valid
 * data gives the right msgpack arguments (decoded here with msgpack-c) and route, and each
 * kind of bad data gives the contract's error code with the field named (bad_request,
 * too_large at the configured limits, limit clamping, message types, id alphabets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

#include "imkit/config.h"
#include "imkit/ids.h"
#include "ops.h"
#include "stats.h"

static imk_config_t cfg;

static int setup(void **state)
{
    (void)state;
    return imk_config_init(&cfg);
}

static int teardown(void **state)
{
    (void)state;
    imk_config_deinit(&cfg);
    return 0;
}

/* ---- running one build ------------------------------------------------------------------ */

struct result {
    int rc;
    json_t *data; /* kept alive: route points into it */
    imk_buf_t args;
    imk_op_route_t route;
    imk_op_error_t err;
    msgpack_unpacked msg;
    const msgpack_object_map *map;
};

static void result_free(struct result *r)
{
    msgpack_unpacked_destroy(&r->msg);
    imk_buf_deinit(&r->args);
    json_decref(r->data);
}

/* Runs op's build on data (a reference is taken over; NULL for none). On success, checks
 * that args is exactly one msgpack map with string keys, each key once. */
static void run_json(struct result *r, const char *op_name, bool admin, json_t *data)
{
    const imk_op_t *op = imk_op_find(op_name);
    imk_op_ctx_t ctx = {&cfg, admin, admin ? NULL : "alice"};

    assert_non_null(op);
    memset(r, 0, sizeof(*r));
    r->data = data;
    r->args = (imk_buf_t)IMK_BUF_INIT;
    r->err.code = NULL;
    msgpack_unpacked_init(&r->msg);
    r->rc = op->build(&ctx, data, &r->args, &r->route, &r->err);
    if (r->rc != 0) {
        assert_int_equal(r->rc, -1);
        assert_non_null(r->err.code);
        assert_true(strlen(r->err.message) < sizeof(r->err.message));
        return;
    }
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&r->msg, r->args.data, r->args.len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, r->args.len);
    assert_int_equal(r->msg.data.type, MSGPACK_OBJECT_MAP);
    r->map = &r->msg.data.via.map;
    for (uint32_t i = 0; i < r->map->size; i++) {
        const msgpack_object *k = &r->map->ptr[i].key;
        assert_int_equal(k->type, MSGPACK_OBJECT_STR);
        for (uint32_t j = 0; j < i; j++) {
            const msgpack_object *o = &r->map->ptr[j].key;
            assert_false(o->via.str.size == k->via.str.size &&
                         memcmp(o->via.str.ptr, k->via.str.ptr, k->via.str.size) == 0);
        }
    }
}

static void run(struct result *r, const char *op_name, bool admin, const char *json)
{
    json_t *data = NULL;
    if (json != NULL) {
        json_error_t e;
        data = json_loads(json, JSON_REJECT_DUPLICATES, &e);
        if (data == NULL) {
            fail_msg("bad test JSON %s: %s", json, e.text);
        }
    }
    run_json(r, op_name, admin, data);
}

static const msgpack_object *arg(const struct result *r, const char *key)
{
    size_t n = strlen(key);
    for (uint32_t i = 0; i < r->map->size; i++) {
        const msgpack_object *k = &r->map->ptr[i].key;
        if (k->via.str.size == n && memcmp(k->via.str.ptr, key, n) == 0) {
            return &r->map->ptr[i].val;
        }
    }
    return NULL;
}

static void assert_ok(const struct result *r)
{
    if (r->rc != 0) {
        fail_msg("build failed: %s: %s", r->err.code, r->err.message);
    }
}

static void assert_nargs(const struct result *r, uint32_t n)
{
    assert_int_equal(r->map->size, n);
}

static void assert_arg_strn(const struct result *r, const char *key, const char *want, size_t len)
{
    const msgpack_object *v = arg(r, key);
    if (v == NULL) {
        fail_msg("no argument %s", key);
    }
    assert_int_equal(v->type, MSGPACK_OBJECT_STR); /* str, never bin: cmsgpack needs str */
    assert_int_equal(v->via.str.size, len);
    assert_memory_equal(v->via.str.ptr, want, len);
}

static void assert_arg_str(const struct result *r, const char *key, const char *want)
{
    assert_arg_strn(r, key, want, strlen(want));
}

static void assert_arg_int(const struct result *r, const char *key, int64_t want)
{
    const msgpack_object *v = arg(r, key);
    if (v == NULL) {
        fail_msg("no argument %s", key);
    }
    if (want >= 0) {
        assert_int_equal(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        assert_true(v->via.u64 == (uint64_t)want);
    } else {
        assert_int_equal(v->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
        assert_true(v->via.i64 == want);
    }
}

/* want: the strings, NULL-terminated. */
static void assert_arg_strs(const struct result *r, const char *key, ...)
{
    const msgpack_object *v = arg(r, key);
    va_list ap;
    uint32_t i = 0;
    if (v == NULL) {
        fail_msg("no argument %s", key);
    }
    assert_int_equal(v->type, MSGPACK_OBJECT_ARRAY);
    va_start(ap, key);
    for (const char *s = va_arg(ap, const char *); s != NULL; s = va_arg(ap, const char *), i++) {
        assert_true(i < v->via.array.size);
        const msgpack_object *e = &v->via.array.ptr[i];
        assert_int_equal(e->type, MSGPACK_OBJECT_STR);
        assert_int_equal(e->via.str.size, strlen(s));
        assert_memory_equal(e->via.str.ptr, s, strlen(s));
    }
    va_end(ap);
    assert_int_equal(v->via.array.size, i);
}

static void assert_no_arg(const struct result *r, const char *key)
{
    if (arg(r, key) != NULL) {
        fail_msg("unexpected argument %s", key);
    }
}

/* A generated id: 16 characters of the id alphabet. */
static void assert_arg_random_id(const struct result *r, const char *key)
{
    const msgpack_object *v = arg(r, key);
    assert_non_null(v);
    assert_int_equal(v->type, MSGPACK_OBJECT_STR);
    assert_int_equal(v->via.str.size, 16);
    assert_true(imk_id_valid(v->via.str.ptr, 16));
}

/* build must fail with code and a message naming field. */
static void check_err_json(const char *op, bool admin, json_t *data, const char *code,
                           const char *field)
{
    struct result r;
    char why[400] = "";
    run_json(&r, op, admin, data);
    if (r.rc == 0) {
        snprintf(why, sizeof(why), "%s accepted data it should refuse with %s on %s", op, code,
                 field);
    } else if (strcmp(r.err.code, code) != 0 || strstr(r.err.message, field) == NULL) {
        snprintf(why, sizeof(why), "%s: got %s \"%s\", want %s naming %s", op, r.err.code,
                 r.err.message, code, field);
    }
    result_free(&r);
    if (why[0] != '\0') {
        fail_msg("%s", why);
    }
}

static void check_err(const char *op, bool admin, const char *json, const char *code,
                      const char *field)
{
    json_error_t e;
    json_t *data = json != NULL ? json_loads(json, JSON_REJECT_DUPLICATES, &e) : NULL;
    if (json != NULL && data == NULL) {
        fail_msg("bad test JSON %s: %s", json, e.text);
    }
    check_err_json(op, admin, data, code, field);
}

static void check_ok(const char *op, bool admin, const char *json)
{
    struct result r;
    run(&r, op, admin, json);
    if (r.rc != 0) {
        fail_msg("%s refused %s: %s %s", op, json != NULL ? json : "(no data)", r.err.code,
                 r.err.message);
    }
    result_free(&r);
}

/* A string of n bytes repeating unit (whose length divides n). */
static char *repeat(const char *unit, size_t n)
{
    size_t u = strlen(unit);
    char *s = malloc(n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        s[i] = unit[i % u];
    }
    s[n] = '\0';
    return s;
}

/* An array of n distinct valid ids. */
static json_t *ids_array(size_t n)
{
    json_t *a = json_array();
    char id[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "id-%zu", i);
        json_array_append_new(a, json_string(id));
    }
    return a;
}

/* The invalid ids every id field must refuse. */
static const char *const BAD_IDS[] = {
    "\"\"",
    "\"a b\"",
    "\"caf\xc3\xa9\"",
    "\"r/1\"",
    "\"r{1}\"",
    "\"r,1\"",
    "\"a\\nb\"",
    "5",
    "true",
    "[\"r\"]",
    "{}",
    "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"", /* 65 */
};

/* Checks every bad id as the value of field in tmpl, JSON text where "%s" marks the value. */
static void check_bad_ids(const char *op, bool admin, const char *tmpl, const char *field)
{
    char json[512];
    const char *mark = strstr(tmpl, "%s");
    assert_non_null(mark);
    for (size_t i = 0; i < sizeof(BAD_IDS) / sizeof(BAD_IDS[0]); i++) {
        snprintf(json, sizeof(json), "%.*s%s%s", (int)(mark - tmpl), tmpl, BAD_IDS[i], mark + 2);
        check_err(op, admin, json, "bad_request", field);
    }
}

/* ---- the table -------------------------------------------------------------------------- */

static void test_find(void **state)
{
    (void)state;
    static const struct {
        const char *name, *function;
        bool query;
    } table[] = {
        {"client.get", "imkit_client_get", true},
        {"room.create", "imkit_room_create", false},
        {"room.get", "imkit_room_get", true},
        {"room.list", "imkit_room_list", true},
        {"room.read", "imkit_room_read", false},
        {"msg.send", "imkit_msg_send", false},
        {"msg.history", "imkit_msg_history", true},
        {"admin.client.put", "imkit_client_put", false},
        {"admin.token.create", "imkit_token_create", false},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        const imk_op_t *op = imk_op_find(table[i].name);
        assert_non_null(op);
        assert_string_equal(op->name, table[i].name);
        assert_string_equal(op->function, table[i].function);
        assert_int_equal(op->query, table[i].query);
        assert_non_null(op->build);
    }
    static const char *const unknown[] = {"",           "msg",          "msg.send ",
                                          "MSG.SEND",   "auth",         "ping",
                                          "client.put", "admin.client", "room.create.x"};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        assert_null(imk_op_find(unknown[i]));
    }
}

/* The request metrics (stats.c) keep a fixed list of op labels beside this table: every
 * client operation has its label, and every label but the session's own (auth, ping,
 * typing) and "invalid" is a client operation. */
static void test_stats_labels(void **state)
{
    (void)state;
    size_t client_ops = 0;
    for (size_t i = 0; imk_op_at(i) != NULL; i++) {
        const char *name = imk_op_at(i)->name;
        if (strncmp(name, "admin.", 6) == 0) {
            continue;
        }
        client_ops++;
        imk_stats_req_t r;
        imk_stats_begin(&r);
        imk_stats_name(&r, name);
        assert_string_equal(imk_stats_op_label(r.op), name);
    }
    static const char *const session_ops[] = {"auth", "ping", "typing"};
    size_t labels = 0;
    for (int i = IMK_STATS_OP_NONE + 1; i < IMK_STATS_OPS; i++) {
        const char *label = imk_stats_op_label(i);
        bool own = strcmp(label, "invalid") == 0;
        for (size_t k = 0; k < sizeof(session_ops) / sizeof(session_ops[0]); k++) {
            own = own || strcmp(label, session_ops[k]) == 0;
        }
        if (!own) {
            assert_non_null(imk_op_find(label));
            labels++;
        }
    }
    assert_int_equal(labels, client_ops);
    imk_stats_req_t r;
    imk_stats_begin(&r);
    imk_stats_name(&r, "admin.client.put");
    assert_string_equal(imk_stats_op_label(r.op), "invalid");
}

static void test_fail(void **state)
{
    (void)state;
    imk_op_error_t err;
    assert_int_equal(imk_op_fail(&err, "bad_request", "%s: %d", "field", 7), -1);
    assert_string_equal(err.code, "bad_request");
    assert_string_equal(err.message, "field: 7");

    char long_text[400];
    memset(long_text, 'm', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    assert_int_equal(imk_op_fail(&err, "too_large", "%s", long_text), -1);
    assert_int_equal(strlen(err.message), sizeof(err.message) - 1);
}

/* ---- client.get ------------------------------------------------------------------------- */

static void test_client_get(void **state)
{
    (void)state;
    struct result r;

    run(&r, "client.get", false, "{\"ids\":[\"alice\",\"bob@x.y\",\"c:1\"]}");
    assert_ok(&r);
    assert_nargs(&r, 1);
    assert_arg_strs(&r, "ids", "alice", "bob@x.y", "c:1", NULL);
    assert_null(r.route.partition);
    assert_null(r.route.acting);
    result_free(&r);

    run(&r, "client.get", false, "{\"ids\":[]}");
    assert_ok(&r);
    assert_arg_strs(&r, "ids", NULL);
    result_free(&r);

    check_err("client.get", false, NULL, "bad_request", "ids");
    check_err("client.get", false, "{}", "bad_request", "ids");
    check_err("client.get", false, "{\"ids\":null}", "bad_request", "ids");
    check_err("client.get", false, "{\"ids\":\"alice\"}", "bad_request", "ids");
    check_err("client.get", false, "{\"ids\":{\"a\":1}}", "bad_request", "ids");
    check_err("client.get", false, "{\"ids\":[\"ok\",\"a b\"]}", "bad_request", "ids[1]");
    check_err("client.get", false, "{\"ids\":[\"ok\",7]}", "bad_request", "ids[1]");
    check_bad_ids("client.get", false, "{\"ids\":[%s]}", "ids[0]");

    /* limits.ids, exactly and one over. */
    json_t *d = json_object();
    json_object_set_new(d, "ids", ids_array((size_t)cfg.limits_ids));
    run_json(&r, "client.get", false, d);
    assert_ok(&r);
    assert_int_equal(arg(&r, "ids")->via.array.size, cfg.limits_ids);
    result_free(&r);
    d = json_object();
    json_object_set_new(d, "ids", ids_array((size_t)cfg.limits_ids + 1));
    check_err_json("client.get", false, d, "too_large", "ids");
}

/* ---- room.create ------------------------------------------------------------------------ */

static void test_room_create(void **state)
{
    (void)state;
    struct result r;

    run(&r, "room.create", false,
        "{\"type\":\"group\",\"members\":[\"bob\",\"carol\"],\"id\":\"team-1\",\"name\":\"Team\","
        "\"cover\":\"https://x/c.png\",\"meta\":{\"k\": [1, 2.5, \"v\"], \"n\": null}}");
    assert_ok(&r);
    assert_nargs(&r, 8);
    assert_arg_str(&r, "type", "group");
    assert_arg_strs(&r, "members", "bob", "carol", NULL);
    assert_arg_random_id(&r, "new_id");
    assert_arg_str(&r, "id", "team-1");
    assert_arg_str(&r, "name", "Team");
    assert_arg_str(&r, "cover", "https://x/c.png");
    assert_arg_str(&r, "meta", "{\"k\":[1,2.5,\"v\"],\"n\":null}"); /* compact JSON text */
    assert_arg_int(&r, "max_members", cfg.limits_members);
    assert_no_arg(&r, "owner");
    assert_string_equal(r.route.partition, "team-1");
    result_free(&r);

    /* A group room without id: the id made for it is its home (its stream, its slot). */
    run(&r, "room.create", false, "{\"type\":\"group\",\"members\":[\"bob\"]}");
    assert_ok(&r);
    assert_arg_random_id(&r, "new_id");
    assert_non_null(r.route.partition);
    assert_memory_equal(r.route.partition, arg(&r, "new_id")->via.str.ptr, 16);
    assert_int_equal(strlen(r.route.partition), 16);
    result_free(&r);

    /* Minimal direct room: its home is the pair (the caller is alice), in byte order; each
     * call a new new_id. */
    run(&r, "room.create", false, "{\"type\":\"direct\",\"members\":[\"bob\"]}");
    assert_ok(&r);
    assert_nargs(&r, 4);
    assert_arg_str(&r, "type", "direct");
    assert_arg_strs(&r, "members", "bob", NULL);
    assert_arg_random_id(&r, "new_id");
    assert_no_arg(&r, "id");
    assert_no_arg(&r, "name");
    assert_no_arg(&r, "meta");
    assert_string_equal(r.route.partition, "alice|bob");
    struct result r2;
    run(&r2, "room.create", false, "{\"type\":\"direct\",\"members\":[\"bob\"]}");
    assert_ok(&r2);
    assert_memory_not_equal(arg(&r, "new_id")->via.str.ptr, arg(&r2, "new_id")->via.str.ptr, 16);
    result_free(&r2);
    result_free(&r);

    /* The pair whichever way it is named; no pair, no home (the function refuses it). */
    static const struct {
        bool admin;
        const char *members, *home;
    } pairs[] = {
        {false, "[\"Bob\"]", "Bob|alice"},
        {false, "[\"alice\",\"zed\"]", "alice|zed"},
        {true, "[\"zed\",\"amy\"]", "amy|zed"},

        {false, "[\"bob\",\"carol\"]", NULL},
        {false, "[\"alice\"]", NULL},
        {true, "[\"amy\"]", NULL},
        {true, "[\"amy\",\"bob\",\"zed\"]", NULL},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"type\":\"direct\",\"members\":%s}", pairs[i].members);
        run(&r, "room.create", pairs[i].admin, text);
        assert_ok(&r);
        if (pairs[i].home == NULL) {
            assert_null(r.route.partition);
        } else {
            assert_string_equal(r.route.partition, pairs[i].home);
        }
        result_free(&r);
    }

    /* owner: the admin API only; a client's is ignored. */
    run(&r, "room.create", true, "{\"type\":\"group\",\"members\":[\"a\"],\"owner\":\"boss\"}");
    assert_ok(&r);
    assert_arg_str(&r, "owner", "boss");
    result_free(&r);
    run(&r, "room.create", false, "{\"type\":\"group\",\"members\":[\"a\"],\"owner\":\"boss\"}");
    assert_ok(&r);
    assert_no_arg(&r, "owner");
    result_free(&r);
    check_err("room.create", true, "{\"type\":\"group\",\"members\":[\"a\"],\"owner\":\"b ss\"}",
              "bad_request", "owner");

    /* Nulls are absent fields. */
    run(&r, "room.create", false,
        "{\"type\":\"group\",\"members\":[\"a\"],\"id\":null,\"name\":null,\"meta\":null}");
    assert_ok(&r);
    assert_nargs(&r, 4);
    assert_no_arg(&r, "clear"); /* nothing to clear in a new room */
    result_free(&r);
}

static void test_room_create_refusals(void **state)
{
    (void)state;
    check_err("room.create", false, NULL, "bad_request", "type");
    check_err("room.create", false, "{\"members\":[\"a\"]}", "bad_request", "type");
    check_err("room.create", false, "{\"type\":\"channel\",\"members\":[\"a\"]}", "bad_request",
              "type");
    check_err("room.create", false, "{\"type\":\"Group\",\"members\":[\"a\"]}", "bad_request",
              "type");
    check_err("room.create", false, "{\"type\":1,\"members\":[\"a\"]}", "bad_request", "type");
    check_err("room.create", false, "{\"type\":\"group\"}", "bad_request", "members");
    check_err("room.create", false, "{\"type\":\"group\",\"members\":\"a\"}", "bad_request",
              "members");
    check_err("room.create", false, "{\"type\":\"group\",\"members\":[\"a\",\"b c\"]}",
              "bad_request", "members[1]");
    check_bad_ids("room.create", false, "{\"type\":\"group\",\"members\":[\"a\"],\"id\":%s}", "id");
    check_err("room.create", false, "{\"type\":\"group\",\"members\":[\"a\"],\"name\":5}",
              "bad_request", "name");
    check_err("room.create", false, "{\"type\":\"group\",\"members\":[\"a\"],\"cover\":[]}",
              "bad_request", "cover");
    check_err("room.create", false, "{\"type\":\"group\",\"members\":[\"a\"],\"meta\":\"{}\"}",
              "bad_request", "meta");
    check_err("room.create", false, "{\"type\":\"group\",\"members\":[\"a\"],\"meta\":[1]}",
              "bad_request", "meta");

    /* name: 256 bytes; cover: 2048 bytes; meta: limits.payload bytes of JSON. */
    char *name = repeat("n", 256), *cover = repeat("c", 2048);
    json_t *d = json_pack("{s:s, s:[s], s:s, s:s}", "type", "group", "members", "a", "name", name,
                          "cover", cover);
    struct result r;
    run_json(&r, "room.create", false, d);
    assert_ok(&r);
    assert_arg_str(&r, "name", name);
    assert_arg_str(&r, "cover", cover);
    result_free(&r);
    free(name);
    free(cover);
    name = repeat("n", 257);
    check_err_json("room.create", false,
                   json_pack("{s:s, s:[s], s:s}", "type", "group", "members", "a", "name", name),
                   "too_large", "name");
    free(name);
    cover = repeat("c", 2049);
    check_err_json("room.create", false,
                   json_pack("{s:s, s:[s], s:s}", "type", "group", "members", "a", "cover", cover),
                   "too_large", "cover");
    free(cover);

    /* {"d":"..."} is 8 bytes of JSON around the value. */
    char *fill = repeat("x", (size_t)cfg.limits_payload - 8);
    run_json(
        &r, "room.create", false,
        json_pack("{s:s, s:[s], s:{s:s}}", "type", "group", "members", "a", "meta", "d", fill));
    assert_ok(&r);
    assert_int_equal(arg(&r, "meta")->via.str.size, cfg.limits_payload);
    result_free(&r);
    free(fill);
    fill = repeat("x", (size_t)cfg.limits_payload - 7);
    check_err_json(
        "room.create", false,
        json_pack("{s:s, s:[s], s:{s:s}}", "type", "group", "members", "a", "meta", "d", fill),
        "too_large", "meta");
    free(fill);

    json_t *members = ids_array((size_t)cfg.limits_ids + 1);
    check_err_json("room.create", false,
                   json_pack("{s:s, s:o}", "type", "group", "members", members), "too_large",
                   "members");
}

/* read_ids promises "an array of distinct ids", and the Lua side trusts it: write_room sets
 * members_count to #members while HSET stores each id once, so a repeated member gives a
 * room whose members_count is larger than its member list. */
static void test_room_create_duplicate_members(void **state)
{
    (void)state;
    check_err("room.create", false, "{\"type\":\"group\",\"members\":[\"bob\",\"bob\"]}",
              "bad_request", "members");
    check_err("room.create", true, "{\"type\":\"group\",\"members\":[\"a\",\"b\",\"a\"]}",
              "bad_request", "members");
}

/* ---- room.get, room.read ---------------------------------------------------------------- */

static void test_room_get(void **state)
{
    (void)state;
    struct result r;
    char json[128];

    run(&r, "room.get", false, "{\"room\":\"r-1\"}");
    assert_ok(&r);
    assert_nargs(&r, 1);
    assert_arg_str(&r, "room", "r-1");
    assert_string_equal(r.route.partition, "r-1");
    result_free(&r);

    /* 64 bytes is the longest id. */
    snprintf(json, sizeof(json), "{\"room\":\"%064d\"}", 7);
    check_ok("room.get", false, json);
    check_err("room.get", false, NULL, "bad_request", "room");
    check_err("room.get", false, "{}", "bad_request", "room");
    check_err("room.get", false, "{\"room\":null}", "bad_request", "room");
    check_bad_ids("room.get", false, "{\"room\":%s}", "room");
}

static void test_room_read(void **state)
{
    (void)state;
    struct result r;

    run(&r, "room.read", false, "{\"room\":\"r\",\"seq\":42}");
    assert_ok(&r);
    assert_nargs(&r, 2);
    assert_arg_str(&r, "room", "r");
    assert_arg_int(&r, "seq", 42);
    assert_string_equal(r.route.partition, "r");
    result_free(&r);

    run(&r, "room.read", false, "{\"room\":\"r\",\"seq\":0}");
    assert_ok(&r);
    assert_arg_int(&r, "seq", 0);
    result_free(&r);
    run(&r, "room.read", false, "{\"room\":\"r\",\"seq\":9223372036854775807}");
    assert_ok(&r);
    assert_arg_int(&r, "seq", INT64_MAX);
    result_free(&r);

    check_err("room.read", false, "{\"room\":\"r\"}", "bad_request", "seq");
    check_err("room.read", false, "{\"room\":\"r\",\"seq\":null}", "bad_request", "seq");
    check_err("room.read", false, "{\"room\":\"r\",\"seq\":-1}", "bad_request", "seq");
    check_err("room.read", false, "{\"room\":\"r\",\"seq\":\"5\"}", "bad_request", "seq");
    check_err("room.read", false, "{\"room\":\"r\",\"seq\":5.0}", "bad_request", "seq");
    check_err("room.read", false, "{\"room\":\"r\",\"seq\":true}", "bad_request", "seq");
    check_err("room.read", false, "{\"seq\":1}", "bad_request", "room");
    check_bad_ids("room.read", false, "{\"room\":%s,\"seq\":1}", "room");
}

/* ---- room.list -------------------------------------------------------------------------- */

static int64_t list_limit(const char *json)
{
    struct result r;
    run(&r, "room.list", false, json);
    assert_ok(&r);
    const msgpack_object *v = arg(&r, "limit");
    assert_non_null(v);
    assert_int_equal(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    int64_t limit = (int64_t)v->via.u64;
    result_free(&r);
    return limit;
}

static void test_room_list(void **state)
{
    (void)state;
    struct result r;

    run(&r, "room.list", false, NULL);
    assert_ok(&r);
    assert_nargs(&r, 1);
    assert_arg_int(&r, "limit", 20);
    assert_null(r.route.acting);
    assert_null(r.route.partition);
    result_free(&r);

    assert_int_equal(list_limit("{}"), 20);
    assert_int_equal(list_limit("{\"limit\":null}"), 20);
    assert_int_equal(list_limit("{\"limit\":0}"), 1);
    assert_int_equal(list_limit("{\"limit\":-7}"), 1);
    assert_int_equal(list_limit("{\"limit\":-9223372036854775808}"), 1);
    assert_int_equal(list_limit("{\"limit\":1}"), 1);
    assert_int_equal(list_limit("{\"limit\":37}"), 37);
    assert_int_equal(list_limit("{\"limit\":100}"), 100);
    assert_int_equal(list_limit("{\"limit\":101}"), 100);
    assert_int_equal(list_limit("{\"limit\":500}"), 100);
    assert_int_equal(list_limit("{\"limit\":9223372036854775807}"), 100);
    check_err("room.list", false, "{\"limit\":\"10\"}", "bad_request", "limit");
    check_err("room.list", false, "{\"limit\":1.5}", "bad_request", "limit");
    check_err("room.list", false, "{\"limit\":true}", "bad_request", "limit");

    run(&r, "room.list", false, "{\"before\":\"1700000000000:r-9\",\"limit\":5}");
    assert_ok(&r);
    assert_nargs(&r, 2);
    assert_arg_str(&r, "before", "1700000000000:r-9");
    assert_arg_int(&r, "limit", 5);
    result_free(&r);
    check_err("room.list", false, "{\"before\":12}", "bad_request", "before");
    char *cursor = repeat("c", 256);
    check_ok("room.list", false, NULL);
    run_json(&r, "room.list", false, json_pack("{s:s}", "before", cursor));
    assert_ok(&r);
    result_free(&r);
    free(cursor);
    cursor = repeat("c", 257);
    check_err_json("room.list", false, json_pack("{s:s}", "before", cursor), "too_large", "before");
    free(cursor);

    /* The admin API names the client to list for. */
    check_err("room.list", true, "{}", "bad_request", "client");
    check_err("room.list", true, NULL, "bad_request", "client");
    check_err("room.list", true, "{\"client\":\"a b\"}", "bad_request", "client");
    run(&r, "room.list", true, "{\"client\":\"alice\"}");
    assert_ok(&r);
    assert_string_equal(r.route.acting, "alice");
    assert_no_arg(&r, "client");
    assert_arg_int(&r, "limit", 20);
    result_free(&r);
}

/* ---- msg.send --------------------------------------------------------------------------- */

static void test_msg_send_text(void **state)
{
    (void)state;
    struct result r;

    run(&r, "msg.send", false,
        "{\"room\":\"r1\",\"cid\":\"c-1\",\"type\":\"text\",\"text\":\"hi \xc3\xa9\"}");
    assert_ok(&r);
    assert_nargs(&r, 4);
    assert_arg_str(&r, "room", "r1");
    assert_arg_str(&r, "cid", "c-1");
    assert_arg_str(&r, "type", "text");
    assert_arg_str(&r, "text", "hi \xc3\xa9");
    assert_no_arg(&r, "payload");
    assert_string_equal(r.route.partition, "r1");
    assert_null(r.route.acting);
    result_free(&r);

    /* Every optional field. */
    run(&r, "msg.send", false,
        "{\"room\":\"r1\",\"cid\":\"c-2\",\"type\":\"text\",\"text\":\"\",\"reply_to\":7,"
        "\"mentions\":[\"bob\",\"carol\"],\"payload\":{\"x\":1}}");
    assert_ok(&r);
    assert_nargs(&r, 7);
    assert_arg_str(&r, "text", "");
    assert_arg_int(&r, "reply_to", 7);
    assert_arg_strs(&r, "mentions", "bob", "carol", NULL);
    assert_arg_str(&r, "payload", "{\"x\":1}");
    result_free(&r);

    check_err("msg.send", false, "{\"room\":\"r1\",\"cid\":\"c\",\"type\":\"text\"}", "bad_request",
              "text");
    check_err("msg.send", false, "{\"room\":\"r1\",\"cid\":\"c\",\"type\":\"text\",\"text\":null}",
              "bad_request", "text");
    check_err("msg.send", false, "{\"room\":\"r1\",\"cid\":\"c\",\"type\":\"text\",\"text\":5}",
              "bad_request", "text");
    check_err_json("msg.send", false,
                   json_pack("{s:s, s:s, s:s, s:s%}", "room", "r", "cid", "c", "type", "text",
                             "text", "a\0b", (size_t)3),
                   "bad_request", "text");
    check_err("msg.send", false, NULL, "bad_request", "room");
    check_err("msg.send", false, "{\"cid\":\"c\",\"type\":\"text\",\"text\":\"t\"}", "bad_request",
              "room");
    check_err("msg.send", false, "{\"room\":\"r\",\"type\":\"text\",\"text\":\"t\"}", "bad_request",
              "cid");
    check_bad_ids("msg.send", false, "{\"room\":%s,\"cid\":\"c\",\"type\":\"text\",\"text\":\"t\"}",
                  "room");
    check_bad_ids("msg.send", false, "{\"room\":\"r\",\"cid\":%s,\"type\":\"text\",\"text\":\"t\"}",
                  "cid");
    check_err("msg.send", false,
              "{\"room\":\"r\",\"cid\":\"c\",\"type\":\"text\",\"text\":\"t\",\"reply_to\":0}",
              "bad_request", "reply_to");
    check_err("msg.send", false,
              "{\"room\":\"r\",\"cid\":\"c\",\"type\":\"text\",\"text\":\"t\",\"reply_to\":\"1\"}",
              "bad_request", "reply_to");
    check_err("msg.send", false,
              "{\"room\":\"r\",\"cid\":\"c\",\"type\":\"text\",\"text\":\"t\",\"mentions\":\"b\"}",
              "bad_request", "mentions");
    check_err("msg.send", false,
              "{\"room\":\"r\",\"cid\":\"c\",\"type\":\"text\",\"text\":\"t\","
              "\"mentions\":[\"b\",\"c d\"]}",
              "bad_request", "mentions[1]");
    json_t *mentions = ids_array((size_t)cfg.limits_ids + 1);
    check_err_json("msg.send", false,
                   json_pack("{s:s, s:s, s:s, s:s, s:o}", "room", "r", "cid", "c", "type", "text",
                             "text", "t", "mentions", mentions),
                   "too_large", "mentions");
}

/* text: limits.text bytes exactly is accepted, one byte more is too_large; bytes, not
 * characters, are counted. */
static void test_msg_send_text_limit(void **state)
{
    (void)state;
    size_t limit = (size_t)cfg.limits_text;
    struct result r;

    char *text = repeat("\xc3\xa9", limit); /* limit bytes of 2-byte characters */
    run_json(
        &r, "msg.send", false,
        json_pack("{s:s, s:s, s:s, s:s}", "room", "r", "cid", "c", "type", "text", "text", text));
    assert_ok(&r);
    assert_arg_str(&r, "text", text);
    result_free(&r);
    free(text);

    text = repeat("a", limit + 1);
    check_err_json(
        "msg.send", false,
        json_pack("{s:s, s:s, s:s, s:s}", "room", "r", "cid", "c", "type", "text", "text", text),
        "too_large", "text");
    free(text);

    /* The limit comes from the configuration. */
    char err[128];
    assert_int_equal(imk_config_set(&cfg, "limits.text", "5", err, sizeof(err)), 0);
    check_ok("msg.send", false,
             "{\"room\":\"r\",\"cid\":\"c\",\"type\":\"text\",\"text\":\"12345\"}");
    check_err("msg.send", false,
              "{\"room\":\"r\",\"cid\":\"c\",\"type\":\"text\",\"text\":\"123456\"}", "too_large",
              "text");
    check_err(
        "msg.send", false,
        "{\"room\":\"r\",\"cid\":\"c\",\"type\":\"text\",\"text\":\"\xc3\xa9\xc3\xa9\xc3\xa9\"}",
        "too_large", "text");
    assert_int_equal(imk_config_set(&cfg, "limits.text", "16384", err, sizeof(err)), 0);
}

static void test_msg_send_types(void **state)
{
    (void)state;
    static const char *const types[] = {"image", "file", "location", "sticker", "custom"};
    char json[256];
    struct result r;

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        snprintf(json, sizeof(json),
                 "{\"room\":\"r\",\"cid\":\"c\",\"type\":\"%s\",\"payload\":{\"url\":\"u\"}}",
                 types[i]);
        run(&r, "msg.send", false, json);
        assert_ok(&r);
        assert_nargs(&r, 4);
        assert_arg_str(&r, "type", types[i]);
        assert_arg_str(&r, "payload", "{\"url\":\"u\"}");
        assert_no_arg(&r, "text");
        result_free(&r);

        /* payload is required for them, text is optional. */
        snprintf(json, sizeof(json), "{\"room\":\"r\",\"cid\":\"c\",\"type\":\"%s\"}", types[i]);
        check_err("msg.send", false, json, "bad_request", "payload");
        snprintf(json, sizeof(json),
                 "{\"room\":\"r\",\"cid\":\"c\",\"type\":\"%s\",\"text\":\"caption\"}", types[i]);
        check_err("msg.send", false, json, "bad_request", "payload");
        snprintf(json, sizeof(json),
                 "{\"room\":\"r\",\"cid\":\"c\",\"type\":\"%s\",\"text\":\"cap\",\"payload\":{}}",
                 types[i]);
        run(&r, "msg.send", false, json);
        assert_ok(&r);
        assert_arg_str(&r, "text", "cap");
        assert_arg_str(&r, "payload", "{}");
        result_free(&r);
    }
    static const char *const bad_types[] = {"\"video\"", "\"\"", "\"TEXT\"", "\"text \"",
                                            "\"imag\"",  "5",    "[]",       "{}"};
    for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
        snprintf(json, sizeof(json),
                 "{\"room\":\"r\",\"cid\":\"c\",\"type\":%s,\"text\":\"t\",\"payload\":{}}",
                 bad_types[i]);
        check_err("msg.send", false, json, "bad_request", "type");
    }
    check_err("msg.send", false, "{\"room\":\"r\",\"cid\":\"c\",\"text\":\"t\"}", "bad_request",
              "type");
    check_err("msg.send", false, "{\"room\":\"r\",\"cid\":\"c\",\"type\":\"image\",\"payload\":[]}",
              "bad_request", "payload");
    check_err("msg.send", false,
              "{\"room\":\"r\",\"cid\":\"c\",\"type\":\"image\",\"payload\":\"{}\"}", "bad_request",
              "payload");
}

static void test_msg_send_payload_limit(void **state)
{
    (void)state;
    size_t limit = (size_t)cfg.limits_payload;
    struct result r;

    /* {"d":"..."}: 8 bytes of JSON around the value. */
    char *fill = repeat("x", limit - 8);
    run_json(&r, "msg.send", false,
             json_pack("{s:s, s:s, s:s, s:{s:s}}", "room", "r", "cid", "c", "type", "file",
                       "payload", "d", fill));
    assert_ok(&r);
    assert_int_equal(arg(&r, "payload")->via.str.size, limit);
    result_free(&r);
    free(fill);

    fill = repeat("x", limit - 7);
    check_err_json("msg.send", false,
                   json_pack("{s:s, s:s, s:s, s:{s:s}}", "room", "r", "cid", "c", "type", "file",
                             "payload", "d", fill),
                   "too_large", "payload");
    free(fill);

    /* The size counted is the compact form's, whatever the spacing sent. */
    fill = repeat("x", limit - 8);
    char *json = malloc(limit + 200);
    assert_non_null(json);
    snprintf(json, limit + 200,
             "{\"room\":\"r\",\"cid\":\"c\",\"type\":\"file\",\"payload\":{  \"d\"  :  \"%s\"  }}",
             fill);
    check_ok("msg.send", false, json);
    free(json);
    free(fill);
}

static void test_msg_send_admin(void **state)
{
    (void)state;
    struct result r;

    /* The admin API sends as from, and may leave cid out: one is generated. */
    run(&r, "msg.send", true, "{\"room\":\"r\",\"from\":\"bot\",\"type\":\"text\",\"text\":\"t\"}");
    assert_ok(&r);
    assert_nargs(&r, 4);
    assert_arg_random_id(&r, "cid");
    assert_no_arg(&r, "from");
    assert_string_equal(r.route.acting, "bot");
    assert_string_equal(r.route.partition, "r");
    result_free(&r);

    run(&r, "msg.send", true,
        "{\"room\":\"r\",\"from\":\"bot\",\"cid\":\"mine\",\"type\":\"text\",\"text\":\"t\"}");
    assert_ok(&r);
    assert_arg_str(&r, "cid", "mine");
    result_free(&r);

    check_err("msg.send", true, "{\"room\":\"r\",\"type\":\"text\",\"text\":\"t\"}", "bad_request",
              "from");
    check_bad_ids("msg.send", true, "{\"room\":\"r\",\"from\":%s,\"type\":\"text\",\"text\":\"t\"}",
                  "from");
    /* A client's from is not read: it acts for itself. */
    run(&r, "msg.send", false,
        "{\"room\":\"r\",\"cid\":\"c\",\"from\":\"someone-else\",\"type\":\"text\",\"text\":"
        "\"t\"}");
    assert_ok(&r);
    assert_null(r.route.acting);
    assert_no_arg(&r, "from");
    result_free(&r);
}

/* ---- msg.history ------------------------------------------------------------------------ */

static void test_msg_history(void **state)
{
    (void)state;
    struct result r;

    run(&r, "msg.history", false, "{\"room\":\"r\"}");
    assert_ok(&r);
    assert_string_equal(r.route.partition, "r"); /* the room's slot, not the client's */
    assert_nargs(&r, 2);
    assert_arg_str(&r, "room", "r");
    assert_arg_int(&r, "limit", 50);
    assert_no_arg(&r, "before");
    assert_no_arg(&r, "after");
    result_free(&r);

    run(&r, "msg.history", false, "{\"room\":\"r\",\"before\":10,\"limit\":0}");
    assert_ok(&r);
    assert_nargs(&r, 3);
    assert_arg_int(&r, "before", 10);
    assert_arg_int(&r, "limit", 1);
    result_free(&r);

    run(&r, "msg.history", false, "{\"room\":\"r\",\"after\":0,\"limit\":500}");
    assert_ok(&r);
    assert_arg_int(&r, "after", 0);
    assert_arg_int(&r, "limit", 100);
    result_free(&r);

    run(&r, "msg.history", false, "{\"room\":\"r\",\"before\":null,\"after\":5,\"limit\":null}");
    assert_ok(&r);
    assert_arg_int(&r, "after", 5);
    assert_arg_int(&r, "limit", 50);
    assert_no_arg(&r, "before");
    result_free(&r);

    check_err("msg.history", false, "{\"room\":\"r\",\"before\":10,\"after\":2}", "bad_request",
              "before");
    check_err("msg.history", false, "{\"room\":\"r\",\"before\":10,\"after\":2}", "bad_request",
              "after");
    check_err("msg.history", false, "{\"room\":\"r\",\"before\":0}", "bad_request", "before");
    check_err("msg.history", false, "{\"room\":\"r\",\"before\":\"9\"}", "bad_request", "before");
    check_err("msg.history", false, "{\"room\":\"r\",\"after\":-1}", "bad_request", "after");
    check_err("msg.history", false, "{\"room\":\"r\",\"limit\":\"5\"}", "bad_request", "limit");
    check_err("msg.history", false, "{}", "bad_request", "room");
    check_bad_ids("msg.history", false, "{\"room\":%s}", "room");
}

/* ---- admin.client.put, admin.token.create ----------------------------------------------- */

static void test_client_put(void **state)
{
    (void)state;
    struct result r;

    run(&r, "admin.client.put", true,
        "{\"id\":\"alice\",\"name\":\"Alice\",\"avatar\":\"https://a/x.png\",\"meta\":{\"t\":1}}");
    assert_ok(&r);
    assert_nargs(&r, 4);
    assert_arg_str(&r, "id", "alice");
    assert_arg_str(&r, "name", "Alice");
    assert_arg_str(&r, "avatar", "https://a/x.png");
    assert_arg_str(&r, "meta", "{\"t\":1}");
    assert_no_arg(&r, "clear");
    assert_string_equal(r.route.partition, "alice");
    result_free(&r);

    /* null clears a field. */
    run(&r, "admin.client.put", true, "{\"id\":\"alice\",\"name\":null,\"meta\":null}");
    assert_ok(&r);
    assert_nargs(&r, 2);
    assert_arg_strs(&r, "clear", "name", "meta", NULL);
    result_free(&r);
    run(&r, "admin.client.put", true,
        "{\"id\":\"alice\",\"name\":\"A\",\"avatar\":null,\"meta\":null}");
    assert_ok(&r);
    assert_arg_str(&r, "name", "A");
    assert_arg_strs(&r, "clear", "avatar", "meta", NULL);
    result_free(&r);

    run(&r, "admin.client.put", true, "{\"id\":\"alice\"}");
    assert_ok(&r);
    assert_nargs(&r, 1);
    result_free(&r);

    check_err("admin.client.put", true, "{}", "bad_request", "id");
    check_err("admin.client.put", true, NULL, "bad_request", "id");
    check_bad_ids("admin.client.put", true, "{\"id\":%s}", "id");
    check_err("admin.client.put", true, "{\"id\":\"a\",\"name\":[]}", "bad_request", "name");
    check_err("admin.client.put", true, "{\"id\":\"a\",\"avatar\":1}", "bad_request", "avatar");
    check_err("admin.client.put", true, "{\"id\":\"a\",\"meta\":true}", "bad_request", "meta");
    char *name = repeat("n", 257);
    check_err_json("admin.client.put", true, json_pack("{s:s, s:s}", "id", "a", "name", name),
                   "too_large", "name");
    free(name);
}

static void test_token_create(void **state)
{
    (void)state;
    static const char hash[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    char json[256];
    struct result r;

    snprintf(json, sizeof(json), "{\"id\":\"alice\",\"hash\":\"%s\",\"iat\":1700000000}", hash);
    run(&r, "admin.token.create", true, json);
    assert_ok(&r);
    assert_nargs(&r, 4);
    assert_arg_str(&r, "id", "alice");
    assert_arg_str(&r, "hash", hash);
    assert_arg_int(&r, "ttl", cfg.limits_token_ttl);
    assert_arg_int(&r, "iat", 1700000000);
    assert_string_equal(r.route.partition, "alice");
    result_free(&r);

    snprintf(json, sizeof(json), "{\"id\":\"a\",\"hash\":\"%s\",\"iat\":0,\"ttl\":60}", hash);
    run(&r, "admin.token.create", true, json);
    assert_ok(&r);
    assert_arg_int(&r, "ttl", 60);
    assert_arg_int(&r, "iat", 0);
    result_free(&r);
    snprintf(json, sizeof(json), "{\"id\":\"a\",\"hash\":\"%s\",\"iat\":1,\"ttl\":31536000}", hash);
    check_ok("admin.token.create", true, json);

    snprintf(json, sizeof(json), "{\"id\":\"a\",\"hash\":\"%s\",\"iat\":1,\"ttl\":0}", hash);
    check_err("admin.token.create", true, json, "bad_request", "ttl");
    snprintf(json, sizeof(json), "{\"id\":\"a\",\"hash\":\"%s\",\"iat\":1,\"ttl\":31536001}", hash);
    check_err("admin.token.create", true, json, "bad_request", "ttl");
    snprintf(json, sizeof(json), "{\"id\":\"a\",\"hash\":\"%s\",\"iat\":1,\"ttl\":\"60\"}", hash);
    check_err("admin.token.create", true, json, "bad_request", "ttl");
    snprintf(json, sizeof(json), "{\"id\":\"a\",\"hash\":\"%s\"}", hash);
    check_err("admin.token.create", true, json, "bad_request", "iat");
    snprintf(json, sizeof(json), "{\"id\":\"a\",\"hash\":\"%s\",\"iat\":-1}", hash);
    check_err("admin.token.create", true, json, "bad_request", "iat");
    snprintf(json, sizeof(json), "{\"id\":\"a\",\"hash\":\"%sf\",\"iat\":1}", hash);
    check_err("admin.token.create", true, json, "too_large", "hash");
    check_err("admin.token.create", true, "{\"id\":\"a\",\"iat\":1}", "bad_request", "hash");
    check_err("admin.token.create", true, "{\"id\":\"a\",\"hash\":5,\"iat\":1}", "bad_request",
              "hash");
    snprintf(json, sizeof(json), "{\"hash\":\"%s\",\"iat\":1}", hash);
    check_err("admin.token.create", true, json, "bad_request", "id");
}

/* ---- limits from the configuration ------------------------------------------------------ */

static void test_configured_ids_limit(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(imk_config_set(&cfg, "limits.ids", "3", err, sizeof(err)), 0);
    check_ok("client.get", false, "{\"ids\":[\"a\",\"b\",\"c\"]}");
    check_err("client.get", false, "{\"ids\":[\"a\",\"b\",\"c\",\"d\"]}", "too_large", "ids");
    check_err("room.create", false, "{\"type\":\"group\",\"members\":[\"a\",\"b\",\"c\",\"d\"]}",
              "too_large", "members");
    check_err("msg.send", false,
              "{\"room\":\"r\",\"cid\":\"c\",\"type\":\"text\",\"text\":\"t\","
              "\"mentions\":[\"a\",\"b\",\"c\",\"d\"]}",
              "too_large", "mentions");
    assert_int_equal(imk_config_set(&cfg, "limits.ids", "100", err, sizeof(err)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_stats_labels),
        cmocka_unit_test(test_fail),
        cmocka_unit_test(test_client_get),
        cmocka_unit_test(test_room_create),
        cmocka_unit_test(test_room_create_refusals),
        cmocka_unit_test(test_room_create_duplicate_members),
        cmocka_unit_test(test_room_get),
        cmocka_unit_test(test_room_read),
        cmocka_unit_test(test_room_list),
        cmocka_unit_test(test_msg_send_text),
        cmocka_unit_test(test_msg_send_text_limit),
        cmocka_unit_test(test_msg_send_types),
        cmocka_unit_test(test_msg_send_payload_limit),
        cmocka_unit_test(test_msg_send_admin),
        cmocka_unit_test(test_msg_history),
        cmocka_unit_test(test_client_put),
        cmocka_unit_test(test_token_create),
        cmocka_unit_test(test_configured_ids_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
