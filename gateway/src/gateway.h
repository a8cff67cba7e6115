/* The gateway's shared context: what every module of imkit-gateway reaches through one
 * pointer (configuration, loop, Redis links, waiting requests, local fan-out, sessions).
 * Created by main.c; modules never hold globals. */
#ifndef IMKIT_GATEWAY_H
#define IMKIT_GATEWAY_H

#include "imkit/config.h"
#include "imkit/jwt.h"
#include "imkit/keys.h"
#include "imkit/map.h"
#include "stats.h"

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct imk_link;
struct imk_pending;
struct imk_fanout;
struct imk_public;
struct imk_admin;
struct imk_tls;
struct imk_admission;

typedef struct imk_gateway {
    const imk_config_t *cfg;
    struct event_base *base;
    char id[128];
    char boot[17]; /* random per process start: job ids never repeat across restarts */
    /* "<id>.<boot>": where workers send this process's answers. A gateway restarted under
     * the same id listens on a new channel, so answers meant for its previous life (jobs
     * still queued when it died) reach nobody instead of the wrong request. */
    char answers[160];
    char (*job_streams)[IMK_KEY_MAX]; /* jobs.partitions stream names (imk_cluster_job_streams) */
    imk_jwt_keys_t *jwt;
    struct imk_tls *tls; /* NULL: plain TCP */
    struct imk_link *link;
    struct imk_pending *pending;
    struct imk_fanout *fanout;
    struct imk_public *public_listener;
    struct imk_admin *admin;
    struct imk_admission *admission; /* connection caps of the public listener */
    imk_map_t *sessions;             /* session id -> imk_session_t */
    imk_stats_t stats;               /* counters since start, for /metrics */
    uint64_t next_session_id;
    bool stopping;
} imk_gateway_t;

/* Milliseconds since the epoch, the server clock of the contract. */
int64_t imk_now_ms(void);

#endif
