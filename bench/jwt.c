/* HS256 token signing with OpenSSL's HMAC (see jwt.h). */
#include "jwt.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

static size_t b64url(const unsigned char *in, size_t len, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= in[i + 2];
        }
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        if (i + 1 < len) {
            out[o++] = alphabet[(v >> 6) & 63];
        }
        if (i + 2 < len) {
            out[o++] = alphabet[v & 63];
        }
    }
    out[o] = '\0';
    return o;
}

int lg_jwt_sign(const char *secret, const char *sub, int64_t iat, int64_t exp, char *out,
                size_t outlen)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char claims[256];
    int n = snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld}", sub,
                     (long long)iat, (long long)exp);
    if (n < 0 || (size_t)n >= sizeof(claims)) {
        return -1;
    }
    /* base64url grows 3 bytes into 4; the signature is 43 characters. */
    if (outlen < (sizeof(header) + (size_t)n) * 4 / 3 + 4 + 44 + 8) {
        return -1;
    }
    size_t len = b64url((const unsigned char *)header, sizeof(header) - 1, out);
    out[len++] = '.';
    len += b64url((const unsigned char *)claims, (size_t)n, out + len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)out, len, mac,
             &mac_len) == NULL) {
        return -1;
    }
    out[len++] = '.';
    len += b64url(mac, mac_len, out + len);
    return (int)len;
}
