/* Outbox delivery and trimming. The cursor (imkit:webhook:cursor) is the id of the last
 * event delivered or given up on; an event is retried until it is delivered or
 * webhook.retry_for_s has passed since it happened, then recorded in imkit:events:dead.
 * Each command goes to the master of its key's slot (on a cluster the outbox, the cursor,
 * the lease and the dead events may live on different masters). */
#include "webhook.h"
#include "http_post.h"
#include "redis_client.h"
#include "imkit/buf.h"
#include "imkit/cluster.h"
#include "imkit/err.h"
#include "imkit/log.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define LEASE_MS 15000
#define BATCH 32
#define TRIM_EVERY_MS 60000
#define BACKOFF_MAX_S 300
#define TIMEOUT_MS 10000 /* of each connect, read or write */
#define MAX_ARGS 8

struct imk_webhook {
    const imk_config_t *cfg;
    char name[128];
    char outbox[256], dead[256], cursor[256], lease[256];
    imk_cluster_client_t *redis;
    volatile sig_atomic_t *stop;
    pthread_t thread;
    bool running;
    int64_t next_trim_ms;
};

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Sleeps up to ms, waking early when stopping. */
static void nap(imk_webhook_t *w, int ms)
{
    for (int slept = 0; slept < ms && !*w->stop; slept += 100) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

imk_webhook_t *imk_webhook_create(const imk_config_t *cfg, const char *name)
{
    imk_webhook_t *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return NULL;
    }
    w->redis = imk_worker_redis_client(cfg, TIMEOUT_MS);
    if (w->redis == NULL) {
        free(w);
        return NULL;
    }
    w->cfg = cfg;
    snprintf(w->name, sizeof(w->name), "%s", name);
    snprintf(w->outbox, sizeof(w->outbox), "%sevents", cfg->redis_prefix);
    snprintf(w->dead, sizeof(w->dead), "%sevents:dead", cfg->redis_prefix);
    snprintf(w->cursor, sizeof(w->cursor), "%swebhook:cursor", cfg->redis_prefix);
    snprintf(w->lease, sizeof(w->lease), "%swebhook:lease", cfg->redis_prefix);
    return w;
}

/* Runs one command, its arguments NUL-terminated strings up to a NULL (at most MAX_ARGS),
 * on the master of key's slot. NULL when that master could not be reached. */
static redisReply *command(imk_webhook_t *w, const char *key, ...)
{
    const char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS];
    int argc = 0;
    va_list ap;
    va_start(ap, key);
    for (const char *a = va_arg(ap, const char *); a != NULL && argc < MAX_ARGS;
         a = va_arg(ap, const char *)) {
        argv[argc] = a;
        lens[argc++] = strlen(a);
    }
    va_end(ap);
    return imk_cluster_client_command(w->redis, imk_cluster_slot(key, strlen(key)), argc, argv,
                                      lens);
}

/* Takes or renews the lease; true when this worker is the deliverer. */
static bool hold_lease(imk_webhook_t *w)
{
    char ms[16];
    snprintf(ms, sizeof(ms), "%d", LEASE_MS);
    redisReply *r = command(w, w->lease, "SET", w->lease, w->name, "NX", "PX", ms, NULL);
    bool mine = r != NULL && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (mine) {
        return true;
    }
    r = command(w, w->lease, "GET", w->lease, NULL);
    mine = r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, w->name) == 0;
    freeReplyObject(r);
    if (mine) {
        freeReplyObject(command(w, w->lease, "PEXPIRE", w->lease, ms, NULL));
    }
    return mine;
}

/* Keeps events.retention_s of events, and never trims what is still to deliver. */
static void trim_outbox(imk_webhook_t *w)
{
    int64_t min_ms = now_ms() - (int64_t)w->cfg->events_retention_s * 1000;
    char min_id[64];
    snprintf(min_id, sizeof(min_id), "%lld-0", (long long)min_ms);
    if (w->cfg->webhook_url[0] != '\0') {
        redisReply *r = command(w, w->cursor, "GET", w->cursor, NULL);
        long long cursor_ms = r != NULL && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
        freeReplyObject(r);
        if (cursor_ms < min_ms) {
            snprintf(min_id, sizeof(min_id), "%lld-0", cursor_ms);
        }
    }
    freeReplyObject(command(w, w->outbox, "XTRIM", w->outbox, "MINID", "~", min_id, NULL));
}

/* "sha256=<hex>" for every configured secret, comma-separated (several during rotation). */
static void sign(const char *secrets, const char *body, size_t len, imk_buf_t *out)
{
    char *copy = strdup(secrets);
    char *save = NULL;
    for (char *s = copy != NULL ? strtok_r(copy, ", ", &save) : NULL; s != NULL;
         s = strtok_r(NULL, ", ", &save)) {
        unsigned char mac[32];
        unsigned int mac_len = 0;
        HMAC(EVP_sha256(), s, (int)strlen(s), (const unsigned char *)body, len, mac, &mac_len);
        imk_buf_append_str(out, out->len > 0 ? ", sha256=" : "sha256=");
        for (unsigned int i = 0; i < mac_len; i++) {
            imk_buf_printf(out, "%02x", mac[i]);
        }
    }
    free(copy);
}

static const char *field_of(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        if (strcmp(fields->element[i]->str, name) == 0) {
            return fields->element[i + 1]->str;
        }
    }
    return NULL;
}

/* Posts one event; returns 0 when the receiver accepted it (2xx). */
static int post_event(imk_webhook_t *w, const char *id, const redisReply *fields)
{
    const char *type = field_of(fields, "type");
    const char *ts = field_of(fields, "ts");
    const char *data = field_of(fields, "data");
    if (type == NULL || ts == NULL || data == NULL) {
        return IMK_EPROTO;
    }
    imk_buf_t body = IMK_BUF_INIT, signature = IMK_BUF_INIT, headers = IMK_BUF_INIT;
    imk_buf_printf(&body, "{\"id\":\"%s\",\"type\":\"%s\",\"ts\":%s,\"data\":%s}", id, type, ts,
                   data);
    sign(w->cfg->webhook_secret, body.data, body.len, &signature);
    imk_buf_printf(&headers, "X-IMKit-Event-Id: %s\r\nX-IMKit-Signature: %s\r\n", id,
                   signature.data != NULL ? signature.data : "");
    int status = imk_http_post(w->cfg->webhook_url, headers.data, body.data, body.len,
                               w->cfg->webhook_timeout_ms);
    IMK_DEBUG("webhook_post", "event_id=%s type=%s status=%d", id, type, status);
    imk_buf_deinit(&body);
    imk_buf_deinit(&signature);
    imk_buf_deinit(&headers);
    return status >= 200 && status < 300 ? 0 : status < 0 ? status : IMK_EIO;
}

/* Waits ms while keeping the lease (a backoff may be longer than the lease); false when the
 * lease was lost or the worker is stopping. */
static bool nap_holding_lease(imk_webhook_t *w, int ms)
{
    for (int left = ms; left > 0 && !*w->stop; left -= LEASE_MS / 3) {
        nap(w, left < LEASE_MS / 3 ? left : LEASE_MS / 3);
        if (!hold_lease(w)) {
            return false;
        }
    }
    return !*w->stop;
}

static void advance(imk_webhook_t *w, const char *id)
{
    freeReplyObject(command(w, w->cursor, "SET", w->cursor, id, NULL));
}

/* Delivers one event, retrying with backoff until accepted, given up, or stopping.
 * Returns true when the cursor moved past it. */
static bool deliver(imk_webhook_t *w, const redisReply *entry)
{
    const char *id = entry->element[0]->str;
    const redisReply *fields = entry->element[1];
    long long happened_ms = atoll(id);
    for (int attempt = 0; !*w->stop; attempt++) {
        int rc = post_event(w, id, fields);
        if (rc == 0) {
            advance(w, id);
            return true;
        }
        if (rc == IMK_EPROTO ||
            now_ms() - happened_ms > (int64_t)w->cfg->webhook_retry_for_s * 1000) {
            IMK_ERROR("webhook_gave_up", "event_id=%s attempts=%d", id, attempt + 1);
            freeReplyObject(command(w, w->dead, "XADD", w->dead, "*", "event", id, "url",
                                    w->cfg->webhook_url, NULL));
            advance(w, id);
            return true;
        }
        int backoff_s = attempt < 8 ? 1 << attempt : BACKOFF_MAX_S;
        backoff_s = backoff_s > BACKOFF_MAX_S ? BACKOFF_MAX_S : backoff_s;
        IMK_WARN("webhook_retry", "event_id=%s attempt=%d in_s=%d", id, attempt + 1, backoff_s);
        if (!nap_holding_lease(w, backoff_s * 1000)) {
            return false; /* another worker took over; it resumes from the cursor */
        }
    }
    return false;
}

static void deliver_batch(imk_webhook_t *w)
{
    redisReply *cur = command(w, w->cursor, "GET", w->cursor, NULL);
    char start[80];
    snprintf(start, sizeof(start), "(%s",
             cur != NULL && cur->type == REDIS_REPLY_STRING ? cur->str : "0-0");
    freeReplyObject(cur);
    char count[16];
    snprintf(count, sizeof(count), "%d", BATCH);
    redisReply *r = command(w, w->outbox, "XRANGE", w->outbox, start, "+", "COUNT", count, NULL);
    bool idle = r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements == 0;
    /* The lease is renewed before each event: a batch of slow deliveries must not outlast
     * it while another worker takes over from the same cursor. */
    for (size_t i = 0; !idle && i < r->elements && !*w->stop && hold_lease(w); i++) {
        if (!deliver(w, r->element[i])) {
            break;
        }
    }
    freeReplyObject(r);
    if (idle) {
        nap(w, 200);
    }
}

static void *run(void *arg)
{
    imk_webhook_t *w = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals go to the consumer's thread */
    while (!*w->stop) {
        if (now_ms() >= w->next_trim_ms) {
            w->next_trim_ms = now_ms() + TRIM_EVERY_MS;
            trim_outbox(w);
        }
        if (w->cfg->webhook_url[0] != '\0' && hold_lease(w)) {
            deliver_batch(w);
        } else {
            nap(w, 1000);
        }
    }
    return NULL;
}

int imk_webhook_start(imk_webhook_t *w, volatile sig_atomic_t *stop)
{
    w->stop = stop;
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        return IMK_EIO;
    }
    w->running = true;
    return 0;
}

void imk_webhook_destroy(imk_webhook_t *w)
{
    if (w == NULL) {
        return;
    }
    if (w->running) {
        pthread_join(w->thread, NULL);
    }
    if (w->cfg->webhook_url[0] != '\0') {
        /* Hand the lease over at once rather than after it expires. */
        redisReply *r = command(w, w->lease, "GET", w->lease, NULL);
        if (r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, w->name) == 0) {
            freeReplyObject(command(w, w->lease, "DEL", w->lease, NULL));
        }
        freeReplyObject(r);
    }
    imk_cluster_client_destroy(w->redis);
    free(w);
}
