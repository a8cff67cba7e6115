/* A WebSocket connection (RFC 6455, server side), framed by wsframe.c: on its socket for
 * plain TCP, on its bufferevent for TLS. Created by the public listener after a successful
 * upgrade; owned by the client session that the listener creates with it. An idle plain
 * connection holds no buffer: input only while a frame is partial, a message only while
 * its fragments arrive, output only while the socket has not taken it. */
#ifndef IMKIT_GATEWAY_WS_H
#define IMKIT_GATEWAY_WS_H

#include <stddef.h>
#include <stdint.h>

struct bufferevent;

typedef struct imk_ws imk_ws_t;

typedef struct imk_ws_callbacks {
    /* A complete text message of valid UTF-8; data borrowed until the call returns. */
    void (*on_text)(void *arg, const char *data, size_t len);
    /* The connection is gone (closed by either side, or failed). The owner must call
     * imk_ws_destroy(), from this callback or later; nothing else is called afterwards. */
    void (*on_closed)(void *arg);
} imk_ws_callbacks_t;

typedef struct imk_ws_limits {
    size_t max_message;     /* a defragmented message; close 1009 above it */
    size_t max_queued;      /* bytes queued to a slow reader; close 4408 above it */
    int ping_interval_ms;   /* a ping after this long without any frame from the peer */
    int ping_misses;        /* close 1001 after this many intervals without any frame */
    int message_timeout_ms; /* a message begun must be complete within this; close 1008 */
} imk_ws_limits_t;

/* Takes ownership of bev, already upgraded: a socket bufferevent is freed at once, its
 * socket (closed by imk_ws_destroy) and any bytes it holds taken over; any other (TLS) is
 * kept and freed by imk_ws_destroy. limits is copied. Returns NULL on no memory, bev then
 * still the caller's, as it was. Runs on bev's loop. */
imk_ws_t *imk_ws_create(struct bufferevent *bev, const imk_ws_limits_t *limits,
                        const imk_ws_callbacks_t *callbacks, void *arg);
void imk_ws_destroy(imk_ws_t *ws);

/* Queues a text message; everything queued within one loop iteration is written together
 * once its callbacks have run. A peer that lets more than limits.max_queued bytes pile up
 * is closed 4408. Returns 0, or IMK_ECLOSED when the connection is closing, or
 * IMK_ENOMEM. */
int imk_ws_send_text(imk_ws_t *ws, const char *data, size_t len);

/* A text frame encoded once for many connections (a broadcast): server frames are not
 * masked, so the same bytes are valid on every socket, and large ones are queued to each by
 * reference instead of copied. Reference counted; no loop needed. */
typedef struct imk_ws_shared imk_ws_shared_t;

/* Frames data (copied). The caller holds one reference and drops it with
 * imk_ws_shared_release(). Returns NULL on no memory. */
imk_ws_shared_t *imk_ws_shared_create(const char *data, size_t len);
/* Drops one reference; the bytes are freed once every connection they were queued to has
 * written or dropped them. NULL is a no-op. */
void imk_ws_shared_release(imk_ws_shared_t *m);
/* Queues m to ws, as imk_ws_send_text(); takes a reference of its own when needed. */
int imk_ws_send_shared(imk_ws_t *ws, imk_ws_shared_t *m);

/* Starts the closing handshake with code and reason; on_closed follows once the close
 * frame is written (or the peer is gone). */
void imk_ws_close(imk_ws_t *ws, uint16_t code, const char *reason);

#endif
