/* A WebSocket connection (RFC 6455, server side) on a libevent bufferevent, framed by wslay.
 * Created by the public listener after a successful upgrade; owned by the client session
 * that the listener creates with it. */
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

/* Takes ownership of bev (freed by imk_ws_destroy). limits is copied. Returns NULL on no
 * memory. */
imk_ws_t *imk_ws_create(struct bufferevent *bev, const imk_ws_limits_t *limits,
                        const imk_ws_callbacks_t *callbacks, void *arg);
void imk_ws_destroy(imk_ws_t *ws);

/* Queues a text message and starts writing it. Returns 0, or IMK_ECLOSED when the connection
 * is closing, or IMK_ENOMEM. */
int imk_ws_send_text(imk_ws_t *ws, const char *data, size_t len);

/* Starts the closing handshake with code and reason; on_closed follows once the close
 * frame is written (or the peer is gone). */
void imk_ws_close(imk_ws_t *ws, uint16_t code, const char *reason);

#endif
