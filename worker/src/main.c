/* imkit-worker: loads the configuration, then runs the job consumer until SIGTERM or
 * SIGINT, on one Redis (redis.url) or a Redis Cluster (redis.cluster). */
#include "consumer.h"
#include "webhook.h"
#include "imkit/cluster.h"
#include "imkit/config.h"
#include "imkit/log.h"
#include "imkit/redis_url.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int main(int argc, char **argv)
{
    imk_config_t cfg;
    char err[512];
    int rc = imk_config_load(&cfg, argc, argv, environ, "imkit-worker", err, sizeof(err));
    if (rc != IMK_CONFIG_RUN) {
        if (rc < 0) {
            fprintf(stderr, "imkit-worker: %s\n", err);
        }
        imk_config_deinit(&cfg);
        return rc < 0 ? 2 : 0;
    }
    imk_log_setup(cfg.log_level, cfg.log_format, "imkit-worker");
    if (imk_cluster_check_config(cfg.redis_cluster, cfg.redis_prefix, err, sizeof(err)) != 0) {
        fprintf(stderr, "imkit-worker: %s\n", err);
        imk_config_deinit(&cfg);
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal; /* no SA_RESTART: a blocking read returns at once */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    char name[128];
    snprintf(name, sizeof(name), "%s-%ld", host, (long)getpid());
    char redis[512];
    if (cfg.redis_cluster[0] != '\0') {
        snprintf(redis, sizeof(redis), "cluster:%s", cfg.redis_cluster);
    } else {
        imk_redis_url_redact(cfg.redis_url, redis, sizeof(redis));
    }
    imk_consumer_t *consumer = imk_consumer_create(&cfg, name);
    if (consumer == NULL) {
        fprintf(stderr, "imkit-worker: bad redis.url '%s', redis.prefix too long, or no memory\n",
                redis);
        imk_config_deinit(&cfg);
        return 2;
    }
    imk_webhook_t *webhook = imk_webhook_create(&cfg, name);
    if (webhook == NULL || imk_webhook_start(webhook, &stop_requested) != 0) {
        fprintf(stderr, "imkit-worker: cannot start the webhook deliverer\n");
        imk_webhook_destroy(webhook);
        imk_consumer_destroy(consumer);
        imk_config_deinit(&cfg);
        return 1;
    }
    IMK_INFO("start", "consumer=%s redis=%s", name, redis);
    imk_consumer_run(consumer, &stop_requested);
    imk_webhook_destroy(webhook);
    imk_consumer_destroy(consumer);
    imk_config_deinit(&cfg);
    return 0;
}
