/* The three wire protocols the load generator speaks, behind one table of functions:
 * IMKit (proto_imkit.c), Socket.IO over a raw WebSocket (proto_sio.c) and Nchan's pubsub
 * WebSocket (proto_nchan.c). client.c drives them; they only encode and classify frames. */
#ifndef LG_PROTO_H
#define LG_PROTO_H

#include "lg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LG_FRAME_MAX 20480 /* largest frame we build: msg_size is capped below it */

typedef enum {
    LG_IN_IGNORE,  /* nothing for the client (pings are answered inside decode) */
    LG_IN_OPEN,    /* Socket.IO: the engine is open, authenticate now */
    LG_IN_ANSWER,  /* the answer to request id: ok, body = data or error object */
    LG_IN_EVENT,   /* an event other than a message: ev, body = data */
    LG_IN_MESSAGE, /* a chat message: key, and what its text says */
} lg_in_kind_t;

/* What decode found; pointers borrow the frame and are valid until the callback returns. */
typedef struct lg_in {
    lg_in_kind_t kind;
    uint32_t id;
    bool ok;
    const char *body;
    size_t body_len;
    const char *ev;
    size_t ev_len;
    int64_t key;    /* the server's seq (IMKit, Socket.IO) or the text's key (Nchan) */
    int64_t t_us;   /* send time written in the text */
    int64_t sender; /* client index written in the text */
} lg_in_t;

typedef struct lg_proto_ops {
    const char *name;
    const char *subprotocol;
    bool needs_auth;   /* Nchan has no authentication */
    bool auth_on_open; /* IMKit authenticates at once, Socket.IO after LG_IN_OPEN */
    bool server_seq;   /* deliveries carry a seq and answers acknowledge messages */
    /* The upgrade path of client c. */
    void (*path)(const lg_client_t *c, char *out, size_t n);
    /* Each returns 0 or -1 when the frame could not be queued. */
    int (*auth)(lg_client_t *c, uint32_t id, const char *token);
    int (*request)(lg_client_t *c, uint32_t id, const char *op, const char *data, size_t len);
    int (*message)(lg_client_t *c, uint32_t id, int64_t key, const char *text, size_t len);
    void (*decode)(lg_client_t *c, const char *msg, size_t len, lg_in_t *in);
} lg_proto_ops_t;

extern const lg_proto_ops_t lg_proto_imkit;
extern const lg_proto_ops_t lg_proto_sio;
extern const lg_proto_ops_t lg_proto_nchan;

/* Sends a frame built with printf-style arguments on c's connection (shared by the
 * adapters). Returns 0 or -1. */
int lg_proto_sendf(lg_client_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
