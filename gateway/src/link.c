/* Redis links of the gateway: per Redis master, a command connection (hiredis async) and a
 * subscriber (subscriber.c); connect, authenticate, select, reconnect with backoff,
 * resubscribe. On a single Redis there is one master; in cluster mode (redis.cluster) the
 * masters come from CLUSTER SLOTS, commands go to the master of their route's slot, MOVED
 * and ASK are followed, channels are sharded (SSUBSCRIBE, SPUBLISH). Everything runs on the
 * gateway's event loop. */
#include "link.h"
#include "imkit/cluster.h"
#include "imkit/err.h"
#include "imkit/keys.h"
#include "imkit/log.h"
#include "imkit/map.h"
#include "imkit/redis_url.h"
#include "redis_events.h"
#include "subscriber.h"

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define STALL_MS 2000   /* commands waiting this long with no reply at all: Redis hangs */
#define REDIRECTS_MAX 5 /* MOVED/ASK followed per command */
#define REFRESH_RETRY_MS 500
#define REFRESH_EVERY_MS 5000 /* cluster mode: the slot map is read again this often */
#define NODE_STALL_MS                                                                              \
    5000 /* cluster mode: a master this long without any reply while                               \
            commands wait is dropped and connected again */
/* One Redis master: its command connection and its subscriber. */
struct node {
    imk_link_t *link;
    imk_cluster_addr_t addr;
    redisAsyncContext *ac;
    bool ready;
    bool connected_before;
    int backoff_ms;
    struct event *retry;
    imk_subscriber_t *sub;
    bool sub_before;
    size_t outstanding; /* commands sent on ac and not answered yet */
    int64_t last_reply_ms;
};

struct imk_link {
    struct event_base *base;
    const imk_config_t *cfg;
    imk_redis_url_t url;
    bool cluster;
    imk_cluster_addr_t seeds[IMK_CLUSTER_SEEDS_MAX];
    int n_seeds;
    struct node **nodes; /* every node we speak to */
    size_t n_nodes;
    imk_cluster_map_t *map; /* cluster mode: which master owns each slot; NULL before */
    struct node **owner;    /* cluster mode: node of map->masters[i] */
    bool refreshing;        /* a CLUSTER SLOTS is in flight */
    size_t refresh_next;    /* the node to ask first next time: each refresh asks another */
    struct event *refresh;  /* cluster mode: asks for the map again */
    struct event *tick;     /* cluster mode: every REFRESH_EVERY_MS, a refresh */
    struct event *watchdog; /* cluster mode: every second, drops stalled masters */
    imk_map_t *channels;    /* subscribed channel -> struct node * it is subscribed on, or
                               the link itself while not placed */
    imk_link_stats_t stats;
    imk_link_callbacks_t cb;
    void *arg;
};

/* A command in flight: the caller's callback and argument, the command (kept to follow a
 * redirect), and when it was sent. */
struct call {
    imk_link_t *link;
    imk_link_reply_fn *fn;
    void *arg;
    int64_t sent_us;
    char *cmd;
    size_t cmd_len;
    int redirects;
};

static void connect_node(struct node *n);

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* A command (or CLUSTER SLOTS) sent on n's connection: the wait starts with the first. */
static void node_sent(struct node *n)
{
    if (n->outstanding++ == 0) {
        n->last_reply_ms = now_ms();
    }
}

/* A reply (or its failure) came on n's connection; n NULL: the node is gone. */
static void node_answered(struct node *n)
{
    if (n != NULL) {
        n->outstanding--;
        n->last_reply_ms = now_ms();
    }
}

/* Commands have waited over ms on n with no reply at all: its Redis hangs (paused,
 * overloaded, or cut off without the socket noticing). */
static bool node_stalled(const struct node *n, int64_t now, int64_t ms)
{
    return n->outstanding > 0 && now - n->last_reply_ms > ms;
}
static void schedule_refresh(imk_link_t *link, int ms);

/* ---- routing ---------------------------------------------------------------------- */

/* The node a route (a key, or any name with the key's hash tag) goes to; NULL when the slot
 * has no known master. NULL route: the first ready node. */
static struct node *node_for(const imk_link_t *link, const char *route, size_t len)
{
    if (!link->cluster || route == NULL) {
        for (size_t i = 0; i < link->n_nodes; i++) {
            if (link->nodes[i]->ready) {
                return link->nodes[i];
            }
        }
        return link->cluster || link->n_nodes == 0 ? NULL : link->nodes[0];
    }
    if (link->map == NULL) {
        return NULL;
    }
    int16_t i = link->map->owner[imk_cluster_slot(route, len)];
    return i >= 0 ? link->owner[i] : NULL;
}

static struct node *find_node(const imk_link_t *link, const imk_cluster_addr_t *addr)
{
    for (size_t i = 0; i < link->n_nodes; i++) {
        struct node *n = link->nodes[i];
        if (n->addr.port == addr->port && strcmp(n->addr.host, addr->host) == 0) {
            return n;
        }
    }
    return NULL;
}

/* ---- subscriptions ---------------------------------------------------------------- */

static void on_sub_ready(void *arg);
static void on_sub_message(const char *channel, size_t channel_len, const char *payload,
                           size_t payload_len, void *arg);
static void on_sub_subscribed(const char *channel, size_t len, void *arg);
static void on_sub_unsubscribed(const char *channel, size_t len, void *arg);
static void on_sub_error(const char *err, size_t len, void *arg);

static const imk_subscriber_callbacks_t sub_callbacks = {
    .on_ready = on_sub_ready,
    .on_message = on_sub_message,
    .on_subscribed = on_sub_subscribed,
    .on_unsubscribed = on_sub_unsubscribed,
    .on_error = on_sub_error,
};

/* Subscribes channel on the node that owns it, when that node's subscriber is up; records
 * where (the link itself: not placed yet). */
static void place_channel(imk_link_t *link, const char *channel, size_t len)
{
    struct node *n = node_for(link, channel, len);
    void *where = link;
    if (n != NULL && imk_subscriber_subscribe(n->sub, channel, len) == 0) {
        where = n;
    }
    imk_map_put(link->channels, channel, len, where);
}

struct replace_args {
    imk_link_t *link;
    struct node *only; /* NULL: every channel not on its owner */
};

static void replace_one(const char *channel, size_t len, void *value, void *arg)
{
    struct replace_args *ra = arg;
    struct node *owner = node_for(ra->link, channel, len);
    if (owner == NULL) {
        return; /* no known master for its slot now: leave it where it is */
    }
    if (ra->only != NULL ? owner == ra->only : value != owner) {
        if (value != ra->link && value != owner &&
            imk_subscriber_ready(((struct node *)value)->sub)) {
            imk_subscriber_unsubscribe(((struct node *)value)->sub, channel, len);
        }
        place_channel(ra->link, channel, len);
    }
}

/* Subscribes every channel owned by node `only` (just connected), or every channel that is
 * not on its owner (after a map change). */
static void replace_channels(imk_link_t *link, struct node *only)
{
    struct replace_args ra = {link, only};
    imk_map_foreach(link->channels, replace_one, &ra);
}

static void on_sub_ready(void *arg)
{
    struct node *n = arg;
    imk_link_t *link = n->link;
    if (n->sub_before) {
        link->stats.reconnects_subscriber++;
    }
    n->sub_before = true;
    replace_channels(link, n);
    if (link->cb.on_ready != NULL) {
        link->cb.on_ready(link->arg);
    }
}

static void on_sub_message(const char *channel, size_t channel_len, const char *payload,
                           size_t payload_len, void *arg)
{
    struct node *n = arg;
    n->link->cb.on_message(channel, channel_len, payload, payload_len, n->link->arg);
}

static void on_sub_subscribed(const char *channel, size_t len, void *arg)
{
    struct node *n = arg;
    if (n->link->cb.on_subscribed != NULL) {
        n->link->cb.on_subscribed(channel, len, n->link->arg);
    }
}

/* A subscription ended. On a cluster, one still wanted on this node: Redis ended it (its
 * slot moved), or it is the late confirmation of one we ended and asked for again (a
 * harmless extra refresh). A single Redis ends none by itself. */
static void on_sub_unsubscribed(const char *channel, size_t len, void *arg)
{
    struct node *n = arg;
    imk_link_t *link = n->link;
    if (link->cluster && imk_map_get(link->channels, channel, len) == n) {
        imk_map_put(link->channels, channel, len, link);
        schedule_refresh(link, 0);
    }
}

struct unplace_args {
    imk_link_t *link;
    struct node *from;
};

static void unplace_one(const char *channel, size_t len, void *value, void *arg)
{
    struct unplace_args *ua = arg;
    if (value == ua->from) {
        imk_map_put(ua->link->channels, channel, len, ua->link);
    }
}

/* Marks every channel subscribed on node `from` as not placed. */
static void unplace_channels(imk_link_t *link, struct node *from)
{
    struct unplace_args ua = {link, from};
    imk_map_foreach(link->channels, unplace_one, &ua);
}

/* A refused (S)SUBSCRIBE does not say which channel: every channel of the node is placed
 * again once the map has been read. */
static void on_sub_error(const char *err, size_t len, void *arg)
{
    struct node *n = arg;
    IMK_WARN("redis_subscribe_refused", "node=%s:%d error=\"%.*s\"", n->addr.host, n->addr.port,
             (int)len, err);
    unplace_channels(n->link, n);
    schedule_refresh(n->link, REFRESH_RETRY_MS);
}

/* ---- command connections ---------------------------------------------------------- */

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_node(arg);
}

static void schedule_retry(struct node *n)
{
    struct timeval tv = {n->backoff_ms / 1000, (n->backoff_ms % 1000) * 1000};
    evtimer_add(n->retry, &tv);
    n->backoff_ms = n->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : n->backoff_ms * 2;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct node *n = ac->data;
    if (status != REDIS_OK) {
        IMK_WARN("redis_connect_failed", "link=command node=%s:%d error=\"%s\"", n->addr.host,
                 n->addr.port, ac->errstr);
        n->ac = NULL; /* hiredis frees the context after this callback */
        schedule_retry(n);
        if (n->link->cluster) {
            schedule_refresh(n->link, REFRESH_RETRY_MS);
        }
        return;
    }
    n->ready = true;
    n->backoff_ms = BACKOFF_MIN_MS;
    if (n->connected_before) {
        n->link->stats.reconnects_command++;
    }
    n->connected_before = true;
    IMK_INFO("redis_connected", "link=command node=%s:%d", n->addr.host, n->addr.port);
    if (n->link->cluster && n->link->map == NULL) {
        schedule_refresh(n->link, 0);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct node *n = ac->data;
    (void)status;
    IMK_WARN("redis_disconnected", "link=command node=%s:%d error=\"%s\"", n->addr.host,
             n->addr.port, ac->err ? ac->errstr : "closed");
    n->ready = false;
    n->ac = NULL;
    schedule_retry(n);
    if (n->link->cluster) {
        schedule_refresh(n->link, REFRESH_RETRY_MS); /* a failover may be under way */
    }
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    redisReply *reply = r;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        IMK_ERROR("redis_setup", "error=\"%s\"", reply->str);
        redisAsyncDisconnect(ac);
    }
}

static void connect_node(struct node *n)
{
    imk_link_t *link = n->link;
    redisAsyncContext *ac = redisAsyncConnect(n->addr.host, n->addr.port);
    if (ac == NULL || ac->err) {
        IMK_WARN("redis_connect_failed", "link=command node=%s:%d error=\"%s\"", n->addr.host,
                 n->addr.port, ac != NULL ? ac->errstr : "no memory");
        if (ac != NULL) {
            redisAsyncFree(ac);
        }
        schedule_retry(n);
        return;
    }
    if (imk_redis_events_attach(ac, link->base) != 0) {
        IMK_WARN("redis_connect_failed", "link=command node=%s:%d error=\"no memory\"",
                 n->addr.host, n->addr.port);
        redisAsyncFree(ac);
        schedule_retry(n);
        return;
    }
    ac->data = n;
    n->ac = ac;
    n->outstanding = 0;
    redisEnableKeepAlive(&ac->c); /* a master whose host vanished is noticed */
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Queued before anything else, so they run first once connected. */
    if (link->url.password[0] != '\0') {
        redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s", link->url.password);
    }
    if (link->url.db != 0 && !link->cluster) {
        redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %d", link->url.db);
    }
}

static void free_node(struct node *n)
{
    if (n == NULL) {
        return;
    }
    if (n->retry != NULL) {
        event_free(n->retry);
    }
    if (n->ac != NULL) {
        redisAsyncContext *ac = n->ac;
        n->ac = NULL;
        ac->onDisconnect = NULL; /* we are going away: no retry */
        ac->data = NULL;         /* replies in flight fail without touching the node */
        redisAsyncFree(ac);
    }
    imk_subscriber_destroy(n->sub);
    free(n);
}

/* A new node, connecting. NULL when out of memory. */
static struct node *add_node(imk_link_t *link, const imk_cluster_addr_t *addr)
{
    struct node **more = realloc(link->nodes, (link->n_nodes + 1) * sizeof(*more));
    struct node *n = calloc(1, sizeof(*n));
    if (more != NULL) {
        link->nodes = more;
    }
    if (more == NULL || n == NULL) {
        free(n);
        return NULL;
    }
    n->link = link;
    n->addr = *addr;
    n->backoff_ms = BACKOFF_MIN_MS;
    n->retry = evtimer_new(link->base, on_retry, n);
    n->sub = imk_subscriber_create(link->base, addr->host, addr->port, link->url.password,
                                   link->cluster, &sub_callbacks, n);
    if (n->retry == NULL || n->sub == NULL) {
        free_node(n);
        return NULL;
    }
    link->nodes[link->n_nodes++] = n;
    connect_node(n);
    imk_subscriber_start(n->sub);
    return n;
}

/* ---- the slot map (cluster mode) -------------------------------------------------- */

/* Closes the nodes that are no longer masters (one still waiting for replies, such as one a
 * redirect named, stays until a later map); their channels are placed again. The list is
 * whole again before any node is freed: freeing fails its calls, whose callbacks may send. */
static void drop_stale_nodes(imk_link_t *link)
{
    size_t kept = 0, dropped = 0;
    struct node **gone = malloc(link->n_nodes * sizeof(*gone));
    for (size_t i = 0; i < link->n_nodes; i++) {
        struct node *n = link->nodes[i];
        if (gone == NULL || imk_cluster_map_find(link->map, &n->addr) >= 0 || n->outstanding > 0) {
            link->nodes[kept++] = n;
        } else {
            gone[dropped++] = n;
        }
    }
    link->n_nodes = kept;
    for (size_t i = 0; i < dropped; i++) {
        IMK_INFO("redis_node_dropped", "node=%s:%d", gone[i]->addr.host, gone[i]->addr.port);
        unplace_channels(link, gone[i]);
        free_node(gone[i]);
    }
    free(gone);
}

static void apply_map(imk_link_t *link, imk_cluster_map_t *map)
{
    struct node **owner = calloc((size_t)map->n + 1, sizeof(*owner));
    if (owner == NULL) {
        free(map);
        return;
    }
    for (int i = 0; i < map->n; i++) {
        owner[i] = find_node(link, &map->masters[i]);
        if (owner[i] == NULL) {
            owner[i] = add_node(link, &map->masters[i]);
        }
    }
    free(link->map);
    free(link->owner);
    link->map = map;
    link->owner = owner;
    drop_stale_nodes(link);
    replace_channels(link, NULL);
}

static void on_slots(redisAsyncContext *ac, void *r, void *privdata)
{
    imk_link_t *link = privdata;
    struct node *n = ac->data;
    redisReply *reply = r;
    link->refreshing = false;
    node_answered(n);
    if (n == NULL || reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        schedule_refresh(link, REFRESH_RETRY_MS);
        return;
    }
    imk_cluster_map_t *map = malloc(sizeof(*map));
    if (map == NULL || imk_cluster_map_from_reply(map, reply, &n->addr) != 0 || map->n == 0) {
        IMK_WARN("redis_cluster_slots", "node=%s:%d error=\"no usable slot map\"", n->addr.host,
                 n->addr.port);
        free(map);
        schedule_refresh(link, REFRESH_RETRY_MS);
        return;
    }
    apply_map(link, map);
}

/* A ready node to ask for the map: each time another one, so that a node that stopped
 * answering is not asked forever. NULL when none is ready. */
static struct node *next_to_ask(imk_link_t *link)
{
    for (size_t k = 0; k < link->n_nodes; k++) {
        struct node *n = link->nodes[(link->refresh_next + k) % link->n_nodes];
        if (n->ready) {
            link->refresh_next = (link->refresh_next + k + 1) % link->n_nodes;
            return n;
        }
    }
    return NULL;
}

/* Asks a ready node (a master, else a seed) for CLUSTER SLOTS. */
static void on_refresh(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    imk_link_t *link = arg;
    if (link->refreshing) {
        return;
    }
    struct node *n = next_to_ask(link);
    if (n == NULL) {
        for (int i = 0; i < link->n_seeds; i++) {
            if (find_node(link, &link->seeds[i]) == NULL) {
                add_node(link, &link->seeds[i]); /* asked once connected (on_connect) */
                return;
            }
        }
        schedule_refresh(link, REFRESH_RETRY_MS);
        return;
    }
    if (redisAsyncCommand(n->ac, on_slots, link, "CLUSTER SLOTS") == REDIS_OK) {
        link->refreshing = true;
        node_sent(n);
    } else {
        schedule_refresh(link, REFRESH_RETRY_MS);
    }
}

/* Drops the command connection of a master that has left commands unanswered for
 * NODE_STALL_MS (a paused or cut-off host the socket does not notice): its calls fail
 * (answered unavailable), it connects again, and the map is read from another node. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    imk_link_t *link = arg;
    int64_t now = now_ms();
    for (size_t i = 0; i < link->n_nodes; i++) {
        struct node *n = link->nodes[i];
        if (n->ac != NULL && node_stalled(n, now, NODE_STALL_MS)) {
            IMK_WARN("redis_node_stalled", "node=%s:%d waiting=%zu ms=%lld", n->addr.host,
                     n->addr.port, n->outstanding, (long long)(now - n->last_reply_ms));
            redisAsyncContext *ac = n->ac;
            n->ac = NULL;
            n->ready = false;
            ac->onDisconnect = NULL; /* retried here, connected or not */
            redisAsyncFree(ac);      /* its calls get NULL: answered unavailable */
            schedule_retry(n);
            schedule_refresh(link, 0);
            return; /* the list may have changed: one a second is enough */
        }
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    schedule_refresh(arg, 0);
}

static void schedule_refresh(imk_link_t *link, int ms)
{
    if (!link->cluster || evtimer_pending(link->refresh, NULL)) {
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(link->refresh, &tv);
}

/* ---- life cycle ------------------------------------------------------------------- */

imk_link_t *imk_link_create(struct event_base *base, const imk_config_t *cfg,
                            const imk_link_callbacks_t *callbacks, void *arg)
{
    imk_link_t *link = calloc(1, sizeof(*link));
    if (link == NULL) {
        return NULL;
    }
    link->base = base;
    link->cfg = cfg;
    link->cb = *callbacks;
    link->arg = arg;
    link->cluster = cfg->redis_cluster != NULL && cfg->redis_cluster[0] != '\0';
    link->channels = imk_map_create();
    link->refresh = evtimer_new(base, on_refresh, link);
    link->tick = event_new(base, -1, EV_PERSIST, on_tick, link);
    link->watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, link);
    if (link->channels == NULL || link->refresh == NULL || link->tick == NULL ||
        link->watchdog == NULL || imk_redis_url_parse(cfg->redis_url, &link->url) != 0) {
        imk_link_destroy(link);
        return NULL;
    }
    if (link->cluster) {
        link->n_seeds =
            imk_cluster_parse_seeds(cfg->redis_cluster, link->seeds, IMK_CLUSTER_SEEDS_MAX);
        if (link->n_seeds < 0) {
            imk_link_destroy(link);
            return NULL;
        }
    }
    return link;
}

void imk_link_destroy(imk_link_t *link)
{
    if (link == NULL) {
        return;
    }
    for (size_t i = 0; i < link->n_nodes; i++) {
        free_node(link->nodes[i]);
    }
    free(link->nodes);
    free(link->map);
    free(link->owner);
    if (link->refresh != NULL) {
        event_free(link->refresh);
    }
    if (link->tick != NULL) {
        event_free(link->tick);
    }
    if (link->watchdog != NULL) {
        event_free(link->watchdog);
    }
    imk_map_destroy(link->channels);
    free(link);
}

int imk_link_start(imk_link_t *link)
{
    if (link->cluster) {
        struct timeval every = {REFRESH_EVERY_MS / 1000, (REFRESH_EVERY_MS % 1000) * 1000};
        evtimer_add(link->tick, &every);
        struct timeval second = {1, 0};
        evtimer_add(link->watchdog, &second);
        for (int i = 0; i < link->n_seeds; i++) {
            if (add_node(link, &link->seeds[i]) == NULL) {
                return IMK_ENOMEM;
            }
        }
        return 0;
    }
    imk_cluster_addr_t addr = {.port = link->url.port};
    snprintf(addr.host, sizeof(addr.host), "%s", link->url.host);
    return add_node(link, &addr) != NULL ? 0 : IMK_ENOMEM;
}

static bool node_ready(const struct node *n)
{
    return n != NULL && n->ready && imk_subscriber_ready(n->sub);
}

/* Every master connected: the one Redis, or every master of the cluster's map. */
bool imk_link_ready(const imk_link_t *link)
{
    if (!link->cluster) {
        return link->n_nodes > 0 && node_ready(link->nodes[0]);
    }
    if (link->map == NULL) {
        return false;
    }
    for (int i = 0; i < link->map->n; i++) {
        if (!node_ready(link->owner[i])) {
            return false;
        }
    }
    return true;
}

const imk_link_stats_t *imk_link_stats(const imk_link_t *link)
{
    return &link->stats;
}

bool imk_link_healthy(const imk_link_t *link)
{
    int64_t now = now_ms();
    for (size_t i = 0; i < link->n_nodes; i++) {
        if (node_stalled(link->nodes[i], now, STALL_MS)) {
            return false;
        }
    }
    return imk_link_ready(link);
}

/* ---- commands --------------------------------------------------------------------- */

static void on_command_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* Sends the call's command on node n, preceded by ASKING for an ASK redirect. */
static int send_call(struct node *n, struct call *call, bool asking)
{
    if (n == NULL || n->ac == NULL) {
        return IMK_EREDIS;
    }
    if (asking && redisAsyncCommand(n->ac, NULL, NULL, "ASKING") != REDIS_OK) {
        return IMK_EREDIS;
    }
    if (redisAsyncFormattedCommand(n->ac, on_command_reply, call, call->cmd, call->cmd_len) !=
        REDIS_OK) {
        return IMK_EREDIS;
    }
    node_sent(n);
    return 0;
}

/* A MOVED or ASK reply: the command goes again to the node named (a new one is connected).
 * Returns true when it was sent again. */
static bool follow_redirect(struct node *from, struct call *call, const redisReply *r)
{
    imk_link_t *link = call->link;
    imk_cluster_redirect_t to;
    if (!link->cluster || from == NULL || call->redirects >= REDIRECTS_MAX ||
        imk_cluster_parse_redirect(r->str, r->len, &to) != 0) {
        return false;
    }
    if (to.addr.host[0] == '\0') {
        snprintf(to.addr.host, sizeof(to.addr.host), "%s", from->addr.host);
    }
    if (to.kind == IMK_CLUSTER_MOVED) {
        schedule_refresh(link, 0);
    }
    struct node *n = find_node(link, &to.addr);
    if (n == NULL) {
        n = add_node(link, &to.addr);
    }
    call->redirects++;
    return send_call(n, call, to.kind == IMK_CLUSTER_ASK) == 0;
}

static void finish_call(struct call *call, redisReply *r)
{
    imk_link_t *link = call->link;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        link->stats.errors++;
    } else {
        imk_hist_observe(&link->stats.roundtrip,
                         (double)(imk_metrics_now_us() - call->sent_us) / 1e6);
    }
    if (call->fn != NULL) {
        call->fn(r, call->arg);
    }
    redisFreeCommand(call->cmd);
    free(call);
}

static void on_command_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct call *call = privdata;
    struct node *n = ac->data;
    redisReply *r = reply;
    node_answered(n);
    if (r != NULL && r->type == REDIS_REPLY_ERROR && follow_redirect(n, call, r)) {
        return;
    }
    finish_call(call, r);
}

int imk_link_command(imk_link_t *link, const char *route, imk_link_reply_fn *fn, void *arg,
                     int argc, const char **argv, const size_t *lens)
{
    struct node *n = node_for(link, route, route != NULL ? strlen(route) : 0);
    if (n == NULL || !n->ready) {
        link->stats.errors++;
        return IMK_EREDIS;
    }
    struct call *call = calloc(1, sizeof(*call));
    int len = call != NULL ? redisFormatCommandArgv(&call->cmd, argc, argv, lens) : -1;
    if (len < 0) {
        free(call);
        return IMK_ENOMEM;
    }
    call->link = link;
    call->fn = fn;
    call->arg = arg;
    call->sent_us = imk_metrics_now_us();
    call->cmd_len = (size_t)len;
    if (send_call(n, call, false) != 0) {
        redisFreeCommand(call->cmd);
        free(call);
        link->stats.errors++;
        return IMK_EREDIS;
    }
    return 0;
}

bool imk_link_no_function(const struct redisReply *reply)
{
    return reply != NULL && reply->type == REDIS_REPLY_ERROR &&
           strstr(reply->str, "Function") != NULL;
}

static void push_arg(const char **argv, size_t *lens, int *argc, const char *arg, size_t len)
{
    argv[*argc] = arg;
    lens[(*argc)++] = len;
}

int imk_link_fcall(imk_link_t *link, const imk_link_fcall_t *call, imk_link_reply_fn *fn, void *arg)
{
    char route[IMK_LINK_ROUTE_MAX];
    int route_len = 0;
    if (call->home != NULL &&
        (route_len = imk_key_tag(route, sizeof(route), call->home, strlen(call->home))) <= 0) {
        return IMK_EINVAL;
    }
    const char *prefix = link->cfg->redis_prefix;
    const char *argv[8];
    size_t lens[8];
    int argc = 0;
    push_arg(argv, lens, &argc, call->query ? "FCALL_RO" : "FCALL", call->query ? 8 : 5);
    push_arg(argv, lens, &argc, call->function, strlen(call->function));
    push_arg(argv, lens, &argc, call->home != NULL ? "1" : "0", 1);
    if (call->home != NULL) {
        push_arg(argv, lens, &argc, route, (size_t)route_len);
    }
    push_arg(argv, lens, &argc, prefix, strlen(prefix));
    push_arg(argv, lens, &argc, call->from, strlen(call->from));
    push_arg(argv, lens, &argc, call->args, call->args_len);
    if (call->extra != NULL) {
        push_arg(argv, lens, &argc, call->extra, strlen(call->extra));
    }
    return imk_link_command(link, call->home != NULL ? route : NULL, fn, arg, argc, argv, lens);
}

int imk_link_publish(imk_link_t *link, const char *channel, size_t channel_len, const char *payload,
                     size_t payload_len)
{
    const char *verb = link->cluster ? "SPUBLISH" : "PUBLISH";
    const char *argv[] = {verb, channel, payload};
    size_t lens[] = {strlen(verb), channel_len, payload_len};
    char route[IMK_LINK_ROUTE_MAX];
    snprintf(route, sizeof(route), "%.*s", (int)channel_len, channel);
    return imk_link_command(link, route, NULL, NULL, 3, argv, lens);
}

int imk_link_subscribe(imk_link_t *link, const char *channel, size_t len)
{
    if (imk_map_get(link->channels, channel, len) != NULL) {
        return 0;
    }
    if (imk_map_put(link->channels, channel, len, link) != 0) {
        return IMK_ENOMEM;
    }
    place_channel(link, channel, len);
    return 0;
}

void imk_link_unsubscribe(imk_link_t *link, const char *channel, size_t len)
{
    void *where = imk_map_remove(link->channels, channel, len);
    if (where != NULL && where != link) {
        imk_subscriber_unsubscribe(((struct node *)where)->sub, channel, len);
    }
}
