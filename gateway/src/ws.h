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

/* Takes ownership of bev (freed by imk_ws_destroy). max_message bounds a defragmented
 * message (close 1009 above it); max_queued bounds the bytes queued to a slow reader
 * (close 4408 above it). Returns NULL on no memory. */
imk_ws_t *imk_ws_create(struct bufferevent *bev, size_t max_message, size_t max_queued,
                        const imk_ws_callbacks_t *callbacks, void *arg);
void imk_ws_destroy(imk_ws_t *ws);

/* Queues a text message and starts writing it. Returns 0, or IMK_ECLOSED when the connection
 * is closing, or IMK_ENOMEM. */
int imk_ws_send_text(imk_ws_t *ws, const char *data, size_t len);

/* Starts the closing handshake with code and reason; on_closed follows once the close
 * frame is written (or the peer is gone). */
void imk_ws_close(imk_ws_t *ws, uint16_t code, const char *reason);

#endif
