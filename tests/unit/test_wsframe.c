/* Unit tests of the WebSocket framing (gateway/src/wsframe.h): client headers of every
 * length form read from every prefix (MORE until whole, the length known as soon as its
 * bytes are there), every protocol violation refused from the first byte that shows it,
 * server headers encoded, unmasking from any offset, UTF-8 fed in pieces cut at every offset
 * agreeing with the whole-string check, and the close codes a peer may send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "imkit/text.h"
#include "wsframe.h"

#include <string.h>

/* A masked client frame header: FIN, opcode, the length in its shortest form, the mask. */
static size_t client_head(uint8_t *out, uint8_t opcode, uint64_t len)
{
    size_t n = imk_wsframe_head_encode(out, opcode, len);
    out[1] |= 0x80;
    memcpy(out + n, "\x01\x02\x03\x04", 4);
    return n + 4;
}

static void test_head_every_prefix(void **state)
{
    (void)state;
    const uint64_t lengths[] = {0, 125, 126, 65535, 65536, (uint64_t)1 << 40};
    for (size_t k = 0; k < sizeof(lengths) / sizeof(lengths[0]); k++) {
        uint8_t head[IMK_WS_HEAD_MAX];
        size_t n = client_head(head, IMK_WS_OP_TEXT, lengths[k]);
        size_t length_at = n - 4; /* the length is known before the mask arrives */
        for (size_t avail = 0; avail <= n; avail++) {
            imk_wsframe_head_t h;
            bool known;
            int rc = imk_wsframe_head_parse(head, avail, &h, &known);
            assert_int_equal(rc, avail < n ? IMK_WSFRAME_MORE : 0);
            assert_int_equal(known, avail >= length_at);
            if (known) {
                assert_true(h.payload_len == lengths[k]);
                assert_int_equal(h.opcode, IMK_WS_OP_TEXT);
                assert_true(h.fin);
            }
            if (rc == 0) {
                assert_int_equal(h.head_len, n);
                assert_memory_equal(h.mask, "\x01\x02\x03\x04", 4);
            }
        }
    }
}

static void test_head_violations(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"\xc1", 1},                                      /* RSV1 */
        {"\xa1", 1},                                      /* RSV2 */
        {"\x91", 1},                                      /* RSV3 */
        {"\x83", 1},                                      /* opcode 3 */
        {"\x8b", 1},                                      /* opcode 0xB */
        {"\x09", 1},                                      /* ping without FIN */
        {"\x08", 1},                                      /* close without FIN */
        {"\x81\x05", 2},                                  /* not masked */
        {"\x89\xfe", 2},                                  /* ping of 126 or more */
        {"\x81\xff\x80\x00\x00\x00\x00\x00\x00\x05", 10}, /* 64-bit length, top bit set */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        imk_wsframe_head_t h;
        assert_int_equal(
            imk_wsframe_head_parse((const uint8_t *)bad[i].bytes, bad[i].len, &h, NULL),
            IMK_WSFRAME_EPROTO);
    }
    /* A control frame of exactly 125 bytes and a masked continuation are fine. */
    imk_wsframe_head_t h;
    assert_int_equal(imk_wsframe_head_parse((const uint8_t *)"\x89\xfd"
                                                             "abcd",
                                            6, &h, NULL),
                     0);
    assert_int_equal(imk_wsframe_head_parse((const uint8_t *)"\x00\x80"
                                                             "abcd",
                                            6, &h, NULL),
                     0);
    assert_false(h.fin);
}

static void test_server_head(void **state)
{
    (void)state;
    uint8_t out[IMK_WS_SERVER_HEAD_MAX];
    assert_int_equal(imk_wsframe_head_encode(out, IMK_WS_OP_TEXT, 5), 2);
    assert_memory_equal(out, "\x81\x05", 2);
    assert_int_equal(imk_wsframe_head_encode(out, IMK_WS_OP_TEXT, 300), 4);
    assert_memory_equal(out, "\x81\x7e\x01\x2c", 4);
    assert_int_equal(imk_wsframe_head_encode(out, IMK_WS_OP_CLOSE, 70000), 10);
    assert_memory_equal(out, "\x88\x7f\x00\x00\x00\x00\x00\x01\x11\x70", 10);
}

static void test_unmask_any_offset(void **state)
{
    (void)state;
    const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    uint8_t clear[41], masked[41];
    for (size_t i = 0; i < sizeof(clear); i++) {
        clear[i] = (uint8_t)('a' + i % 26);
        masked[i] = clear[i] ^ mask[i % 4];
    }
    for (size_t cut = 0; cut <= sizeof(masked); cut++) {
        uint8_t p[41];
        memcpy(p, masked, sizeof(p));
        imk_wsframe_unmask(p, cut, mask, 0);
        imk_wsframe_unmask(p + cut, sizeof(p) - cut, mask, cut);
        assert_memory_equal(p, clear, sizeof(clear));
    }
}

static void test_utf8_pieces(void **state)
{
    (void)state;
    static const char *texts[] = {
        "plain ascii, long enough for the eight-byte path",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
        "\xc0\xaf",         /* overlong */
        "\xe0\x80\xaf",     /* overlong */
        "\xed\xa0\x80",     /* surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xf0\x9f\x98",     /* truncated */
        "ok\xff",           /* never valid */
        "\x80",             /* lone continuation */
        "",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        const char *t = texts[i];
        size_t len = strlen(t);
        bool whole = imk_utf8_valid(t, len);
        for (size_t cut = 0; cut <= len; cut++) {
            uint32_t st = 0;
            bool ok = imk_wsframe_utf8_feed(&st, (const uint8_t *)t, cut) &&
                      imk_wsframe_utf8_feed(&st, (const uint8_t *)t + cut, len - cut) && st == 0;
            assert_int_equal(ok, whole);
        }
    }
    /* Invalid bytes are refused at once, before the message ends. */
    uint32_t st = 0;
    assert_false(imk_wsframe_utf8_feed(&st, (const uint8_t *)"ab\xff", 3));
    st = 0;
    assert_true(imk_wsframe_utf8_feed(&st, (const uint8_t *)"ab\xe2\x82", 4));
    assert_int_not_equal(st, 0);
}

static void test_close_codes(void **state)
{
    (void)state;
    const uint16_t good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999};
    const uint16_t bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(imk_wsframe_close_code_valid(good[i]));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(imk_wsframe_close_code_valid(bad[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_every_prefix), cmocka_unit_test(test_head_violations),
        cmocka_unit_test(test_server_head),       cmocka_unit_test(test_unmask_any_offset),
        cmocka_unit_test(test_utf8_pieces),       cmocka_unit_test(test_close_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
