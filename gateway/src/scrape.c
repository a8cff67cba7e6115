/* The scrape: this gateway's own series rendered at once; then, pipelined on the command
 * link, SMEMBERS of the workers that pushed metrics, HGET of each one's exposition, XINFO
 * GROUPS of every job stream and XLEN of the dead-letter stream. The reply waits for every
 * Redis reply, or for the timer, whichever comes first; the scrape is freed once both the
 * reply is sent and every Redis callback has come back (hiredis calls each exactly once). */
#include "scrape.h"
#include "admission.h"
#include "imkit/err.h"
#include "imkit/keys.h"
#include "imkit/log.h"
#include "imkit/metrics.h"
#include "link.h"
#include "pending.h"
#include "session.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#define SCRAPE_TIMEOUT_MS 1000
#define WORKERS_MAX 1024          /* workers read per scrape */
#define WORKER_TEXT_MAX (1 << 20) /* bytes of one worker's exposition */

struct scrape {
    imk_gateway_t *gw;
    struct evhttp_request *req; /* NULL once the client went away */
    struct event *timer;
    int outstanding; /* Redis replies still to come, plus one while commands are being sent */
    bool missing;    /* a Redis reply did not come (link lost) */
    bool answered;
    imk_buf_t own;      /* this gateway's series */
    imk_buf_t *workers; /* each live worker's exposition, copied out of its reply */
    size_t nworkers;
    int64_t *lag, *pending; /* per partition; -1: unknown */
    int64_t dead;           /* dead-letter stream length; -1: unknown */
};

/* What a reply about one worker or one partition must know. */
struct ref {
    struct scrape *sc;
    int partition;
    char worker[128];
};

/* ---- this gateway's own series ------------------------------------------------------------ */

static void count_authenticated(const char *key, size_t len, void *value, void *arg)
{
    (void)key;
    (void)len;
    const imk_session_t *s = value;
    *(size_t *)arg += s->authenticated;
}

/* The request series: one per operation that has been asked for, one per (operation, error
 * code) that happened. */
static void render_requests(imk_buf_t *out, const imk_stats_t *st, const char *gw_labels)
{
    imk_buf_t labels = IMK_BUF_INIT;
    imk_metrics_family(out, "imkit_gateway_requests_total", "counter",
                       "client protocol requests answered, by operation");
    for (int op = 1; op < IMK_STATS_OPS; op++) {
        if (st->latency[op].count > 0) {
            imk_buf_reset(&labels);
            imk_buf_append_str(&labels, gw_labels);
            imk_metrics_label(&labels, "op", imk_stats_op_label(op));
            imk_metrics_sample(out, "imkit_gateway_requests_total", labels.data,
                               (double)st->latency[op].count);
        }
    }
    imk_metrics_family(out, "imkit_gateway_request_errors_total", "counter",
                       "client protocol requests answered with an error, by operation and code");
    for (int op = 1; op < IMK_STATS_OPS; op++) {
        for (int code = 0; code < IMK_STATS_CODES; code++) {
            if (st->errors[op][code] > 0) {
                imk_buf_reset(&labels);
                imk_buf_append_str(&labels, gw_labels);
                imk_metrics_label(&labels, "op", imk_stats_op_label(op));
                imk_metrics_label(&labels, "code", imk_stats_code_label(code));
                imk_metrics_sample(out, "imkit_gateway_request_errors_total", labels.data,
                                   (double)st->errors[op][code]);
            }
        }
    }
    imk_metrics_family(out, "imkit_gateway_request_duration_seconds", "histogram",
                       "from a request frame in to its answer out, by operation");
    for (int op = 1; op < IMK_STATS_OPS; op++) {
        if (st->latency[op].count > 0) {
            imk_buf_reset(&labels);
            imk_buf_append_str(&labels, gw_labels);
            imk_metrics_label(&labels, "op", imk_stats_op_label(op));
            imk_metrics_hist(out, "imkit_gateway_request_duration_seconds", labels.data,
                             &st->latency[op]);
        }
    }
    imk_buf_deinit(&labels);
}

static void render_own(imk_gateway_t *gw, imk_buf_t *out)
{
    imk_buf_t labels = IMK_BUF_INIT, link_labels = IMK_BUF_INIT;
    imk_metrics_label(&labels, "gateway", gw->id);
    const char *l = labels.data != NULL ? labels.data : "";
    size_t authenticated = 0;
    imk_map_foreach(gw->sessions, count_authenticated, &authenticated);
    const imk_stats_t *st = &gw->stats;
    const imk_link_stats_t *ls = imk_link_stats(gw->link);

    imk_metrics_single(out, "imkit_gateway_connections", "gauge",
                       "open connections on the public listener", l,
                       (double)imk_admission_count(gw->admission));
    imk_metrics_single(out, "imkit_gateway_sessions", "gauge", "WebSocket sessions", l,
                       (double)imk_map_size(gw->sessions));
    imk_metrics_single(out, "imkit_gateway_sessions_authenticated", "gauge", "sessions past auth",
                       l, (double)authenticated);
    imk_metrics_single(out, "imkit_gateway_pending_requests", "gauge",
                       "requests waiting for an answer", l, (double)imk_pending_count(gw->pending));
    imk_metrics_single(out, "imkit_gateway_redis_up", "gauge",
                       "1 when every Redis master is connected and answers", l,
                       imk_link_healthy(gw->link));
    render_requests(out, st, l);
    imk_metrics_single(out, "imkit_gateway_rate_limited_total", "counter",
                       "requests refused rate_limited", l, (double)st->rate_limited);
    imk_metrics_single(out, "imkit_gateway_deliveries_total", "counter",
                       "event frames written to sessions", l, (double)st->deliveries);
    imk_metrics_single(out, "imkit_gateway_admin_requests_total", "counter", "admin API requests",
                       l, (double)st->admin_requests);
    imk_metrics_family(out, "imkit_gateway_redis_roundtrip_seconds", "histogram",
                       "from a command sent to Redis to its reply, command link");
    imk_metrics_hist(out, "imkit_gateway_redis_roundtrip_seconds", l, &ls->roundtrip);
    imk_metrics_single(out, "imkit_gateway_redis_errors_total", "counter",
                       "Redis commands refused (link down), answered with an error, or lost", l,
                       (double)ls->errors);
    imk_metrics_family(out, "imkit_gateway_redis_reconnects_total", "counter",
                       "Redis connections made again after a link was lost, by link");
    imk_buf_append_str(&link_labels, l);
    imk_metrics_label(&link_labels, "link", "command");
    imk_metrics_sample(out, "imkit_gateway_redis_reconnects_total", link_labels.data,
                       (double)ls->reconnects_command);
    imk_buf_reset(&link_labels);
    imk_buf_append_str(&link_labels, l);
    imk_metrics_label(&link_labels, "link", "subscriber");
    imk_metrics_sample(out, "imkit_gateway_redis_reconnects_total", link_labels.data,
                       (double)ls->reconnects_subscriber);
    imk_metrics_process(out, l);
    imk_buf_deinit(&link_labels);
    imk_buf_deinit(&labels);
}

/* ---- the answer --------------------------------------------------------------------------- */

static void send_text(struct evhttp_request *req, const imk_buf_t *text)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    struct evbuffer *body = evbuffer_new();
    if (body != NULL && text->len > 0) {
        evbuffer_add(body, text->data, text->len);
    }
    evhttp_send_reply(req, body != NULL ? 200 : 500, NULL, body);
    if (body != NULL) {
        evbuffer_free(body);
    }
}

/* The series read from Redis: the job streams'. */
static void render_streams(const struct scrape *sc, imk_buf_t *out)
{
    int partitions = sc->gw->cfg->jobs_partitions;
    imk_buf_t labels = IMK_BUF_INIT;
    char p[16];
    imk_metrics_family(out, "imkit_jobs_lag", "gauge",
                       "jobs of the partition's stream not yet read by any worker");
    for (int i = 0; i < partitions; i++) {
        if (sc->lag[i] >= 0) {
            imk_buf_reset(&labels);
            snprintf(p, sizeof(p), "%d", i);
            imk_metrics_label(&labels, "partition", p);
            imk_metrics_sample(out, "imkit_jobs_lag", labels.data, (double)sc->lag[i]);
        }
    }
    imk_metrics_family(out, "imkit_jobs_pending", "gauge",
                       "jobs of the partition read by a worker and not yet acknowledged");
    for (int i = 0; i < partitions; i++) {
        if (sc->pending[i] >= 0) {
            imk_buf_reset(&labels);
            snprintf(p, sizeof(p), "%d", i);
            imk_metrics_label(&labels, "partition", p);
            imk_metrics_sample(out, "imkit_jobs_pending", labels.data, (double)sc->pending[i]);
        }
    }
    if (sc->dead >= 0) {
        imk_metrics_single(out, "imkit_jobs_dead", "gauge", "jobs in the dead-letter stream", "",
                           (double)sc->dead);
    }
    imk_buf_deinit(&labels);
}

/* Sends the answer once: with the Redis part when redis_up, without it otherwise. */
static void answer(struct scrape *sc, bool redis_up)
{
    if (sc->answered) {
        return;
    }
    sc->answered = true;
    if (sc->timer != NULL) {
        evtimer_del(sc->timer);
    }
    if (sc->req == NULL) {
        return; /* the client went away */
    }
    evhttp_connection_set_closecb(evhttp_request_get_connection(sc->req), NULL, NULL);
    imk_buf_t up = IMK_BUF_INIT, streams = IMK_BUF_INIT, merged = IMK_BUF_INIT;
    imk_buf_t labels = IMK_BUF_INIT;
    imk_metrics_label(&labels, "gateway", sc->gw->id);
    imk_metrics_single(
        &up, "imkit_redis_up", "gauge",
        "1 when this scrape read the workers' metrics and the job streams from Redis in time",
        labels.data, redis_up);
    size_t n = 0, max = 3 + sc->nworkers;
    const char **texts = calloc(max, sizeof(*texts));
    size_t *lens = calloc(max, sizeof(*lens));
    if (texts != NULL && lens != NULL) {
        texts[n] = sc->own.data != NULL ? sc->own.data : "";
        lens[n++] = sc->own.len;
        texts[n] = up.data;
        lens[n++] = up.len;
        if (redis_up) {
            for (size_t i = 0; i < sc->nworkers; i++) {
                texts[n] = sc->workers[i].data;
                lens[n++] = sc->workers[i].len;
            }
            render_streams(sc, &streams);
            texts[n] = streams.data != NULL ? streams.data : "";
            lens[n++] = streams.len;
        }
        imk_metrics_merge(texts, lens, n, &merged);
    }
    send_text(sc->req, &merged);
    sc->req = NULL;
    free(texts);
    free(lens);
    imk_buf_deinit(&merged);
    imk_buf_deinit(&streams);
    imk_buf_deinit(&up);
    imk_buf_deinit(&labels);
}

static void scrape_free(struct scrape *sc)
{
    if (sc->timer != NULL) {
        event_free(sc->timer);
    }
    for (size_t i = 0; i < sc->nworkers; i++) {
        imk_buf_deinit(&sc->workers[i]);
    }
    free(sc->workers);
    free(sc->lag);
    free(sc->pending);
    imk_buf_deinit(&sc->own);
    free(sc);
}

/* One Redis reply (or the sending) is over: the last one answers and frees. */
static void done(struct scrape *sc)
{
    if (--sc->outstanding > 0) {
        return;
    }
    answer(sc, !sc->missing);
    scrape_free(sc);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct scrape *sc = arg;
    IMK_WARN("metrics_redis_slow", "waiting=%d after_ms=%d", sc->outstanding, SCRAPE_TIMEOUT_MS);
    answer(sc, false);
}

static void on_closed(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    struct scrape *sc = arg;
    sc->req = NULL;
}

/* Sends one command on key whose reply goes to fn(reply, arg); arg is a struct ref (freed by fn) or
 * the scrape. */
static void send_command(struct scrape *sc, const char *key, imk_link_reply_fn *fn, void *arg,
                         int argc, const char **argv)
{
    size_t lens[4];
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    sc->outstanding++;
    if (imk_link_command(sc->gw->link, key, fn, arg, argc, argv, lens) != 0) {
        /* Missing, like a lost reply. The caller holds a count of its own (start_reads, or
         * the reply callback sending), so this is never the scrape's last. */
        sc->outstanding--;
        sc->missing = true;
        if (arg != sc) {
            free(arg); /* a struct ref */
        }
    }
}

static struct ref *new_ref(struct scrape *sc, int partition, const char *worker, size_t len)
{
    struct ref *r = calloc(1, sizeof(*r));
    if (r != NULL) {
        r->sc = sc;
        r->partition = partition;
        snprintf(r->worker, sizeof(r->worker), "%.*s", (int)len, worker);
    }
    return r;
}

/* HGET <worker hash> text: the worker's exposition, or nil when its hash expired (the worker
 * stopped pushing: dead, or stopped longer ago than the expiry). */
static void on_worker_text(struct redisReply *reply, void *arg)
{
    struct ref *r = arg;
    struct scrape *sc = r->sc;
    if (reply == NULL) {
        sc->missing = true;
    } else if (reply->type == REDIS_REPLY_NIL) {
        char set[IMK_KEY_MAX];
        imk_key_metrics_workers(set, sizeof(set), sc->gw->cfg->redis_prefix);
        const char *argv[] = {"SREM", set, r->worker};
        size_t lens[] = {4, strlen(set), strlen(r->worker)};
        imk_link_command(sc->gw->link, set, NULL, NULL, 3, argv, lens);
        IMK_INFO("worker_metrics_expired", "worker=%s", r->worker);
    } else if (reply->type == REDIS_REPLY_STRING && reply->len <= WORKER_TEXT_MAX) {
        imk_buf_t *more = realloc(sc->workers, (sc->nworkers + 1) * sizeof(*more));
        if (more != NULL) {
            sc->workers = more;
            imk_buf_t *text = &sc->workers[sc->nworkers];
            memset(text, 0, sizeof(*text));
            if (imk_buf_append(text, reply->str, reply->len) == 0) {
                sc->nworkers++;
            }
        }
    } else {
        IMK_WARN("worker_metrics_skipped", "worker=%s bytes=%zu max=%d", r->worker,
                 reply->type == REDIS_REPLY_STRING ? reply->len : 0, WORKER_TEXT_MAX);
    }
    free(r);
    done(sc);
}

static void on_workers(struct redisReply *reply, void *arg)
{
    struct scrape *sc = arg;
    if (reply == NULL) {
        sc->missing = true;
    }
    for (size_t i = 0; reply != NULL && reply->type == REDIS_REPLY_ARRAY && i < reply->elements &&
                       i < WORKERS_MAX;
         i++) {
        const redisReply *name = reply->element[i];
        struct ref *r = name->type == REDIS_REPLY_STRING && name->len < sizeof(r->worker)
                            ? new_ref(sc, -1, name->str, name->len)
                            : NULL;
        if (r == NULL) {
            continue;
        }
        char key[IMK_KEY_MAX];
        if (imk_key_metrics_worker(key, sizeof(key), sc->gw->cfg->redis_prefix, r->worker) < 0) {
            free(r);
            continue;
        }
        const char *argv[] = {"HGET", key, "text"};
        send_command(sc, key, on_worker_text, r, 3, argv);
    }
    done(sc);
}

/* XINFO GROUPS <stream>: the group's fields as name/value pairs. A stream that does not
 * exist yet (no worker ever started) is an error reply: no series, nothing missing. */
static void on_groups(struct redisReply *reply, void *arg)
{
    struct ref *r = arg;
    struct scrape *sc = r->sc;
    if (reply == NULL) {
        sc->missing = true;
    }
    for (size_t g = 0; reply != NULL && reply->type == REDIS_REPLY_ARRAY && g < reply->elements;
         g++) {
        const redisReply *fields = reply->element[g];
        int64_t pending = -1, lag = -1;
        bool ours = false;
        for (size_t k = 0; fields->type == REDIS_REPLY_ARRAY && k + 1 < fields->elements; k += 2) {
            const redisReply *name = fields->element[k], *v = fields->element[k + 1];
            if (name->type != REDIS_REPLY_STRING) {
                continue;
            }
            if (strcmp(name->str, "name") == 0 && v->type == REDIS_REPLY_STRING) {
                ours = strcmp(v->str, IMK_JOBS_GROUP) == 0;
            } else if (strcmp(name->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER) {
                pending = v->integer;
            } else if (strcmp(name->str, "lag") == 0 && v->type == REDIS_REPLY_INTEGER) {
                lag = v->integer; /* nil when Redis cannot tell (entries deleted) */
            }
        }
        if (ours) {
            sc->pending[r->partition] = pending;
            sc->lag[r->partition] = lag;
        }
    }
    free(r);
    done(sc);
}

static void on_dead_length(struct redisReply *reply, void *arg)
{
    struct scrape *sc = arg;
    if (reply == NULL) {
        sc->missing = true;
    } else if (reply->type == REDIS_REPLY_INTEGER) {
        sc->dead = reply->integer;
    }
    done(sc);
}

/* Whether the query string asks for this gateway's series only (local=1). */
static bool local_only(struct evhttp_request *req)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq query;
    TAILQ_INIT(&query);
    if (q == NULL || evhttp_parse_query_str(q, &query) != 0) {
        return false;
    }
    const char *local = evhttp_find_header(&query, "local");
    bool yes = local != NULL && strcmp(local, "1") == 0;
    evhttp_clear_headers(&query);
    return yes;
}

/* Starts the Redis reads. Returns 0, or IMK_ENOMEM (nothing sent). */
static int start_reads(struct scrape *sc)
{
    imk_gateway_t *gw = sc->gw;
    int partitions = gw->cfg->jobs_partitions;
    sc->lag = malloc((size_t)partitions * sizeof(*sc->lag));
    sc->pending = malloc((size_t)partitions * sizeof(*sc->pending));
    sc->timer = evtimer_new(gw->base, on_timeout, sc);
    if (sc->lag == NULL || sc->pending == NULL || sc->timer == NULL) {
        return IMK_ENOMEM;
    }
    for (int i = 0; i < partitions; i++) {
        sc->lag[i] = sc->pending[i] = -1;
    }
    sc->dead = -1;
    struct timeval tv = {SCRAPE_TIMEOUT_MS / 1000, (SCRAPE_TIMEOUT_MS % 1000) * 1000};
    evtimer_add(sc->timer, &tv);
    evhttp_connection_set_closecb(evhttp_request_get_connection(sc->req), on_closed, sc);

    char key[IMK_KEY_MAX];
    sc->outstanding = 1; /* held while sending, so no reply can finish the scrape early */
    imk_key_metrics_workers(key, sizeof(key), gw->cfg->redis_prefix);
    const char *members[] = {"SMEMBERS", key};
    send_command(sc, key, on_workers, sc, 2, members);
    for (int i = 0; i < partitions; i++) {
        struct ref *r = new_ref(sc, i, "", 0);
        if (r == NULL) {
            sc->missing = true;
            continue;
        }
        const char *groups[] = {"XINFO", "GROUPS", gw->job_streams[i]};
        send_command(sc, gw->job_streams[i], on_groups, r, 3, groups);
    }
    imk_key_dead(key, sizeof(key), gw->cfg->redis_prefix);
    const char *xlen[] = {"XLEN", key};
    send_command(sc, key, on_dead_length, sc, 2, xlen);
    done(sc);
    return 0;
}

void imk_scrape_serve(imk_gateway_t *gw, struct evhttp_request *req)
{
    struct scrape *sc = calloc(1, sizeof(*sc));
    if (sc == NULL) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    sc->gw = gw;
    sc->req = req;
    render_own(gw, &sc->own);
    if (local_only(req)) {
        send_text(req, &sc->own);
        scrape_free(sc);
        return;
    }
    if (!imk_link_healthy(gw->link) || start_reads(sc) != 0) {
        sc->outstanding = 0;
        answer(sc, false);
        scrape_free(sc);
    }
}
