/* Unit tests of common/src/text.c, buf.c, map.c and redis_url.c through their headers:
 * strict UTF-8 (RFC 3629's table, checked exhaustively against a reference written here),
 * JSON string quoting (exact escapes, and a round trip through jansson), the growable
 * buffer (on the heap and in a caller's storage), the hash map under thousands of keys and
 * tombstone churn, and redis.url parsing. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "imkit/buf.h"
#include "imkit/err.h"
#include "imkit/map.h"
#include "imkit/redis_url.h"
#include "imkit/text.h"

/* ---- UTF-8 ------------------------------------------------------------------------------ */

/* RFC 3629 section 4, row by row: the reference the library is checked against. */
static bool ref_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        unsigned char lo = 0x80, hi = 0xbf;
        size_t n;
        if (c <= 0x7f) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c == 0xe0) {
            n = 2, lo = 0xa0;
        } else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
            n = 2;
        } else if (c == 0xed) {
            n = 2, hi = 0x9f;
        } else if (c == 0xf0) {
            n = 3, lo = 0x90;
        } else if (c >= 0xf1 && c <= 0xf3) {
            n = 3;
        } else if (c == 0xf4) {
            n = 3, hi = 0x8f;
        } else {
            return false;
        }
        if (len - i <= n) {
            return false;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return false;
        }
        for (size_t k = 2; k <= n; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xbf) {
                return false;
            }
        }
        i += n + 1;
    }
    return true;
}

static bool lib_valid(const void *s, size_t len)
{
    return imk_utf8_valid(s, len);
}

#define VALID(lit) assert_true(lib_valid(lit, sizeof(lit) - 1))
#define INVALID(lit) assert_false(lib_valid(lit, sizeof(lit) - 1))

static void test_utf8_table(void **state)
{
    (void)state;
    assert_true(lib_valid("", 0));
    assert_true(lib_valid(NULL, 0));
    VALID("plain ASCII, with \x01 and \x7f");
    VALID("\0"); /* U+0000 is a character */
    /* The edges of every row. */
    VALID("\xc2\x80");         /* U+0080 */
    VALID("\xdf\xbf");         /* U+07FF */
    VALID("\xe0\xa0\x80");     /* U+0800 */
    VALID("\xe1\x80\x80");     /* U+1000 */
    VALID("\xec\xbf\xbf");     /* U+CFFF */
    VALID("\xed\x80\x80");     /* U+D000 */
    VALID("\xed\x9f\xbf");     /* U+D7FF */
    VALID("\xee\x80\x80");     /* U+E000 */
    VALID("\xef\xbf\xbf");     /* U+FFFF */
    VALID("\xef\xbb\xbf");     /* BOM */
    VALID("\xf0\x90\x80\x80"); /* U+10000 */
    VALID("\xf0\x9f\x98\x80"); /* U+1F600 */
    VALID("\xf3\xbf\xbf\xbf"); /* U+FFFFF */
    VALID("\xf4\x80\x80\x80"); /* U+100000 */
    VALID("\xf4\x8f\xbf\xbf"); /* U+10FFFF */
    VALID("caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x91\x8d!");

    /* Overlongs. */
    INVALID("\xc0\x80");
    INVALID("\xc0\xaf");
    INVALID("\xc1\xbf");
    INVALID("\xe0\x80\x80");
    INVALID("\xe0\x9f\xbf");
    INVALID("\xf0\x80\x80\x80");
    INVALID("\xf0\x8f\xbf\xbf");
    /* Surrogates, alone and paired. */
    INVALID("\xed\xa0\x80");
    INVALID("\xed\xad\xbf");
    INVALID("\xed\xbf\xbf");
    INVALID("\xed\xa0\xbd\xed\xb8\x80");
    /* Above U+10FFFF, and bytes that never appear. */
    INVALID("\xf4\x90\x80\x80");
    INVALID("\xf5\x80\x80\x80");
    INVALID("\xf7\xbf\xbf\xbf");
    INVALID("\xf8\x88\x80\x80\x80");
    INVALID("\xfc\x84\x80\x80\x80\x80");
    INVALID("\xfe");
    INVALID("\xff");
    INVALID("a\xc0");
    INVALID("a\xc1");
    /* Continuation bytes without a lead. */
    INVALID("\x80");
    INVALID("\xbf");
    INVALID("a\x80z");
    INVALID("\xc3\xa9\xa9");
    /* A lead followed by something other than a continuation. */
    INVALID("\xc3\x41");
    INVALID("\xe4\xb8\x41");
    INVALID("\xf0\x9f\x98\x41");
    INVALID("\xc3\xc3\xa9");
    INVALID("\xe4\x00\xad");
    /* Truncated at the very end. */
    INVALID("\xc3");
    INVALID("\xe4");
    INVALID("\xe4\xb8");
    INVALID("\xf0");
    INVALID("\xf0\x9f");
    INVALID("\xf0\x9f\x98");
    INVALID("ok \xf0\x9f\x98");
    INVALID("\xf0\x9f\x98\x80\xf0\x9f\x98");
}

/* Every prefix of a valid multi-byte text that cuts a character is refused; the length is
 * honoured exactly (the copies are of the exact size, so ASan sees a read past it). */
static void test_utf8_truncation_every_offset(void **state)
{
    (void)state;
    static const char text[] = "a\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80z\xf4\x8f\xbf\xbf";
    size_t len = sizeof(text) - 1;

    for (size_t k = 0; k <= len; k++) {
        char *copy = malloc(k ? k : 1);
        assert_non_null(copy);
        memcpy(copy, text, k);
        assert_int_equal(imk_utf8_valid(copy, k), ref_utf8_valid((const unsigned char *)copy, k));
        free(copy);
    }
    /* The character boundaries: 0,1,3,6,10,11,15. */
    static const size_t ok[] = {0, 1, 3, 6, 10, 11, 15};
    for (size_t k = 0; k <= len; k++) {
        bool boundary = false;
        for (size_t b = 0; b < sizeof(ok) / sizeof(ok[0]); b++) {
            boundary |= ok[b] == k;
        }
        assert_int_equal(imk_utf8_valid(text, k), boundary);
    }
}

static void test_utf8_exhaustive(void **state)
{
    (void)state;
    unsigned char b[4];

    for (unsigned i = 0; i < 256; i++) {
        b[0] = (unsigned char)i;
        assert_int_equal(lib_valid(b, 1), ref_utf8_valid(b, 1));
        for (unsigned j = 0; j < 256; j++) {
            b[1] = (unsigned char)j;
            assert_int_equal(lib_valid(b, 2), ref_utf8_valid(b, 2));
        }
    }
    /* Every three-byte string whose first byte is not ASCII (ASCII prefixes add nothing). */
    for (unsigned i = 0x80; i < 256; i++) {
        b[0] = (unsigned char)i;
        for (unsigned j = 0; j < 256; j++) {
            b[1] = (unsigned char)j;
            for (unsigned k = 0; k < 256; k++) {
                b[2] = (unsigned char)k;
                if (lib_valid(b, 3) != ref_utf8_valid(b, 3)) {
                    fail_msg("disagree on %02x %02x %02x", i, j, k);
                }
            }
        }
    }
    /* Four bytes: every lead from 0xf0, every second and third byte, the edge values of the
     * fourth. */
    static const unsigned char last[] = {0x00, 0x7f, 0x80, 0xbf, 0xc0, 0xff};
    for (unsigned i = 0xf0; i < 256; i++) {
        b[0] = (unsigned char)i;
        for (unsigned j = 0; j < 256; j++) {
            b[1] = (unsigned char)j;
            for (unsigned k = 0; k < 256; k++) {
                b[2] = (unsigned char)k;
                for (size_t l = 0; l < sizeof(last); l++) {
                    b[3] = last[l];
                    if (lib_valid(b, 4) != ref_utf8_valid(b, 4)) {
                        fail_msg("disagree on %02x %02x %02x %02x", i, j, k, last[l]);
                    }
                }
            }
        }
    }
}

/* Encodes cp in UTF-8 into out; returns the length. */
static size_t encode_cp(uint32_t cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xc0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xe0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Every code point encodes to a string the check accepts, except the surrogates; and the
 * values just past U+10FFFF that the 4-byte pattern can still hold are refused. */
static void test_utf8_every_code_point(void **state)
{
    (void)state;
    unsigned char b[4];
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        size_t n = encode_cp(cp, b);
        bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
        if (lib_valid(b, n) == surrogate) {
            fail_msg("U+%04X judged wrongly", (unsigned)cp);
        }
    }
    for (uint32_t cp = 0x110000; cp < 0x200000; cp += 0x1111) {
        size_t n = encode_cp(cp, b);
        assert_false(lib_valid(b, n));
    }
}

/* ---- JSON quoting ----------------------------------------------------------------------- */

static void check_quote(const char *in, size_t len, const char *want)
{
    imk_buf_t b = IMK_BUF_INIT;
    assert_int_equal(imk_json_quote(&b, in, len), 0);
    assert_int_equal(b.len, strlen(want));
    assert_string_equal(b.data, want);
    imk_buf_deinit(&b);
}

static void test_json_quote_exact(void **state)
{
    (void)state;
    check_quote("", 0, "\"\"");
    check_quote("abc", 3, "\"abc\"");
    check_quote("a\"b", 3, "\"a\\\"b\"");
    check_quote("a\\b", 3, "\"a\\\\b\"");
    check_quote("\"\\\"", 3, "\"\\\"\\\\\\\"\"");
    check_quote("l1\nl2\r\n\tx", 9, "\"l1\\nl2\\r\\n\\tx\"");
    check_quote("\0", 1, "\"\\u0000\"");
    check_quote("a\0b", 3, "\"a\\u0000b\"");
    check_quote("\x01\x08\x0b\x0c\x1b\x1f", 6, "\"\\u0001\\u0008\\u000b\\u000c\\u001b\\u001f\"");
    check_quote(" \x7f", 2, "\" \x7f\"");
    check_quote("/</script>", 10, "\"/</script>\"");
    /* Valid UTF-8 passes through untouched. */
    check_quote("caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80", 14,
                "\"caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80\"");
    /* Only len bytes are quoted. */
    check_quote("abcdef", 2, "\"ab\"");

    /* Every control character becomes an escape of the right value. */
    for (int c = 0; c < 0x20; c++) {
        char in = (char)c, want[16];
        switch (c) {
        case '\n':
            strcpy(want, "\"\\n\"");
            break;
        case '\r':
            strcpy(want, "\"\\r\"");
            break;
        case '\t':
            strcpy(want, "\"\\t\"");
            break;
        default:
            snprintf(want, sizeof(want), "\"\\u%04x\"", c);
        }
        check_quote(&in, 1, want);
    }
}

static void test_json_quote_appends(void **state)
{
    (void)state;
    imk_buf_t b = IMK_BUF_INIT;
    assert_int_equal(imk_buf_append_str(&b, "{\"k\":"), 0);
    assert_int_equal(imk_json_quote(&b, "v\n", 2), 0);
    assert_int_equal(imk_buf_append_str(&b, "}"), 0);
    assert_string_equal(b.data, "{\"k\":\"v\\n\"}");
    imk_buf_deinit(&b);
}

/* Quoting then parsing with jansson gives the bytes back, for every byte below 0x80 and for
 * long texts mixing escapes and multi-byte characters. */
static void roundtrip(const char *s, size_t len)
{
    imk_buf_t b = IMK_BUF_INIT;
    json_error_t e;
    assert_int_equal(imk_json_quote(&b, s, len), 0);
    json_t *j = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (j == NULL) {
        fail_msg("jansson refused %s: %s", b.data, e.text);
    }
    assert_true(json_is_string(j));
    assert_int_equal(json_string_length(j), len);
    assert_memory_equal(json_string_value(j), s, len);
    json_decref(j);
    imk_buf_deinit(&b);
}

static void test_json_quote_jansson(void **state)
{
    (void)state;
    char all[128];
    for (int c = 0; c < 128; c++) {
        all[c] = (char)c;
        roundtrip(&all[c], 1);
    }
    roundtrip(all, sizeof(all));

    size_t n = 100000, len = 0;
    char *big = malloc(n + 8);
    assert_non_null(big);
    static const char *const pieces[] = {
        "a", "\"", "\\", "\n", "\x01", "\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80", "\x7f", "/"};
    for (unsigned i = 0; len < n; i = i * 7 + 3) {
        const char *p = pieces[i % (sizeof(pieces) / sizeof(pieces[0]))];
        memcpy(big + len, p, strlen(p));
        len += strlen(p);
    }
    assert_true(imk_utf8_valid(big, len));
    roundtrip(big, len);
    free(big);
}

/* ---- imk_buf ---------------------------------------------------------------------------- */

static void test_buf_append(void **state)
{
    (void)state;
    imk_buf_t b = IMK_BUF_INIT;

    assert_int_equal(imk_buf_append(&b, "", 0), 0);
    assert_non_null(b.data);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(imk_buf_append(&b, NULL, 0), 0);

    /* Growth across many reallocations, one byte and big blocks at a time. */
    size_t total = 0;
    for (int i = 0; i < 5000; i++) {
        char c = (char)('a' + i % 26);
        assert_int_equal(imk_buf_append(&b, &c, 1), 0);
        total++;
        assert_true(b.len < b.cap);
        assert_int_equal(b.data[b.len], '\0');
    }
    char block[70000];
    for (size_t i = 0; i < sizeof(block); i++) {
        block[i] = (char)i;
    }
    for (int i = 0; i < 40; i++) {
        assert_int_equal(imk_buf_append(&b, block, sizeof(block)), 0);
        total += sizeof(block);
        assert_true(b.len < b.cap);
        assert_int_equal(b.data[b.len], '\0');
    }
    assert_int_equal(b.len, total);
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(b.data[i], 'a' + i % 26);
    }
    for (int i = 0; i < 40; i++) {
        assert_memory_equal(b.data + 5000 + (size_t)i * sizeof(block), block, sizeof(block));
    }

    /* reset empties but keeps the storage; deinit frees it. */
    size_t cap = b.cap;
    imk_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "");
    assert_int_equal(imk_buf_append_str(&b, "again"), 0);
    assert_string_equal(b.data, "again");
    imk_buf_deinit(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    imk_buf_deinit(&b);
    imk_buf_reset(&b); /* on an empty buffer: harmless */

    /* Exactly filling what was reserved keeps room for the NUL. */
    for (size_t n = 250; n < 520; n++) {
        imk_buf_t c = IMK_BUF_INIT;
        assert_int_equal(imk_buf_append(&c, block, n), 0);
        assert_true(c.len < c.cap);
        assert_int_equal(c.data[n], '\0');
        imk_buf_deinit(&c);
    }
}

/* A buffer started in the caller's storage uses it until its bytes outgrow it, then moves
 * them to the heap (whole, NUL included); deinit frees only the heap. ASan (the sanitized
 * build) reports a free of the storage or a leak of the heap copy. */
static void test_buf_on_storage(void **state)
{
    (void)state;
    char storage[16];
    imk_buf_t b;
    imk_buf_init_on(&b, storage, sizeof(storage));
    assert_ptr_equal(b.data, storage);
    assert_string_equal(b.data, "");
    assert_int_equal(imk_buf_append_str(&b, "0123456789"), 0);
    assert_int_equal(imk_buf_printf(&b, "%s", "abcd"), 0); /* 14 bytes + NUL: still inside */
    assert_ptr_equal(b.data, storage);
    assert_string_equal(b.data, "0123456789abcd");

    assert_int_equal(imk_buf_printf(&b, "%d", 12345), 0); /* 19 bytes: moves */
    assert_ptr_not_equal(b.data, storage);
    assert_string_equal(b.data, "0123456789abcd12345");
    assert_true(b.len < b.cap);
    for (int i = 0; i < 1000; i++) { /* and grows on the heap like any buffer */
        assert_int_equal(imk_buf_append(&b, "x", 1), 0);
    }
    assert_int_equal(b.len, 1019);
    assert_memory_equal(b.data, "0123456789abcd12345xx", 21);
    imk_buf_deinit(&b);
    assert_null(b.data);

    /* Reset keeps the storage; a buffer that never grew frees nothing. */
    imk_buf_init_on(&b, storage, sizeof(storage));
    assert_int_equal(imk_buf_append_str(&b, "abc"), 0);
    imk_buf_reset(&b);
    assert_ptr_equal(b.data, storage);
    assert_int_equal(imk_buf_append_str(&b, "de"), 0);
    assert_string_equal(storage, "de");
    imk_buf_deinit(&b);
    imk_buf_deinit(&b);
}

static void test_buf_printf(void **state)
{
    (void)state;
    imk_buf_t b = IMK_BUF_INIT;

    assert_int_equal(imk_buf_printf(&b, "%s", ""), 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(imk_buf_printf(&b, "x=%d y=%s", 42, "z"), 0);
    assert_string_equal(b.data, "x=42 y=z");
    assert_int_equal(imk_buf_printf(&b, " %05.1f|%llu", 3.14159, 18446744073709551615ull), 0);
    assert_string_equal(b.data, "x=42 y=z 003.1|18446744073709551615");

    /* Output larger than the storage, and exactly at the edges of it. */
    char big[5000];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    size_t before = b.len;
    assert_int_equal(imk_buf_printf(&b, "[%s]", big), 0);
    assert_int_equal(b.len, before + sizeof(big) + 1);
    assert_int_equal(b.data[before], '[');
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(b.data[b.len], '\0');
    imk_buf_deinit(&b);

    for (int n = 240; n < 530; n++) {
        imk_buf_t c = IMK_BUF_INIT;
        assert_int_equal(imk_buf_printf(&c, "%.*s", n, big), 0);
        assert_int_equal(c.len, (size_t)n);
        assert_true(c.len < c.cap);
        assert_int_equal(c.data[n], '\0');
        assert_int_equal(imk_buf_printf(&c, "%d", 7), 0);
        assert_int_equal(c.data[n], '7');
        imk_buf_deinit(&c);
    }
}

/* An impossible size must be refused with IMK_ENOMEM, leaving the buffer unchanged, not
 * wrap around, hang or write out of bounds. Run in a child with a deadline, so a hang is
 * a failure and not a stuck test. */
static int child_append_huge(size_t already)
{
    imk_buf_t b = IMK_BUF_INIT;
    char small[16] = "0123456789abcdef";
    if (already > 0 && imk_buf_append(&b, small, already) != 0) {
        return 2;
    }
    /* With 10 bytes held, SIZE_MAX - 5 more would wrap len + n around to 4. */
    size_t n = already == 0 ? SIZE_MAX : SIZE_MAX - already / 2;
    if (imk_buf_append(&b, small, n) != IMK_ENOMEM || b.len != already) {
        return 1;
    }
    imk_buf_deinit(&b);
    return 0;
}

static void test_buf_huge_append(void **state)
{
    (void)state;
    static const size_t already[] = {0, 10};
    int failures = 0;
    for (size_t i = 0; i < sizeof(already) / sizeof(already[0]); i++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            alarm(2);
            _exit(child_append_huge(already[i]));
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFSIGNALED(status)) {
            print_error("imk_buf_append(len %zu, n near SIZE_MAX) died of signal %d%s\n",
                        already[i], WTERMSIG(status), WTERMSIG(status) == SIGALRM ? " (hung)" : "");
            failures++;
        } else if (WEXITSTATUS(status) != 0) {
            print_error("imk_buf_append(len %zu, n near SIZE_MAX) did not refuse with "
                        "IMK_ENOMEM (exit %d)\n",
                        already[i], WEXITSTATUS(status));
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* ---- imk_map ---------------------------------------------------------------------------- */

static void count_entry(const char *key, size_t len, void *value, void *arg)
{
    size_t *acc = arg;
    char want[32];
    int n = snprintf(want, sizeof(want), "key-%zu", (size_t)(uintptr_t)value);
    assert_int_equal(len, (size_t)n);
    assert_memory_equal(key, want, len);
    acc[0]++;
    acc[1] += (size_t)(uintptr_t)value;
}

static void *V(size_t i)
{
    return (void *)(uintptr_t)i;
}

static void test_map_basics(void **state)
{
    (void)state;
    imk_map_t *m = imk_map_create();
    int a = 1, b = 2, c = 3;

    assert_non_null(m);
    assert_int_equal(imk_map_size(m), 0);
    assert_null(imk_map_get(m, "x", 1));
    assert_null(imk_map_remove(m, "x", 1));

    assert_int_equal(imk_map_put(m, "alice", 5, &a), 0);
    assert_int_equal(imk_map_put(m, "bob", 3, &b), 0);
    assert_ptr_equal(imk_map_get(m, "alice", 5), &a);
    assert_ptr_equal(imk_map_get(m, "bob", 3), &b);
    assert_null(imk_map_get(m, "alic", 4));
    assert_null(imk_map_get(m, "alicee", 6));
    assert_int_equal(imk_map_size(m), 2);

    /* Replace: same size, new value. */
    assert_int_equal(imk_map_put(m, "alice", 5, &c), 0);
    assert_ptr_equal(imk_map_get(m, "alice", 5), &c);
    assert_int_equal(imk_map_size(m), 2);

    /* Keys are copied: the caller's storage may change afterwards. */
    char key[8] = "carol";
    assert_int_equal(imk_map_put(m, key, 5, &a), 0);
    memcpy(key, "XXXXX", 5);
    assert_ptr_equal(imk_map_get(m, "carol", 5), &a);
    assert_null(imk_map_get(m, key, 5));

    /* Binary keys, keys with NUL bytes, the empty key, keys that are prefixes. */
    assert_int_equal(imk_map_put(m, "a\0b", 3, &a), 0);
    assert_int_equal(imk_map_put(m, "a\0c", 3, &b), 0);
    assert_int_equal(imk_map_put(m, "", 0, &c), 0);
    assert_ptr_equal(imk_map_get(m, "a\0b", 3), &a);
    assert_ptr_equal(imk_map_get(m, "a\0c", 3), &b);
    assert_ptr_equal(imk_map_get(m, "", 0), &c);
    assert_null(imk_map_get(m, "a", 1));

    assert_ptr_equal(imk_map_remove(m, "", 0), &c);
    assert_null(imk_map_get(m, "", 0));
    assert_ptr_equal(imk_map_remove(m, "bob", 3), &b);
    assert_null(imk_map_remove(m, "bob", 3));
    assert_null(imk_map_get(m, "bob", 3));
    assert_int_equal(imk_map_size(m), 4);
    imk_map_destroy(m);
    imk_map_destroy(NULL);
}

static void test_map_u64(void **state)
{
    (void)state;
    imk_map_t *m = imk_map_create();
    static const uint64_t keys[] = {
        0, 1, 2, 255, 256, UINT64_C(1) << 32, UINT64_C(1) << 40, UINT64_MAX - 1, UINT64_MAX};
    size_t n = sizeof(keys) / sizeof(keys[0]);

    assert_non_null(m);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(imk_map_put_u64(m, keys[i], V(i + 1)), 0);
    }
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(imk_map_get_u64(m, keys[i]), V(i + 1));
    }
    assert_null(imk_map_get_u64(m, 3));
    assert_ptr_equal(imk_map_remove_u64(m, UINT64_MAX), V(n));
    assert_null(imk_map_get_u64(m, UINT64_MAX));
    assert_null(imk_map_remove_u64(m, UINT64_MAX));
    assert_int_equal(imk_map_size(m), n - 1);

    /* Counters, as the gateway uses them: 20 000 of them in and out. */
    for (uint64_t k = 1000; k < 21000; k++) {
        assert_int_equal(imk_map_put_u64(m, k, V((size_t)k)), 0);
    }
    for (uint64_t k = 1000; k < 21000; k += 2) {
        assert_ptr_equal(imk_map_remove_u64(m, k), V((size_t)k));
    }
    for (uint64_t k = 1000; k < 21000; k++) {
        assert_ptr_equal(imk_map_get_u64(m, k), k % 2 ? V((size_t)k) : NULL);
    }
    assert_int_equal(imk_map_size(m), n - 1 + 10000);
    imk_map_destroy(m);
}

static void test_map_thousands(void **state)
{
    (void)state;
    enum { N = 20000 };
    imk_map_t *m = imk_map_create();
    char key[32];

    assert_non_null(m);
    for (size_t i = 1; i <= N; i++) {
        int n = snprintf(key, sizeof(key), "key-%zu", i);
        assert_int_equal(imk_map_put(m, key, (size_t)n, V(i)), 0);
        assert_int_equal(imk_map_size(m), i);
    }
    for (size_t i = 1; i <= N; i++) {
        int n = snprintf(key, sizeof(key), "key-%zu", i);
        assert_ptr_equal(imk_map_get(m, key, (size_t)n), V(i));
    }
    size_t acc[2] = {0, 0};
    imk_map_foreach(m, count_entry, acc);
    assert_int_equal(acc[0], N);
    assert_int_equal(acc[1], (size_t)N * (N + 1) / 2);

    /* Remove every odd key; the even ones stay reachable past the tombstones. */
    for (size_t i = 1; i <= N; i += 2) {
        int n = snprintf(key, sizeof(key), "key-%zu", i);
        assert_ptr_equal(imk_map_remove(m, key, (size_t)n), V(i));
    }
    assert_int_equal(imk_map_size(m), N / 2);
    for (size_t i = 1; i <= N; i++) {
        int n = snprintf(key, sizeof(key), "key-%zu", i);
        assert_ptr_equal(imk_map_get(m, key, (size_t)n), i % 2 ? NULL : V(i));
    }
    acc[0] = acc[1] = 0;
    imk_map_foreach(m, count_entry, acc);
    assert_int_equal(acc[0], N / 2);

    /* Put them back: tombstones are reused and nothing is found twice. */
    for (size_t i = 1; i <= N; i += 2) {
        int n = snprintf(key, sizeof(key), "key-%zu", i);
        assert_int_equal(imk_map_put(m, key, (size_t)n, V(i)), 0);
    }
    assert_int_equal(imk_map_size(m), N);
    acc[0] = acc[1] = 0;
    imk_map_foreach(m, count_entry, acc);
    assert_int_equal(acc[0], N);
    assert_int_equal(acc[1], (size_t)N * (N + 1) / 2);
    imk_map_destroy(m);
}

/* A small live set under heavy put/remove churn: the table fills with tombstones and must
 * be cleaned, not loop forever nor lose entries. */
static void test_map_churn(void **state)
{
    (void)state;
    imk_map_t *m = imk_map_create();
    char key[32];

    assert_non_null(m);
    for (size_t i = 1; i <= 8; i++) {
        int n = snprintf(key, sizeof(key), "key-%zu", i);
        assert_int_equal(imk_map_put(m, key, (size_t)n, V(i)), 0);
    }
    for (size_t round = 0; round < 200000; round++) {
        size_t i = 1000 + round;
        int n = snprintf(key, sizeof(key), "key-%zu", i);
        assert_int_equal(imk_map_put(m, key, (size_t)n, V(i)), 0);
        assert_ptr_equal(imk_map_get(m, key, (size_t)n), V(i));
        assert_ptr_equal(imk_map_remove(m, key, (size_t)n), V(i));
        assert_null(imk_map_get(m, key, (size_t)n));
        if (round % 1000 == 0) {
            assert_int_equal(imk_map_size(m), 8);
        }
    }
    for (size_t i = 1; i <= 8; i++) {
        int n = snprintf(key, sizeof(key), "key-%zu", i);
        assert_ptr_equal(imk_map_get(m, key, (size_t)n), V(i));
    }
    /* Remove and re-put the same key over and over. */
    for (size_t round = 0; round < 50000; round++) {
        assert_ptr_equal(imk_map_remove(m, "key-3", 5), V(3));
        assert_int_equal(imk_map_put(m, "key-3", 5, V(3)), 0);
    }
    size_t acc[2] = {0, 0};
    imk_map_foreach(m, count_entry, acc);
    assert_int_equal(acc[0], 8);
    assert_int_equal(acc[1], 36);
    imk_map_destroy(m);
}

/* ---- redis.url -------------------------------------------------------------------------- */

static void check_url(const char *url, const char *host, int port, int db, const char *password)
{
    imk_redis_url_t u;
    memset(&u, 0x5a, sizeof(u));
    if (imk_redis_url_parse(url, &u) != 0) {
        fail_msg("refused %s", url);
    }
    assert_string_equal(u.host, host);
    assert_int_equal(u.port, port);
    assert_int_equal(u.db, db);
    assert_string_equal(u.password, password);
}

static void test_redis_url_good(void **state)
{
    (void)state;
    check_url("redis://127.0.0.1:6379/0", "127.0.0.1", 6379, 0, "");
    check_url("redis://localhost", "localhost", 6379, 0, "");
    check_url("redis://localhost/", "localhost", 6379, 0, "");
    check_url("redis://h:1", "h", 1, 0, "");
    check_url("redis://h:65535/15", "h", 65535, 15, "");
    check_url("redis://h/7", "h", 6379, 7, "");
    check_url("redis://redis.example.com:7000/100000", "redis.example.com", 7000, 100000, "");
    check_url("redis://:s3cret@h:6380/2", "h", 6380, 2, "s3cret");
    check_url("redis://:@h", "h", 6379, 0, "");
    check_url("redis://:a:b@h", "h", 6379, 0, "a:b"); /* the first ':' ends the user part */

    char url[600], host[256], pw[256];
    memset(host, 'h', 255);
    host[255] = '\0';
    memset(pw, 'p', 255);
    pw[255] = '\0';
    snprintf(url, sizeof(url), "redis://:%s@%s:1/1", pw, host);
    check_url(url, host, 1, 1, pw);
}

static void test_redis_url_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "redis:/",
        "redis:",
        "http://h:6379",
        "rediss://h",
        "redis://",
        "redis:///0",
        "redis://:6379",
        "redis://:pw@",
        "redis://:pw@:1",
        "redis://h:",
        "redis://h:/0",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:-1",
        "redis://h:+1",
        "redis://h:12a",
        "redis://h:1234567890",
        "redis://h: 1",
        "redis://h/x",
        "redis://h/-1",
        "redis://h/100001",
        "redis://h/1/2",
        "redis://h/1 ",
        "redis://h/1234567890",
    };
    imk_redis_url_t u;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (imk_redis_url_parse(bad[i], &u) != IMK_EINVAL) {
            fail_msg("accepted %s", bad[i]);
        }
    }
    char url[700];
    char big[300];
    memset(big, 'x', 256);
    big[256] = '\0';
    snprintf(url, sizeof(url), "redis://%s:1", big); /* host of 256 bytes */
    assert_int_equal(imk_redis_url_parse(url, &u), IMK_EINVAL);
    snprintf(url, sizeof(url), "redis://:%s@h", big); /* password of 256 bytes */
    assert_int_equal(imk_redis_url_parse(url, &u), IMK_EINVAL);
}

static void test_parse_decimal(void **state)
{
    (void)state;
    int64_t v = -7;
    assert_int_equal(imk_parse_decimal("0", 1, 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(imk_parse_decimal("65535", 5, 1, 65535, &v), 0);
    assert_int_equal(v, 65535);
    assert_int_equal(imk_parse_decimal("123456789", 9, 0, 999999999, &v), 0);
    assert_int_equal(v, 123456789);
    assert_int_equal(imk_parse_decimal("12", 1, 0, 10, &v), 0); /* only n bytes are read */
    assert_int_equal(v, 1);
    v = -7;
    assert_int_equal(imk_parse_decimal("65536", 5, 1, 65535, &v), IMK_EINVAL);
    assert_int_equal(imk_parse_decimal("0", 1, 1, 10, &v), IMK_EINVAL);
    assert_int_equal(imk_parse_decimal("", 0, 0, 10, &v), IMK_EINVAL);
    assert_int_equal(imk_parse_decimal("999999999999999999", 18, 0, INT64_MAX, &v), 0);
    assert_true(v == 999999999999999999LL);
    v = -7;
    assert_int_equal(imk_parse_decimal("1234567890123456789", 19, 0, INT64_MAX, &v), IMK_EINVAL);
    assert_int_equal(imk_parse_decimal("-1", 2, -5, 5, &v), IMK_EINVAL);
    assert_int_equal(imk_parse_decimal("+1", 2, 0, 5, &v), IMK_EINVAL);
    assert_int_equal(imk_parse_decimal(" 1", 2, 0, 5, &v), IMK_EINVAL);
    assert_int_equal(imk_parse_decimal("1a", 2, 0, 99, &v), IMK_EINVAL);
    assert_int_equal(v, -7); /* untouched on error */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_table),
        cmocka_unit_test(test_utf8_truncation_every_offset),
        cmocka_unit_test(test_utf8_exhaustive),
        cmocka_unit_test(test_utf8_every_code_point),
        cmocka_unit_test(test_json_quote_exact),
        cmocka_unit_test(test_json_quote_appends),
        cmocka_unit_test(test_json_quote_jansson),
        cmocka_unit_test(test_buf_append),
        cmocka_unit_test(test_buf_printf),
        cmocka_unit_test(test_buf_on_storage),
        cmocka_unit_test(test_buf_huge_append),
        cmocka_unit_test(test_map_basics),
        cmocka_unit_test(test_map_u64),
        cmocka_unit_test(test_map_thousands),
        cmocka_unit_test(test_map_churn),
        cmocka_unit_test(test_redis_url_good),
        cmocka_unit_test(test_redis_url_bad),
        cmocka_unit_test(test_parse_decimal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
