/* Unit tests of common/src/keys.c and common/src/ids.c through imkit/keys.h and imkit/ids.h:
 * every key and channel name for several prefixes (the names worker/lua/imkit.lua builds
 * too), IMK_ETOOBIG on short buffers, the job stream partition (FNV-1a, checked against
 * published vectors), the id alphabet and random ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imkit/err.h"
#include "imkit/ids.h"
#include "imkit/keys.h"

/* ---- key and channel names -------------------------------------------------------------- */

enum name_fn {
    JOBS,
    DEAD,
    TOKEN,
    ONLINE,
    GATEWAY_ALIVE,
    CLIENT_ROOMS,
    CH_GATEWAY,
    CH_ROOM,
    CH_CLIENT,
    CH_PRESENCE,
    GATEWAYS,
};

static int name_of(enum name_fn fn, char *out, size_t outlen, const char *prefix, const char *arg)
{
    switch (fn) {
    case JOBS:
        return imk_key_jobs(out, outlen, prefix, atoi(arg));
    case DEAD:
        return imk_key_dead(out, outlen, prefix);
    case TOKEN:
        return imk_key_token(out, outlen, prefix, arg);
    case ONLINE:
        return imk_key_online(out, outlen, prefix, arg);
    case GATEWAY_ALIVE:
        return imk_key_gateway_alive(out, outlen, prefix, arg);
    case CLIENT_ROOMS:
        return imk_key_client_rooms(out, outlen, prefix, arg);
    case CH_GATEWAY:
        return imk_channel_gateway(out, outlen, prefix, arg);
    case CH_ROOM:
        return imk_channel_room(out, outlen, prefix, arg);
    case CH_CLIENT:
        return imk_channel_client(out, outlen, prefix, arg);
    case CH_PRESENCE:
        return imk_channel_presence(out, outlen, prefix, arg);
    case GATEWAYS:
        return imk_key_gateways(out, outlen, prefix);
    }
    return IMK_EINVAL;
}

/* The name of each function, with "P" standing for the prefix and "A" for the argument. */
static const struct {
    enum name_fn fn;
    const char *arg;
    const char *pattern;
} NAMES[] = {
    {JOBS, "0", "Pjobs:0"},
    {JOBS, "3", "Pjobs:3"},
    {JOBS, "255", "Pjobs:255"},
    {DEAD, "", "Pjobs:dead"},
    {TOKEN, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
     "Ptok:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
    {ONLINE, "alice", "Ponline:{alice}"},
    {GATEWAY_ALIVE, "gw-1", "Pgw:gw-1"},
    {CLIENT_ROOMS, "bob@x.y", "Pu:{bob@x.y}:rooms"},
    {CH_GATEWAY, "host:123", "Pch:gw:host:123"},
    {CH_ROOM, "r_1", "Pch:r:{r_1}"},
    {CH_CLIENT, "c.d", "Pch:u:{c.d}"},
    {CH_PRESENCE, "eve", "Pch:p:{eve}"},
    {GATEWAYS, "", "Pgateways"},
};

static void expand(const char *pattern, const char *prefix, char *out, size_t outlen)
{
    size_t n = 0;
    for (const char *p = pattern; *p != '\0'; p++) {
        const char *piece = *p == 'P' && p == pattern ? prefix : NULL;
        if (piece != NULL) {
            n += (size_t)snprintf(out + n, outlen - n, "%s", piece);
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

static void test_names(void **state)
{
    (void)state;
    static const char *const prefixes[] = {"imkit:", "",
                                           "p:", "{tenant-7}:", "a-much-longer:prefix:"};
    char want[IMK_KEY_MAX], got[IMK_KEY_MAX];

    for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
        for (size_t i = 0; i < sizeof(NAMES) / sizeof(NAMES[0]); i++) {
            expand(NAMES[i].pattern, prefixes[p], want, sizeof(want));
            memset(got, 'x', sizeof(got));
            int n = name_of(NAMES[i].fn, got, sizeof(got), prefixes[p], NAMES[i].arg);
            assert_int_equal(n, (int)strlen(want));
            assert_string_equal(got, want);
        }
    }
}

/* A buffer of exactly the name's length lacks room for the NUL: IMK_ETOOBIG, and the output
 * is still a NUL-terminated string within the buffer. One byte more is enough. */
static void test_names_short_buffer(void **state)
{
    (void)state;
    char want[IMK_KEY_MAX];

    for (size_t i = 0; i < sizeof(NAMES) / sizeof(NAMES[0]); i++) {
        expand(NAMES[i].pattern, "imkit:", want, sizeof(want));
        size_t len = strlen(want);
        for (size_t outlen = 1; outlen <= len; outlen++) {
            char *out = malloc(outlen); /* exact size: ASan catches a write past it */
            assert_non_null(out);
            assert_int_equal(name_of(NAMES[i].fn, out, outlen, "imkit:", NAMES[i].arg),
                             IMK_ETOOBIG);
            assert_int_equal(strlen(out), outlen - 1);
            assert_memory_equal(out, want, outlen - 1);
            free(out);
        }
        char *out = malloc(len + 1);
        assert_non_null(out);
        assert_int_equal(name_of(NAMES[i].fn, out, len + 1, "imkit:", NAMES[i].arg), (int)len);
        assert_string_equal(out, want);
        free(out);
        /* outlen 0: nothing may be written at all. */
        char guard = 'g';
        assert_int_equal(name_of(NAMES[i].fn, &guard, 0, "imkit:", NAMES[i].arg), IMK_ETOOBIG);
        assert_int_equal(guard, 'g');
    }
}

/* The largest id and prefix the rest of the code allows fit in IMK_KEY_MAX. */
static void test_names_fit_key_max(void **state)
{
    (void)state;
    char prefix[65], id[IMK_ID_MAX + 1], out[IMK_KEY_MAX];
    memset(prefix, 'p', 64);
    prefix[64] = '\0';
    memset(id, 'i', IMK_ID_MAX);
    id[IMK_ID_MAX] = '\0';
    char hash[65];
    memset(hash, 'f', 64);
    hash[64] = '\0';

    for (size_t i = 0; i < sizeof(NAMES) / sizeof(NAMES[0]); i++) {
        const char *arg = NAMES[i].fn == JOBS ? "255" : NAMES[i].fn == TOKEN ? hash : id;
        assert_true(name_of(NAMES[i].fn, out, sizeof(out), prefix, arg) > 0);
    }
}

/* ---- partitions ------------------------------------------------------------------------- */

/* The hash tag: only len bytes of the id, the braces around them, IMK_ETOOBIG when the
 * buffer lacks room for the NUL. */
static void test_key_tag(void **state)
{
    (void)state;
    char out[IMK_KEY_MAX];
    assert_int_equal(imk_key_tag(out, sizeof(out), "room-1xyz", 6), 8);
    assert_string_equal(out, "{room-1}");
    assert_int_equal(imk_key_tag(out, sizeof(out), "a@b.c:d", 7), 9);
    assert_string_equal(out, "{a@b.c:d}");
}

static void test_key_tag_short_buffer(void **state)
{
    (void)state;
    char out[9];
    assert_int_equal(imk_key_tag(out, 8, "room-1", 6), IMK_ETOOBIG);
    assert_int_equal(imk_key_tag(out, 9, "room-1", 6), 8);
    assert_string_equal(out, "{room-1}");
    assert_int_equal(imk_key_tag(out, sizeof(out), "", 0), 2);
    assert_string_equal(out, "{}");
}

static void test_partition_fnv1a(void **state)
{
    (void)state;
    /* 32-bit FNV-1a test vectors: "" 0x811c9dc5, "a" 0xe40c292c, "foobar" 0xbf9cf968. */
    assert_int_equal(imk_partition("", 0, 1000), (int)(UINT32_C(0x811c9dc5) % 1000));
    assert_int_equal(imk_partition("a", 1, 1000), (int)(UINT32_C(0xe40c292c) % 1000));
    assert_int_equal(imk_partition("foobar", 6, 97), (int)(UINT32_C(0xbf9cf968) % 97));
    assert_int_equal(imk_partition("foobar", 6, 256), 0x68);
    /* Only len bytes count. */
    assert_int_equal(imk_partition("foobarXYZ", 6, 97), imk_partition("foobar", 6, 97));
    /* Bytes above 0x7f are taken unsigned. */
    assert_int_equal(imk_partition("\xff", 1, 1 << 30),
                     (int)(((UINT32_C(0x811c9dc5) ^ 0xff) * UINT32_C(16777619)) % (1u << 30)));
}

static void test_partition_range(void **state)
{
    (void)state;
    int counts[256];
    char id[32];

    for (int parts = 1; parts <= 256; parts++) {
        memset(counts, 0, sizeof(counts));
        for (int i = 0; i < 2000; i++) {
            int n = snprintf(id, sizeof(id), "room-%d", i);
            int p = imk_partition(id, (size_t)n, parts);
            assert_true(p >= 0 && p < parts);
            assert_int_equal(p, imk_partition(id, (size_t)n, parts)); /* stable */
            counts[p]++;
        }
        if (parts <= 8) { /* 2000 ids spread over every stream */
            for (int p = 0; p < parts; p++) {
                assert_true(counts[p] > 2000 / parts / 2);
            }
        }
    }
    assert_int_equal(imk_partition("x", 1, 1), 0);
    assert_int_equal(imk_partition("x", 1, 0), 0);
    assert_int_equal(imk_partition("x", 1, -4), 0);
    assert_true(imk_partition("abc", 3, INT32_MAX) >= 0);
}

/* ---- ids -------------------------------------------------------------------------------- */

static const char ID_ALPHABET[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@:-";

static void test_id_valid(void **state)
{
    (void)state;
    char s[IMK_ID_MAX + 2];

    /* Every byte alone: accepted exactly when it is in the alphabet. */
    for (int c = 0; c < 256; c++) {
        char b = (char)c;
        bool in = c != 0 && strchr(ID_ALPHABET, c) != NULL;
        assert_int_equal(imk_id_valid(&b, 1), in);
    }
    assert_true(imk_id_valid(ID_ALPHABET, strlen(ID_ALPHABET) > 64 ? 64 : strlen(ID_ALPHABET)));
    assert_true(imk_id_valid(ID_ALPHABET + 3, 64));

    /* Lengths: 1..64 bytes. */
    memset(s, 'a', sizeof(s));
    assert_false(imk_id_valid(s, 0));
    assert_false(imk_id_valid("", 0));
    assert_false(imk_id_valid(NULL, 0));
    assert_false(imk_id_valid(NULL, 5));
    assert_true(imk_id_valid(s, 1));
    assert_true(imk_id_valid(s, 63));
    assert_true(imk_id_valid(s, IMK_ID_MAX));
    assert_false(imk_id_valid(s, IMK_ID_MAX + 1));
    assert_false(imk_id_valid(s, SIZE_MAX));

    /* Only len bytes are read: a bad byte after them does not matter. */
    char *exact = malloc(5);
    assert_non_null(exact);
    memcpy(exact, "alice", 5);
    assert_true(imk_id_valid(exact, 5));
    free(exact);
    assert_true(imk_id_valid("bob carol", 3));

    static const char *const bad[] = {"a b", " a",   "a ",   "a\tb", "a\nb", "é",   "caf\xc3\xa9",
                                      "a/b", "a\\b", "a{b}", "a,b",  "a\"b", "a'b", "a#b",
                                      "a*b", "a+b",  "a=b",  "a%b",  "\x7f", "\xff"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(imk_id_valid(bad[i], strlen(bad[i])));
    }
    assert_false(imk_id_valid("a\0b", 3));
    assert_true(imk_id_valid("user@example.com", 16));
    assert_true(imk_id_valid("urn:x:y-z_1.2", 13));
}

static int cmp_ids(const void *a, const void *b)
{
    return memcmp(a, b, 17);
}

static void test_id_random(void **state)
{
    (void)state;
    enum { N = 2000 };
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char(*ids)[17] = malloc(sizeof(*ids) * N);
    int seen[64] = {0};

    assert_non_null(ids);
    for (int i = 0; i < N; i++) {
        memset(ids[i], 0x55, 17);
        assert_int_equal(imk_id_random(ids[i]), 0);
        assert_int_equal(ids[i][16], '\0');
        assert_int_equal(strlen(ids[i]), 16);
        for (int k = 0; k < 16; k++) {
            const char *at = strchr(b64url, ids[i][k]);
            assert_non_null(at);
            seen[at - b64url]++;
        }
        assert_true(imk_id_valid(ids[i], 16));
    }
    /* Different every call (96 random bits: a collision here means a broken generator). */
    qsort(ids, N, sizeof(*ids), cmp_ids);
    for (int i = 1; i < N; i++) {
        assert_true(memcmp(ids[i - 1], ids[i], 17) != 0);
    }
    /* 32 000 characters: each of the 64 appears, roughly 500 times each. */
    for (int c = 0; c < 64; c++) {
        assert_true(seen[c] > 250 && seen[c] < 750);
    }
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_names_short_buffer),
        cmocka_unit_test(test_names_fit_key_max),
        cmocka_unit_test(test_key_tag),
        cmocka_unit_test(test_key_tag_short_buffer),
        cmocka_unit_test(test_partition_fnv1a),
        cmocka_unit_test(test_partition_range),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_id_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
