/* A WebSocket client connection on a libevent bufferevent: TCP connect from a chosen
 * loopback source address, the HTTP upgrade, then wslay for framing. Used by client.c. */
#ifndef LG_WSCONN_H
#define LG_WSCONN_H

#include <netinet/in.h>
#include <stddef.h>

struct event_base;
typedef struct lg_ws lg_ws_t;

typedef struct lg_ws_callbacks {
    void (*on_open)(void *arg);                              /* upgrade accepted */
    void (*on_text)(void *arg, const char *msg, size_t len); /* one complete text message */
    /* The connection failed or ended. The owner may free ws inside this callback; ws is not
     * touched after it returns. Not called by lg_ws_free. */
    void (*on_close)(void *arg, const char *why);
} lg_ws_callbacks_t;

/* Starts connecting src -> dst and upgrading on path (subprotocol may be NULL). Returns the
 * connection, or NULL with errno set (EADDRNOTAVAIL: the source address ran out of ports).
 * callbacks must outlive the connection. Runs on base's thread. */
lg_ws_t *lg_ws_connect(struct event_base *base, const struct sockaddr_in *src,
                       const struct sockaddr_in *dst, const char *path, const char *subprotocol,
                       const lg_ws_callbacks_t *callbacks, void *arg);

/* Queues a text message. Returns 0, or -1 if the connection is not open or out of memory.
 * Must not be called from inside on_close. */
int lg_ws_send(lg_ws_t *ws, const char *data, size_t len);

/* Closes the socket at once (no close handshake) and frees everything; NULL is a no-op.
 * Must not be called from inside on_text: mark the client and free it from a timer. */
void lg_ws_free(lg_ws_t *ws);

#endif
