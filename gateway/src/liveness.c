/* Heartbeat (SET imkit:gw:<id> PX 3*interval, SADD imkit:gateways) and the sweep of dead
 * gateways (imkit_gateway_gone, or on a Redis Cluster imkit_presence_drop per client of the
 * dead one's gwc:<id>; idempotent: several gateways may run it at once). */
#include "liveness.h"
#include "imkit/err.h"
#include "imkit/job.h"
#include "imkit/keys.h"
#include "imkit/log.h"
#include "link.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A gateway id under check, with the context to act on it. */
struct peer {
    imk_gateway_t *gw;
    char id[128];
};

/* A command on the key argv[1]. */
static void command(imk_gateway_t *gw, imk_link_reply_fn *fn, void *arg, int argc,
                    const char **argv)
{
    size_t lens[8];
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    if (imk_link_command(gw->link, argv[1], fn, arg, argc, argv, lens) != 0 && fn != NULL) {
        fn(NULL, arg);
    }
}

/* FCALL <function> <numkeys> [key] <prefix> "" {gw: id, client?: client} [cluster "1"]: the
 * presence clean-up of dead gateway id, for every client it counted (imkit_gateway_gone) or
 * for one client, in its slot (imkit_presence_drop, on a Redis Cluster). */
static int drop_counts(imk_gateway_t *gw, const char *id, const char *client, imk_link_reply_fn *fn,
                       void *arg)
{
    imk_buf_t args = IMK_BUF_INIT;
    imk_mp_t mp;
    imk_mp_init(&mp, &args);
    imk_mp_map(&mp, client != NULL ? 2 : 1);
    imk_mp_cstr(&mp, "gw");
    imk_mp_cstr(&mp, id);
    if (client != NULL) {
        imk_mp_cstr(&mp, "client");
        imk_mp_cstr(&mp, client);
    }
    imk_link_fcall_t call = {client != NULL ? "imkit_presence_drop" : "imkit_gateway_gone",
                             false,
                             client,
                             "",
                             args.data,
                             args.len,
                             client != NULL ? "1" : NULL};
    int rc = mp.err == 0 ? imk_link_fcall(gw->link, &call, fn, arg) : IMK_EINVAL;
    imk_buf_deinit(&args);
    return rc;
}

/* The sweep of dead gateway id's counts. On a Redis Cluster its set gwc:<id> is read, each
 * client's count dropped in the client's slot, and only when every drop succeeded are the
 * set and the gateway's name removed: a sweep cut short is done again at the next tick. */
struct sweep {
    imk_gateway_t *gw;
    char id[128];
    size_t pending; /* drops not yet answered, plus one while they are sent */
    bool failed;
};

/* The gateway's counts are gone: its set (on a cluster) and its name go too. */
static void forget_gateway(imk_gateway_t *gw, const char *id)
{
    char set[IMK_KEY_MAX];
    if (gw->cfg->redis_cluster[0] != '\0') {
        imk_key_gateway_clients(set, sizeof(set), gw->cfg->redis_prefix, id);
        const char *del[] = {"DEL", set};
        command(gw, NULL, NULL, 2, del);
    }
    imk_key_gateways(set, sizeof(set), gw->cfg->redis_prefix);
    const char *srem[] = {"SREM", set, id};
    command(gw, NULL, NULL, 3, srem);
    IMK_WARN("gateway_gone", "gateway=%s", id);
}

static void sweep_step_done(struct sweep *sw)
{
    if (--sw->pending > 0) {
        return;
    }
    if (!sw->failed) {
        forget_gateway(sw->gw, sw->id);
    }
    free(sw);
}

static void on_dropped(struct redisReply *reply, void *arg)
{
    struct sweep *sw = arg;
    sw->failed = sw->failed || reply == NULL || reply->type == REDIS_REPLY_ERROR;
    sweep_step_done(sw);
}

static void on_counted(struct redisReply *reply, void *arg)
{
    struct sweep *sw = arg;
    sw->failed = reply == NULL || reply->type != REDIS_REPLY_ARRAY;
    for (size_t i = 0; !sw->failed && i < reply->elements; i++) {
        const redisReply *client = reply->element[i];
        if (client->type != REDIS_REPLY_STRING ||
            drop_counts(sw->gw, sw->id, client->str, on_dropped, sw) != 0) {
            sw->failed = true;
        } else {
            sw->pending++;
        }
    }
    sweep_step_done(sw);
}

static void clean_dead(imk_gateway_t *gw, const char *id)
{
    if (gw->cfg->redis_cluster[0] == '\0') {
        drop_counts(gw, id, NULL, NULL, NULL);
        forget_gateway(gw, id);
        return;
    }
    struct sweep *sw = calloc(1, sizeof(*sw));
    if (sw == NULL) {
        return;
    }
    sw->gw = gw;
    sw->pending = 1;
    snprintf(sw->id, sizeof(sw->id), "%s", id);
    char set[IMK_KEY_MAX];
    imk_key_gateway_clients(set, sizeof(set), gw->cfg->redis_prefix, id);
    const char *members[] = {"SMEMBERS", set};
    command(gw, on_counted, sw, 2, members);
}

static void on_peer_checked(struct redisReply *reply, void *arg)
{
    struct peer *p = arg;
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        clean_dead(p->gw, p->id);
    }
    free(p);
}

static void on_members(struct redisReply *reply, void *arg)
{
    imk_gateway_t *gw = arg;
    for (size_t i = 0; reply != NULL && reply->type == REDIS_REPLY_ARRAY && i < reply->elements;
         i++) {
        const char *id = reply->element[i]->str;
        struct peer *p = malloc(sizeof(*p));
        if (p == NULL || strcmp(id, gw->id) == 0 || strlen(id) >= sizeof(p->id)) {
            free(p);
            continue;
        }
        p->gw = gw;
        snprintf(p->id, sizeof(p->id), "%s", id);
        char key[IMK_KEY_MAX];
        imk_key_gateway_alive(key, sizeof(key), gw->cfg->redis_prefix, id);
        const char *exists[] = {"EXISTS", key};
        command(gw, on_peer_checked, p, 2, exists);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    imk_gateway_t *gw = arg;
    char key[IMK_KEY_MAX], set[IMK_KEY_MAX], ttl[16];
    imk_key_gateway_alive(key, sizeof(key), gw->cfg->redis_prefix, gw->id);
    imk_key_gateways(set, sizeof(set), gw->cfg->redis_prefix);
    snprintf(ttl, sizeof(ttl), "%d", gw->cfg->gateway_heartbeat_ms * 3);
    const char *beat[] = {"SET", key, "1", "PX", ttl};
    const char *announce[] = {"SADD", set, gw->id};
    const char *members[] = {"SMEMBERS", set};
    command(gw, NULL, NULL, 5, beat);
    command(gw, NULL, NULL, 3, announce);
    command(gw, on_members, gw, 2, members);
}

struct event *imk_liveness_start(imk_gateway_t *gw)
{
    struct event *ev = event_new(gw->base, -1, EV_PERSIST, on_tick, gw);
    struct timeval tv = {gw->cfg->gateway_heartbeat_ms / 1000,
                         (gw->cfg->gateway_heartbeat_ms % 1000) * 1000};
    if (ev != NULL) {
        evtimer_add(ev, &tv);
        /* Announce this gateway at once rather than after a whole interval: one that dies
         * early must still be found by the sweep, or its clients would stay online. */
        struct timeval soon = {0, 300 * 1000};
        event_base_once(gw->base, -1, EV_TIMEOUT, on_tick, gw, &soon);
    }
    return ev;
}
