/* HS256 JWT key sets, verification and signing (PROTOCOL.md, `auth`). The gateway's auth
 * code calls imk_jwt_verify on every `auth` request; the dev-only demo token route and the
 * tests call imk_jwt_sign. OpenSSL computes the HMACs, jansson reads and writes the JSON;
 * neither leaks through jwt.h. */
#include "imkit/jwt.h"

#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "imkit/b64url.h"

#define SIG_LEN 32     /* HMAC-SHA256 */
#define SIG_B64_LEN 43 /* its base64url encoding */
#define MAX_KID 64
#define NO_DEFAULT SIZE_MAX
/* The largest decoded segment of a token that passed the length cap. */
#define MAX_DECODED (IMK_JWT_MAX_TOKEN / 4 * 3)

struct key {
    const char *kid; /* NULL for the default key; points into imk_jwt_keys.buf */
    size_t kid_len;
    const unsigned char *secret; /* points into imk_jwt_keys.buf */
    size_t secret_len;
    EVP_MAC_CTX *hmac; /* HMAC-SHA256 keyed with secret: each MAC starts from a copy */
};

struct imk_jwt_keys {
    char *buf; /* a copy of the spec, which every key points into; wiped on destroy */
    size_t buf_len;
    size_t default_index; /* NO_DEFAULT when no entry lacks a kid */
    size_t count;
    struct key keys[];
};

static bool is_kid_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

static bool is_sub_char(unsigned char c)
{
    return is_kid_char(c) || c == '@' || c == ':';
}

static bool valid_sub(const char *s, size_t len)
{
    if (len == 0 || len > IMK_JWT_MAX_SUB) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_sub_char((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

static bool valid_kid(const char *s, size_t len)
{
    if (len == 0 || len > MAX_KID) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_kid_char((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

/* Parses one entry [p, e) of the spec into *k. Returns false when it is malformed. */
static bool parse_entry(const char *p, const char *e, struct key *k)
{
    const char *colon = memchr(p, ':', (size_t)(e - p));

    memset(k, 0, sizeof(*k));
    if (colon == NULL) {
        k->secret = (const unsigned char *)p;
        k->secret_len = (size_t)(e - p);
    } else {
        if (colon > p) {
            k->kid = p;
            k->kid_len = (size_t)(colon - p);
            if (!valid_kid(k->kid, k->kid_len)) {
                return false;
            }
        }
        k->secret = (const unsigned char *)colon + 1;
        k->secret_len = (size_t)(e - colon - 1);
    }
    return k->secret_len > 0;
}

/* Keys k->hmac with k->secret: the algorithm is looked up and the key hashed once, not per
 * token. Returns false when OpenSSL fails. */
static bool key_hmac_init(struct key *k)
{
    static char digest[] = "SHA256"; /* OSSL_PARAM takes it as char * */
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    k->hmac = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context holds its own reference */
    return k->hmac != NULL && EVP_MAC_init(k->hmac, k->secret, k->secret_len, params) == 1;
}

/* HMAC-SHA256 of data under k into mac. Returns 0 or IMK_JWT_ENOMEM. */
static int key_hmac(const struct key *k, const void *data, size_t len, unsigned char mac[SIG_LEN])
{
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(k->hmac);
    size_t mac_len = 0;
    int ok = ctx != NULL && EVP_MAC_update(ctx, data, len) == 1 &&
             EVP_MAC_final(ctx, mac, &mac_len, SIG_LEN) == 1 && mac_len == SIG_LEN;
    EVP_MAC_CTX_free(ctx);
    return ok ? 0 : IMK_JWT_ENOMEM;
}

imk_jwt_keys_t *imk_jwt_keys_create(const char *spec)
{
    size_t len = spec != NULL ? strlen(spec) : 0;
    size_t n = 0;
    imk_jwt_keys_t *keys;
    const char *p;
    const char *end;

    if (len > 0) {
        n = 1;
        for (size_t i = 0; i < len; i++) {
            n += spec[i] == ',';
        }
    }
    keys = calloc(1, sizeof(*keys) + n * sizeof(keys->keys[0]));
    if (keys == NULL) {
        return NULL;
    }
    keys->default_index = NO_DEFAULT;
    if (n == 0) {
        return keys;
    }
    keys->buf = malloc(len + 1);
    if (keys->buf == NULL) {
        goto fail;
    }
    memcpy(keys->buf, spec, len + 1);
    keys->buf_len = len;

    p = keys->buf;
    end = keys->buf + len;
    for (size_t i = 0; i < n; i++) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma != NULL ? comma : end;
        struct key *k = &keys->keys[i];

        if (!parse_entry(p, e, k)) {
            goto fail;
        }
        keys->count = i + 1; /* from here on, destroy frees k */
        if (!key_hmac_init(k)) {
            goto fail;
        }
        if (k->kid == NULL) {
            if (keys->default_index != NO_DEFAULT) {
                goto fail;
            }
            keys->default_index = i;
        } else {
            for (size_t j = 0; j < i; j++) {
                const struct key *o = &keys->keys[j];
                if (o->kid != NULL && o->kid_len == k->kid_len &&
                    memcmp(o->kid, k->kid, k->kid_len) == 0) {
                    goto fail;
                }
            }
        }
        p = e + 1;
    }
    return keys;

fail:
    imk_jwt_keys_destroy(keys);
    return NULL;
}

void imk_jwt_keys_destroy(imk_jwt_keys_t *keys)
{
    if (keys == NULL) {
        return;
    }
    if (keys->buf != NULL) {
        OPENSSL_cleanse(keys->buf, keys->buf_len);
        free(keys->buf);
    }
    for (size_t i = 0; i < keys->count; i++) {
        EVP_MAC_CTX_free(keys->keys[i].hmac);
    }
    OPENSSL_cleanse(keys, sizeof(*keys) + keys->count * sizeof(keys->keys[0]));
    free(keys);
}

/* Decodes a base64url segment and parses it as a JSON object. NULL when either fails. */
static json_t *decode_object(const char *seg, size_t seg_len, unsigned char *scratch)
{
    size_t n;
    json_t *v;

    if (imk_b64url_decode(seg, seg_len, scratch, MAX_DECODED, &n) != 0) {
        return NULL;
    }
    /* Duplicate members are refused: two parsers must never read different claims. */
    v = json_loadb((const char *)scratch, n, JSON_REJECT_DUPLICATES, NULL);
    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

static bool is_jwt_typ(const json_t *typ)
{
    const char *s = json_string_value(typ);

    return s != NULL && json_string_length(typ) == 3 && (s[0] == 'J' || s[0] == 'j') &&
           (s[1] == 'W' || s[1] == 'w') && (s[2] == 'T' || s[2] == 't');
}

/* Checks the header and picks the keys to try: *only is the kid's key, or NULL for all.
 * Returns 0 or a negative enum imk_jwt_err. */
static int check_header(const json_t *hdr, const imk_jwt_keys_t *keys, const struct key **only)
{
    const json_t *alg = json_object_get(hdr, "alg");
    const json_t *typ = json_object_get(hdr, "typ");
    const json_t *kid = json_object_get(hdr, "kid");
    const char *kid_s;
    size_t kid_len;

    *only = NULL;
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0 ||
        json_string_length(alg) != 5) {
        return IMK_JWT_EALG;
    }
    if (typ != NULL && !is_jwt_typ(typ)) {
        return IMK_JWT_EALG;
    }
    /* We understand no extension, so RFC 7515 section 4.1.11 says refuse any crit. */
    if (json_object_get(hdr, "crit") != NULL) {
        return IMK_JWT_EALG;
    }
    if (kid == NULL) {
        return keys->count > 0 ? 0 : IMK_JWT_EKID;
    }
    if (!json_is_string(kid)) {
        return IMK_JWT_EMALFORMED;
    }
    kid_s = json_string_value(kid);
    kid_len = json_string_length(kid);
    for (size_t i = 0; i < keys->count; i++) {
        const struct key *k = &keys->keys[i];
        if (k->kid != NULL && k->kid_len == kid_len && memcmp(k->kid, kid_s, kid_len) == 0) {
            *only = k;
            return 0;
        }
    }
    return IMK_JWT_EKID;
}

/* Returns 0 when sig is the HMAC of data under *only, or under any key when only is NULL. */
static int check_signature(const imk_jwt_keys_t *keys, const struct key *only, const char *data,
                           size_t data_len, const unsigned char *sig)
{
    size_t first = 0;
    size_t last = keys->count;
    int match = 0;

    if (only != NULL) {
        first = (size_t)(only - keys->keys);
        last = first + 1;
    }
    /* Every candidate is tried, even after a match, so timing does not tell which matched. */
    for (size_t i = first; i < last; i++) {
        const struct key *k = &keys->keys[i];
        unsigned char mac[SIG_LEN];

        if (key_hmac(k, data, data_len, mac) != 0) {
            return IMK_JWT_ENOMEM;
        }
        match |= CRYPTO_memcmp(mac, sig, SIG_LEN) == 0;
    }
    return match ? 0 : IMK_JWT_ESIG;
}

/* Reads an optional integer claim. Returns 0 (present or not), or IMK_JWT_EMALFORMED. */
static int get_time(const json_t *payload, const char *name, bool *present, int64_t *out)
{
    const json_t *v = json_object_get(payload, name);

    *present = v != NULL;
    *out = 0;
    if (v == NULL) {
        return 0;
    }
    if (!json_is_integer(v)) {
        return IMK_JWT_EMALFORMED;
    }
    *out = (int64_t)json_integer_value(v);
    return 0;
}

/* True when the optional claim v (NULL when absent) is absent, null, or a string of at most
 * max bytes. */
static bool valid_opt_string(const json_t *v, size_t max)
{
    return v == NULL || json_is_null(v) || (json_is_string(v) && json_string_length(v) <= max);
}

/* Copies the optional string claim v, already checked by valid_opt_string, into *out (NULL
 * when absent or null). Returns 0 or IMK_JWT_ENOMEM. */
static int dup_opt_string(const json_t *v, char **out)
{
    size_t len;

    *out = NULL;
    if (!json_is_string(v)) {
        return 0;
    }
    len = json_string_length(v);
    *out = malloc(len + 1);
    if (*out == NULL) {
        return IMK_JWT_ENOMEM;
    }
    memcpy(*out, json_string_value(v), len + 1);
    return 0;
}

/* True when t lies more than IMK_JWT_MAX_SKEW seconds after now, without overflow. */
static bool too_far_ahead(int64_t t, int64_t now)
{
    return t > now && (uint64_t)t - (uint64_t)now > IMK_JWT_MAX_SKEW;
}

static int check_claims(const json_t *payload, int64_t now_s, imk_jwt_claims_t *claims)
{
    const json_t *sub = json_object_get(payload, "sub");
    const json_t *name = json_object_get(payload, "name");
    const json_t *avatar = json_object_get(payload, "avatar");
    bool has_exp, has_nbf, has_iat;
    int64_t exp, nbf, iat;
    int rc;

    if (get_time(payload, "exp", &has_exp, &exp) != 0 ||
        get_time(payload, "nbf", &has_nbf, &nbf) != 0 ||
        get_time(payload, "iat", &has_iat, &iat) != 0) {
        return IMK_JWT_EMALFORMED;
    }
    if (!has_exp || (has_iat && iat < 0)) {
        return IMK_JWT_ECLAIMS;
    }
    if (!json_is_string(sub) || !valid_sub(json_string_value(sub), json_string_length(sub))) {
        return IMK_JWT_ECLAIMS;
    }
    if (!valid_opt_string(name, IMK_JWT_MAX_NAME) ||
        !valid_opt_string(avatar, IMK_JWT_MAX_AVATAR)) {
        return IMK_JWT_ECLAIMS;
    }
    if (exp <= now_s) {
        return IMK_JWT_EEXPIRED;
    }
    if ((has_nbf && too_far_ahead(nbf, now_s)) || (has_iat && too_far_ahead(iat, now_s))) {
        return IMK_JWT_ENOTYET;
    }

    memcpy(claims->sub, json_string_value(sub), json_string_length(sub) + 1);
    claims->exp = exp;
    claims->iat = has_iat ? iat : -1;
    /* Every check is done before the first copy, so a failure here can only be ENOMEM. */
    rc = dup_opt_string(name, &claims->name);
    if (rc == 0) {
        rc = dup_opt_string(avatar, &claims->avatar);
    }
    return rc;
}

int imk_jwt_verify(const imk_jwt_keys_t *keys, const char *token, size_t len, int64_t now_s,
                   imk_jwt_claims_t *claims)
{
    unsigned char scratch[MAX_DECODED];
    unsigned char sig[SIG_LEN];
    const char *dot1;
    const char *dot2;
    const struct key *only;
    json_t *hdr = NULL;
    json_t *payload = NULL;
    size_t n;
    int rc;

    if (claims == NULL) {
        return IMK_JWT_EINVAL;
    }
    memset(claims, 0, sizeof(*claims));
    if (keys == NULL || token == NULL) {
        return IMK_JWT_EINVAL;
    }
    if (len > IMK_JWT_MAX_TOKEN) {
        return IMK_JWT_EMALFORMED;
    }
    dot1 = memchr(token, '.', len);
    dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
        return IMK_JWT_EMALFORMED;
    }

    hdr = decode_object(token, (size_t)(dot1 - token), scratch);
    if (hdr == NULL) {
        rc = IMK_JWT_EMALFORMED;
        goto out;
    }
    rc = check_header(hdr, keys, &only);
    if (rc != 0) {
        goto out;
    }

    if (imk_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), scratch, sizeof(scratch),
                          &n) != 0) {
        rc = IMK_JWT_EMALFORMED;
        goto out;
    }
    if (n != SIG_LEN) {
        rc = IMK_JWT_ESIG;
        goto out;
    }
    memcpy(sig, scratch, SIG_LEN);
    rc = check_signature(keys, only, token, (size_t)(dot2 - token), sig);
    if (rc != 0) {
        goto out;
    }

    /* Only a signed payload is parsed. */
    payload = decode_object(dot1 + 1, (size_t)(dot2 - dot1 - 1), scratch);
    if (payload == NULL) {
        rc = IMK_JWT_EMALFORMED;
        goto out;
    }
    rc = check_claims(payload, now_s, claims);

out:
    json_decref(payload);
    json_decref(hdr);
    if (rc != 0) {
        imk_jwt_claims_deinit(claims);
        memset(claims, 0, sizeof(*claims));
    }
    return rc;
}

void imk_jwt_claims_deinit(imk_jwt_claims_t *claims)
{
    if (claims == NULL) {
        return;
    }
    free(claims->name);
    free(claims->avatar);
    claims->name = NULL;
    claims->avatar = NULL;
}

/* Appends the base64url encoding of s to out at *pos, then sep unless it is '\0'. */
static void append_b64(char *out, size_t *pos, const void *s, size_t s_len, size_t out_size,
                       char sep)
{
    size_t n = 0;

    /* The caller sized out exactly, so this cannot fail. */
    (void)imk_b64url_encode(s, s_len, out + *pos, out_size - *pos, &n);
    *pos += n;
    if (sep != '\0') {
        out[(*pos)++] = sep;
    }
}

char *imk_jwt_sign(const imk_jwt_keys_t *keys, const char *sub, const char *name, int64_t iat,
                   int64_t exp)
{
    const struct key *k;
    json_t *hdr = NULL;
    json_t *payload = NULL;
    char *h = NULL;
    char *p = NULL;
    char *out = NULL;
    size_t h_len, p_len, size, pos = 0;
    unsigned char mac[SIG_LEN];
    int err = 0;

    if (keys == NULL || keys->count == 0 || sub == NULL || !valid_sub(sub, strlen(sub)) ||
        (name != NULL && strlen(name) > IMK_JWT_MAX_NAME)) {
        return NULL;
    }
    k = &keys->keys[keys->default_index != NO_DEFAULT ? keys->default_index : 0];

    hdr = json_object();
    payload = json_object();
    if (hdr == NULL || payload == NULL) {
        goto out;
    }
    /* json_object_set_new takes the value even when it fails, and fails on a NULL value
     * (json_string refuses invalid UTF-8), so one flag catches every error. */
    err |= json_object_set_new(hdr, "alg", json_string("HS256"));
    err |= json_object_set_new(hdr, "typ", json_string("JWT"));
    if (k->kid != NULL) {
        err |= json_object_set_new(hdr, "kid", json_stringn(k->kid, k->kid_len));
    }
    err |= json_object_set_new(payload, "sub", json_string(sub));
    if (name != NULL) {
        err |= json_object_set_new(payload, "name", json_string(name));
    }
    if (iat >= 0) {
        err |= json_object_set_new(payload, "iat", json_integer((json_int_t)iat));
    }
    err |= json_object_set_new(payload, "exp", json_integer((json_int_t)exp));
    if (err != 0) {
        goto out;
    }
    h = json_dumps(hdr, JSON_COMPACT);
    p = json_dumps(payload, JSON_COMPACT);
    if (h == NULL || p == NULL) {
        goto out;
    }
    h_len = strlen(h);
    p_len = strlen(p);
    size = imk_b64url_encoded_len(h_len) + 1 + imk_b64url_encoded_len(p_len) + 1 + SIG_B64_LEN + 1;
    out = malloc(size);
    if (out == NULL) {
        goto out;
    }
    append_b64(out, &pos, h, h_len, size, '.');
    append_b64(out, &pos, p, p_len, size, '\0');
    if (key_hmac(k, out, pos, mac) != 0) {
        free(out);
        out = NULL;
        goto out;
    }
    out[pos++] = '.';
    append_b64(out, &pos, mac, SIG_LEN, size, '\0');

out:
    free(p);
    free(h);
    json_decref(payload);
    json_decref(hdr);
    return out;
}

const char *imk_jwt_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case IMK_JWT_EMALFORMED:
        return "malformed token";
    case IMK_JWT_EALG:
        return "unsupported alg or header (only HS256 is accepted)";
    case IMK_JWT_EKID:
        return "no configured key for the token's kid";
    case IMK_JWT_ESIG:
        return "bad signature";
    case IMK_JWT_EEXPIRED:
        return "token expired";
    case IMK_JWT_ENOTYET:
        return "token not valid yet (nbf or iat in the future)";
    case IMK_JWT_ECLAIMS:
        return "missing or invalid claim (sub, exp, iat, name or avatar)";
    case IMK_JWT_ENOMEM:
        return "out of memory";
    case IMK_JWT_EINVAL:
        return "invalid argument";
    default:
        return "unknown jwt error";
    }
}
