/* A client session: one WebSocket connection speaking the client protocol (PROTOCOL.md §2):
 * authentication, requests turned into queries and jobs, answers and events written back.
 * Created by the public listener after the upgrade; frees itself when the connection ends. */
#ifndef IMKIT_GATEWAY_SESSION_H
#define IMKIT_GATEWAY_SESSION_H

#include "gateway.h"
#include "imkit/ids.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct event;
struct imk_ws;
struct imk_ws_shared;
struct imk_auth_step;

typedef struct imk_session {
    imk_gateway_t *gw;
    uint64_t id;
    struct imk_ws *ws;
    char peer[64]; /* source address, counted by the admission caps */
    bool authenticated;
    bool auth_in_flight;
    struct imk_auth_step *auth; /* an auth's first step in flight (session.c), or NULL */
    int auth_failures;
    char client[IMK_ID_MAX + 1]; /* set once authenticated */
    char token_hash[65];         /* SHA-256 of an opaque token (empty for a JWT) */
    imk_map_t *rooms;            /* rooms this session receives events of (NULL: none yet) */
    imk_map_t *watching;         /* clients whose presence it watches (NULL: none yet) */
    int64_t typing_at;           /* when this session last sent typing, ms */
    size_t waiting;              /* requests in flight */
    struct event *deadline;      /* auth deadline, then the token's expiry */
    double tokens;               /* request budget: limits.rate per second up to limits.burst */
    int64_t tokens_at;           /* when tokens was last refilled, ms */
    int refused;                 /* requests refused rate_limited in the current window */
    int64_t refused_since;       /* start of that window, ms */
    imk_stats_req_t req;         /* the request on_text is handling, for metrics */
} imk_session_t;

/* Takes ownership of bev, already upgraded, and of the admission slot of peer (given back
 * when the session ends). Returns NULL on no memory (neither taken). */
imk_session_t *imk_session_create(imk_gateway_t *gw, struct bufferevent *bev, const char *peer);

/* Writes an event or answer frame (JSON text) to the client. */
void imk_session_send(imk_session_t *s, const char *data, size_t len);
/* The same for an event framed once for many sessions (fanout.c); takes its own reference. */
void imk_session_send_shared(imk_session_t *s, struct imk_ws_shared *m);

/* Starts closing with a WebSocket close code; the session frees itself afterwards. */
void imk_session_close(imk_session_t *s, uint16_t code, const char *reason);

/* Closes every session with 1001 (gateway shutdown). */
void imk_session_close_all(imk_gateway_t *gw);

/* Frees every session still open (after the loop ended). */
void imk_session_destroy_all(imk_gateway_t *gw);

#endif
