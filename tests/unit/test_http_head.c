/* Unit tests of the public listener's request-head parser (gateway/src/http_head.h): a
 * WebSocket upgrade split at every offset gives the same request and leaves the first frame
 * bytes unread; malformed and oversized heads are refused with their codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http_head.h"
#include "imkit/err.h"

#include <stdio.h>
#include <string.h>

static const char upgrade[] = "GET /ws?x=1 HTTP/1.1\r\nHost: chat.example\r\n"
                              "Upgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Protocol: chat, imkit.v1\r\n"
                              "Origin: https://shop.example\r\n\r\n";
static const char frame[] = "\x81\x85MASKhello";

/* Feeds text in two pieces cut at split; returns the status and the head's byte count. */
static int feed_split(imk_http_head_t *h, const char *text, size_t len, size_t split,
                      size_t *head_len)
{
    size_t used;
    int rc = imk_http_head_feed(h, text, split, &used);
    *head_len = used;
    if (rc == IMK_HTTP_HEAD_MORE) {
        rc = imk_http_head_feed(h, text + split, len - split, &used);
        *head_len += used;
    }
    return rc;
}

static void test_upgrade_split_everywhere(void **state)
{
    (void)state;
    char input[sizeof(upgrade) + sizeof(frame)];
    size_t head = strlen(upgrade);
    memcpy(input, upgrade, head);
    memcpy(input + head, frame, sizeof(frame) - 1);
    size_t len = head + sizeof(frame) - 1;
    for (size_t split = 0; split <= len; split++) {
        imk_http_head_t *h = imk_http_head_create();
        size_t used;
        assert_int_equal(feed_split(h, input, len, split, &used), IMK_HTTP_HEAD_DONE);
        assert_int_equal(used, head); /* the frame stays for the WebSocket layer */
        const imk_http_request_t *r = imk_http_head_request(h);
        assert_int_equal(r->method, IMK_HTTP_GET);
        assert_string_equal(r->url, "/ws?x=1");
        assert_true(r->upgrade_websocket);
        assert_true(r->connection_upgrade);
        assert_true(r->offers_imkit_v1);
        assert_string_equal(r->ws_key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_string_equal(r->ws_version, "13");
        assert_true(r->has_origin);
        assert_string_equal(r->origin, "https://shop.example");
        imk_http_head_destroy(h);
    }
}

static void test_plain_request(void **state)
{
    (void)state;
    static const char get[] = "HEAD /sdk/imkit.js HTTP/1.0\r\n\r\n";
    imk_http_head_t *h = imk_http_head_create();
    size_t used;
    assert_int_equal(imk_http_head_feed(h, get, strlen(get), &used), IMK_HTTP_HEAD_DONE);
    const imk_http_request_t *r = imk_http_head_request(h);
    assert_int_equal(r->method, IMK_HTTP_HEAD);
    assert_false(r->upgrade_websocket);
    assert_false(r->offers_imkit_v1);
    assert_false(r->has_origin);
    /* Done is final. */
    assert_int_equal(imk_http_head_feed(h, "x", 1, &used), IMK_EINVAL);
    imk_http_head_destroy(h);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "GARBAGE\r\n\r\n",
        "GET /ws HTTP/9.9.9\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost x\r\n\r\n",
        "GET /w s HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        imk_http_head_t *h = imk_http_head_create();
        size_t used;
        assert_int_equal(imk_http_head_feed(h, bad[i], strlen(bad[i]), &used), IMK_EPROTO);
        imk_http_head_destroy(h);
    }
}

static void test_too_large(void **state)
{
    (void)state;
    /* A head that never ends: refused once past the limit, never buffered beyond it. */
    imk_http_head_t *h = imk_http_head_create();
    size_t used;
    static const char start[] = "GET / HTTP/1.1\r\n";
    assert_int_equal(imk_http_head_feed(h, start, strlen(start), &used), IMK_HTTP_HEAD_MORE);
    int rc = IMK_HTTP_HEAD_MORE;
    for (int i = 0; i < 1000 && rc == IMK_HTTP_HEAD_MORE; i++) {
        rc = imk_http_head_feed(h, "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 34, &used);
    }
    assert_int_equal(rc, IMK_ETOOBIG);
    imk_http_head_destroy(h);

    /* A URL longer than the buffer. */
    char url[4096] = "GET /";
    memset(url + 5, 'a', 3000);
    strcpy(url + 3005, " HTTP/1.1\r\n\r\n");
    h = imk_http_head_create();
    assert_int_equal(imk_http_head_feed(h, url, strlen(url), &used), IMK_ETOOBIG);
    imk_http_head_destroy(h);
}

static void test_long_values_are_cut(void **state)
{
    (void)state;
    char head[4096];
    char origin[2000];
    memset(origin, 'o', sizeof(origin) - 1);
    origin[sizeof(origin) - 1] = '\0';
    snprintf(head, sizeof(head), "GET /ws HTTP/1.1\r\nOrigin: %s\r\n\r\n", origin);
    imk_http_head_t *h = imk_http_head_create();
    size_t used;
    assert_int_equal(imk_http_head_feed(h, head, strlen(head), &used), IMK_HTTP_HEAD_DONE);
    const imk_http_request_t *r = imk_http_head_request(h);
    assert_int_equal(strlen(r->origin), sizeof(r->origin) - 1);
    imk_http_head_destroy(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upgrade_split_everywhere),
        cmocka_unit_test(test_plain_request),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_long_values_are_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
