/* Unit tests of gateway/src/json_arena.c through json_arena.h: inside a scope jansson's
 * values come from the arena and freeing them does nothing; the outermost close rewinds it
 * (and, under AddressSanitizer, poisons what was used); values made outside a scope, or past
 * the arena's size, are malloc'd and freed whenever they are (LeakSanitizer checks); an
 * operation's build with a payload (dumped to JSON text the caller frees) runs in a scope. */
#define _GNU_SOURCE /* memmem */
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

#include "imkit/config.h"
#include "json_arena.h"
#include "ops.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define ASSERT_POISONED(p, want) assert_int_equal(__asan_address_is_poisoned(p), (want))
#else
#define ASSERT_POISONED(p, want) ((void)(p), (void)(want))
#endif

static const char frame[] =
    "{\"id\":7,\"op\":\"msg.send\",\"data\":{\"room\":\"r1\",\"cid\":\"c1\","
    "\"type\":\"text\",\"text\":\"hello there\"}}";

static int install(void **state)
{
    (void)state;
    imk_json_arena_install();
    return 0;
}

static void test_outside_a_scope_is_malloc(void **state)
{
    (void)state;
    json_t *v = json_loadb(frame, sizeof(frame) - 1, 0, NULL);
    assert_non_null(v);
    assert_false(imk_json_arena_holds(v));
    assert_int_equal(imk_json_arena_used(), 0);
    json_decref(v);
}

static void test_scope_allocates_and_rewinds(void **state)
{
    (void)state;
    imk_json_arena_open();
    json_t *v = json_loadb(frame, sizeof(frame) - 1, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(v);
    assert_true(imk_json_arena_holds(v));
    size_t used = imk_json_arena_used();
    assert_true(used > 0);
    json_t *data = json_object_get(v, "data");
    assert_string_equal(json_string_value(json_object_get(data, "text")), "hello there");
    ASSERT_POISONED(v, 0);
    json_decref(v); /* frees nothing */
    assert_int_equal(imk_json_arena_used(), used);
    imk_json_arena_close();
    assert_int_equal(imk_json_arena_used(), 0);
    ASSERT_POISONED(v, 1); /* a use after the scope is reported */

    /* The next scope reuses the same bytes. */
    imk_json_arena_open();
    json_t *w = json_loadb(frame, sizeof(frame) - 1, 0, NULL);
    assert_ptr_equal(w, v);
    assert_int_equal(json_integer_value(json_object_get(w, "id")), 7);
    json_decref(w);
    imk_json_arena_close();
}

static void test_scopes_nest(void **state)
{
    (void)state;
    imk_json_arena_open();
    json_t *outer = json_loadb(frame, sizeof(frame) - 1, 0, NULL);
    imk_json_arena_open();
    json_t *inner = json_pack("{s:i}", "n", 42);
    assert_true(imk_json_arena_holds(inner));
    imk_json_arena_close();
    /* The inner close rewinds nothing: both are still whole. */
    assert_true(imk_json_arena_used() > 0);
    assert_int_equal(json_integer_value(json_object_get(inner, "n")), 42);
    assert_string_equal(json_string_value(json_object_get(outer, "op")), "msg.send");
    imk_json_arena_close();
    assert_int_equal(imk_json_arena_used(), 0);
    imk_json_arena_close(); /* an unmatched close changes nothing */
    assert_int_equal(imk_json_arena_used(), 0);
}

/* A document larger than the arena: what does not fit is malloc'd, and freed by decref. */
static void test_past_the_arena_falls_back(void **state)
{
    (void)state;
    size_t n = IMK_JSON_ARENA_BYTES / 16;
    char *text = malloc(n * 16 + 16);
    assert_non_null(text);
    size_t len = 0;
    text[len++] = '[';
    for (size_t i = 0; i < n; i++) {
        len += (size_t)sprintf(text + len, "%s\"s%zu\"", i > 0 ? "," : "", i);
    }
    text[len++] = ']';
    imk_json_arena_open();
    json_t *v = json_loadb(text, len, 0, NULL);
    assert_non_null(v);
    assert_int_equal(json_array_size(v), n);
    assert_false(imk_json_arena_holds(json_array_get(v, n - 1)));
    char last[32];
    snprintf(last, sizeof(last), "s%zu", n - 1);
    assert_string_equal(json_string_value(json_array_get(v, n - 1)), last);
    assert_true(imk_json_arena_used() <= IMK_JSON_ARENA_BYTES);
    json_decref(v);
    imk_json_arena_close();
    free(text);
}

/* A value made before a scope and freed inside it goes back to malloc's heap. */
static void test_free_inside_of_outside_value(void **state)
{
    (void)state;
    json_t *v = json_pack("{s:s}", "a", "b");
    assert_false(imk_json_arena_holds(v));
    imk_json_arena_open();
    json_decref(v);
    imk_json_arena_close();
}

/* msg.send with a payload: ops.c dumps it to text the caller frees, inside the frame's scope. */
static void test_op_build_in_a_scope(void **state)
{
    (void)state;
    imk_config_t cfg;
    assert_int_equal(imk_config_init(&cfg), 0);
    imk_json_arena_open();
    json_t *data = json_loads("{\"room\":\"r\",\"cid\":\"c\",\"type\":\"image\","
                              "\"payload\":{\"url\":\"https://example.com/a.png\",\"w\":640}}",
                              0, NULL);
    assert_true(imk_json_arena_holds(data));
    imk_op_ctx_t ctx = {&cfg, false, "alice"};
    imk_buf_t args = IMK_BUF_INIT;
    imk_op_route_t route = {0};
    imk_op_error_t err = {0};
    assert_int_equal(imk_op_find("msg.send")->build(&ctx, data, &args, &route, &err), 0);
    const char payload[] = "{\"url\":\"https://example.com/a.png\",\"w\":640}";
    assert_non_null(memmem(args.data, args.len, payload, sizeof(payload) - 1));
    json_decref(data);
    imk_json_arena_close();
    imk_buf_deinit(&args);
    imk_config_deinit(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outside_a_scope_is_malloc),
        cmocka_unit_test(test_scope_allocates_and_rewinds),
        cmocka_unit_test(test_scopes_nest),
        cmocka_unit_test(test_past_the_arena_falls_back),
        cmocka_unit_test(test_free_inside_of_outside_value),
        cmocka_unit_test(test_op_build_in_a_scope),
    };
    return cmocka_run_group_tests(tests, install, NULL);
}
