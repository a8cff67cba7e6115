/* Unit tests of the event frame scanner (gateway/src/event_scan.h): the seq of a message
 * event as the Functions write it, 0 for other events, and -1 (parse it) for every frame of
 * another shape, cut at any length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "event_scan.h"

#include <string.h>

static int64_t scan(const char *frame)
{
    return imk_event_message_seq(frame, strlen(frame));
}

static void test_message_event(void **state)
{
    (void)state;
    assert_int_equal(scan("{\"ev\":\"message\",\"data\":{\"room\":\"r-1\",\"seq\":42,\"ts\":1,"
                          "\"from\":\"a\",\"type\":\"text\",\"text\":\"\\\"seq\\\":7\"}}"),
                     42);
    assert_int_equal(scan("{\"ev\":\"message\",\"data\":{\"room\":\"a.b@c:d_e\",\"seq\":1}}"), 1);
    assert_int_equal(scan("{\"ev\":\"message\",\"data\":{\"room\":\"r\",\"seq\":"
                          "999999999999999999,\"ts\":1}}"),
                     999999999999999999);
}

static void test_other_events(void **state)
{
    (void)state;
    assert_int_equal(scan("{\"ev\":\"typing\",\"data\":{\"room\":\"r\",\"from\":\"a\"}}"), 0);
    assert_int_equal(scan("{\"ev\":\"message.edited\",\"data\":{\"room\":\"r\",\"seq\":3}}"), 0);
    assert_int_equal(scan("{\"ev\":\"read\",\"data\":{}}"), 0);
}

static void test_other_shapes(void **state)
{
    (void)state;
    const char *frames[] = {
        "",
        "[]",
        "{ \"ev\":\"message\",\"data\":{\"room\":\"r\",\"seq\":1}}",
        "{\"data\":{\"room\":\"r\",\"seq\":1},\"ev\":\"message\"}",
        "{\"ev\":\"message\",\"data\":{\"seq\":1,\"room\":\"r\"}}",
        "{\"ev\":\"message\",\"data\":{\"room\":\"r\",\"seq\":\"1\"}}",
        "{\"ev\":\"message\",\"data\":{\"room\":\"r\",\"seq\":-1}}",
        "{\"ev\":\"message\",\"data\":{\"room\":\"r\",\"seq\":1.5}}",
        "{\"ev\":\"message\",\"data\":{\"room\":\"r\",\"seq\":1000000000000000000}}",
        "{\"ev\":\"message\",\"data\":{\"room\":\"r\",\"seq\":}}",
    };
    for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
        assert_int_equal(scan(frames[i]), -1);
    }
}

/* Cut short anywhere, a message event is never read as another seq or another event. */
static void test_every_prefix(void **state)
{
    (void)state;
    const char frame[] = "{\"ev\":\"message\",\"data\":{\"room\":\"r\",\"seq\":12,\"ts\":1}}";
    size_t whole = strlen("{\"ev\":\"message\",\"data\":{\"room\":\"r\",\"seq\":12,");
    for (size_t len = 0; len < sizeof(frame) - 1; len++) {
        int64_t seq = imk_event_message_seq(frame, len);
        assert_int_equal(seq, len >= whole ? 12 : -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_event),
        cmocka_unit_test(test_other_events),
        cmocka_unit_test(test_other_shapes),
        cmocka_unit_test(test_every_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
