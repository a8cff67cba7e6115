/* Unit tests of common/src/jwt.c and common/src/b64url.c, through their public headers.
 * Tokens are built here with OpenSSL's HMAC, independently of imk_jwt_sign, so verify is
 * checked against an outside reference (and against the jwt.io example token). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "imkit/b64url.h"
#include "imkit/jwt.h"

#define NOW INT64_C(1700000000)

/* ---- helpers ---------------------------------------------------------------------------- */

__attribute__((format(printf, 1, 2))) static const char *fmt(const char *f, ...)
{
    static char bufs[4][16384];
    static int next;
    char *b = bufs[next++ % 4];
    va_list ap;

    va_start(ap, f);
    vsnprintf(b, sizeof(bufs[0]), f, ap);
    va_end(ap);
    return b;
}

static char *b64(const void *data, size_t len)
{
    size_t n = imk_b64url_encoded_len(len);
    char *s = malloc(n + 1);

    assert_non_null(s);
    assert_int_equal(imk_b64url_encode(data, len, s, n + 1, NULL), 0);
    return s;
}

/* Returns "<input>.<base64url(HMAC(md, secret, input))>", malloc'd. */
static char *sign_input(const char *input, const EVP_MD *md, const char *secret)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char *sig;
    char *tok;
    size_t n;

    assert_non_null(HMAC(md, secret, (int)strlen(secret), (const unsigned char *)input,
                         strlen(input), mac, &mac_len));
    sig = b64(mac, mac_len);
    n = strlen(input) + 1 + strlen(sig) + 1;
    tok = malloc(n);
    assert_non_null(tok);
    snprintf(tok, n, "%s.%s", input, sig);
    free(sig);
    return tok;
}

/* Signs raw segments (already base64url, or deliberately not). */
static char *make_raw(const char *h_seg, const char *p_seg, const char *secret)
{
    size_t n = strlen(h_seg) + 1 + strlen(p_seg) + 1;
    char *input = malloc(n);
    char *tok;

    assert_non_null(input);
    snprintf(input, n, "%s.%s", h_seg, p_seg);
    tok = sign_input(input, EVP_sha256(), secret);
    free(input);
    return tok;
}

static char *make_md(const char *hdr, const char *payload, const EVP_MD *md, const char *secret)
{
    char *h = b64(hdr, strlen(hdr));
    char *p = b64(payload, strlen(payload));
    size_t n = strlen(h) + 1 + strlen(p) + 1;
    char *input = malloc(n);
    char *tok;

    assert_non_null(input);
    snprintf(input, n, "%s.%s", h, p);
    tok = sign_input(input, md, secret);
    free(input);
    free(p);
    free(h);
    return tok;
}

static char *make(const char *hdr, const char *payload, const char *secret)
{
    return make_md(hdr, payload, EVP_sha256(), secret);
}

static const char *const HS256 = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* A payload for sub alice that expires in an hour, with extra members appended. */
static const char *alice(const char *extra)
{
    return fmt("{\"sub\":\"alice\",\"exp\":%lld%s}", (long long)(NOW + 3600), extra);
}

/* Verifies tok at NOW with a key set built from spec; returns the code. */
static int check_tok(const char *spec, const char *tok)
{
    imk_jwt_keys_t *keys = imk_jwt_keys_create(spec);
    imk_jwt_claims_t c;
    int rc;

    assert_non_null(keys);
    rc = imk_jwt_verify(keys, tok, strlen(tok), NOW, &c);
    if (rc == 0) {
        imk_jwt_claims_deinit(&c);
    } else {
        assert_null(c.name);
        assert_null(c.avatar);
    }
    imk_jwt_keys_destroy(keys);
    return rc;
}

/* Builds a token from hdr and payload signed with secret, verifies it with spec. */
static int check(const char *spec, const char *hdr, const char *payload, const char *secret)
{
    char *tok = make(hdr, payload, secret);
    int rc = check_tok(spec, tok);

    free(tok);
    return rc;
}

/* ---- jwt -------------------------------------------------------------------------------- */

static void test_good_token(void **state)
{
    imk_jwt_keys_t *keys = imk_jwt_keys_create("s3cret");
    char *tok = make(HS256,
                     fmt("{\"sub\":\"alice\",\"exp\":%lld,\"iat\":%lld,\"aud\":\"x\"}",
                         (long long)(NOW + 3600), (long long)NOW),
                     "s3cret");
    imk_jwt_claims_t c;

    (void)state;
    assert_int_equal(imk_jwt_verify(keys, tok, strlen(tok), NOW, &c), 0);
    assert_string_equal(c.sub, "alice");
    assert_int_equal(c.exp, NOW + 3600);
    assert_int_equal(c.iat, NOW);
    assert_null(c.name);
    assert_null(c.avatar);
    imk_jwt_claims_deinit(&c);
    imk_jwt_claims_deinit(&c); /* twice is harmless */
    imk_jwt_claims_deinit(NULL);

    /* len is honoured: the token need not be NUL-terminated. */
    {
        size_t n = strlen(tok);
        char *buf = malloc(n + 4);
        assert_non_null(buf);
        memcpy(buf, tok, n);
        memcpy(buf + n, ".xyz", 4);
        assert_int_equal(imk_jwt_verify(keys, buf, n, NOW, &c), 0);
        imk_jwt_claims_deinit(&c);
        assert_int_equal(imk_jwt_verify(keys, buf, n + 4, NOW, &c), IMK_JWT_EMALFORMED);
        free(buf);
    }
    /* No iat: -1. A header without typ is fine. */
    assert_int_equal(check("s3cret", "{\"alg\":\"HS256\"}", alice(""), "s3cret"), 0);
    free(tok);
    tok = make("{\"alg\":\"HS256\"}", alice(""), "s3cret");
    assert_int_equal(imk_jwt_verify(keys, tok, strlen(tok), NOW, &c), 0);
    assert_int_equal(c.iat, -1);
    imk_jwt_claims_deinit(&c);
    free(tok);
    imk_jwt_keys_destroy(keys);
}

/* The example token of jwt.io, signed by another implementation: its signature is right
 * (so we get past ESIG) and it has no exp (so it is still refused). */
static void test_interop_jwt_io(void **state)
{
    static const char tok[] =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    (void)state;
    assert_int_equal(check_tok("your-256-bit-secret", tok), IMK_JWT_ECLAIMS);
    assert_int_equal(check_tok("your-256-bit-secreT", tok), IMK_JWT_ESIG);
}

static void test_expired(void **state)
{
    (void)state;
    /* exp == now is expired: no leeway. */
    assert_int_equal(check("k", HS256, fmt("{\"sub\":\"a\",\"exp\":%lld}", (long long)NOW), "k"),
                     IMK_JWT_EEXPIRED);
    assert_int_equal(
        check("k", HS256, fmt("{\"sub\":\"a\",\"exp\":%lld}", (long long)(NOW - 1)), "k"),
        IMK_JWT_EEXPIRED);
    assert_int_equal(check("k", HS256, "{\"sub\":\"a\",\"exp\":-9223372036854775808}", "k"),
                     IMK_JWT_EEXPIRED);
    assert_int_equal(check("k", HS256, "{\"sub\":\"a\",\"exp\":0}", "k"), IMK_JWT_EEXPIRED);
    assert_int_equal(
        check("k", HS256, fmt("{\"sub\":\"a\",\"exp\":%lld}", (long long)(NOW + 1)), "k"), 0);
    assert_int_equal(check("k", HS256, "{\"sub\":\"a\",\"exp\":9223372036854775807}", "k"), 0);
}

static void test_exp_missing(void **state)
{
    (void)state;
    assert_int_equal(check("k", HS256, "{\"sub\":\"alice\"}", "k"), IMK_JWT_ECLAIMS);
    assert_int_equal(
        check("k", HS256, fmt("{\"sub\":\"alice\",\"nbf\":%lld}", (long long)NOW), "k"),
        IMK_JWT_ECLAIMS);
}

static void test_exp_not_integer(void **state)
{
    static const char *const bad[] = {
        "\"1800000000\"",       "1800000000.0", "1.5", "1e10", "true", "null", "[1800000000]", "{}",
        "99999999999999999999", /* over int64: jansson refuses it */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(check("k", HS256, fmt("{\"sub\":\"a\",\"exp\":%s}", bad[i]), "k"),
                         IMK_JWT_EMALFORMED);
        assert_int_equal(check("k", HS256, alice(fmt(",\"nbf\":%s", bad[i])), "k"),
                         IMK_JWT_EMALFORMED);
        assert_int_equal(check("k", HS256, alice(fmt(",\"iat\":%s", bad[i])), "k"),
                         IMK_JWT_EMALFORMED);
    }
}

static void test_bad_signature(void **state)
{
    char *tok = make(HS256, alice(""), "right");
    size_t n = strlen(tok);
    char *dot2 = strrchr(tok, '.');
    char *cut;

    (void)state;
    assert_int_equal(check_tok("right", tok), 0);
    assert_int_equal(check_tok("wrong", tok), IMK_JWT_ESIG);
    assert_int_equal(check_tok("righ", tok), IMK_JWT_ESIG);
    assert_int_equal(check_tok("right ", tok), IMK_JWT_ESIG);

    /* Every substitution of every byte is refused: the last signature character included,
     * whose two unused bits would be a second encoding of the same MAC in a lax decoder. */
    for (size_t i = 0; i < n; i++) {
        static const char subs[] = "AQgwBCDhijz09-_.=+/ ";
        char orig = tok[i];
        for (const char *s = subs; *s != '\0'; s++) {
            if (*s == orig) {
                continue;
            }
            tok[i] = *s;
            assert_int_not_equal(check_tok("right", tok), 0);
            tok[i] = orig;
        }
    }
    /* The last character of a 43-character signature holds 4 bits; changing a spare bit
     * is malformed, not a valid alias. */
    {
        char orig = tok[n - 1];
        const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        int v = (int)(strchr(alpha, orig) - alpha);
        tok[n - 1] = alpha[v ^ 1];
        assert_int_equal(check_tok("right", tok), IMK_JWT_EMALFORMED);
        tok[n - 1] = orig;
    }

    /* Wrong lengths: empty, 31 and 33 bytes, an HS512-sized MAC. */
    cut = malloc(n + 1);
    assert_non_null(cut);
    memcpy(cut, tok, (size_t)(dot2 - tok) + 1);
    cut[dot2 - tok + 1] = '\0';
    assert_int_equal(check_tok("right", cut), IMK_JWT_ESIG);
    free(cut);
    {
        unsigned char mac[64] = {0};
        char *s31 = b64(mac, 31), *s33 = b64(mac, 33), *s64 = b64(mac, 64), *s32 = b64(mac, 32);
        char *t = malloc(n + 100);
        size_t head = (size_t)(dot2 - tok) + 1;
        const char *sigs[] = {s31, s33, s64, s32};
        assert_non_null(t);
        for (size_t i = 0; i < 4; i++) {
            memcpy(t, tok, head);
            strcpy(t + head, sigs[i]);
            assert_int_equal(check_tok("right", t), IMK_JWT_ESIG);
        }
        /* The right MAC followed by one more byte, or cut by one byte. */
        {
            unsigned char right[33];
            size_t rn = 0;
            char *s;
            assert_int_equal(imk_b64url_decode(dot2 + 1, strlen(dot2 + 1), right, 32, &rn), 0);
            assert_int_equal(rn, 32);
            right[32] = 0;
            for (size_t len = 31; len <= 33; len++) {
                s = b64(right, len);
                memcpy(t, tok, head);
                strcpy(t + head, s);
                assert_int_equal(check_tok("right", t), len == 32 ? 0 : IMK_JWT_ESIG);
                free(s);
            }
        }
        free(t);
        free(s31);
        free(s33);
        free(s64);
        free(s32);
    }
    free(tok);
}

static void test_alg_none(void **state)
{
    char *h = b64("{\"alg\":\"none\"}", 14);
    char *p = b64(alice(""), strlen(alice("")));
    char *tok = malloc(strlen(h) + strlen(p) + 3);

    (void)state;
    assert_non_null(tok);
    sprintf(tok, "%s.%s.", h, p);
    assert_int_equal(check_tok("k", tok), IMK_JWT_EALG);
    free(tok);
    free(p);
    free(h);
    /* Even with a correct HS256 MAC over it. */
    assert_int_equal(check("k", "{\"alg\":\"none\",\"typ\":\"JWT\"}", alice(""), "k"),
                     IMK_JWT_EALG);
    assert_int_equal(check("k", "{\"alg\":\"None\"}", alice(""), "k"), IMK_JWT_EALG);
    assert_int_equal(check("k", "{\"alg\":\"hs256\"}", alice(""), "k"), IMK_JWT_EALG);
    assert_int_equal(check("k", "{\"alg\":\"HS256 \"}", alice(""), "k"), IMK_JWT_EALG);
    assert_int_equal(check("k", "{\"alg\":\"RS256\"}", alice(""), "k"), IMK_JWT_EALG);
    assert_int_equal(check("k", "{\"alg\":null}", alice(""), "k"), IMK_JWT_EALG);
    assert_int_equal(check("k", "{\"alg\":256}", alice(""), "k"), IMK_JWT_EALG);
    assert_int_equal(check("k", "{\"typ\":\"JWT\"}", alice(""), "k"), IMK_JWT_EALG);
    assert_int_equal(check("k", "{\"alg\":\"HS256\",\"typ\":\"JWS\"}", alice(""), "k"),
                     IMK_JWT_EALG);
    assert_int_equal(check("k", "{\"alg\":\"HS256\",\"typ\":1}", alice(""), "k"), IMK_JWT_EALG);
    assert_int_equal(check("k", "{\"alg\":\"HS256\",\"typ\":\"jwt\"}", alice(""), "k"), 0);
    assert_int_equal(check("k", "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", alice(""), "k"),
                     IMK_JWT_EALG);
}

static void test_alg_hs512(void **state)
{
    char *tok = make_md("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", alice(""), EVP_sha512(), "k");

    (void)state;
    assert_int_equal(check_tok("k", tok), IMK_JWT_EALG);
    free(tok);
    /* An HS512 MAC under an HS256 header: right alg, wrong signature length. */
    tok = make_md(HS256, alice(""), EVP_sha512(), "k");
    assert_int_equal(check_tok("k", tok), IMK_JWT_ESIG);
    free(tok);
}

static void test_kid(void **state)
{
    static const char spec[] = "k1:one,k2:two,dflt";

    (void)state;
    assert_int_equal(check(spec, "{\"alg\":\"HS256\",\"kid\":\"k1\"}", alice(""), "one"), 0);
    assert_int_equal(check(spec, "{\"alg\":\"HS256\",\"kid\":\"k2\"}", alice(""), "two"), 0);
    assert_int_equal(check(spec, "{\"alg\":\"HS256\",\"kid\":\"k3\"}", alice(""), "one"),
                     IMK_JWT_EKID);
    assert_int_equal(check(spec, "{\"alg\":\"HS256\",\"kid\":\"\"}", alice(""), "dflt"),
                     IMK_JWT_EKID);
    assert_int_equal(check(spec, "{\"alg\":\"HS256\",\"kid\":\"K1\"}", alice(""), "one"),
                     IMK_JWT_EKID);
    /* A kid selects its key only. */
    assert_int_equal(check(spec, "{\"alg\":\"HS256\",\"kid\":\"k1\"}", alice(""), "two"),
                     IMK_JWT_ESIG);
    assert_int_equal(check(spec, "{\"alg\":\"HS256\",\"kid\":\"k1\"}", alice(""), "dflt"),
                     IMK_JWT_ESIG);
    assert_int_equal(check(spec, "{\"alg\":\"HS256\",\"kid\":1}", alice(""), "one"),
                     IMK_JWT_EMALFORMED);
    assert_int_equal(check(spec, "{\"alg\":\"HS256\",\"kid\":null}", alice(""), "one"),
                     IMK_JWT_EMALFORMED);
}

static void test_no_kid_tries_every_key(void **state)
{
    static const char spec[] = "k1:one,k2:two,dflt";

    (void)state;
    assert_int_equal(check(spec, HS256, alice(""), "one"), 0);
    assert_int_equal(check(spec, HS256, alice(""), "two"), 0);
    assert_int_equal(check(spec, HS256, alice(""), "dflt"), 0);
    assert_int_equal(check(spec, HS256, alice(""), "three"), IMK_JWT_ESIG);
    /* Without a default too. */
    assert_int_equal(check("k1:one,k2:two", HS256, alice(""), "two"), 0);
    /* An empty set refuses everything. */
    assert_int_equal(check("", HS256, alice(""), "x"), IMK_JWT_EKID);
    assert_int_equal(check(NULL, "{\"alg\":\"HS256\",\"kid\":\"a\"}", alice(""), "x"),
                     IMK_JWT_EKID);
}

static void test_nbf_iat_skew(void **state)
{
    (void)state;
    assert_int_equal(check("k", HS256, alice(fmt(",\"nbf\":%lld", (long long)(NOW + 61))), "k"),
                     IMK_JWT_ENOTYET);
    assert_int_equal(check("k", HS256, alice(fmt(",\"nbf\":%lld", (long long)(NOW + 60))), "k"), 0);
    assert_int_equal(check("k", HS256, alice(fmt(",\"nbf\":%lld", (long long)(NOW - 600))), "k"),
                     0);
    assert_int_equal(check("k", HS256, alice(",\"nbf\":9223372036854775807"), "k"),
                     IMK_JWT_ENOTYET);
    assert_int_equal(check("k", HS256, alice(",\"nbf\":-9223372036854775808"), "k"), 0);
    assert_int_equal(check("k", HS256, alice(fmt(",\"iat\":%lld", (long long)(NOW + 61))), "k"),
                     IMK_JWT_ENOTYET);
    assert_int_equal(check("k", HS256, alice(fmt(",\"iat\":%lld", (long long)(NOW + 60))), "k"), 0);
    assert_int_equal(check("k", HS256, alice(",\"iat\":0"), "k"), 0);
    assert_int_equal(check("k", HS256, alice(",\"iat\":-1"), "k"), IMK_JWT_ECLAIMS);
    /* No overflow at the ends of the clock. */
    {
        imk_jwt_keys_t *keys = imk_jwt_keys_create("k");
        char *tok = make(HS256, "{\"sub\":\"a\",\"exp\":9223372036854775807,\"nbf\":0}", "k");
        imk_jwt_claims_t c;
        assert_int_equal(imk_jwt_verify(keys, tok, strlen(tok), INT64_MIN, &c), IMK_JWT_ENOTYET);
        assert_int_equal(imk_jwt_verify(keys, tok, strlen(tok), INT64_MAX - 1, &c), 0);
        imk_jwt_claims_deinit(&c);
        assert_int_equal(imk_jwt_verify(keys, tok, strlen(tok), INT64_MAX, &c), IMK_JWT_EEXPIRED);
        free(tok);
        imk_jwt_keys_destroy(keys);
    }
}

static void test_bad_base64url(void **state)
{
    char *h = b64(HS256, strlen(HS256));
    char *p = b64(alice(""), strlen(alice("")));
    char *tok;

    (void)state;
    /* Padding, which JWT forbids: "{"alg":"HS256" }" is 16 bytes, 22 characters. */
    {
        static const char h16[] = "{\"alg\":\"HS256\" }";
        char *e = b64(h16, strlen(h16));
        assert_int_equal(strlen(e), 22);
        tok = make_raw(e, p, "k");
        assert_int_equal(check_tok("k", tok), 0);
        free(tok);
        tok = make_raw(fmt("%s==", e), p, "k");
        assert_int_equal(check_tok("k", tok), IMK_JWT_EMALFORMED);
        free(tok);
        tok = make_raw(fmt("%s=", e), p, "k");
        assert_int_equal(check_tok("k", tok), IMK_JWT_EMALFORMED);
        free(tok);
        free(e);
    }
    /* Standard base64 characters, space, percent-encoding, a NUL byte. */
    tok = make_raw(fmt("%s+", h), p, "k");
    assert_int_equal(check_tok("k", tok), IMK_JWT_EMALFORMED);
    free(tok);
    {
        static const char *const junk[] = {"+", "/", " ", "%3D", "\t", "\xc3\xa9"};
        for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
            size_t half = strlen(p) / 2;
            tok = make_raw(h, fmt("%.*s%s%s", (int)half, p, junk[i], p + half), "k");
            assert_int_equal(check_tok("k", tok), IMK_JWT_EMALFORMED);
            free(tok);
        }
    }
    {
        imk_jwt_keys_t *keys = imk_jwt_keys_create("k");
        imk_jwt_claims_t c;
        tok = make(HS256, alice(""), "k");
        tok[3] = '\0';
        assert_int_equal(imk_jwt_verify(keys, tok, strlen(tok + 4) + 4, NOW, &c),
                         IMK_JWT_EMALFORMED);
        free(tok);
        imk_jwt_keys_destroy(keys);
    }
    /* Impossible lengths (4n+1), in the header and in the signed payload. */
    assert_int_equal((strlen(h) + 1) % 4, 1);
    tok = make_raw(fmt("%sA", h), p, "k");
    assert_int_equal(check_tok("k", tok), IMK_JWT_EMALFORMED);
    free(tok);
    tok = make_raw(h, "AAAAA", "k");
    assert_int_equal(check_tok("k", tok), IMK_JWT_EMALFORMED);
    free(tok);
    /* Valid base64url that is not JSON, or not an object, or has trailing bytes. */
    {
        static const char *const notobj[] = {"",  "[]",  "\"s\"", "null",
                                             "{", "{}x", "{} {}", "\xef\xbb\xbf{}"};
        for (size_t i = 0; i < sizeof(notobj) / sizeof(notobj[0]); i++) {
            char *e = b64(notobj[i], strlen(notobj[i]));
            tok = make_raw(h, e, "k");
            assert_int_equal(check_tok("k", tok), IMK_JWT_EMALFORMED);
            free(tok);
            tok = make_raw(e, p, "k");
            assert_int_equal(check_tok("k", tok), IMK_JWT_EMALFORMED);
            free(tok);
            free(e);
        }
    }
    /* Duplicate members: the second "sub" must not win or lose silently. */
    assert_int_equal(
        check("k", HS256,
              fmt("{\"sub\":\"alice\",\"sub\":\"mallory\",\"exp\":%lld}", (long long)(NOW + 10)),
              "k"),
        IMK_JWT_EMALFORMED);
    assert_int_equal(check("k", "{\"alg\":\"none\",\"alg\":\"HS256\"}", alice(""), "k"),
                     IMK_JWT_EMALFORMED);
    /* A \u0000 in a string is refused by the JSON parser. */
    assert_int_equal(check("k", HS256, alice(",\"name\":\"a\\u0000b\""), "k"), IMK_JWT_EMALFORMED);
    free(p);
    free(h);
}

static void test_segments(void **state)
{
    char *tok = make(HS256, alice(""), "k");
    size_t n = strlen(tok);
    char *longer = malloc(n + 8);
    imk_jwt_keys_t *keys = imk_jwt_keys_create("k");
    imk_jwt_claims_t c;
    static const char *const bad[] = {
        "", ".", "..", "...", "a", "a.b", "a.b.c.d", "a..b.c", "eyJhbGciOiJIUzI1NiJ9"};

    (void)state;
    assert_non_null(longer);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(check_tok("k", bad[i]), IMK_JWT_EMALFORMED);
    }
    sprintf(longer, "%s.", tok);
    assert_int_equal(check_tok("k", longer), IMK_JWT_EMALFORMED);
    sprintf(longer, "%s.AAAA", tok);
    assert_int_equal(check_tok("k", longer), IMK_JWT_EMALFORMED);
    sprintf(longer, ".%s", tok);
    assert_int_equal(check_tok("k", longer), IMK_JWT_EMALFORMED);

    /* Every proper prefix is refused, and never crashes. */
    for (size_t i = 0; i < n; i++) {
        assert_int_not_equal(imk_jwt_verify(keys, tok, i, NOW, &c), 0);
        assert_null(c.name);
    }
    assert_int_equal(imk_jwt_verify(keys, tok, n, NOW, &c), 0);
    imk_jwt_claims_deinit(&c);
    free(longer);
    free(tok);
    imk_jwt_keys_destroy(keys);
}

/* A token of exactly IMK_JWT_MAX_TOKEN bytes is read; one byte more is refused unread. */
static void test_length_cap(void **state)
{
    char *pad = malloc(IMK_JWT_MAX_TOKEN);
    int found = 0;

    (void)state;
    assert_non_null(pad);
    for (size_t len = 5000; len < 7000 && found < 2; len++) {
        char *tok;
        size_t n;
        memset(pad, 'x', len);
        pad[len] = '\0';
        tok = make(HS256, alice(fmt(",\"pad\":\"%s\"", pad)), "k");
        n = strlen(tok);
        if (n == IMK_JWT_MAX_TOKEN) {
            assert_int_equal(check_tok("k", tok), 0);
            found |= 1;
        } else if (n == IMK_JWT_MAX_TOKEN + 1 || n == IMK_JWT_MAX_TOKEN + 2) {
            assert_int_equal(check_tok("k", tok), IMK_JWT_EMALFORMED);
            found |= 2;
        }
        free(tok);
    }
    assert_int_equal(found, 3);
    free(pad);
}

static void test_sub(void **state)
{
    static const char *const bad[] = {"\"\"",      "\"al ice\"",  "\"alice/\"", "\"al\\u00e9\"",
                                      "\"a\\nb\"", "\"a+b\"",     "\"a#b\"",    "42",
                                      "null",      "[\"alice\"]", "{\"a\":1}",  "true",
                                      "\"a,b\"",   "\"<script>\""};
    char s64[65], s65[66];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            check("k", HS256, fmt("{\"sub\":%s,\"exp\":%lld}", bad[i], (long long)(NOW + 9)), "k"),
            IMK_JWT_ECLAIMS);
    }
    assert_int_equal(check("k", HS256, fmt("{\"exp\":%lld}", (long long)(NOW + 9)), "k"),
                     IMK_JWT_ECLAIMS);
    memset(s64, 'a', 64);
    s64[64] = '\0';
    memset(s65, 'a', 65);
    s65[65] = '\0';
    assert_int_equal(
        check("k", HS256, fmt("{\"sub\":\"%s\",\"exp\":%lld}", s64, (long long)(NOW + 9)), "k"), 0);
    assert_int_equal(
        check("k", HS256, fmt("{\"sub\":\"%s\",\"exp\":%lld}", s65, (long long)(NOW + 9)), "k"),
        IMK_JWT_ECLAIMS);
    {
        imk_jwt_keys_t *keys = imk_jwt_keys_create("k");
        const char *id = "Az09_.@:-x";
        char *tok =
            make(HS256, fmt("{\"sub\":\"%s\",\"exp\":%lld}", id, (long long)(NOW + 9)), "k");
        imk_jwt_claims_t c;
        assert_int_equal(imk_jwt_verify(keys, tok, strlen(tok), NOW, &c), 0);
        assert_string_equal(c.sub, id);
        imk_jwt_claims_deinit(&c);
        free(tok);
        imk_jwt_keys_destroy(keys);
    }
}

static void test_name_avatar(void **state)
{
    imk_jwt_keys_t *keys = imk_jwt_keys_create("k");
    imk_jwt_claims_t c;
    char *tok = make(HS256,
                     alice(",\"name\":\"Zo\\u00eb \\\"Z\\\"\",\"avatar\":"
                           "\"https://cdn.example/a.png\""),
                     "k");
    char big[1100];

    (void)state;
    assert_int_equal(imk_jwt_verify(keys, tok, strlen(tok), NOW, &c), 0);
    assert_string_equal(c.name, "Zo\xc3\xab \"Z\"");
    assert_string_equal(c.avatar, "https://cdn.example/a.png");
    imk_jwt_claims_deinit(&c);
    assert_null(c.name);
    assert_null(c.avatar);
    free(tok);

    /* null counts as absent. */
    tok = make(HS256, alice(",\"name\":null,\"avatar\":null"), "k");
    assert_int_equal(imk_jwt_verify(keys, tok, strlen(tok), NOW, &c), 0);
    assert_null(c.name);
    assert_null(c.avatar);
    imk_jwt_claims_deinit(&c);
    free(tok);

    assert_int_equal(check("k", HS256, alice(",\"name\":\"\""), "k"), 0);
    assert_int_equal(check("k", HS256, alice(",\"name\":42"), "k"), IMK_JWT_ECLAIMS);
    assert_int_equal(check("k", HS256, alice(",\"name\":[\"a\"]"), "k"), IMK_JWT_ECLAIMS);
    assert_int_equal(check("k", HS256, alice(",\"avatar\":{}"), "k"), IMK_JWT_ECLAIMS);
    assert_int_equal(check("k", HS256, alice(",\"avatar\":false"), "k"), IMK_JWT_ECLAIMS);
    /* Limits are bytes, so a 2-byte character counts twice. */
    memset(big, 'n', 128);
    big[128] = '\0';
    assert_int_equal(check("k", HS256, alice(fmt(",\"name\":\"%s\"", big)), "k"), 0);
    assert_int_equal(check("k", HS256, alice(fmt(",\"name\":\"%.127s\\u00e9\"", big)), "k"),
                     IMK_JWT_ECLAIMS);
    big[128] = 'n';
    big[129] = '\0';
    assert_int_equal(check("k", HS256, alice(fmt(",\"name\":\"%s\"", big)), "k"), IMK_JWT_ECLAIMS);
    memset(big, 'a', 1024);
    big[1024] = '\0';
    assert_int_equal(check("k", HS256, alice(fmt(",\"avatar\":\"%s\"", big)), "k"), 0);
    big[1024] = 'a';
    big[1025] = '\0';
    assert_int_equal(check("k", HS256, alice(fmt(",\"avatar\":\"%s\"", big)), "k"),
                     IMK_JWT_ECLAIMS);
    /* A bad claim is reported even when the token is also expired. */
    assert_int_equal(check("k", HS256, "{\"sub\":\"a\",\"exp\":1,\"name\":1}", "k"),
                     IMK_JWT_ECLAIMS);
    imk_jwt_keys_destroy(keys);
}

static void test_sign_round_trip(void **state)
{
    imk_jwt_keys_t *keys = imk_jwt_keys_create("k1:one,dflt,k2:two");
    imk_jwt_keys_t *only_kids = imk_jwt_keys_create("k1:one,k2:two");
    imk_jwt_keys_t *other = imk_jwt_keys_create("k1:uno");
    imk_jwt_keys_t *empty = imk_jwt_keys_create("");
    imk_jwt_claims_t c;
    char *tok;
    char n129[130];

    (void)state;
    assert_non_null(keys);
    assert_non_null(only_kids);
    assert_non_null(other);
    assert_non_null(empty);

    tok = imk_jwt_sign(keys, "bob@shop:42", "Bob \xe2\x9c\x93", NOW - 5, NOW + 60);
    assert_non_null(tok);
    assert_int_equal(imk_jwt_verify(keys, tok, strlen(tok), NOW, &c), 0);
    assert_string_equal(c.sub, "bob@shop:42");
    assert_string_equal(c.name, "Bob \xe2\x9c\x93");
    assert_null(c.avatar);
    assert_int_equal(c.iat, NOW - 5);
    assert_int_equal(c.exp, NOW + 60);
    imk_jwt_claims_deinit(&c);
    /* Signed with the default key, without kid: a set holding that secret alone accepts it. */
    assert_int_equal(check_tok("dflt", tok), 0);
    assert_int_equal(check_tok("one", tok), IMK_JWT_ESIG);
    free(tok);

    /* No default: the first key, whose kid goes in the header. */
    tok = imk_jwt_sign(only_kids, "bob", NULL, -1, NOW + 60);
    assert_non_null(tok);
    assert_int_equal(imk_jwt_verify(only_kids, tok, strlen(tok), NOW, &c), 0);
    assert_null(c.name);
    assert_int_equal(c.iat, -1);
    imk_jwt_claims_deinit(&c);
    assert_int_equal(imk_jwt_verify(keys, tok, strlen(tok), NOW, &c), 0);
    imk_jwt_claims_deinit(&c);
    assert_int_equal(check_tok("one", tok), IMK_JWT_EKID);
    assert_int_equal(imk_jwt_verify(other, tok, strlen(tok), NOW, &c), IMK_JWT_ESIG);
    assert_int_equal(imk_jwt_verify(only_kids, tok, strlen(tok), NOW + 60, &c), IMK_JWT_EEXPIRED);
    free(tok);

    /* Refusals. */
    memset(n129, 'n', 129);
    n129[129] = '\0';
    assert_null(imk_jwt_sign(NULL, "bob", NULL, -1, NOW));
    assert_null(imk_jwt_sign(empty, "bob", NULL, -1, NOW));
    assert_null(imk_jwt_sign(keys, NULL, NULL, -1, NOW));
    assert_null(imk_jwt_sign(keys, "", NULL, -1, NOW));
    assert_null(imk_jwt_sign(keys, "b b", NULL, -1, NOW));
    assert_null(imk_jwt_sign(keys, "bob", n129, -1, NOW));
    assert_null(imk_jwt_sign(keys, "bob", "\xff\xfe", -1, NOW));
    n129[128] = '\0';
    tok = imk_jwt_sign(keys, "bob", n129, -1, NOW + 1);
    assert_non_null(tok);
    assert_int_equal(imk_jwt_verify(keys, tok, strlen(tok), NOW, &c), 0);
    assert_string_equal(c.name, n129);
    imk_jwt_claims_deinit(&c);
    free(tok);

    imk_jwt_keys_destroy(empty);
    imk_jwt_keys_destroy(other);
    imk_jwt_keys_destroy(only_kids);
    imk_jwt_keys_destroy(keys);
}

static void test_keys_spec(void **state)
{
    static const char *const good[] = {
        "a", "k1:a", "k1:a,k2:b,c", ":a:b", "k1:x:y", "c,k1:a", "k.1-_Z:s e c r e t", "=",
    };
    static const char *const bad[] = {
        ",",          "a,",          ",a",    "a,,b",  "k1:",   ":",
        "k1:a,k1:b",  "a,b",         ":a,b",  "k 1:a", "k/1:a", " k1:a",
        "k1:a, k2:b", "k\xc3\xa9:a", "k1:a,", "k:,",   "k@1:a", "k1:a,:b,:c",
    };
    char longkid[80];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        imk_jwt_keys_t *k = imk_jwt_keys_create(good[i]);
        assert_non_null(k);
        imk_jwt_keys_destroy(k);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(imk_jwt_keys_create(bad[i]));
    }
    memset(longkid, 'k', 64);
    strcpy(longkid + 64, ":s");
    {
        imk_jwt_keys_t *k = imk_jwt_keys_create(longkid);
        assert_non_null(k);
        imk_jwt_keys_destroy(k);
    }
    memset(longkid, 'k', 65);
    strcpy(longkid + 65, ":s");
    assert_null(imk_jwt_keys_create(longkid));
    imk_jwt_keys_destroy(NULL);

    /* What the entries mean. */
    assert_int_equal(check(":a:b", HS256, alice(""), "a:b"), 0);
    assert_int_equal(check("k1:x:y", "{\"alg\":\"HS256\",\"kid\":\"k1\"}", alice(""), "x:y"), 0);
    assert_int_equal(check("k1:x:y", HS256, alice(""), "x:y"), 0);
    assert_int_equal(check("k1:x:y", HS256, alice(""), "y"), IMK_JWT_ESIG);
    assert_int_equal(check("k.1-_Z:s e c r e t", "{\"alg\":\"HS256\",\"kid\":\"k.1-_Z\"}",
                           alice(""), "s e c r e t"),
                     0);
    /* Secrets are raw bytes: base64-looking text is not decoded. */
    assert_int_equal(check("c2VjcmV0", HS256, alice(""), "c2VjcmV0"), 0);
    assert_int_equal(check("c2VjcmV0", HS256, alice(""), "secret"), IMK_JWT_ESIG);
}

static void test_einval_strerror(void **state)
{
    imk_jwt_keys_t *keys = imk_jwt_keys_create("k");
    imk_jwt_claims_t c;
    static const int codes[] = {0,
                                IMK_JWT_EMALFORMED,
                                IMK_JWT_EALG,
                                IMK_JWT_EKID,
                                IMK_JWT_ESIG,
                                IMK_JWT_EEXPIRED,
                                IMK_JWT_ENOTYET,
                                IMK_JWT_ECLAIMS,
                                IMK_JWT_ENOMEM,
                                IMK_JWT_EINVAL};
    const size_t n = sizeof(codes) / sizeof(codes[0]);

    (void)state;
    assert_int_equal(imk_jwt_verify(NULL, "a.b.c", 5, NOW, &c), IMK_JWT_EINVAL);
    assert_int_equal(imk_jwt_verify(keys, NULL, 0, NOW, &c), IMK_JWT_EINVAL);
    assert_int_equal(imk_jwt_verify(keys, "a.b.c", 5, NOW, NULL), IMK_JWT_EINVAL);
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] <= 0);
        assert_non_null(imk_jwt_strerror(codes[i]));
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(codes[i], codes[j]);
            assert_string_not_equal(imk_jwt_strerror(codes[i]), imk_jwt_strerror(codes[j]));
        }
    }
    assert_string_equal(imk_jwt_strerror(12345), "unknown jwt error");
    assert_string_equal(imk_jwt_strerror(IMK_JWT_ESIG), "bad signature");
    imk_jwt_keys_destroy(keys);
}

/* ---- b64url ----------------------------------------------------------------------------- */

static const char ALPHA[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void test_b64url_vectors(void **state)
{
    /* RFC 4648 section 10, without padding, plus the two characters that differ from base64. */
    static const struct {
        const char *plain;
        size_t len;
        const char *enc;
    } v[] = {
        {"", 0, ""},
        {"f", 1, "Zg"},
        {"fo", 2, "Zm8"},
        {"foo", 3, "Zm9v"},
        {"foob", 4, "Zm9vYg"},
        {"fooba", 5, "Zm9vYmE"},
        {"foobar", 6, "Zm9vYmFy"},
        {"\xfb\xff", 2, "-_8"},
        {"\xff\xff\xff", 3, "____"},
        {"\x00\x00\x00", 3, "AAAA"},
        {"\x00", 1, "AA"},
        {"\x03\xef\xbf", 3, "A--_"},
    };
    char out[32];
    unsigned char dec[32];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_int_equal(imk_b64url_encoded_len(v[i].len), strlen(v[i].enc));
        assert_int_equal(imk_b64url_encode(v[i].plain, v[i].len, out, sizeof(out), &n), 0);
        assert_int_equal(n, strlen(v[i].enc));
        assert_string_equal(out, v[i].enc);
        assert_int_equal(imk_b64url_decoded_len(strlen(v[i].enc)), v[i].len);
        assert_int_equal(imk_b64url_decode(v[i].enc, strlen(v[i].enc), dec, sizeof(dec), &n), 0);
        assert_int_equal(n, v[i].len);
        assert_memory_equal(dec, v[i].plain, v[i].len);
        /* Buffers one byte short. */
        if (v[i].len > 0) {
            assert_int_equal(imk_b64url_decode(v[i].enc, strlen(v[i].enc), dec, v[i].len - 1, &n),
                             IMK_B64URL_ENOSPC);
        }
        assert_int_equal(imk_b64url_encode(v[i].plain, v[i].len, out, strlen(v[i].enc), &n),
                         IMK_B64URL_ENOSPC);
    }
    assert_int_equal(imk_b64url_encode(NULL, 0, out, 1, NULL), 0);
    assert_string_equal(out, "");
    assert_int_equal(imk_b64url_encode(NULL, 0, NULL, 0, NULL), IMK_B64URL_ENOSPC);
    assert_int_equal(imk_b64url_decode(NULL, 0, NULL, 0, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(imk_b64url_encoded_len(SIZE_MAX), SIZE_MAX);
    assert_int_equal(imk_b64url_decoded_len(1), 0);
    assert_int_equal(imk_b64url_decoded_len(5), 3);
    assert_int_equal(imk_b64url_decoded_len(43), 32);
}

static void test_b64url_refusals(void **state)
{
    static const char *const bad[] = {
        "Zg==",  "Zg=", "Zm8=", "Z",   "Zm9vY",  "Zm9v=",   "Zm+v", "Zm/v",     "Zm9v\n",
        " Zm9v", "Zh",  "Zm9",  "Zm-", "Zm9vYh", "Zm9vYmF", "====", "Zm9v====",
    };
    unsigned char dec[32];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(imk_b64url_decode(bad[i], strlen(bad[i]), dec, sizeof(dec), NULL),
                         IMK_B64URL_EINVAL);
    }
    /* "Zm9" is not canonical ("Zm8" is); neither is "Zh" ("Zg"). A NUL inside the length. */
    assert_int_equal(imk_b64url_decode("Zm\0v", 4, dec, sizeof(dec), NULL), IMK_B64URL_EINVAL);
    /* Every byte value outside the alphabet, at every position of a 4-character group. */
    for (int c = 0; c < 256; c++) {
        if (c != 0 && strchr(ALPHA, c) != NULL) {
            continue;
        }
        for (size_t pos = 0; pos < 8; pos++) {
            char in[9] = "Zm9vYmFy";
            in[pos] = (char)c;
            assert_int_equal(imk_b64url_decode(in, 8, dec, sizeof(dec), NULL), IMK_B64URL_EINVAL);
        }
    }
}

/* Exhaustive over 2- and 3-character inputs: exactly one encoding per byte string is accepted,
 * and decode then encode gives the input back. */
static void test_b64url_canonical(void **state)
{
    char in[4];
    char out[8];
    unsigned char dec[4];
    size_t n, ok2 = 0, ok3 = 0;

    (void)state;
    for (int a = 0; a < 64; a++) {
        for (int b = 0; b < 64; b++) {
            in[0] = ALPHA[a];
            in[1] = ALPHA[b];
            if (imk_b64url_decode(in, 2, dec, sizeof(dec), &n) == 0) {
                ok2++;
                assert_int_equal(n, 1);
                assert_int_equal(imk_b64url_encode(dec, n, out, sizeof(out), NULL), 0);
                assert_memory_equal(out, in, 2);
            }
            for (int c = 0; c < 64; c++) {
                in[2] = ALPHA[c];
                if (imk_b64url_decode(in, 3, dec, sizeof(dec), &n) == 0) {
                    ok3++;
                    assert_int_equal(n, 2);
                    assert_int_equal(imk_b64url_encode(dec, n, out, sizeof(out), NULL), 0);
                    assert_memory_equal(out, in, 3);
                }
            }
        }
    }
    assert_int_equal(ok2, 256);
    assert_int_equal(ok3, 65536);
}

/* Encodings of 0..96 bytes, decoded whole, as every prefix, and split at every group
 * boundary into two independently decoded halves. */
static void test_b64url_splits(void **state)
{
    unsigned char data[96];
    char enc[160];
    unsigned char dec[128];
    unsigned char dec2[128];
    uint32_t x = 2463534242u;

    (void)state;
    for (size_t i = 0; i < sizeof(data); i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data[i] = (unsigned char)x;
    }
    for (size_t len = 0; len <= sizeof(data); len++) {
        size_t elen, n, n2;
        assert_int_equal(imk_b64url_encode(data, len, enc, sizeof(enc), &elen), 0);
        assert_int_equal(elen, imk_b64url_encoded_len(len));
        assert_int_not_equal(elen % 4, 1);
        assert_int_equal(imk_b64url_decode(enc, elen, dec, sizeof(dec), &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(dec, data, len);
        for (size_t s = 0; s <= elen; s++) {
            int rc = imk_b64url_decode(enc, s, dec, sizeof(dec), &n);
            if (s % 4 == 1) {
                assert_int_equal(rc, IMK_B64URL_EINVAL);
                continue;
            }
            if (rc == 0) {
                assert_int_equal(n, imk_b64url_decoded_len(s));
                assert_memory_equal(dec, data, n);
            } else {
                /* Only a cut inside a group can leave non-zero spare bits. */
                assert_int_equal(rc, IMK_B64URL_EINVAL);
                assert_int_not_equal(s % 4, 0);
            }
            if (s % 4 == 0) {
                assert_int_equal(rc, 0);
                assert_int_equal(imk_b64url_decode(enc + s, elen - s, dec2, sizeof(dec2), &n2), 0);
                assert_int_equal(n + n2, len);
                assert_memory_equal(dec2, data + n, n2);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_token),
        cmocka_unit_test(test_interop_jwt_io),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_exp_missing),
        cmocka_unit_test(test_exp_not_integer),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_hs512),
        cmocka_unit_test(test_kid),
        cmocka_unit_test(test_no_kid_tries_every_key),
        cmocka_unit_test(test_nbf_iat_skew),
        cmocka_unit_test(test_bad_base64url),
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_length_cap),
        cmocka_unit_test(test_sub),
        cmocka_unit_test(test_name_avatar),
        cmocka_unit_test(test_sign_round_trip),
        cmocka_unit_test(test_keys_spec),
        cmocka_unit_test(test_einval_strerror),
        cmocka_unit_test(test_b64url_vectors),
        cmocka_unit_test(test_b64url_refusals),
        cmocka_unit_test(test_b64url_canonical),
        cmocka_unit_test(test_b64url_splits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
