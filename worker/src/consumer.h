/* The job consumer: reads job streams through the consumer group "workers", applies each
 * job with its Redis Function, publishes the events and the answer, then acknowledges.
 * Claims jobs left by dead workers, dead-letters jobs that keep failing, trims what every
 * worker has acknowledged, and pushes the worker's metrics to Redis (worker_stats.h).
 * Synchronous: one process, one loop; commands through the routing client (one connection
 * per master), blocking reads on connections of their own (readers.h). */
#ifndef IMKIT_WORKER_CONSUMER_H
#define IMKIT_WORKER_CONSUMER_H

#include "imkit/config.h"

#include <signal.h>

typedef struct imk_consumer imk_consumer_t;

/* cfg is borrowed and must outlive the consumer; name is copied (the consumer's name in
 * the group). Returns NULL on a bad redis.url or redis.cluster, or no memory. */
imk_consumer_t *imk_consumer_create(const imk_config_t *cfg, const char *name);
void imk_consumer_destroy(imk_consumer_t *c);

/* Runs until *stop is set, reconnecting to Redis with backoff whenever it goes away; the
 * batch in hand when *stop is seen is finished and acknowledged first, then the metrics are
 * pushed a last time. Returns 0. */
int imk_consumer_run(imk_consumer_t *c, volatile sig_atomic_t *stop);

#endif
