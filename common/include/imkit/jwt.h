/* HS256 JSON Web Tokens (RFC 7519) as the `auth` op accepts them (PROTOCOL.md, section 2):
 * a key set built from `auth.jwt_secrets`, verification of a token into its claims, and
 * signing for the dev-only demo token route and tests. Called by the gateway's auth code.
 * Pure functions of their arguments: no I/O, no logging, no global state. */
#ifndef IMKIT_JWT_H
#define IMKIT_JWT_H

#include <stddef.h>
#include <stdint.h>

/* Negative error codes of imk_jwt_verify, named by imk_jwt_strerror. They sit in -6xx, a
 * block that err.h's groups (-100 to -500) do not use, so they never pass for another code.
 * Every one means "refuse the token" (`unauthenticated`); they differ for logs and metrics. */
enum imk_jwt_err {
    IMK_JWT_EMALFORMED = -600, /* over 8 KiB, not three segments, bad base64url, bad JSON,
                                  duplicate member, kid not a string, exp/nbf/iat not an
                                  integer */
    IMK_JWT_EALG = -601,       /* alg missing or not "HS256" ("none" included), typ present and
                                  not "JWT", or a crit header */
    IMK_JWT_EKID = -602,       /* kid names no configured key, or the key set is empty */
    IMK_JWT_ESIG = -603,       /* signature not 32 bytes or matches no candidate key */
    IMK_JWT_EEXPIRED = -604,   /* exp <= now (no leeway) */
    IMK_JWT_ENOTYET = -605,    /* nbf or iat more than 60 s after now */
    IMK_JWT_ECLAIMS = -606,    /* exp or sub missing; sub not 1-64 bytes of [A-Za-z0-9_.@:-];
                                  iat negative; name or avatar not a string, name over 128
                                  bytes, avatar over 1024 bytes */
    IMK_JWT_ENOMEM = -607,     /* out of memory */
    IMK_JWT_EINVAL = -608,     /* keys, token or claims is NULL (a caller bug) */
};

#define IMK_JWT_MAX_TOKEN 8192 /* bytes; longer tokens are refused before any allocation */
#define IMK_JWT_MAX_SKEW 60    /* seconds nbf/iat may lie in the future */
#define IMK_JWT_MAX_SUB 64
#define IMK_JWT_MAX_NAME 128
#define IMK_JWT_MAX_AVATAR 1024

/* A set of HS256 secrets. Immutable once created: threads may share one for verification. */
typedef struct imk_jwt_keys imk_jwt_keys_t;

/* Builds a key set from spec, "kid:secret,kid:secret,...". An entry without ':' is the default
 * key, which can also be written ":secret" when the secret holds a ':'. Entries split at the
 * first ':'; secrets are the raw bytes that follow (no trimming, no decoding) and cannot hold
 * ','. A kid is 1-64 bytes of [A-Za-z0-9_.-].
 * Returns NULL when spec is malformed (an empty entry, an empty secret, a bad kid, a kid given
 * twice, two defaults) or memory runs out. NULL or "" gives an empty set, which refuses every
 * token. spec is borrowed; the set keeps its own copy. Free with imk_jwt_keys_destroy. */
imk_jwt_keys_t *imk_jwt_keys_create(const char *spec);

/* Wipes the secrets (OPENSSL_cleanse) and frees the set. NULL is a no-op. */
void imk_jwt_keys_destroy(imk_jwt_keys_t *keys);

typedef struct imk_jwt_claims {
    char sub[IMK_JWT_MAX_SUB + 1]; /* client id, NUL-terminated, validated */
    int64_t exp;                   /* seconds since the epoch */
    int64_t iat;                   /* seconds since the epoch, or -1 when absent */
    char *name;                    /* NUL-terminated UTF-8, NULL when absent or null */
    char *avatar;                  /* NUL-terminated UTF-8, NULL when absent or null */
} imk_jwt_claims_t;

/* Verifies token (len bytes, need not be NUL-terminated) at time now_s (seconds since the
 * epoch) against keys. The rules: at most IMK_JWT_MAX_TOKEN bytes; exactly three base64url
 * segments (strict, see b64url.h); a header that is a JSON object with alg "HS256", typ "JWT"
 * (any case) when present, no crit; its kid, when present, selects one key, and without kid
 * every key (default and kid'd) is tried; the signature is compared in constant time. Only then
 * is the payload read: a JSON object without duplicate members, where exp is required and
 * exp/nbf/iat must be JSON integers (1.5 or "1" is malformed), exp <= now_s is expired, nbf or
 * iat more than IMK_JWT_MAX_SKEW seconds after now_s is not yet valid, sub is required, and
 * name/avatar are strings (null counts as absent). Other claims (aud, iss, ...) are ignored.
 * Returns 0 and fills *claims (caller calls imk_jwt_claims_deinit), or a negative
 * enum imk_jwt_err, after which *claims is zeroed and holds nothing to free.
 * Borrows keys and token. Reentrant. */
int imk_jwt_verify(const imk_jwt_keys_t *keys, const char *token, size_t len, int64_t now_s,
                   imk_jwt_claims_t *claims);

/* Frees name and avatar and sets them to NULL. NULL or an already deinit'ed value is fine. */
void imk_jwt_claims_deinit(imk_jwt_claims_t *claims);

/* Signs {"sub","name","iat","exp"} with the default key, or the first key of spec when there is
 * no default (its kid then goes in the header). name may be NULL (left out); iat < 0 leaves iat
 * out. Returns a malloc'd NUL-terminated token (caller frees with free()), or NULL when keys is
 * NULL or empty, sub is not a valid client id, name is over 128 bytes or not UTF-8, or memory
 * runs out. For the dev-only demo token route and tests: production tokens come from the
 * website's backend. */
char *imk_jwt_sign(const imk_jwt_keys_t *keys, const char *sub, const char *name, int64_t iat,
                   int64_t exp);

/* A static English sentence for a code of enum imk_jwt_err (or 0); never NULL. */
const char *imk_jwt_strerror(int code);

#endif
