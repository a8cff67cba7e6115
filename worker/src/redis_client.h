/* The worker's routing client, for its consumer and its webhook deliverer alike. */
#ifndef IMKIT_WORKER_REDIS_CLIENT_H
#define IMKIT_WORKER_REDIS_CLIENT_H

#include "imkit/cluster_client.h"
#include "imkit/config.h"

/* The client for redis.cluster when set, else for redis.url (its password and db); each
 * connect, read or write blocks up to timeout_ms. NULL on a bad redis.url or seed list, or
 * no memory. */
imk_cluster_client_t *imk_worker_redis_client(const imk_config_t *cfg, int timeout_ms);

#endif
