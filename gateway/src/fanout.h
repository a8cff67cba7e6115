/* Local fan-out: which sessions of this gateway belong to which room and which client, the
 * Redis channels subscribed for them (one per room and per client with at least one local
 * session), and delivery of a channel's message to those sessions, the same bytes to each. */
#ifndef IMKIT_GATEWAY_FANOUT_H
#define IMKIT_GATEWAY_FANOUT_H

#include "gateway.h"
#include "session.h"

struct json_t;

typedef struct imk_fanout imk_fanout_t;

imk_fanout_t *imk_fanout_create(imk_gateway_t *gw);
void imk_fanout_destroy(imk_fanout_t *f);

/* Registers an authenticated session under its client id. Returns 0 or IMK_ENOMEM. */
int imk_fanout_add_client(imk_fanout_t *f, imk_session_t *s);
/* Registers a session in a room (idempotent). Returns 0 or IMK_ENOMEM. */
int imk_fanout_join(imk_fanout_t *f, imk_session_t *s, const char *room, size_t len);
void imk_fanout_leave(imk_fanout_t *f, imk_session_t *s, const char *room, size_t len);
/* Replaces the set of clients whose presence events s receives with ids (a JSON array of
 * valid ids). Returns 0 or IMK_ENOMEM. */
int imk_fanout_watch(imk_fanout_t *f, imk_session_t *s, const struct json_t *ids);
/* How many authenticated sessions of client this gateway holds. */
size_t imk_fanout_client_sessions(const imk_fanout_t *f, const char *client);

/* Removes a session from its client, every room and every watch. */
void imk_fanout_remove_session(imk_fanout_t *f, imk_session_t *s);

/* Redis confirmed the subscription of channel: a room subscribed for a room.joined now
 * fetches the messages sent since the join, which were published before the subscription
 * took effect, and delivers them (live events arriving meanwhile wait, so nothing is
 * delivered twice or out of order). */
void imk_fanout_on_subscribed(imk_fanout_t *f, const char *channel, size_t channel_len);

/* A message of a room, client or presence channel (the prefix included in channel). A room
 * event may start with "!skip <id>,<id>\n": those clients' sessions do not get it. The
 * personal control event session.revoked closes the client's sessions with its code. */
void imk_fanout_deliver(imk_fanout_t *f, const char *channel, size_t channel_len,
                        const char *payload, size_t payload_len);

#endif
