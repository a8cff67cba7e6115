/* Base64url without padding (RFC 4648 section 5): encoder and strict decoder.
 * Used by jwt.c to split and build tokens; see b64url.h for the contract. */
#include "imkit/b64url.h"

#include <stdint.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of a base64url character, or -1. */
static int char_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

size_t imk_b64url_encoded_len(size_t len)
{
    size_t rem = len % 3;

    if (len / 3 > (SIZE_MAX - 4) / 4) {
        return SIZE_MAX;
    }
    return len / 3 * 4 + (rem ? rem + 1 : 0);
}

size_t imk_b64url_decoded_len(size_t in_len)
{
    size_t rem = in_len % 4;

    return in_len / 4 * 3 + (rem > 1 ? rem - 1 : 0);
}

int imk_b64url_encode(const void *in, size_t in_len, char *out, size_t out_size, size_t *out_len)
{
    const unsigned char *p = in;
    size_t need = imk_b64url_encoded_len(in_len);
    size_t i = 0;
    size_t o = 0;

    if (need == SIZE_MAX || out == NULL || out_size <= need) {
        return IMK_B64URL_ENOSPC;
    }
    for (; in_len - i >= 3; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    if (in_len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
    } else if (in_len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
    }
    out[o] = '\0';
    if (out_len != NULL) {
        *out_len = o;
    }
    return 0;
}

int imk_b64url_decode(const char *in, size_t in_len, void *out, size_t out_size, size_t *out_len)
{
    unsigned char *q = out;
    size_t rem = in_len % 4;
    size_t o = 0;
    size_t i;
    uint32_t v = 0;

    if (rem == 1) {
        return IMK_B64URL_EINVAL;
    }
    if (imk_b64url_decoded_len(in_len) > out_size || (out == NULL && in_len > 0)) {
        return IMK_B64URL_ENOSPC;
    }
    for (i = 0; i < in_len; i++) {
        int c = char_value((unsigned char)in[i]);
        if (c < 0) {
            return IMK_B64URL_EINVAL;
        }
        v = v << 6 | (uint32_t)c;
        if (i % 4 == 3) {
            q[o++] = (unsigned char)(v >> 16);
            q[o++] = (unsigned char)(v >> 8);
            q[o++] = (unsigned char)v;
            v = 0;
        }
    }
    /* The tail: 2 characters carry 12 bits for 1 byte, 3 carry 18 bits for 2 bytes. The
     * bits left over must be zero, or two encodings would decode to the same bytes. */
    if (rem == 2) {
        if (v & 0xf) {
            return IMK_B64URL_EINVAL;
        }
        q[o++] = (unsigned char)(v >> 4);
    } else if (rem == 3) {
        if (v & 0x3) {
            return IMK_B64URL_EINVAL;
        }
        q[o++] = (unsigned char)(v >> 10);
        q[o++] = (unsigned char)(v >> 2);
    }
    if (out_len != NULL) {
        *out_len = o;
    }
    return 0;
}
