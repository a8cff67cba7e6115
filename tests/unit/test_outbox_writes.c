/* Unit tests of the worker's held outbox writes (worker/src/outbox_writes.h): what is held,
 * the order they run in (by job, deepest round first, then as held), and the command each
 * becomes (a '?' write with the offline members as its last argument). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "outbox_writes.h"
#include "imkit/err.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

/* The reply hiredis decodes from RESP bytes. Caller frees with freeReplyObject. */
static redisReply *decode(const char *bytes)
{
    redisReader *reader = redisReaderCreate();
    assert_non_null(reader);
    void *reply = NULL;
    assert_int_equal(redisReaderFeed(reader, bytes, strlen(bytes)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(reader, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(reader);
    return reply;
}

/* A write [route, "FCALL", "imkit_outbox_add", tag, last] under channel. */
static int hold(imk_outbox_writes_t *w, size_t job, int round, const char *channel, const char *tag,
                const char *last)
{
    char bytes[512];
    snprintf(bytes, sizeof(bytes),
             "*5\r\n$12\r\nimkit:events\r\n$5\r\nFCALL\r\n$16\r\nimkit_outbox_add\r\n$%zu\r\n%s\r\n"
             "$%zu\r\n%s\r\n",
             strlen(tag), tag, strlen(last), last);
    char ch[64];
    snprintf(ch, sizeof(ch), "$%zu\r\n%s\r\n", strlen(channel), channel);
    redisReply *c = decode(ch), *p = decode(bytes);
    int rc = imk_outbox_writes_hold(w, job, round, c, p);
    freeReplyObject(c);
    freeReplyObject(p);
    return rc;
}

static void test_marks(void **state)
{
    (void)state;
    const char *marked[] = {"$1\r\n+\r\n", "$1\r\n?\r\n"};
    const char *other[] = {"$0\r\n\r\n", "$1\r\n=\r\n", "$2\r\n++\r\n", ":1\r\n"};
    for (size_t i = 0; i < 2; i++) {
        redisReply *r = decode(marked[i]);
        assert_true(imk_outbox_write_marked(r));
        freeReplyObject(r);
    }
    for (size_t i = 0; i < 4; i++) {
        redisReply *r = decode(other[i]);
        assert_false(imk_outbox_write_marked(r));
        freeReplyObject(r);
    }
}

static void test_order(void **state)
{
    (void)state;
    imk_outbox_writes_t w = IMK_OUTBOX_WRITES_INIT;
    assert_int_equal(hold(&w, 1, 0, "+", "j1-call", ""), 0);
    assert_int_equal(hold(&w, 0, 0, "+", "j0-call", ""), 0);
    assert_int_equal(hold(&w, 0, 1, "+", "j0-member-a", ""), 0);
    assert_int_equal(hold(&w, 0, 1, "+", "j0-member-b", ""), 0);
    assert_int_equal(hold(&w, 0, 2, "+", "j0-deeper", ""), 0);
    assert_int_equal(imk_outbox_writes_prepare(&w, NULL, "imkit:"), 0);
    const char *want[] = {"j0-deeper", "j0-member-a", "j0-member-b", "j0-call", "j1-call"};
    assert_int_equal(w.n, 5);
    for (size_t i = 0; i < w.n; i++) {
        const char *argv[IMK_OUTBOX_WRITE_ARGS];
        size_t lens[IMK_OUTBOX_WRITE_ARGS];
        assert_int_equal(imk_outbox_write_command(&w.v[i], argv, lens), 4);
        assert_string_equal(argv[0], "FCALL");
        assert_string_equal(argv[2], want[i]);
        assert_false(w.v[i].failed);
    }
    imk_outbox_writes_clear(&w);
    assert_int_equal(w.n, 0);
}

static void test_presence_argument(void **state)
{
    (void)state;
    imk_outbox_writes_t w = IMK_OUTBOX_WRITES_INIT;
    assert_int_equal(hold(&w, 0, 0, "?", "msg", "alice,bob,carol"), 0);
    assert_true(w.v[0].presence);
    const char *argv[IMK_OUTBOX_WRITE_ARGS];
    size_t lens[IMK_OUTBOX_WRITE_ARGS];
    /* Nobody found offline yet: an empty last argument, never the members. */
    assert_int_equal(imk_outbox_write_command(&w.v[0], argv, lens), 4);
    assert_int_equal(lens[3], 0);
    assert_int_equal(imk_buf_append_str(&w.v[0].offline, "bob"), 0);
    assert_int_equal(imk_outbox_write_command(&w.v[0], argv, lens), 4);
    assert_memory_equal(argv[3], "bob", 3);
    assert_int_equal(lens[3], 3);
    imk_outbox_writes_clear(&w);
}

static void test_refused_shapes(void **state)
{
    (void)state;
    imk_outbox_writes_t w = IMK_OUTBOX_WRITES_INIT;
    redisReply *plus = decode("$1\r\n+\r\n");
    const char *bad[] = {
        "*2\r\n$1\r\nk\r\n$3\r\nDEL\r\n",       /* no argument */
        "*3\r\n$1\r\nk\r\n$3\r\nDEL\r\n:1\r\n", /* not all strings */
        "$3\r\nabc\r\n",                        /* not an array */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redisReply *p = decode(bad[i]);
        assert_int_equal(imk_outbox_writes_hold(&w, 0, 0, plus, p), IMK_EINVAL);
        freeReplyObject(p);
    }
    char many[1024] = "*18\r\n";
    for (int i = 0; i < 18; i++) {
        strcat(many, "$1\r\nx\r\n");
    }
    redisReply *p = decode(many);
    assert_int_equal(imk_outbox_writes_hold(&w, 0, 0, plus, p), IMK_EINVAL);
    freeReplyObject(p);
    freeReplyObject(plus);
    assert_int_equal(w.n, 0);
    imk_outbox_writes_clear(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_marks),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_presence_argument),
        cmocka_unit_test(test_refused_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
