/* The consumer loop. A batch costs two round trips: every job's FCALL pipelined, then every
 * PUBLISH and XACK pipelined. A job is acknowledged only after its effects and its events are
 * in Redis, so a worker that dies mid-batch leaves its jobs pending for another to claim;
 * the functions are idempotent, so applying a job again changes nothing. Jobs are counted
 * once acknowledged; the metrics push rides ahead of an XREADGROUP in its pipeline. */
#include "consumer.h"
#include "functions.h"
#include "worker_stats.h"
#include "imkit/err.h"
#include "imkit/ids.h"
#include "imkit/job.h"
#include "imkit/keys.h"
#include "imkit/log.h"
#include "imkit/redis_url.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define TRIM_EVERY_MS 10000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct imk_consumer {
    const imk_config_t *cfg;
    imk_redis_url_t url;
    char name[128];
    redisContext *redis;
    int nstreams;
    char (*streams)[IMK_KEY_MAX];
    char dead[IMK_KEY_MAX];
    int64_t next_claim_ms;
    int64_t next_trim_ms;
    int64_t next_push_ms;
    bool connected_before;
    imk_worker_stats_t stats;
};

/* One job of a batch while it is being applied. */
struct batch_job {
    const char *stream;
    const char *id;
    const char *raw; /* the envelope, borrowed from the read reply */
    size_t raw_len;
    imk_job_t job;
    int parsed;  /* the envelope was read: job is filled */
    int decoded; /* 0 when the envelope or its kind is unusable: dead-letter at once */
    redisReply *result;
    enum imk_job_outcome outcome;
};

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

imk_consumer_t *imk_consumer_create(const imk_config_t *cfg, const char *name)
{
    imk_consumer_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->cfg = cfg;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->nstreams = cfg->jobs_partitions;
    c->streams = calloc((size_t)c->nstreams, sizeof(*c->streams));
    if (c->streams == NULL || imk_redis_url_parse(cfg->redis_url, &c->url) != 0) {
        imk_consumer_destroy(c);
        return NULL;
    }
    for (int i = 0; i < c->nstreams; i++) {
        imk_key_jobs(c->streams[i], IMK_KEY_MAX, cfg->redis_prefix, i);
    }
    imk_key_dead(c->dead, sizeof(c->dead), cfg->redis_prefix);
    return c;
}

void imk_consumer_destroy(imk_consumer_t *c)
{
    if (c == NULL) {
        return;
    }
    if (c->redis != NULL) {
        redisFree(c->redis);
    }
    free(c->streams);
    free(c);
}

static void disconnect(imk_consumer_t *c)
{
    if (c->redis != NULL) {
        redisFree(c->redis);
        c->redis = NULL;
    }
}

/* Runs one command and checks it did not fail; the reply is freed. */
static int command_ok(imk_consumer_t *c, const char *what, redisReply *r)
{
    int rc = 0;
    if (r == NULL) {
        IMK_WARN("redis_error", "what=%s error=\"%s\"", what, c->redis->errstr);
        rc = IMK_EREDIS;
    } else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0) {
        IMK_WARN("redis_error", "what=%s error=\"%s\"", what, r->str);
        rc = IMK_EREDIS;
    }
    freeReplyObject(r);
    return rc;
}

static int connect_redis(imk_consumer_t *c)
{
    struct timeval timeout = {2, 0};
    c->redis = redisConnectWithTimeout(c->url.host, c->url.port, timeout);
    if (c->redis == NULL || c->redis->err) {
        IMK_WARN("redis_connect", "host=%s port=%d error=\"%s\"", c->url.host, c->url.port,
                 c->redis != NULL ? c->redis->errstr : "no memory");
        disconnect(c);
        return IMK_EREDIS;
    }
    /* Reads block up to worker.block_ms; anything much slower means Redis is gone. */
    struct timeval rw = {(c->cfg->worker_block_ms + 5000) / 1000, 0};
    redisSetTimeout(c->redis, rw);
    if (c->url.password[0] != '\0' &&
        command_ok(c, "auth", redisCommand(c->redis, "AUTH %s", c->url.password)) != 0) {
        return IMK_EREDIS;
    }
    if (c->url.db != 0 &&
        command_ok(c, "select", redisCommand(c->redis, "SELECT %d", c->url.db)) != 0) {
        return IMK_EREDIS;
    }
    if (imk_functions_load(c->redis) != 0) {
        return IMK_EREDIS;
    }
    for (int i = 0; i < c->nstreams; i++) {
        /* From 0, not $: jobs written before the first worker ever started are kept. */
        redisReply *r =
            redisCommand(c->redis, "XGROUP CREATE %s " IMK_JOBS_GROUP " 0 MKSTREAM", c->streams[i]);
        if (command_ok(c, "xgroup_create", r) != 0) {
            return IMK_EREDIS;
        }
    }
    IMK_INFO("redis_ready", "consumer=%s streams=%d", c->name, c->nstreams);
    return 0;
}

/* Reads one entry [id, [field, value, ...]] of a job stream into job. */
static void read_entry(struct batch_job *bj, const char *stream, const redisReply *entry)
{
    memset(bj, 0, sizeof(*bj));
    bj->stream = stream;
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING) {
        return;
    }
    bj->id = entry->element[0]->str;
    const redisReply *fields = entry->element[1];
    if (fields->type != REDIS_REPLY_ARRAY) {
        return; /* deleted entry (XAUTOCLAIM may return these as nil) */
    }
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        if (strcmp(fields->element[i]->str, "j") == 0) {
            bj->raw = fields->element[i + 1]->str;
            bj->raw_len = fields->element[i + 1]->len;
        }
    }
    if (bj->raw == NULL || imk_job_decode(bj->raw, bj->raw_len, &bj->job) != 0) {
        return; /* job may hold what could be read: the dead letter tells its requester */
    }
    bj->parsed = 1;
    bj->decoded = imk_functions_is_command(bj->job.kind.ptr, bj->job.kind.len);
}

static void append_fcall(imk_consumer_t *c, const struct batch_job *bj)
{
    char fn[64];
    snprintf(fn, sizeof(fn), "%.*s", (int)bj->job.kind.len, bj->job.kind.ptr);
    /* The one declared key is the job's home hash tag, "{<room or client id>}": it names
     * the slot of the keys the function works on, and of its done record. A job queued
     * without a home (by an older gateway) declares none. */
    char home[IMK_ID_MAX + 3];
    int home_len = imk_key_tag(home, sizeof(home), bj->job.home.ptr, bj->job.home.len);
    bool has_home = bj->job.home.len > 0 && home_len > 0;
    /* The job id lets the function recognise a job it already applied (a worker died or
     * stalled before acknowledging it) and answer exactly as the first time; the last
     * argument says whether it records events for the feed and webhooks. */
    const char *events = c->cfg->events_retention_s > 0 ? "1" : "0";
    const char *argv[9];
    size_t lens[9];
    int n = 0;
#define ARG(p, len) (argv[n] = (p), lens[n++] = (len))
    ARG("FCALL", 5);
    ARG(fn, strlen(fn));
    ARG(has_home ? "1" : "0", 1);
    if (has_home) {
        ARG(home, (size_t)home_len);
    }
    ARG(c->cfg->redis_prefix, strlen(c->cfg->redis_prefix));
    ARG(bj->job.from.ptr, bj->job.from.len);
    ARG(bj->job.args.ptr, bj->job.args.len);
    ARG(bj->job.job_id.ptr, bj->job.job_id.len);
    ARG(events, 1);
#undef ARG
    redisAppendCommandArgv(c->redis, n, argv, lens);
}

/* Publishes the answer to the gateway waiting for it, if any. Returns 1 when a command was
 * appended. */
static int append_answer(imk_consumer_t *c, const imk_job_t *job, const char *status,
                         size_t status_len, const char *body, size_t body_len)
{
    if (job->gw.len == 0 || job->req == 0) {
        return 0;
    }
    imk_answer_t answer = {job->conn, job->req, {status, status_len}, {body, body_len}};
    imk_buf_t buf = IMK_BUF_INIT;
    if (imk_answer_encode(&answer, &buf) != 0) {
        imk_buf_deinit(&buf);
        return 0;
    }
    char channel[IMK_KEY_MAX];
    char gw[200];
    snprintf(gw, sizeof(gw), "%.*s", (int)job->gw.len, job->gw.ptr);
    imk_channel_gateway(channel, sizeof(channel), c->cfg->redis_prefix, gw);
    redisAppendCommand(c->redis, "PUBLISH %s %b", channel, buf.data, buf.len);
    imk_buf_deinit(&buf);
    return 1;
}

/* Appends the events and the answer of an applied job, adding them to *events and
 * *answers; returns the number of commands. */
static int append_effects(imk_consumer_t *c, const struct batch_job *bj, int *events, int *answers)
{
    const redisReply *r = bj->result;
    int n = 0;
    for (size_t i = 2; i + 1 < r->elements; i += 2) {
        redisAppendCommand(c->redis, "PUBLISH %b %b", r->element[i]->str, r->element[i]->len,
                           r->element[i + 1]->str, r->element[i + 1]->len);
        n++;
    }
    *events += n;
    int answered = append_answer(c, &bj->job, r->element[0]->str, r->element[0]->len,
                                 r->element[1]->str, r->element[1]->len);
    *answers += answered;
    return n + answered;
}

static int delivery_count(imk_consumer_t *c, const struct batch_job *bj)
{
    redisReply *r = redisCommand(c->redis, "XPENDING %s " IMK_JOBS_GROUP " %s %s 1", bj->stream,
                                 bj->id, bj->id);
    int count = 0;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->elements == 4) {
        count = (int)r->element[0]->element[3]->integer;
    }
    freeReplyObject(r);
    return count;
}

/* The job's id for logs (the envelope's job_id, "<gateway answers channel>.<req>", which the
 * gateway's lines name as req=), or "-" when the envelope could not be read. Every line
 * about a job says job=, entry= (its stream entry id) and stream=. */
static int job_id_len(const struct batch_job *bj)
{
    return bj->parsed ? (int)bj->job.job_id.len : 1;
}

static const char *job_id(const struct batch_job *bj)
{
    return bj->parsed ? bj->job.job_id.ptr : "-";
}

/* The kind as a metric label: one of the job kinds, or "unknown", so that no job written by
 * hand can add series. */
static const char *kind_of(const struct batch_job *bj, int *len)
{
    *len = bj->decoded ? (int)bj->job.kind.len : 7;
    return bj->decoded ? bj->job.kind.ptr : "unknown";
}

/* The kind as written in the envelope, for logs. */
static const char *kind_written(const struct batch_job *bj, int *len)
{
    *len = bj->parsed ? (int)bj->job.kind.len : 1;
    return bj->parsed ? bj->job.kind.ptr : "-";
}

/* A job that cannot be applied: record it in the dead-letter stream with the reason, tell
 * its requester, and acknowledge it so it never blocks the stream. Returns commands
 * appended. */
static int append_dead_letter(imk_consumer_t *c, const struct batch_job *bj, const char *why)
{
    int kind_len;
    const char *kind = kind_written(bj, &kind_len);
    IMK_ERROR("job_dead", "job=%.*s entry=%s stream=%s kind=%.*s error=\"%s\"", job_id_len(bj),
              job_id(bj), bj->id, bj->stream, kind_len, kind, why);
    redisAppendCommand(c->redis, "XADD %s * stream %s id %s job %b error %s", c->dead, bj->stream,
                       bj->id, bj->raw != NULL ? bj->raw : "", bj->raw != NULL ? bj->raw_len : 0,
                       why);
    int n = 1;
    if (bj->decoded || bj->job.kind.len > 0) {
        static const char msg[] = "the request could not be applied";
        n += append_answer(c, &bj->job, "internal", 8, msg, sizeof(msg) - 1);
    }
    return n;
}

/* Whether an applied job's reply is a well-formed {status, body, channel, payload...}. */
static int result_ok(const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->elements % 2 != 0) {
        return 0;
    }
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING) {
            return 0;
        }
    }
    return 1;
}

/* Counts a batch's jobs once their acknowledgements are in Redis: outcome, latency from the
 * gateway's enqueue (its clock; a skew shows as 0 or as extra latency), publishes. */
static void count_jobs(imk_consumer_t *c, const struct batch_job *jobs, size_t n, int events,
                       int answers)
{
    int64_t now = now_ms();
    for (size_t i = 0; i < n; i++) {
        const struct batch_job *bj = &jobs[i];
        if (bj->id == NULL) {
            continue;
        }
        int kind_len;
        const char *kind = kind_of(bj, &kind_len);
        imk_worker_stats_job(&c->stats, kind, (size_t)kind_len, bj->outcome);
        if (bj->parsed && bj->outcome != IMK_JOB_FAILED) {
            imk_hist_observe(&c->stats.job_latency, (double)(now - bj->job.at) / 1000.0);
        }
        kind = kind_written(bj, &kind_len);
        IMK_DEBUG("job_done", "job=%.*s entry=%s stream=%s kind=%.*s outcome=%s ms=%lld",
                  job_id_len(bj), job_id(bj), bj->id, bj->stream, kind_len, kind,
                  imk_worker_stats_outcome(bj->outcome),
                  bj->parsed ? (long long)(now - bj->job.at) : -1LL);
    }
    c->stats.events += (uint64_t)events;
    c->stats.answers += (uint64_t)answers;
}

/* A job of the batch is done with, to be acknowledged: all but a failure left pending for a
 * retry (and entries that were no job at all). */
static bool done_with(const struct batch_job *bj)
{
    return bj->id != NULL && bj->outcome != IMK_JOB_FAILED;
}

/* One XACK for every job of the batch that is done with (all of one stream), after their
 * effects in the pipeline. Returns the commands appended (0 or 1). */
static int append_ack(imk_consumer_t *c, const struct batch_job *jobs, size_t n)
{
    const char **argv = calloc(n + 3, sizeof(*argv));
    if (argv == NULL) {
        return 0; /* left pending: claimed and answered again from done:<job> */
    }
    int argc = 0;
    for (size_t i = 0; i < n; i++) {
        if (done_with(&jobs[i])) {
            if (argc == 0) {
                argv[argc++] = "XACK";
                argv[argc++] = jobs[i].stream;
                argv[argc++] = IMK_JOBS_GROUP;
            }
            argv[argc++] = jobs[i].id;
        }
    }
    if (argc > 0) {
        redisAppendCommandArgv(c->redis, argc, argv, NULL);
    }
    free(argv);
    return argc > 0;
}

/* Second half of a batch: effects and acknowledgements, or leaving a failed job pending for
 * a retry. Returns 0 or IMK_EREDIS. */
static int finish_batch(imk_consumer_t *c, struct batch_job *jobs, size_t n)
{
    int appended = 0, events = 0, answers = 0;
    for (size_t i = 0; i < n; i++) {
        struct batch_job *bj = &jobs[i];
        if (bj->id == NULL) {
            continue;
        }
        if (!bj->decoded) {
            bj->outcome = IMK_JOB_DEAD;
            appended += append_dead_letter(c, bj, "malformed job or unknown kind");
        } else if (result_ok(bj->result)) {
            const redisReply *r = bj->result;
            bool ok = r->element[0]->len == 2 && memcmp(r->element[0]->str, "ok", 2) == 0;
            bj->outcome = ok ? IMK_JOB_OK : IMK_JOB_ERROR;
            appended += append_effects(c, bj, &events, &answers);
        } else {
            const char *why = bj->result != NULL && bj->result->type == REDIS_REPLY_ERROR
                                  ? bj->result->str
                                  : "bad function reply";
            int attempts = delivery_count(c, bj);
            if (attempts < c->cfg->worker_max_attempts) {
                int kind_len;
                const char *kind = kind_written(bj, &kind_len);
                IMK_WARN(
                    "job_failed", "job=%.*s entry=%s stream=%s kind=%.*s attempt=%d error=\"%s\"",
                    job_id_len(bj), job_id(bj), bj->id, bj->stream, kind_len, kind, attempts, why);
                bj->outcome = IMK_JOB_FAILED;
                continue; /* stays pending; claimed again after worker.claim_idle_ms */
            }
            bj->outcome = IMK_JOB_DEAD;
            appended += append_dead_letter(c, bj, why);
        }
    }
    appended += append_ack(c, jobs, n);
    int rc = 0;
    for (int i = 0; i < appended; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c->redis, (void **)&r) != REDIS_OK) {
            rc = IMK_EREDIS;
            break;
        }
        freeReplyObject(r);
    }
    if (rc == 0) {
        count_jobs(c, jobs, n, events, answers);
    }
    return rc;
}

/* Applies the entries of one stream's reply (an array of [id, fields]). */
static int apply_entries(imk_consumer_t *c, const char *stream, const redisReply *entries)
{
    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY || entries->elements == 0) {
        return 0;
    }
    size_t n = entries->elements;
    struct batch_job *jobs = calloc(n, sizeof(*jobs));
    if (jobs == NULL) {
        return IMK_ENOMEM;
    }
    size_t calls = 0;
    int64_t start_us = imk_metrics_now_us();
    for (size_t i = 0; i < n; i++) {
        read_entry(&jobs[i], stream, entries->element[i]);
        if (jobs[i].decoded) {
            append_fcall(c, &jobs[i]);
            calls++;
        }
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (jobs[i].decoded && redisGetReply(c->redis, (void **)&jobs[i].result) != REDIS_OK) {
            rc = IMK_EREDIS;
        }
    }
    if (rc == 0 && calls > 0) {
        /* The calls of one pipeline cannot be timed apart from here: each is observed as an
         * equal share of the whole, so the sum and count are exact, the buckets approximate. */
        double seconds = (double)(imk_metrics_now_us() - start_us) / 1e6;
        imk_hist_observe_n(&c->stats.function_duration, seconds / (double)calls, calls);
    }
    if (rc == 0) {
        c->stats.batches++;
        rc = finish_batch(c, jobs, n);
    }
    for (size_t i = 0; i < n; i++) {
        freeReplyObject(jobs[i].result);
    }
    free(jobs);
    return rc;
}

/* XAUTOCLAIM on every stream: jobs idle longer than worker.claim_idle_ms belong to a worker
 * that died or hangs; whoever claims them applies them again (idempotent). */
static int claim_idle(imk_consumer_t *c)
{
    for (int i = 0; i < c->nstreams; i++) {
        redisReply *r = redisCommand(
            c->redis, "XAUTOCLAIM %s " IMK_JOBS_GROUP " %s %d 0-0 COUNT %d", c->streams[i], c->name,
            c->cfg->worker_claim_idle_ms, c->cfg->worker_batch);
        if (r == NULL) {
            return IMK_EREDIS;
        }
        int rc = 0;
        if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[1]->elements > 0) {
            IMK_INFO("jobs_claimed", "stream=%s count=%zu", c->streams[i], r->element[1]->elements);
            c->stats.claimed += r->element[1]->elements;
            rc = apply_entries(c, c->streams[i], r->element[1]);
        }
        freeReplyObject(r);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Removes from the group the consumers (workers) that have been idle longer than
 * worker.dead_consumer_ms and hold no pending job: workers that stopped or died long ago.
 * A consumer with pending jobs stays until XAUTOCLAIM has moved them. */
static int remove_dead_consumers(imk_consumer_t *c, const char *stream)
{
    redisReply *r = redisCommand(c->redis, "XINFO CONSUMERS %s " IMK_JOBS_GROUP, stream);
    if (r == NULL) {
        return IMK_EREDIS;
    }
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *info = r->element[i];
        const char *name = NULL;
        long long pending = -1, idle = -1;
        for (size_t k = 0; info->type == REDIS_REPLY_ARRAY && k + 1 < info->elements; k += 2) {
            const char *field = info->element[k]->str;
            const redisReply *v = info->element[k + 1];
            if (strcmp(field, "name") == 0) {
                name = v->str;
            } else if (strcmp(field, "pending") == 0) {
                pending = v->integer;
            } else if (strcmp(field, "idle") == 0) {
                idle = v->integer;
            }
        }
        if (name != NULL && strcmp(name, c->name) != 0 && pending == 0 &&
            idle > c->cfg->worker_dead_consumer_ms) {
            IMK_INFO("consumer_removed", "stream=%s consumer=%s idle_ms=%lld", stream, name, idle);
            freeReplyObject(redisCommand(c->redis, "XGROUP DELCONSUMER %s " IMK_JOBS_GROUP " %s",
                                         stream, name));
        }
    }
    freeReplyObject(r);
    return 0;
}

/* A clean stop: this consumer leaves each stream's group where it holds no pending job, so
 * scaling down leaves no idle consumer behind (a consumer with pending jobs stays: deleting
 * it would drop them; the others claim them, and the dead-consumer sweep removes it). */
static void leave_group(imk_consumer_t *c)
{
    for (int i = 0; i < c->nstreams; i++) {
        redisReply *r = redisCommand(c->redis, "XPENDING %s " IMK_JOBS_GROUP " - + 1 %s",
                                     c->streams[i], c->name);
        bool idle = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 0;
        freeReplyObject(r);
        if (idle) {
            freeReplyObject(redisCommand(c->redis, "XGROUP DELCONSUMER %s " IMK_JOBS_GROUP " %s",
                                         c->streams[i], c->name));
        }
    }
}

/* Deletes what the group has acknowledged: everything older than both the oldest pending
 * job and the last delivered one. A pending job is never trimmed. Also removes long-dead
 * consumers. */
static int trim_streams(imk_consumer_t *c)
{
    for (int i = 0; i < c->nstreams; i++) {
        redisReply *pending = redisCommand(c->redis, "XPENDING %s " IMK_JOBS_GROUP, c->streams[i]);
        redisReply *groups = redisCommand(c->redis, "XINFO GROUPS %s", c->streams[i]);
        if (pending == NULL || groups == NULL) {
            freeReplyObject(pending);
            freeReplyObject(groups);
            return IMK_EREDIS;
        }
        const char *min_id = NULL;
        if (groups->type == REDIS_REPLY_ARRAY && groups->elements > 0) {
            const redisReply *g = groups->element[0];
            for (size_t k = 0; k + 1 < g->elements; k += 2) {
                if (strcmp(g->element[k]->str, "last-delivered-id") == 0) {
                    min_id = g->element[k + 1]->str;
                }
            }
        }
        if (pending->type == REDIS_REPLY_ARRAY && pending->elements >= 2 &&
            pending->element[1]->type == REDIS_REPLY_STRING) {
            min_id = pending->element[1]->str; /* oldest pending id, never newer than delivered */
        }
        if (min_id != NULL) {
            freeReplyObject(redisCommand(c->redis, "XTRIM %s MINID ~ %s", c->streams[i], min_id));
        }
        freeReplyObject(pending);
        freeReplyObject(groups);
        if (remove_dead_consumers(c, c->streams[i]) != 0) {
            return IMK_EREDIS;
        }
    }
    return 0;
}

/* Appends the push of this worker's metrics when it is due (and at once after connecting),
 * ahead of the next command, so that it costs no round trip of its own. Returns the number
 * of replies to read before that command's. */
static int append_push_if_due(imk_consumer_t *c)
{
    int64_t now = now_ms();
    if (now < c->next_push_ms) {
        return 0;
    }
    c->next_push_ms = now + c->cfg->metrics_push_ms;
    return imk_worker_stats_append_push(&c->stats, c->redis, c->cfg->redis_prefix, c->name,
                                        3 * c->cfg->metrics_push_ms);
}

/* Reads the replies of a push: a refusal (Redis out of memory) is counted, not fatal. Returns
 * 0 or IMK_EREDIS when the connection failed. */
static int read_push_replies(imk_consumer_t *c, int n)
{
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c->redis, (void **)&r) != REDIS_OK) {
            return IMK_EREDIS;
        }
        if (r != NULL && r->type == REDIS_REPLY_ERROR) {
            c->stats.redis_errors++;
            IMK_WARN("metrics_push", "consumer=%s error=\"%s\"", c->name, r->str);
        }
        freeReplyObject(r);
    }
    return 0;
}

static int read_batch(imk_consumer_t *c)
{
    /* XREADGROUP GROUP g name COUNT n BLOCK ms STREAMS s... >... */
    int argc = 9 + 2 * c->nstreams;
    const char **argv = calloc((size_t)argc, sizeof(*argv));
    if (argv == NULL) {
        return IMK_ENOMEM;
    }
    char count[16], block[16];
    snprintf(count, sizeof(count), "%d", c->cfg->worker_batch);
    snprintf(block, sizeof(block), "%d", c->cfg->worker_block_ms);
    const char *head[] = {"XREADGROUP", "GROUP", IMK_JOBS_GROUP, c->name,
                          "COUNT",      count,   "BLOCK",        block};
    memcpy(argv, head, sizeof(head));
    argv[8] = "STREAMS";
    for (int i = 0; i < c->nstreams; i++) {
        argv[9 + i] = c->streams[i];
        argv[9 + c->nstreams + i] = ">";
    }
    int pushed = append_push_if_due(c);
    int appended = redisAppendCommandArgv(c->redis, argc, argv, NULL);
    free(argv);
    redisReply *r = NULL;
    if (appended != REDIS_OK || read_push_replies(c, pushed) != 0 ||
        redisGetReply(c->redis, (void **)&r) != REDIS_OK || r == NULL) {
        return IMK_EREDIS;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        /* NOGROUP after a FLUSHALL or a stream deleted by hand: recreate on reconnect. */
        IMK_WARN("xreadgroup", "error=\"%s\"", r->str);
        rc = IMK_EREDIS;
    } else if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements && rc == 0; i++) {
            const redisReply *s = r->element[i];
            rc = apply_entries(c, s->element[0]->str, s->element[1]);
        }
    }
    freeReplyObject(r);
    return rc;
}

static int run_connected(imk_consumer_t *c, volatile sig_atomic_t *stop)
{
    while (!*stop) {
        int64_t now = now_ms();
        int rc = 0;
        if (now >= c->next_claim_ms) {
            c->next_claim_ms = now + c->cfg->worker_claim_idle_ms / 2;
            rc = claim_idle(c);
        }
        if (rc == 0 && now >= c->next_trim_ms) {
            c->next_trim_ms = now + TRIM_EVERY_MS;
            rc = trim_streams(c);
        }
        if (rc == 0) {
            rc = read_batch(c);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int imk_consumer_run(imk_consumer_t *c, volatile sig_atomic_t *stop)
{
    int backoff = BACKOFF_MIN_MS;
    while (!*stop) {
        if (c->redis == NULL) {
            if (connect_redis(c) != 0) {
                c->stats.redis_errors++;
                disconnect(c);
                sleep_ms(backoff + rand() % (backoff / 2 + 1));
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            c->stats.reconnects += c->connected_before;
            c->connected_before = true;
            c->next_push_ms = 0; /* announce this worker's metrics at once */
        }
        backoff = BACKOFF_MIN_MS;
        if (run_connected(c, stop) != 0) {
            c->stats.redis_errors++;
            IMK_WARN("redis_lost", "consumer=%s", c->name);
            disconnect(c);
        }
    }
    if (c->redis != NULL) {
        /* The last counts, kept until the hash expires. */
        c->next_push_ms = 0;
        read_push_replies(c, append_push_if_due(c));
        leave_group(c);
    }
    IMK_INFO("stopped", "consumer=%s", c->name);
    return 0;
}
