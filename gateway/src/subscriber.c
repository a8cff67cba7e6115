/* Subscribe-mode Redis connection: connect, AUTH, (S)SUBSCRIBE, parse pushes with a hiredis
 * reader, reconnect with backoff. See subscriber.h. */
#include "subscriber.h"
#include "imkit/err.h"
#include "imkit/log.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

enum state { DOWN, CONNECTING, AUTHENTICATING, READY };

struct imk_subscriber {
    struct event_base *base;
    char host[256];
    int port;
    char password[256];
    bool sharded;
    imk_subscriber_callbacks_t cb;
    void *arg;
    enum state state;
    struct bufferevent *bev;
    redisReader *reader;
    struct event *retry;
    int backoff_ms;
};

static void connect_now(imk_subscriber_t *s);

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_now(arg);
}

static void close_connection(imk_subscriber_t *s)
{
    if (s->bev != NULL) {
        bufferevent_free(s->bev);
        s->bev = NULL;
    }
    if (s->reader != NULL) {
        redisReaderFree(s->reader);
        s->reader = NULL;
    }
    s->state = DOWN;
}

/* Drops the connection and schedules the next attempt. */
static void go_down(imk_subscriber_t *s, const char *why)
{
    close_connection(s);
    IMK_WARN("redis_disconnected", "link=subscriber node=%s:%d error=\"%s\"", s->host, s->port,
             why);
    struct timeval tv = {s->backoff_ms / 1000, (s->backoff_ms % 1000) * 1000};
    evtimer_add(s->retry, &tv);
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

static int send_command(imk_subscriber_t *s, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0) {
        return IMK_ENOMEM;
    }
    int rc = bufferevent_write(s->bev, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc == 0 ? 0 : IMK_ENOMEM;
}

static void become_ready(imk_subscriber_t *s)
{
    s->state = READY;
    s->backoff_ms = BACKOFF_MIN_MS;
    IMK_INFO("redis_connected", "link=subscriber node=%s:%d", s->host, s->port);
    s->cb.on_ready(s->arg);
}

static bool is_kind(const redisReply *r, const char *plain)
{
    return strcasecmp(r->str, plain) == 0 ||
           (r->str[0] == 's' && strcasecmp(r->str + 1, plain) == 0);
}

/* A push of subscribe mode: [kind, channel, payload or count]. */
static void on_push(imk_subscriber_t *s, const redisReply *r)
{
    if (r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING) {
        return;
    }
    const redisReply *kind = r->element[0];
    const redisReply *channel = r->element[1];
    if (is_kind(kind, "message") && r->element[2]->type == REDIS_REPLY_STRING) {
        s->cb.on_message(channel->str, channel->len, r->element[2]->str, r->element[2]->len,
                         s->arg);
    } else if (is_kind(kind, "subscribe") && s->cb.on_subscribed != NULL) {
        s->cb.on_subscribed(channel->str, channel->len, s->arg);
    } else if (is_kind(kind, "unsubscribe") && s->cb.on_unsubscribed != NULL) {
        s->cb.on_unsubscribed(channel->str, channel->len, s->arg);
    }
}

/* Handles one reply; returns false when the connection was dropped. */
static bool on_reply(imk_subscriber_t *s, const redisReply *r)
{
    if (s->state == AUTHENTICATING) {
        if (r->type == REDIS_REPLY_ERROR) {
            IMK_ERROR("redis_setup", "link=subscriber error=\"%s\"", r->str);
            go_down(s, "AUTH refused");
            return false;
        }
        become_ready(s);
        return s->state == READY;
    }
    if (r->type == REDIS_REPLY_ARRAY) {
        on_push(s, r);
    } else if (r->type == REDIS_REPLY_ERROR && s->cb.on_error != NULL) {
        s->cb.on_error(r->str, r->len, s->arg);
    }
    return s->state == READY;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    imk_subscriber_t *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n;
    while ((n = evbuffer_get_contiguous_space(in)) > 0) {
        if (redisReaderFeed(s->reader, (const char *)evbuffer_pullup(in, (ev_ssize_t)n), n) !=
            REDIS_OK) {
            go_down(s, "out of memory");
            return;
        }
        evbuffer_drain(in, n);
    }
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(s->reader, &reply) != REDIS_OK) {
            go_down(s, "protocol error");
            return;
        }
        if (reply == NULL) {
            return;
        }
        bool up = on_reply(s, reply);
        freeReplyObject(reply);
        if (!up) {
            return;
        }
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    imk_subscriber_t *s = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (s->password[0] == '\0') {
            become_ready(s);
            return;
        }
        s->state = AUTHENTICATING;
        const char *argv[] = {"AUTH", s->password};
        size_t lens[] = {4, strlen(s->password)};
        if (send_command(s, 2, argv, lens) != 0) {
            go_down(s, "out of memory");
        }
        return;
    }
    go_down(s, (what & BEV_EVENT_EOF) ? "closed"
                                      : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* TCP keepalive as hiredis sets it on its connections (idle 15 s): a subscriber whose
 * Redis host vanished, which never writes, learns it within a minute. */
static void keep_alive(evutil_socket_t fd)
{
    int on = 1, idle = 15, interval = 5, count = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
}

static void connect_now(imk_subscriber_t *s)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%d", s->port);
    if (getaddrinfo(s->host, port, &hints, &ai) != 0 || ai == NULL) {
        go_down(s, "cannot resolve the host");
        return;
    }
    s->bev = bufferevent_socket_new(s->base, -1, BEV_OPT_CLOSE_ON_FREE);
    s->reader = redisReaderCreate();
    if (s->bev == NULL || s->reader == NULL) {
        freeaddrinfo(ai);
        go_down(s, "out of memory");
        return;
    }
    s->state = CONNECTING;
    bufferevent_setcb(s->bev, on_read, NULL, on_event, s);
    bufferevent_enable(s->bev, EV_READ);
    int rc = bufferevent_socket_connect(s->bev, ai->ai_addr, (int)ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc != 0 && s->bev != NULL) { /* else on_event already went down */
        go_down(s, "connect failed");
    } else if (rc == 0) {
        keep_alive(bufferevent_getfd(s->bev));
    }
}

imk_subscriber_t *imk_subscriber_create(struct event_base *base, const char *host, int port,
                                        const char *password, bool sharded,
                                        const imk_subscriber_callbacks_t *callbacks, void *arg)
{
    imk_subscriber_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->base = base;
    snprintf(s->host, sizeof(s->host), "%s", host);
    s->port = port;
    snprintf(s->password, sizeof(s->password), "%s", password != NULL ? password : "");
    s->sharded = sharded;
    s->cb = *callbacks;
    s->arg = arg;
    s->backoff_ms = BACKOFF_MIN_MS;
    s->retry = evtimer_new(base, on_retry, s);
    if (s->retry == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

void imk_subscriber_destroy(imk_subscriber_t *s)
{
    if (s == NULL) {
        return;
    }
    event_free(s->retry);
    close_connection(s);
    free(s);
}

void imk_subscriber_start(imk_subscriber_t *s)
{
    connect_now(s);
}

bool imk_subscriber_ready(const imk_subscriber_t *s)
{
    return s->state == READY;
}

static int send_verb(imk_subscriber_t *s, const char *plain, const char *sharded,
                     const char *channel, size_t len)
{
    if (s->state != READY) {
        return IMK_EREDIS;
    }
    const char *verb = s->sharded ? sharded : plain;
    const char *argv[] = {verb, channel};
    size_t lens[] = {strlen(verb), len};
    return send_command(s, 2, argv, lens);
}

int imk_subscriber_subscribe(imk_subscriber_t *s, const char *channel, size_t len)
{
    return send_verb(s, "SUBSCRIBE", "SSUBSCRIBE", channel, len);
}

int imk_subscriber_unsubscribe(imk_subscriber_t *s, const char *channel, size_t len)
{
    return send_verb(s, "UNSUBSCRIBE", "SUNSUBSCRIBE", channel, len);
}
