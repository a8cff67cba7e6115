/* libFuzzer driver for imk_utf8_valid (common/src/text.c) and the WebSocket layer's streaming
 * check imk_wsframe_utf8_feed (gateway/src/wsframe.c; seeds: corpus/utf8/): compares both with
 * a straightforward reference written from RFC 3629's table, on the whole input and on
 * every suffix of its first bytes; aborts when they disagree. Build with clang
 * -fsanitize=fuzzer,address,undefined. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imkit/text.h"
#include "wsframe.h"
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 3629 section 4: the well-formed byte sequences, row by row. */
static bool reference(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        uint8_t lo = 0x80, hi = 0xbf;
        size_t n;
        if (c <= 0x7f) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c == 0xe0) {
            n = 2;
            lo = 0xa0;
        } else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
            n = 2;
        } else if (c == 0xed) {
            n = 2;
            hi = 0x9f;
        } else if (c == 0xf0) {
            n = 3;
            lo = 0x90;
        } else if (c >= 0xf1 && c <= 0xf3) {
            n = 3;
        } else if (c == 0xf4) {
            n = 3;
            hi = 0x8f;
        } else {
            return false;
        }
        if (len - i - 1 < n) {
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

static void check(const uint8_t *s, size_t len)
{
    /* A copy of the exact size, so ASan sees any read past len. */
    char *copy = malloc(len ? len : 1);
    if (copy == NULL) {
        return;
    }
    if (len > 0) {
        memcpy(copy, s, len);
    }
    bool want = reference(s, len);
    if (imk_utf8_valid(copy, len) != want) {
        abort();
    }
    /* The WebSocket layer's streaming check, fed in two pieces cut at len / 3, agrees. */
    uint32_t state = 0;
    size_t cut = len / 3;
    bool fed = imk_wsframe_utf8_feed(&state, (const uint8_t *)copy, cut) &&
               imk_wsframe_utf8_feed(&state, (const uint8_t *)copy + cut, len - cut) && state == 0;
    if (fed != want) {
        abort();
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(data, size);
    /* Every prefix of a short input: cuts inside a character must be refused. */
    for (size_t k = 0; k < size && k < 8; k++) {
        check(data, k);
        check(data + k, size - k);
    }
    return 0;
}
