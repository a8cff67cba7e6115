/* One Redis connection in subscribe mode, on the gateway's event loop: SUBSCRIBE channels
 * on a single Redis, or SSUBSCRIBE (sharded) channels on one master of a Redis Cluster.
 * hiredis 0.14's async pub/sub knows neither SSUBSCRIBE nor the smessage it brings, so this
 * speaks RESP itself: a bufferevent, commands formatted by redisFormatCommandArgv, replies
 * parsed by a hiredis reader. It reconnects with backoff by itself; its owner (link.c)
 * subscribes again on every on_ready. */
#ifndef IMKIT_GATEWAY_SUBSCRIBER_H
#define IMKIT_GATEWAY_SUBSCRIBER_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;

typedef struct imk_subscriber imk_subscriber_t;

/* Every buffer is borrowed: valid until the callback returns. arg is the one given to
 * imk_subscriber_create. Callbacks may subscribe and unsubscribe, not destroy. */
typedef struct imk_subscriber_callbacks { /* Connected (and authenticated): nothing is subscribed on
                                           * this connection yet. A lost connection is tried again
                                           * after a backoff, and this comes again. */
    void (*on_ready)(void *arg);
    void (*on_message)(const char *channel, size_t channel_len, const char *payload,
                       size_t payload_len, void *arg);
    /* Redis confirmed a subscription: from then on, the channel's messages arrive. May be NULL. */
    void (*on_subscribed)(const char *channel, size_t len, void *arg);
    /* A subscription ended: one we asked to end, or one Redis ended by itself (a sharded
     * channel whose slot moved to another master). May be NULL. */
    void (*on_unsubscribed)(const char *channel, size_t len, void *arg);
    /* Redis refused a command (a sharded subscription sent to a node that does not own the
     * slot answers MOVED). err is the error text. May be NULL. */
    void (*on_error)(const char *err, size_t len, void *arg);
} imk_subscriber_callbacks_t;

/* host is copied, password (NULL or "" for none) too; sharded picks SSUBSCRIBE. Returns
 * NULL when out of memory. Nothing happens before imk_subscriber_start. */
imk_subscriber_t *imk_subscriber_create(struct event_base *base, const char *host, int port,
                                        const char *password, bool sharded,
                                        const imk_subscriber_callbacks_t *callbacks, void *arg);
void imk_subscriber_destroy(imk_subscriber_t *s);

/* Starts connecting; failures are retried with backoff. */
void imk_subscriber_start(imk_subscriber_t *s);
bool imk_subscriber_ready(const imk_subscriber_t *s);

/* Sends (S)SUBSCRIBE or (S)UNSUBSCRIBE for one channel. Returns 0, or IMK_EREDIS when the
 * connection is not ready (the owner subscribes again on the next on_ready). */
int imk_subscriber_subscribe(imk_subscriber_t *s, const char *channel, size_t len);
int imk_subscriber_unsubscribe(imk_subscriber_t *s, const char *channel, size_t len);

#endif
