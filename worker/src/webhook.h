/* The webhook deliverer: a thread of the worker that posts every event of the outbox stream
 * (imkit:events, written by the Functions library) to webhook.url, signed with
 * HMAC-SHA256, in order, retrying with exponential backoff; and that trims the outbox to
 * events.retention_s. One deliverer at a time holds the lease (imkit:webhook:lease), so
 * events leave in order whatever the number of workers. Chat jobs never wait for it. */
#ifndef IMKIT_WORKER_WEBHOOK_H
#define IMKIT_WORKER_WEBHOOK_H

#include "imkit/config.h"

#include <signal.h>

typedef struct imk_webhook imk_webhook_t;

/* cfg is borrowed; name (the worker's) is copied. Returns NULL on no memory or a bad
 * redis.url or redis.cluster. */
imk_webhook_t *imk_webhook_create(const imk_config_t *cfg, const char *name);

/* Starts the thread; it runs until *stop is set. Returns 0 or IMK_EIO. */
int imk_webhook_start(imk_webhook_t *w, volatile sig_atomic_t *stop);

/* Waits for the thread (after *stop was set) and frees. NULL is a no-op. */
void imk_webhook_destroy(imk_webhook_t *w);

#endif
