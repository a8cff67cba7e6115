/* A growable byte buffer: the one type our modules use to hand encoded bytes around
 * (job envelopes, JSON text, HTTP bodies). Callers own the storage and free it with
 * imk_buf_deinit(). */
#ifndef IMKIT_BUF_H
#define IMKIT_BUF_H

#include <stddef.h>

typedef struct imk_buf {
    char *data; /* NUL-terminated when len < cap, which every append keeps true */
    size_t len;
    size_t cap;
    char *storage; /* the caller's storage it started in (imk_buf_init_on), or NULL */
} imk_buf_t;

#define IMK_BUF_INIT                                                                               \
    {                                                                                              \
        NULL, 0, 0, NULL                                                                           \
    }

/* Starts b in the caller's storage (an array on the stack, say), so that a buffer on a hot
 * path allocates nothing while its bytes fit; past size they move to the heap. b->data must
 * not be handed on to be freed (imk_buf_deinit knows which it is). */
void imk_buf_init_on(imk_buf_t *b, char *storage, size_t size);

/* Appends n bytes; returns 0 or IMK_ENOMEM (the buffer is then unchanged). */
int imk_buf_append(imk_buf_t *b, const void *data, size_t n);
int imk_buf_append_str(imk_buf_t *b, const char *s);
/* printf-style append. */
int imk_buf_printf(imk_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imk_buf_reset(imk_buf_t *b);
void imk_buf_deinit(imk_buf_t *b);

#endif
