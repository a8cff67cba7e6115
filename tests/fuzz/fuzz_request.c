/* libFuzzer driver for the JSON request path (gateway/src/ops.c; seeds: corpus/request/):
 * the input is parsed as a request frame with jansson as the session does; when it is an
 * object whose "op" names an operation of the table, that operation's build() runs on its
 * "data", as a client and as the admin API. It must never crash, must fail with a contract
 * code, and on success must give exactly one valid msgpack map. As in the gateway, the
 * frame's JSON lives in the per-frame arena (json_arena.h: poisoned under ASan once the
 * frame is done) and the arguments are built in stack storage. Build with clang
 * -fsanitize=fuzzer,address,undefined. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "imkit/config.h"
#include "imkit/ids.h"
#include "json_arena.h"
#include "ops.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static imk_config_t defaults; /* every key at its default */
static imk_config_t small;    /* tiny limits, so that too_large is within the fuzzer's reach */
static int ready;

static void init(void)
{
    char err[128];
    if (imk_config_init(&defaults) != 0 || imk_config_init(&small) != 0 ||
        imk_config_set(&small, "limits.text", "8", err, sizeof(err)) != 0 ||
        imk_config_set(&small, "limits.payload", "16", err, sizeof(err)) != 0 ||
        imk_config_set(&small, "limits.ids", "2", err, sizeof(err)) != 0) {
        abort();
    }
    imk_json_arena_install();
    ready = 1;
}

static void check_id(const char *id)
{
    if (id != NULL && !imk_id_valid(id, strlen(id))) {
        abort();
    }
}

/* A route's partition: an id, or a direct room's pair "<a>|<b>" of two ids in byte order. */
static void check_home(const char *home)
{
    const char *bar = home != NULL ? strchr(home, '|') : NULL;
    if (bar == NULL) {
        check_id(home);
        return;
    }
    size_t a = (size_t)(bar - home), b = strlen(bar + 1);
    int order = memcmp(home, bar + 1, a < b ? a : b);
    if (!imk_id_valid(home, a) || !imk_id_valid(bar + 1, b) || order > 0 ||
        (order == 0 && a >= b)) {
        abort();
    }
}

static void build(const imk_op_t *op, const imk_config_t *cfg, bool admin, json_t *data)
{
    imk_op_ctx_t ctx = {cfg, admin, admin ? NULL : "fuzzer"};
    imk_op_route_t route = {0};
    imk_op_error_t err;
    char storage[IMK_OP_ARGS_STORAGE];
    imk_buf_t args;
    imk_buf_init_on(&args, storage, sizeof(storage));

    err.code = NULL;
    if (op->build(&ctx, data, &args, &route, &err) != 0) {
        if (err.code == NULL ||
            (strcmp(err.code, "bad_request") != 0 && strcmp(err.code, "too_large") != 0 &&
             strcmp(err.code, "internal") != 0) ||
            memchr(err.message, '\0', sizeof(err.message)) == NULL) {
            abort();
        }
        imk_buf_deinit(&args);
        return;
    }
    msgpack_unpacked msg;
    size_t off = 0;
    msgpack_unpacked_init(&msg);
    if (msgpack_unpack_next(&msg, args.data, args.len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != args.len || msg.data.type != MSGPACK_OBJECT_MAP) {
        abort();
    }
    for (uint32_t i = 0; i < msg.data.via.map.size; i++) {
        if (msg.data.via.map.ptr[i].key.type != MSGPACK_OBJECT_STR) {
            abort();
        }
    }
    msgpack_unpacked_destroy(&msg);
    check_home(route.partition);
    check_id(route.acting);
    imk_buf_deinit(&args);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        init();
    }
    imk_json_arena_open();
    json_t *frame = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(frame)) {
        json_decref(frame);
        imk_json_arena_close();
        return 0;
    }
    json_t *name = json_object_get(frame, "op");
    const imk_op_t *op = json_is_string(name) ? imk_op_find(json_string_value(name)) : NULL;
    json_t *d = json_object_get(frame, "data");
    if (json_is_null(d)) {
        d = NULL;
    }
    if (op != NULL && (d == NULL || json_is_object(d))) {
        if (strncmp(op->name, "admin.", 6) != 0) {
            build(op, &defaults, false, d);
            build(op, &small, false, d);
        }
        build(op, &defaults, true, d);
        build(op, &small, true, d);
    }
    json_decref(frame);
    imk_json_arena_close();
    return 0;
}
