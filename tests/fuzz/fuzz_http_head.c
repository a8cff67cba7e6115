/* libFuzzer driver for the public listener's request-head parser (gateway/src/http_head.c;
 * seeds: corpus/http_head/). The first input byte chooses where to split the rest, so heads
 * arriving in two pieces are covered. The parser must never crash, never claim more bytes
 * than it was given, and on success give NUL-terminated fields. */
#include "http_head.h"
#include "imkit/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const imk_http_request_t *r)
{
    if (memchr(r->url, '\0', sizeof(r->url)) == NULL ||
        memchr(r->ws_key, '\0', sizeof(r->ws_key)) == NULL ||
        memchr(r->ws_version, '\0', sizeof(r->ws_version)) == NULL ||
        memchr(r->origin, '\0', sizeof(r->origin)) == NULL) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t split = data[0] % size;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    split = split > len ? len : split;
    imk_http_head_t *h = imk_http_head_create();
    if (h == NULL) {
        return 0;
    }
    size_t used = 0;
    int rc = imk_http_head_feed(h, text, split, &used);
    if (used > split) {
        abort();
    }
    if (rc == IMK_HTTP_HEAD_MORE) {
        rc = imk_http_head_feed(h, text + split, len - split, &used);
        if (used > len - split) {
            abort();
        }
    }
    if (rc == IMK_HTTP_HEAD_DONE) {
        check_request(imk_http_head_request(h));
    } else if (rc != IMK_HTTP_HEAD_MORE && rc != IMK_EPROTO && rc != IMK_ETOOBIG) {
        abort();
    }
    imk_http_head_destroy(h);
    return 0;
}
