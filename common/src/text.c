/* UTF-8 validation and JSON string quoting. */
#include "imkit/text.h"
#include "imkit/err.h"

#include <stdint.h>
#include <stdio.h>

bool imk_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= len) { /* truncated sequence */
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

int imk_json_quote(imk_buf_t *out, const char *s, size_t len)
{
    int rc = imk_buf_append(out, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        rc = imk_buf_append(out, s + start, i - start);
        char esc[8];
        switch (c) {
        case '"':
            snprintf(esc, sizeof(esc), "\\\"");
            break;
        case '\\':
            snprintf(esc, sizeof(esc), "\\\\");
            break;
        case '\n':
            snprintf(esc, sizeof(esc), "\\n");
            break;
        case '\r':
            snprintf(esc, sizeof(esc), "\\r");
            break;
        case '\t':
            snprintf(esc, sizeof(esc), "\\t");
            break;
        default:
            snprintf(esc, sizeof(esc), "\\u%04x", c);
        }
        if (rc == 0) {
            rc = imk_buf_append_str(out, esc);
        }
        start = i + 1;
    }
    if (rc == 0) {
        rc = imk_buf_append(out, s + start, len - start);
    }
    if (rc == 0) {
        rc = imk_buf_append(out, "\"", 1);
    }
    return rc;
}

int imk_parse_decimal(const char *s, size_t n, int64_t min, int64_t max, int64_t *out)
{
    if (n == 0 || n > IMK_DECIMAL_DIGITS) {
        return IMK_EINVAL;
    }
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return IMK_EINVAL;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max) {
        return IMK_EINVAL;
    }
    *out = v;
    return 0;
}
