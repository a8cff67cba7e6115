/* Growable byte buffer and the error-code names. */
#include "imkit/buf.h"
#include "imkit/err.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(imk_buf_t *b, size_t extra)
{
    if (extra >= SIZE_MAX / 2 - b->len) {
        return IMK_ENOMEM; /* no buffer is that large; doubling would overflow */
    }
    if (b->len + extra < b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap <= b->len + extra) {
        cap *= 2;
    }
    char *data = b->data == b->storage ? malloc(cap) : realloc(b->data, cap);
    if (data == NULL) {
        return IMK_ENOMEM;
    }
    if (b->data == b->storage && b->data != NULL) {
        memcpy(data, b->data, b->len + 1);
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

int imk_buf_append(imk_buf_t *b, const void *data, size_t n)
{
    if (reserve(b, n) != 0) {
        return IMK_ENOMEM;
    }
    if (n > 0) {
        memcpy(b->data + b->len, data, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int imk_buf_append_str(imk_buf_t *b, const char *s)
{
    return imk_buf_append(b, s, strlen(s));
}

int imk_buf_printf(imk_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n) != 0) {
        return IMK_ENOMEM;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void imk_buf_init_on(imk_buf_t *b, char *storage, size_t size)
{
    storage[0] = '\0';
    *b = (imk_buf_t){storage, 0, size, storage};
}

void imk_buf_reset(imk_buf_t *b)
{
    b->len = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

void imk_buf_deinit(imk_buf_t *b)
{
    if (b->data != b->storage) {
        free(b->data);
    }
    b->data = b->storage = NULL;
    b->len = b->cap = 0;
}

const char *imk_strerror(int code)
{
    switch (code) {
    case IMK_OK:
        return "ok";
    case IMK_EIO:
        return "i/o error";
    case IMK_ECLOSED:
        return "connection closed";
    case IMK_EPROTO:
        return "protocol error";
    case IMK_EINVAL:
        return "invalid input";
    case IMK_ETOOBIG:
        return "over a limit";
    case IMK_ENOTFOUND:
        return "not found";
    case IMK_EREDIS:
        return "redis error";
    case IMK_ENOMEM:
        return "out of memory";
    default:
        return "unknown error";
    }
}
