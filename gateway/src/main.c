/* imkit-gateway: wires the configuration, the Redis links, the listeners and the fan-out
 * together, runs the event loop, and stops gracefully on SIGTERM or SIGINT. */
#include "admin.h"
#include "admission.h"
#include "dispatch.h"
#include "fanout.h"
#include "gateway.h"
#include "imkit/cluster.h"
#include "imkit/err.h"
#include "imkit/ids.h"
#include "imkit/keys.h"
#include "imkit/log.h"
#include "imkit/redis_url.h"
#include "json_arena.h"
#include "link.h"
#include "liveness.h"
#include "pending.h"
#include "processes.h"
#include "public.h"
#include "session.h"
#include "tls.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

extern char **environ;

#define DRAIN_MS 1000

int64_t imk_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Every subscribed channel's message: an answer to us, or an event to fan out. */
static void on_channel_message(const char *channel, size_t channel_len, const char *payload,
                               size_t payload_len, void *arg)
{
    imk_gateway_t *gw = arg;
    char own[IMK_KEY_MAX];
    int own_len = imk_channel_gateway(own, sizeof(own), gw->cfg->redis_prefix, gw->answers);
    if (own_len > 0 && (size_t)own_len == channel_len && memcmp(own, channel, channel_len) == 0) {
        imk_dispatch_on_answer(gw, payload, payload_len);
    } else {
        imk_fanout_deliver(gw->fanout, channel, channel_len, payload, payload_len);
    }
}

static void on_channel_subscribed(const char *channel, size_t len, void *arg)
{
    imk_gateway_t *gw = arg;
    imk_fanout_on_subscribed(gw->fanout, channel, len);
}

static void on_drained(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopexit(arg, NULL);
}

/* SIGTERM/SIGINT: stop accepting, close every session with 1001, give the close frames a
 * moment to leave, then leave the loop. */
static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    imk_gateway_t *gw = arg;
    if (gw->stopping) {
        return;
    }
    gw->stopping = true;
    IMK_INFO("stopping", "sessions=%zu", imk_map_size(gw->sessions));
    imk_public_stop(gw->public_listener);
    imk_session_close_all(gw);
    struct timeval drain = {0, DRAIN_MS * 1000};
    event_base_once(gw->base, -1, EV_TIMEOUT, on_drained, gw->base, &drain);
}

static void default_id(imk_gateway_t *gw)
{
    if (gw->cfg->gateway_id[0] != '\0') {
        snprintf(gw->id, sizeof(gw->id), "%s", gw->cfg->gateway_id);
        return;
    }
    char host[64] = "gateway";
    gethostname(host, sizeof(host) - 1);
    snprintf(gw->id, sizeof(gw->id), "%s-%ld", host, (long)getpid());
}

static int start(imk_gateway_t *gw)
{
    char channel[IMK_KEY_MAX];
    gw->jwt = imk_jwt_keys_create(gw->cfg->auth_jwt_secrets);
    if (gw->jwt == NULL) {
        fprintf(stderr, "imkit-gateway: auth.jwt_secrets is malformed\n");
        return -1;
    }
    if (gw->cfg->tls_cert[0] != '\0') {
        gw->tls = imk_tls_create(gw->cfg->tls_cert, gw->cfg->tls_key);
        if (gw->tls == NULL) {
            fprintf(stderr, "imkit-gateway: cannot load tls.cert / tls.key\n");
            return -1;
        }
    }
    gw->job_streams = calloc((size_t)gw->cfg->jobs_partitions, sizeof(*gw->job_streams));
    if (gw->job_streams == NULL ||
        imk_cluster_job_streams(gw->job_streams, gw->cfg->jobs_partitions, gw->cfg->redis_prefix,
                                gw->cfg->redis_cluster[0] != '\0') != 0) {
        fprintf(stderr, "imkit-gateway: redis.prefix: too long for the job streams' names\n");
        return -1;
    }
    gw->admission =
        imk_admission_create(gw->cfg->limits_connections, gw->cfg->limits_connections_per_ip);
    gw->sessions = imk_map_create();
    gw->pending = imk_pending_create(gw->base, gw->cfg->gateway_request_timeout_ms);
    gw->fanout = imk_fanout_create(gw);
    static const imk_link_callbacks_t callbacks = {on_channel_message, NULL, on_channel_subscribed};
    gw->link = imk_link_create(gw->base, gw->cfg, &callbacks, gw);
    if (gw->admission == NULL || gw->sessions == NULL || gw->pending == NULL ||
        gw->fanout == NULL || gw->link == NULL) {
        fprintf(stderr,
                "imkit-gateway: cannot start (bad redis.url, redis.cluster, or no memory)\n");
        return -1;
    }
    imk_channel_gateway(channel, sizeof(channel), gw->cfg->redis_prefix, gw->answers);
    imk_link_subscribe(gw->link, channel, strlen(channel));
    imk_link_start(gw->link);
    gw->public_listener = imk_public_create(gw);
    gw->admin = imk_admin_create(gw);
    return gw->public_listener != NULL && gw->admin != NULL ? 0 : -1;
}

static void stop(imk_gateway_t *gw)
{
    /* In this order: sessions forget their requests; the links fail what is in flight,
     * which answers waiting admin requests through the pending table; the table answers
     * the rest; only then do the listeners go. */
    if (gw->sessions != NULL) {
        imk_session_destroy_all(gw);
    }
    imk_link_destroy(gw->link);
    imk_pending_destroy(gw->pending);
    imk_admin_destroy(gw->admin);
    imk_public_destroy(gw->public_listener);
    imk_fanout_destroy(gw->fanout);
    imk_map_destroy(gw->sessions);
    imk_jwt_keys_destroy(gw->jwt);
    imk_tls_destroy(gw->tls);
    imk_admission_destroy(gw->admission);
    free(gw->job_streams);
}

/* The loop with epoll's changelist: the interest changes of an iteration are applied at its
 * end, so that a socket's removal and addition within it (a connection leaving its HTTP
 * bufferevent for its WebSocket at the upgrade) cost no system call. */
static struct event_base *new_event_base(void)
{
    struct event_config *ec = event_config_new();
    if (ec == NULL) {
        return NULL;
    }
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(ec);
    event_config_free(ec);
    return base;
}

/* One gateway process: its links, listeners and event loop, until SIGTERM or SIGINT. */
static int run_gateway(imk_config_t *cfg)
{
    imk_gateway_t gw;
    memset(&gw, 0, sizeof(gw));
    gw.cfg = cfg;
    gw.base = new_event_base();
    default_id(&gw);
    imk_id_random(gw.boot);
    snprintf(gw.answers, sizeof(gw.answers), "%s.%s", gw.id, gw.boot);
    if (cfg->dev_demo_tokens) {
        IMK_WARN("dev_demo_tokens",
                 "note=\"DEVELOPMENT ONLY: /dev/token gives anyone a token for any id; never "
                 "enable dev.demo_tokens in production\"");
    }
    int status = 1;
    if (gw.base != NULL && start(&gw) == 0) {
        struct event *sigterm = evsignal_new(gw.base, SIGTERM, on_stop_signal, &gw);
        struct event *sigint = evsignal_new(gw.base, SIGINT, on_stop_signal, &gw);
        struct event *heartbeat = imk_liveness_start(&gw);
        evsignal_add(sigterm, NULL);
        evsignal_add(sigint, NULL);
        char redis[512];
        imk_redis_url_redact(cfg->redis_url, redis, sizeof(redis));
        IMK_INFO("start", "gateway=%s redis=%s%s", gw.id,
                 cfg->redis_cluster[0] != '\0' ? cfg->redis_cluster : redis,
                 cfg->redis_cluster[0] != '\0' ? " (cluster seeds)" : "");
        event_base_dispatch(gw.base);
        event_free(sigterm);
        event_free(sigint);
        if (heartbeat != NULL) {
            event_free(heartbeat);
        }
        status = 0;
    }
    stop(&gw);
    if (gw.base != NULL) {
        event_base_free(gw.base);
    }
    IMK_INFO("stopped", "gateway=%s", gw.id);
    return status;
}

int main(int argc, char **argv)
{
    imk_config_t cfg;
    char err[512];
    int rc = imk_config_load(&cfg, argc, argv, environ, "imkit-gateway", err, sizeof(err));
    if (rc != IMK_CONFIG_RUN) {
        if (rc < 0) {
            fprintf(stderr, "imkit-gateway: %s\n", err);
        }
        imk_config_deinit(&cfg);
        return rc < 0 ? 2 : 0;
    }
    imk_log_setup(cfg.log_level, cfg.log_format, "imkit-gateway");
    if (imk_cluster_check_config(cfg.redis_cluster, cfg.redis_prefix, err, sizeof(err)) != 0) {
        fprintf(stderr, "imkit-gateway: %s\n", err);
        imk_config_deinit(&cfg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    imk_json_arena_install();
    int processes = imk_processes_count(&cfg);
    int status = 0;
    if (processes > 1 && !imk_processes_supervise(&cfg, processes, &status)) {
        imk_config_deinit(&cfg);
        return status;
    }
    status = run_gateway(&cfg);
    imk_config_deinit(&cfg);
    return status;
}
