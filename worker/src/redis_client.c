/* The worker's routing client (redis_client.h). */
#include "redis_client.h"
#include "imkit/redis_url.h"

#include <stdio.h>

imk_cluster_client_t *imk_worker_redis_client(const imk_config_t *cfg, int timeout_ms)
{
    imk_redis_url_t url;
    if (imk_redis_url_parse(cfg->redis_url, &url) != 0) {
        return NULL;
    }
    const char *password = url.password[0] != '\0' ? url.password : NULL;
    if (cfg->redis_cluster[0] == '\0') {
        imk_cluster_addr_t node = {.port = url.port};
        snprintf(node.host, sizeof(node.host), "%s", url.host);
        return imk_cluster_client_create_single(&node, timeout_ms, NULL, password, url.db);
    }
    imk_cluster_addr_t seeds[IMK_CLUSTER_SEEDS_MAX];
    int n = imk_cluster_parse_seeds(cfg->redis_cluster, seeds, IMK_CLUSTER_SEEDS_MAX);
    return n > 0 ? imk_cluster_client_create(seeds, n, timeout_ms, NULL, password) : NULL;
}
