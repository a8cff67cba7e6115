/* The table of waiting requests: a map from request number to entry, a timer per entry.
 * Counts each client request in the gateway's metrics when its answer comes. Every request
 * waits as long as the others, so the timers share one of libevent's common timeouts (a
 * queue: O(1) to add and remove) and live inside their entries (one allocation a request). */
#include "pending.h"
#include "imkit/log.h"
#include "imkit/map.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdlib.h>

struct entry {
    imk_pending_t *owner;
    uint64_t req;
    imk_pending_fn *fn;
    void *ctx;
    uint64_t tag;
    struct event timer;
    uint64_t session;   /* for logs; 0: the admin API */
    imk_stats_t *stats; /* NULL: not counted */
    imk_stats_req_t counted;
    int64_t since_us;
};

struct imk_pending {
    struct event_base *base;
    struct timeval timeout;
    const struct timeval *common; /* timeout as libevent's common timeout, or &timeout */
    imk_map_t *entries;
    uint64_t next_req;
};

static const char unavailable[] = "unavailable";
static const char timeout_msg[] = "no answer in time; safe to retry";

imk_pending_t *imk_pending_create(struct event_base *base, int timeout_ms)
{
    imk_pending_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->base = base;
    p->timeout.tv_sec = timeout_ms / 1000;
    p->timeout.tv_usec = (timeout_ms % 1000) * 1000;
    p->common = event_base_init_common_timeout(base, &p->timeout);
    if (p->common == NULL) {
        p->common = &p->timeout;
    }
    p->entries = imk_map_create();
    p->next_req = 1;
    if (p->entries == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

static void free_entry(struct entry *e)
{
    event_del(&e->timer);
    free(e);
}

static void finish(struct entry *e, const char *status, size_t status_len, const char *body,
                   size_t body_len)
{
    IMK_DEBUG("answer", "session=%llu req=%llu op=%s status=%.*s ms=%.1f",
              (unsigned long long)e->session, (unsigned long long)e->req,
              e->stats != NULL ? imk_stats_op_label(e->counted.op) : "admin", (int)status_len,
              status, (double)(imk_metrics_now_us() - e->since_us) / 1000.0);
    if (e->stats != NULL) {
        imk_stats_end(e->stats, &e->counted, status, status_len);
    }
    imk_map_remove_u64(e->owner->entries, e->req);
    imk_pending_fn *fn = e->fn;
    void *ctx = e->ctx;
    uint64_t tag = e->tag;
    free_entry(e);
    fn(ctx, tag, status, status_len, body, body_len);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct entry *e = arg;
    IMK_WARN("request_timeout", "session=%llu req=%llu op=%s ms=%lld",
             (unsigned long long)e->session, (unsigned long long)e->req,
             e->stats != NULL ? imk_stats_op_label(e->counted.op) : "admin",
             (long long)(e->owner->timeout.tv_sec * 1000 + e->owner->timeout.tv_usec / 1000));
    finish(e, unavailable, sizeof(unavailable) - 1, timeout_msg, sizeof(timeout_msg) - 1);
}

uint64_t imk_pending_add(imk_pending_t *p, imk_pending_fn *fn, void *ctx, uint64_t tag)
{
    struct entry *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return 0;
    }
    e->owner = p;
    e->req = p->next_req++;
    e->fn = fn;
    e->ctx = ctx;
    e->tag = tag;
    e->since_us = imk_metrics_now_us();
    if (imk_map_put_u64(p->entries, e->req, e) != 0) {
        free(e);
        return 0;
    }
    evtimer_assign(&e->timer, p->base, on_timeout, e);
    evtimer_add(&e->timer, p->common);
    return e->req;
}

void imk_pending_track(imk_pending_t *p, uint64_t req, imk_stats_t *st, imk_stats_req_t *r,
                       uint64_t session)
{
    struct entry *e = imk_map_get_u64(p->entries, req);
    if (e == NULL) {
        return;
    }
    e->session = session;
    if (st != NULL && r != NULL && r->op != IMK_STATS_OP_NONE) {
        e->stats = st;
        e->counted = *r;
        r->op = IMK_STATS_OP_NONE;
    }
}

void imk_pending_answer(imk_pending_t *p, uint64_t req, const char *status, size_t status_len,
                        const char *body, size_t body_len)
{
    struct entry *e = imk_map_get_u64(p->entries, req);
    if (e != NULL) {
        finish(e, status, status_len, body, body_len);
    }
}

void imk_pending_forget_req(imk_pending_t *p, uint64_t req)
{
    struct entry *e = imk_map_remove_u64(p->entries, req);
    if (e != NULL) {
        free_entry(e);
    }
}

struct forget_args {
    void *ctx;
    struct entry **found;
    size_t n;
};

static void collect_ctx(const char *key, size_t len, void *value, void *arg)
{
    (void)key;
    (void)len;
    struct forget_args *fa = arg;
    struct entry *e = value;
    if (e->ctx == fa->ctx) {
        fa->found[fa->n++] = e;
    }
}

void imk_pending_forget(imk_pending_t *p, void *ctx)
{
    size_t total = imk_map_size(p->entries);
    if (total == 0) {
        return;
    }
    struct forget_args fa = {ctx, calloc(total, sizeof(struct entry *)), 0};
    if (fa.found == NULL) {
        return;
    }
    imk_map_foreach(p->entries, collect_ctx, &fa);
    for (size_t i = 0; i < fa.n; i++) {
        imk_map_remove_u64(p->entries, fa.found[i]->req);
        free_entry(fa.found[i]);
    }
    free(fa.found);
}

static void collect_all(const char *key, size_t len, void *value, void *arg)
{
    (void)key;
    (void)len;
    struct forget_args *fa = arg;
    fa->found[fa->n++] = value;
}

void imk_pending_destroy(imk_pending_t *p)
{
    if (p == NULL) {
        return;
    }
    size_t total = imk_map_size(p->entries);
    struct forget_args fa = {NULL, calloc(total + 1, sizeof(struct entry *)), 0};
    if (fa.found != NULL) {
        imk_map_foreach(p->entries, collect_all, &fa);
        for (size_t i = 0; i < fa.n; i++) {
            finish(fa.found[i], unavailable, sizeof(unavailable) - 1, "gateway stopping", 16);
        }
        free(fa.found);
    }
    imk_map_destroy(p->entries);
    free(p);
}

size_t imk_pending_count(const imk_pending_t *p)
{
    return imk_map_size(p->entries);
}
