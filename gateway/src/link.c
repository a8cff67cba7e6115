/* Redis links of the gateway: connect, authenticate, select, reconnect with backoff,
 * resubscribe. Everything runs on the gateway's event loop. */
#include "link.h"
#include "imkit/err.h"
#include "imkit/log.h"
#include "imkit/map.h"
#include "imkit/redis_url.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define STALL_MS 2000 /* commands waiting this long with no reply at all: Redis hangs */

struct conn {
    imk_link_t *link;
    const char *name;
    bool subscriber;
    redisAsyncContext *ac;
    bool ready;
    bool connected_before;
    int backoff_ms;
    struct event *retry;
};

struct imk_link {
    struct event_base *base;
    const imk_config_t *cfg;
    imk_redis_url_t url;
    struct conn cmd;
    struct conn sub;
    imk_map_t *channels; /* subscribed channel names (values unused) */
    size_t outstanding;  /* commands sent and not answered yet */
    int64_t last_reply_ms;
    imk_link_stats_t stats;
    imk_link_callbacks_t cb;
    void *arg;
};

/* A command in flight: the caller's callback and argument, and when it was sent. */
struct call {
    imk_link_reply_fn *fn;
    void *arg;
    int64_t sent_us;
};

static void connect_conn(struct conn *c);

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void schedule_retry(struct conn *c)
{
    struct timeval tv = {c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000};
    evtimer_add(c->retry, &tv);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_conn(arg);
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    imk_link_t *link = privdata;
    redisReply *reply = r;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING) {
        return;
    }
    if (strcmp(reply->element[0]->str, "message") == 0 &&
        reply->element[2]->type == REDIS_REPLY_STRING) {
        link->cb.on_message(reply->element[1]->str, reply->element[1]->len, reply->element[2]->str,
                            reply->element[2]->len, link->arg);
    } else if (strcmp(reply->element[0]->str, "subscribe") == 0 && link->cb.on_subscribed) {
        link->cb.on_subscribed(reply->element[1]->str, reply->element[1]->len, link->arg);
    }
}

static void send_subscribe(imk_link_t *link, const char *verb, const char *channel, size_t len)
{
    const char *argv[] = {verb, channel};
    size_t lens[] = {strlen(verb), len};
    redisAsyncCommandArgv(link->sub.ac, on_sub_reply, link, 2, argv, lens);
}

static void resubscribe_one(const char *key, size_t len, void *value, void *arg)
{
    (void)value;
    send_subscribe(arg, "SUBSCRIBE", key, len);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;
    if (status != REDIS_OK) {
        IMK_WARN("redis_connect_failed", "link=%s error=\"%s\"", c->name, ac->errstr);
        c->ac = NULL; /* hiredis frees the context after this callback */
        schedule_retry(c);
        return;
    }
    c->ready = true;
    c->backoff_ms = BACKOFF_MIN_MS;
    if (c->connected_before && c->subscriber) {
        c->link->stats.reconnects_subscriber++;
    } else if (c->connected_before) {
        c->link->stats.reconnects_command++;
    }
    c->connected_before = true;
    IMK_INFO("redis_connected", "link=%s", c->name);
    if (c->subscriber) {
        imk_map_foreach(c->link->channels, resubscribe_one, c->link);
        if (c->link->cb.on_ready != NULL) {
            c->link->cb.on_ready(c->link->arg);
        }
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;
    (void)status;
    IMK_WARN("redis_disconnected", "link=%s error=\"%s\"", c->name,
             ac->err ? ac->errstr : "closed");
    c->ready = false;
    c->ac = NULL;
    schedule_retry(c);
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

static void connect_conn(struct conn *c)
{
    imk_link_t *link = c->link;
    redisAsyncContext *ac = redisAsyncConnect(link->url.host, link->url.port);
    if (ac == NULL || ac->err) {
        IMK_WARN("redis_connect_failed", "link=%s error=\"%s\"", c->name,
                 ac != NULL ? ac->errstr : "no memory");
        if (ac != NULL) {
            redisAsyncFree(ac);
        }
        schedule_retry(c);
        return;
    }
    ac->data = c;
    c->ac = ac;
    redisLibeventAttach(ac, link->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Queued before anything else, so they run first once connected. */
    if (link->url.password[0] != '\0') {
        redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s", link->url.password);
    }
    if (link->url.db != 0) {
        redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %d", link->url.db);
    }
}

static int init_conn(imk_link_t *link, struct conn *c, const char *name, bool subscriber)
{
    c->link = link;
    c->name = name;
    c->subscriber = subscriber;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->retry = evtimer_new(link->base, on_retry, c);
    return c->retry != NULL ? 0 : IMK_ENOMEM;
}

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
    link->channels = imk_map_create();
    if (link->channels == NULL || imk_redis_url_parse(cfg->redis_url, &link->url) != 0 ||
        init_conn(link, &link->cmd, "command", false) != 0 ||
        init_conn(link, &link->sub, "subscriber", true) != 0) {
        imk_link_destroy(link);
        return NULL;
    }
    return link;
}

static void deinit_conn(struct conn *c)
{
    if (c->retry != NULL) {
        event_free(c->retry);
    }
    if (c->ac != NULL) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        ac->onDisconnect = NULL; /* we are going away: no retry */
        redisAsyncFree(ac);
    }
}

void imk_link_destroy(imk_link_t *link)
{
    if (link == NULL) {
        return;
    }
    deinit_conn(&link->cmd);
    deinit_conn(&link->sub);
    imk_map_destroy(link->channels);
    free(link);
}

int imk_link_start(imk_link_t *link)
{
    connect_conn(&link->cmd);
    connect_conn(&link->sub);
    return 0;
}

bool imk_link_ready(const imk_link_t *link)
{
    return link->cmd.ready && link->sub.ready;
}

const imk_link_stats_t *imk_link_stats(const imk_link_t *link)
{
    return &link->stats;
}

bool imk_link_healthy(const imk_link_t *link)
{
    return imk_link_ready(link) &&
           !(link->outstanding > 0 && now_ms() - link->last_reply_ms > STALL_MS);
}

static void on_command_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct call *call = privdata;
    struct conn *c = ac->data;
    const redisReply *r = reply;
    if (c != NULL) {
        imk_link_t *link = c->link;
        link->outstanding--;
        link->last_reply_ms = now_ms();
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            link->stats.errors++;
        } else {
            imk_hist_observe(&link->stats.roundtrip,
                             (double)(imk_metrics_now_us() - call->sent_us) / 1e6);
        }
    }
    if (call->fn != NULL) {
        call->fn(reply, call->arg);
    }
    free(call);
}

int imk_link_command(imk_link_t *link, imk_link_reply_fn *fn, void *arg, int argc,
                     const char **argv, const size_t *lens)
{
    if (!link->cmd.ready) {
        link->stats.errors++;
        return IMK_EREDIS;
    }
    struct call *call = malloc(sizeof(*call));
    if (call == NULL) {
        return IMK_ENOMEM;
    }
    call->fn = fn;
    call->arg = arg;
    call->sent_us = imk_metrics_now_us();
    if (redisAsyncCommandArgv(link->cmd.ac, on_command_reply, call, argc, argv, lens) != REDIS_OK) {
        free(call);
        link->stats.errors++;
        return IMK_EREDIS;
    }
    if (link->outstanding++ == 0) {
        link->last_reply_ms = now_ms(); /* the wait starts now */
    }
    return 0;
}

int imk_link_subscribe(imk_link_t *link, const char *channel, size_t len)
{
    if (imk_map_get(link->channels, channel, len) != NULL) {
        return 0;
    }
    if (imk_map_put(link->channels, channel, len, link) != 0) {
        return IMK_ENOMEM;
    }
    if (link->sub.ready) {
        send_subscribe(link, "SUBSCRIBE", channel, len);
    }
    return 0;
}

void imk_link_unsubscribe(imk_link_t *link, const char *channel, size_t len)
{
    if (imk_map_remove(link->channels, channel, len) != NULL && link->sub.ready) {
        send_subscribe(link, "UNSUBSCRIBE", channel, len);
    }
}
