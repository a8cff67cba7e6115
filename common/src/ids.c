/* Identifier alphabet checks and random ids. */
#include "imkit/ids.h"
#include "imkit/err.h"

#include <openssl/rand.h>

static bool id_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '@' || c == ':' || c == '-';
}

bool imk_id_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > IMK_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!id_char((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

int imk_id_random(char out[17])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char bytes[12];
    if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
        return IMK_EIO;
    }
    /* 12 bytes = 96 bits = 16 characters of 6 bits. */
    for (int i = 0; i < 4; i++) {
        unsigned long v = ((unsigned long)bytes[3 * i] << 16) |
                          ((unsigned long)bytes[3 * i + 1] << 8) | bytes[3 * i + 2];
        out[4 * i] = alphabet[(v >> 18) & 63];
        out[4 * i + 1] = alphabet[(v >> 12) & 63];
        out[4 * i + 2] = alphabet[(v >> 6) & 63];
        out[4 * i + 3] = alphabet[v & 63];
    }
    out[16] = '\0';
    return 0;
}
