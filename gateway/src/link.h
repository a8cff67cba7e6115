/* The gateway's Redis connections: per Redis master, one for commands (hiredis async on
 * libevent: XADD of jobs, FCALL_RO queries, presence) and one subscriber (subscriber.h). On
 * a single Redis (redis.url) there is one master. In cluster mode (redis.cluster) the
 * masters come from CLUSTER SLOTS (read again every 5 s, and at once after a MOVED or a
 * lost connection), each command goes to the master of its route's slot, MOVED and ASK are
 * followed, and channels are sharded (SSUBSCRIBE, SPUBLISH). Everything reconnects with
 * backoff by itself, and every channel is subscribed again where it belongs. */
#ifndef IMKIT_GATEWAY_LINK_H
#define IMKIT_GATEWAY_LINK_H

#include "imkit/config.h"
#include "imkit/metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct redisReply;

typedef struct imk_link imk_link_t;

/* Called with the reply, or NULL when the link failed before the reply came. The reply is
 * borrowed: valid until the callback returns. */
typedef void imk_link_reply_fn(struct redisReply *reply, void *arg);
/* Called for every message of a subscribed channel; both buffers borrowed. */
typedef void imk_link_message_fn(const char *channel, size_t channel_len, const char *payload,
                                 size_t payload_len, void *arg);
/* Called after each (re)connection of the subscriber, once its channels are resubscribed:
 * whatever was published meanwhile is lost, and the owner may want to say so. */
typedef void imk_link_ready_fn(void *arg);
/* Called when Redis confirms a SUBSCRIBE: from then on, the channel's messages arrive. */
typedef void imk_link_subscribed_fn(const char *channel, size_t channel_len, void *arg);

typedef struct imk_link_callbacks {
    imk_link_message_fn *on_message;
    imk_link_ready_fn *on_ready;           /* may be NULL */
    imk_link_subscribed_fn *on_subscribed; /* may be NULL */
} imk_link_callbacks_t;

/* callbacks is copied; arg is handed to each. */
imk_link_t *imk_link_create(struct event_base *base, const imk_config_t *cfg,
                            const imk_link_callbacks_t *callbacks, void *arg);
void imk_link_destroy(imk_link_t *link);

/* Starts connecting (in the background, retried with backoff); returns 0 or IMK_ENOMEM. */
int imk_link_start(imk_link_t *link);
bool imk_link_ready(const imk_link_t *link);
/* Ready, and Redis answers: false while commands have waited over two seconds without any
 * reply (Redis paused, overloaded or cut off without the socket noticing). For /healthz. */
bool imk_link_healthy(const imk_link_t *link);

/* What the links saw since start, for /metrics. */
typedef struct imk_link_stats {
    imk_hist_t roundtrip;        /* command connection: from a command sent to its reply */
    uint64_t errors;             /* commands refused (link down), answered with an error, or lost */
    uint64_t reconnects_command; /* connections of the command link after its first */
    uint64_t reconnects_subscriber; /* the same for the subscriber */
} imk_link_stats_t;

/* Borrowed: valid as long as the link, updated as it works. */
const imk_link_stats_t *imk_link_stats(const imk_link_t *link);

#define IMK_LINK_ROUTE_MAX 320 /* a route: a key name, or "{<id>}" */

/* Sends a command; fn may be NULL when the reply does not matter. route (NUL-terminated)
 * is the key the command acts on, or any name with that key's hash tag ("{<room id>}" for a
 * Function on a room's keys): in cluster mode its slot picks the master; NULL = any master
 * (commands on no key). Returns 0 (fn will be called exactly once) or IMK_EREDIS when the
 * link to that master is down (fn is never called), IMK_ENOMEM. */
int imk_link_command(imk_link_t *link, const char *route, imk_link_reply_fn *fn, void *arg,
                     int argc, const char **argv, const size_t *lens);

/* Whether reply is Redis's error for a Function it does not have: the library is older
 * than this gateway, or not loaded yet (no worker started). */
bool imk_link_no_function(const struct redisReply *reply);

/* A call of one of the Functions (docs/FUNCTIONS.md): FCALL[_RO] <function> 1 {<home>}
 * <prefix> <from> <args> [<extra>], on the master of home's slot; with home NULL it declares
 * no key (0) and goes to any master. */
typedef struct imk_link_fcall {
    const char *function;
    bool query;       /* FCALL_RO: a no-writes Function */
    const char *home; /* the room or client whose keys it works on, or NULL */
    const char *from; /* the acting client, "" for the system */
    const char *args; /* msgpack */
    size_t args_len;
    const char *extra; /* one more argument (the cluster flag), or NULL */
} imk_link_fcall_t;

/* Sends call with the configured key prefix. Returns as imk_link_command, and IMK_EINVAL
 * for a home that makes no route. */
int imk_link_fcall(imk_link_t *link, const imk_link_fcall_t *call, imk_link_reply_fn *fn,
                   void *arg);

/* PUBLISH, or SPUBLISH in cluster mode (to the master of the channel's slot); the reply
 * does not matter. Returns as imk_link_command. */
int imk_link_publish(imk_link_t *link, const char *channel, size_t channel_len, const char *payload,
                     size_t payload_len);

/* Subscribes or unsubscribes one channel; remembered across reconnects. Returns 0 or
 * IMK_ENOMEM. */
int imk_link_subscribe(imk_link_t *link, const char *channel, size_t len);
void imk_link_unsubscribe(imk_link_t *link, const char *channel, size_t len);

#endif
