/* Unit tests of the parser of a gathered room row (gateway/src/gather.h, imkit_room_row's
 * body on a Redis Cluster): the header's numbers and peer, the texts they delimit, and the
 * refusal of every header that does not add up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gather.h"
#include "imkit/err.h"

#include <stdio.h>
#include <string.h>

static int parse(const char *body, imk_gather_row_t *row)
{
    return imk_gather_parse_row(body, strlen(body), row);
}

static void test_list_row(void **state)
{
    (void)state;
    imk_gather_row_t row;
    const char *body = "3000 2 11 -1 0 \n{\"id\":\"L2\"}";
    assert_int_equal(parse(body, &row), 0);
    assert_int_equal(row.ts, 3000);
    assert_int_equal(row.unread, 2);
    assert_int_equal(row.summary_len, 11);
    assert_int_equal(row.messages_len, -1);
    assert_false(row.has_more);
    assert_int_equal(row.peer_len, 0);
    assert_ptr_equal(row.text, strchr(body, '\n') + 1);
    assert_int_equal(row.text_len, 11);
}

static void test_sync_row(void **state)
{
    (void)state;
    imk_gather_row_t row;
    const char *body = "12 3 11 7 1 \n{\"id\":\"s1\"}[{},{}]";
    assert_int_equal(parse(body, &row), 0);
    assert_int_equal(row.messages_len, 7);
    assert_true(row.has_more);
    assert_int_equal(row.text_len, 18);
    assert_memory_equal(row.text + row.summary_len, "[{},{}]", 7);
}

static void test_direct_row_names_its_peer(void **state)
{
    (void)state;
    imk_gather_row_t row;
    const char *body = "5 0 11 -1 0 bob@shop.example\n{\"id\":\"d1\"}";
    assert_int_equal(parse(body, &row), 0);
    assert_int_equal(row.peer_len, strlen("bob@shop.example"));
    assert_memory_equal(row.peer, "bob@shop.example", row.peer_len);
    assert_int_equal(row.summary_len, 11);
}

static void test_refused(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "3000 0 11 -1 0\n{\"id\":\"L2\"}",                  /* no peer field */
        "3000 0 11 -1 0 \n{\"id\":\"L2\"",                  /* one byte short */
        "3000 0 11 -1 0 \n{\"id\":\"L2\"}x",                /* one byte over */
        "3000 0 11 5 0 \n{\"id\":\"L2\"}",                  /* messages past the end */
        "3000 0 11 1 0 \n{\"id\":\"L2\"}x",                 /* messages under 2 bytes */
        "3000 0 1 -1 0 \n{",                                /* summary under 2 bytes */
        "3000 0 11 -1 2 \n{\"id\":\"L2\"}",                 /* has_more not 0 or 1 */
        "-5 0 11 -1 0 \n{\"id\":\"L2\"}",                   /* a negative ts */
        "3000 0 11 -2 0 \n{\"id\":\"L2\"}",                 /* -2 messages */
        "3000 0 11 -1 0 b b\n{\"id\":\"L2\"}",              /* a space in the peer */
        "3000 0 11 -1 0 b/b\n{\"id\":\"L2\"}",              /* not an id */
        "3000 0 11 -1 0 \r\n{\"id\":\"L2\"}",               /* a CR */
        "3000 0 11 -1 0 ",                                  /* no newline */
        "99999999999999999999 0 11 -1 0 \n{\"id\":\"L2\"}", /* ts overflows */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        imk_gather_row_t row;
        assert_int_equal(parse(bad[i], &row), IMK_EINVAL);
    }
}

static void test_peer_of_64_bytes_but_not_65(void **state)
{
    (void)state;
    char body[200];
    char peer[66];
    memset(peer, 'p', 65);
    peer[64] = '\0';
    imk_gather_row_t row;
    snprintf(body, sizeof(body), "1 0 2 -1 0 %s\n{}", peer);
    assert_int_equal(parse(body, &row), 0);
    assert_int_equal(row.peer_len, 64);
    peer[64] = 'p';
    peer[65] = '\0';
    snprintf(body, sizeof(body), "1 0 2 -1 0 %s\n{}", peer);
    assert_int_equal(parse(body, &row), IMK_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_row),
        cmocka_unit_test(test_sync_row),
        cmocka_unit_test(test_direct_row_names_its_peer),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_peer_of_64_bytes_but_not_65),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
