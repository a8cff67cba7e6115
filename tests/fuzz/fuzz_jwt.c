/* libFuzzer driver for imk_jwt_verify and the base64url decoder (seeds: corpus/jwt/).
 * An input with exactly one '.' is taken as "header.payload" and signed here with the fuzz
 * key before verification, so the claims parser behind the signature is reached too; any
 * other input is verified as it is. Build with clang -fsanitize=fuzzer,address,undefined. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "imkit/b64url.h"
#include "imkit/jwt.h"

#define FUZZ_SECRET "fuzz-secret"
#define FUZZ_SPEC "k1:other-secret," FUZZ_SECRET
#define FUZZ_NOW INT64_C(1700000000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static imk_jwt_keys_t *keys;

/* Decoding then encoding must give the input back: one accepted encoding per byte string. */
static void check_b64url(const uint8_t *data, size_t size)
{
    size_t cap = imk_b64url_decoded_len(size);
    unsigned char *dec = malloc(cap + 1);
    char *enc = NULL;
    size_t n = 0, m = 0;

    if (dec == NULL) {
        return;
    }
    if (imk_b64url_decode((const char *)data, size, dec, cap, &n) == 0) {
        if (n != cap) {
            abort();
        }
        enc = malloc(size + 1);
        if (enc == NULL || imk_b64url_encode(dec, n, enc, size + 1, &m) != 0 || m != size ||
            memcmp(enc, data, size) != 0) {
            abort();
        }
    }
    free(enc);
    free(dec);
}

/* Returns "<data>.<base64url(HMAC-SHA256)>" signed with FUZZ_SECRET, malloc'd, or NULL. */
static char *sign(const uint8_t *data, size_t size, size_t *out_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char *tok;
    size_t n = 0;

    if (HMAC(EVP_sha256(), FUZZ_SECRET, (int)strlen(FUZZ_SECRET), data, size, mac, &mac_len) ==
        NULL) {
        return NULL;
    }
    tok = malloc(size + 1 + imk_b64url_encoded_len(mac_len) + 1);
    if (tok == NULL) {
        return NULL;
    }
    memcpy(tok, data, size);
    tok[size] = '.';
    if (imk_b64url_encode(mac, mac_len, tok + size + 1, imk_b64url_encoded_len(mac_len) + 1, &n) !=
        0) {
        abort();
    }
    *out_len = size + 1 + n;
    return tok;
}

static void verify(const char *tok, size_t len)
{
    imk_jwt_claims_t c;
    int rc = imk_jwt_verify(keys, tok, len, FUZZ_NOW, &c);

    if (rc == 0) {
        size_t sub_len = strlen(c.sub);
        if (sub_len == 0 || sub_len > IMK_JWT_MAX_SUB || c.exp <= FUZZ_NOW || c.iat < -1 ||
            (c.name != NULL && strlen(c.name) > IMK_JWT_MAX_NAME) ||
            (c.avatar != NULL && strlen(c.avatar) > IMK_JWT_MAX_AVATAR)) {
            abort();
        }
        imk_jwt_claims_deinit(&c);
    } else if (rc > 0 || c.name != NULL || c.avatar != NULL || imk_jwt_strerror(rc) == NULL) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *dot;

    if (keys == NULL) {
        keys = imk_jwt_keys_create(FUZZ_SPEC);
        if (keys == NULL) {
            abort();
        }
    }
    check_b64url(data, size);

    dot = memchr(data, '.', size);
    if (dot != NULL && memchr(dot + 1, '.', size - (size_t)(dot + 1 - data)) == NULL) {
        size_t len = 0;
        char *tok = sign(data, size, &len);
        if (tok != NULL) {
            verify(tok, len);
            free(tok);
        }
    } else {
        /* A copy of the exact size, so ASan sees any read past len. */
        char *tok = malloc(size ? size : 1);
        if (tok != NULL) {
            memcpy(tok, data, size);
            verify(tok, size);
            free(tok);
        }
    }
    return 0;
}
