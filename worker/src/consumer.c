/* The consumer loop. A batch costs two round trips: every job's FCALL pipelined, then every
 * PUBLISH and XACK pipelined. A job is acknowledged only after its effects are in Redis (and,
 * on a single Redis, after its events are published), so a worker that dies mid-batch leaves
 * its jobs pending for another to claim; the functions are idempotent, so applying a job
 * again changes nothing. Jobs are counted once acknowledged.
 *
 * Every command goes through the routing client (imkit/cluster_client.h): on a single Redis
 * it is one connection, on a Redis Cluster one per master, each command sent to the master
 * of its key's slot (a job's FCALL to its home's, an XACK to its stream's). The blocking
 * reads have connections of their own (readers.h). */
#include "consumer.h"
#include "functions.h"
#include "outbox_writes.h"
#include "readers.h"
#include "redis_client.h"
#include "worker_stats.h"
#include "imkit/cluster.h"
#include "imkit/err.h"
#include "imkit/ids.h"
#include "imkit/job.h"
#include "imkit/keys.h"
#include "imkit/log.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define TRIM_EVERY_MS 10000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define MAX_ARGS 16        /* of a command built from strings, or handed back for a slot */
#define FOLLOW_UP_ROUNDS 4 /* writes for other slots, then theirs, and so on (publishes) */
#define ANSWER_STORAGE 512 /* an answer's msgpack fits here without an allocation, mostly */

struct imk_consumer {
    const imk_config_t *cfg;
    char name[128];
    bool cluster;        /* redis.cluster: jobs hand back their writes for other slots */
    const char *publish; /* PUBLISH, or SPUBLISH on a cluster (sharded channels) */
    imk_cluster_client_t *redis;
    imk_readers_t *readers;
    bool ready; /* Functions loaded, groups created, readers connected */
    int nstreams;
    char (*streams)[IMK_KEY_MAX];
    char dead[IMK_KEY_MAX];
    int64_t next_claim_ms;
    int64_t next_trim_ms;
    int64_t next_push_ms;
    uint64_t reads; /* reads answered without an error, to tell a failing loop */
    bool ready_before;
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
    const char *dead_why; /* outcome DEAD: the reason the dead letter records */
    redisReply *answer;   /* the reply of a write for another slot that answers the job */
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

static uint16_t slot_of(const char *key)
{
    return imk_cluster_slot(key, strlen(key));
}

imk_consumer_t *imk_consumer_create(const imk_config_t *cfg, const char *name)
{
    imk_consumer_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->cfg = cfg;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->cluster = cfg->redis_cluster[0] != '\0';
    c->publish = c->cluster ? "SPUBLISH" : "PUBLISH";
    c->nstreams = cfg->jobs_partitions;
    c->streams = calloc((size_t)c->nstreams, sizeof(*c->streams));
    /* Commands block up to worker.block_ms plus 5 s: anything much slower means Redis is
     * gone. */
    c->redis = imk_worker_redis_client(cfg, cfg->worker_block_ms + 5000);
    if (c->streams == NULL || c->redis == NULL) {
        imk_consumer_destroy(c);
        return NULL;
    }
    if (imk_cluster_job_streams(c->streams, c->nstreams, cfg->redis_prefix, c->cluster) != 0) {
        imk_consumer_destroy(c);
        return NULL;
    }
    imk_key_dead(c->dead, sizeof(c->dead), cfg->redis_prefix);
    c->readers = imk_readers_create(cfg, c->name, (const char(*)[IMK_KEY_MAX])c->streams,
                                    c->nstreams, c->cluster);
    if (c->readers == NULL) {
        imk_consumer_destroy(c);
        return NULL;
    }
    return c;
}

void imk_consumer_destroy(imk_consumer_t *c)
{
    if (c == NULL) {
        return;
    }
    imk_readers_destroy(c->readers);
    imk_cluster_client_destroy(c->redis);
    free(c->streams);
    free(c);
}

/* Runs one command of string arguments (argc at most MAX_ARGS) on the master of key's
 * slot. NULL when that master could not be reached. */
static redisReply *run(imk_consumer_t *c, const char *key, int argc, const char *const *argv)
{
    size_t lens[MAX_ARGS];
    for (int i = 0; i < argc && i < MAX_ARGS; i++) {
        lens[i] = strlen(argv[i]);
    }
    return imk_cluster_client_command(c->redis, slot_of(key), argc < MAX_ARGS ? argc : MAX_ARGS,
                                      (const char **)argv, lens);
}

/* run() of an array of arguments, counted. */
#define RUN(c, key, argv) run((c), (key), (int)(sizeof(argv) / sizeof((argv)[0])), (argv))

/* Whether a command's reply is a success; a failure is logged. BUSYGROUP (the
 * group exists) is a success. Frees r. */
static bool command_ok(const char *what, redisReply *r)
{
    bool ok = r != NULL && (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "BUSYGROUP", 9) == 0);
    if (!ok) {
        IMK_WARN("redis_error", "what=%s error=\"%s\"", what,
                 r != NULL ? r->str : "connection failed");
    }
    freeReplyObject(r);
    return ok;
}

/* Loads the Functions on every master, creates the group of every stream on its master,
 * and connects the readers. Returns 0 or IMK_EREDIS. */
static int set_up(imk_consumer_t *c)
{
    redisContext *masters[IMK_CLUSTER_MAX_MASTERS];
    int n = imk_cluster_client_masters(c->redis, masters, IMK_CLUSTER_MAX_MASTERS);
    if (n <= 0) {
        IMK_WARN("redis_connect", "what=masters error=\"%s\"",
                 n == 0 ? "no master in the slot map" : "no node answered");
        return IMK_EREDIS;
    }
    for (int i = 0; i < n; i++) {
        if (masters[i] == NULL) {
            IMK_WARN("redis_connect", "what=master index=%d error=\"unreachable\"", i);
            return IMK_EREDIS;
        }
        if (imk_functions_load(masters[i]) != 0) {
            return IMK_EREDIS;
        }
    }
    for (int i = 0; i < c->nstreams; i++) {
        /* From 0, not $: jobs written before the first worker ever started are kept. */
        const char *argv[] = {"XGROUP", "CREATE", c->streams[i], IMK_JOBS_GROUP, "0", "MKSTREAM"};
        if (!command_ok("xgroup_create", RUN(c, c->streams[i], argv))) {
            return IMK_EREDIS;
        }
    }
    if (imk_readers_connect(c->readers, c->redis) != 0) {
        return IMK_EREDIS;
    }
    IMK_INFO("redis_ready", "consumer=%s streams=%d masters=%d", c->name, c->nstreams, n);
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

/* Queues a command on the master of key's slot (lens NULL: NUL-terminated arguments).
 * Returns 1 when queued, 0 when it could not be (no memory: what it was for is redone when
 * the job is claimed again). */
static int queue(imk_consumer_t *c, uint16_t slot, int argc, const char **argv, const size_t *lens)
{
    size_t *own = NULL;
    if (lens == NULL) {
        own = malloc((size_t)argc * sizeof(*own));
        if (own == NULL) {
            return 0;
        }
        for (int i = 0; i < argc; i++) {
            own[i] = strlen(argv[i]);
        }
        lens = own;
    }
    int rc = imk_cluster_client_append(c->redis, slot, argc, argv, lens);
    free(own);
    return rc >= 0;
}

static int append_fcall(imk_consumer_t *c, const struct batch_job *bj)
{
    char fn[64];
    snprintf(fn, sizeof(fn), "%.*s", (int)bj->job.kind.len, bj->job.kind.ptr);
    /* The one declared key is the job's home hash tag, "{<room or client id>}": it names
     * the slot of the keys the function works on, and of its done record, and so the master
     * it runs on. A job queued without a home (by an older gateway) declares none. */
    char home[2 * IMK_ID_MAX + 4]; /* "{<id>}", or a direct pair's "{<a>|<b>}" */
    int home_len = imk_key_tag(home, sizeof(home), bj->job.home.ptr, bj->job.home.len);
    bool has_home = bj->job.home.len > 0 && home_len > 0;
    /* The job id lets the function recognise a job it already applied (a worker died or
     * stalled before acknowledging it) and answer exactly as the first time; the next
     * argument says whether it records events for the feed and webhooks, the last whether
     * it must hand back its writes for other slots (a cluster). */
    const char *events = c->cfg->events_retention_s > 0 ? "1" : "0";
    const char *argv[10];
    size_t lens[10];
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
    ARG(c->cluster ? "1" : "0", 1);
#undef ARG
    uint16_t slot = has_home ? imk_cluster_slot(home, (size_t)home_len) : slot_of(bj->stream);
    return queue(c, slot, n, argv, lens);
}

/* Queues a PUBLISH (SPUBLISH on a cluster) on the channel's master. Returns 1 or 0. */
static int append_publish(imk_consumer_t *c, const char *channel, size_t channel_len,
                          const char *payload, size_t payload_len)
{
    const char *argv[] = {c->publish, channel, payload};
    size_t lens[] = {strlen(c->publish), channel_len, payload_len};
    return queue(c, imk_cluster_slot(channel, channel_len), 3, argv, lens);
}

/* Publishes the answer to the gateway waiting for it, if any. Returns 1 when a command was
 * queued. */
static int append_answer(imk_consumer_t *c, const imk_job_t *job, const char *status,
                         size_t status_len, const char *body, size_t body_len)
{
    if (job->gw.len == 0 || job->req == 0) {
        return 0;
    }
    imk_answer_t answer = {job->conn, job->req, {status, status_len}, {body, body_len}};
    char storage[ANSWER_STORAGE];
    imk_buf_t buf;
    imk_buf_init_on(&buf, storage, sizeof(storage));
    if (imk_answer_encode(&answer, &buf) != 0) {
        imk_buf_deinit(&buf);
        return 0;
    }
    char channel[IMK_KEY_MAX];
    char gw[200];
    snprintf(gw, sizeof(gw), "%.*s", (int)job->gw.len, job->gw.ptr);
    imk_channel_gateway(channel, sizeof(channel), c->cfg->redis_prefix, gw);
    int n = append_publish(c, channel, strlen(channel), buf.data, buf.len);
    imk_buf_deinit(&buf);
    return n;
}

/* Whether a write for another slot's reply is the job's answer: its channel is '='. */
static bool answers_job(const redisReply *channel)
{
    return channel->len == 1 && channel->str[0] == '=';
}

/* Whether a reply's pair is a write for another slot: channel '' (or '=', answers_job, or
 * '+' and '?', an outbox write: outbox_writes.h) and payload [route key, command,
 * arguments...], all strings, at most MAX_ARGS after the route (Lua header: Other slots). */
static bool is_follow_up(const redisReply *channel, const redisReply *payload)
{
    if (channel->type != REDIS_REPLY_STRING ||
        (channel->len != 0 && !answers_job(channel) && !imk_outbox_write_marked(channel)) ||
        payload->type != REDIS_REPLY_ARRAY || payload->elements < 2 ||
        payload->elements > MAX_ARGS + 1) {
        return false;
    }
    for (size_t i = 0; i < payload->elements; i++) {
        if (payload->element[i]->type != REDIS_REPLY_STRING) {
            return false;
        }
    }
    return true;
}

/* Queues the publish of every event of a function's reply; returns the number queued. */
static int append_events(imk_consumer_t *c, const redisReply *r)
{
    int n = 0;
    for (size_t i = 2; i + 1 < r->elements; i += 2) {
        if (!is_follow_up(r->element[i], r->element[i + 1])) {
            n += append_publish(c, r->element[i]->str, r->element[i]->len, r->element[i + 1]->str,
                                r->element[i + 1]->len);
        }
    }
    return n;
}

/* Queues the events and the answer of an applied job, adding them to *events and
 * *answers; returns the number of commands. */
static int append_effects(imk_consumer_t *c, const struct batch_job *bj, int *events, int *answers)
{
    const redisReply *r = bj->result;
    int n = 0;
    n += append_events(c, r);
    *events += n;
    const redisReply *a = bj->answer != NULL ? bj->answer : r; /* a write's reply answers */
    int answered = append_answer(c, &bj->job, a->element[0]->str, a->element[0]->len,
                                 a->element[1]->str, a->element[1]->len);
    *answers += answered;
    return n + answered;
}

/* How many times the job was delivered (its XPENDING entry); 0 when that cannot be read. */
static int delivery_count(imk_consumer_t *c, const struct batch_job *bj)
{
    const char *argv[] = {"XPENDING", bj->stream, IMK_JOBS_GROUP, bj->id, bj->id, "1"};
    redisReply *r = RUN(c, bj->stream, argv);
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

/* Whether a function's reply hands back writes for other slots. */
static bool has_follow_ups(const redisReply *r)
{
    for (size_t i = 2; i + 1 < r->elements; i += 2) {
        if (is_follow_up(r->element[i], r->element[i + 1])) {
            return true;
        }
    }
    return false;
}

/* Whether an applied job's reply is a well-formed {status, body, channel, payload...}. */
static int result_ok(const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->elements % 2 != 0) {
        return 0;
    }
    for (size_t i = 0; i < r->elements; i++) {
        bool follow_up = i >= 2 && i % 2 == 1 && is_follow_up(r->element[i - 1], r->element[i]);
        if (r->element[i]->type != REDIS_REPLY_STRING && !follow_up) {
            return 0;
        }
    }
    return 1;
}

/* Whether r is a well-formed reply (result_ok) whose status is "ok". */
static bool answered_ok(const redisReply *r)
{
    return result_ok(r) && r->element[0]->len == 2 && memcmp(r->element[0]->str, "ok", 2) == 0;
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

/* A job that cannot be applied: record it in the dead-letter stream with the reason, tell
 * its requester, and acknowledge it so it never blocks the stream. Returns commands
 * queued. */
static int append_dead_letter(imk_consumer_t *c, const struct batch_job *bj)
{
    int kind_len;
    const char *kind = kind_written(bj, &kind_len);
    IMK_ERROR("job_dead", "job=%.*s entry=%s stream=%s kind=%.*s error=\"%s\"", job_id_len(bj),
              job_id(bj), bj->id, bj->stream, kind_len, kind, bj->dead_why);
    const char *argv[] = {"XADD",   c->dead,     "*",
                          "stream", bj->stream,  "id",
                          bj->id,   "job",       bj->raw != NULL ? bj->raw : "",
                          "error",  bj->dead_why};
    size_t lens[11];
    for (int i = 0; i < 11; i++) {
        lens[i] = i == 8 ? (bj->raw != NULL ? bj->raw_len : 0) : strlen(argv[i]);
    }
    int n = queue(c, slot_of(c->dead), 11, argv, lens);
    if (bj->decoded || bj->job.kind.len > 0) {
        static const char msg[] = "the request could not be applied";
        n += append_answer(c, &bj->job, "internal", 8, msg, sizeof(msg) - 1);
    }
    return n;
}

/* One XACK for every job of the batch that is done with (all of one stream), on the
 * stream's master. Returns the commands queued (0 or 1). */
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
    int queued = argc > 0 ? queue(c, slot_of(argv[1]), argc, argv, NULL) : 0;
    free(argv);
    return queued;
}

/* A job that failed (why: borrowed, must outlive the batch) is left pending for a retry,
 * until it was delivered worker.max_attempts times: then it is dead-lettered. */
static void retry_or_bury(imk_consumer_t *c, struct batch_job *bj, const char *why)
{
    int attempts = delivery_count(c, bj);
    if (attempts >= c->cfg->worker_max_attempts) {
        bj->outcome = IMK_JOB_DEAD;
        bj->dead_why = why;
        return;
    }
    int kind_len;
    const char *kind = kind_written(bj, &kind_len);
    IMK_WARN("job_failed", "job=%.*s entry=%s stream=%s kind=%.*s attempt=%d error=\"%s\"",
             job_id_len(bj), job_id(bj), bj->id, bj->stream, kind_len, kind, attempts, why);
    bj->outcome = IMK_JOB_FAILED; /* claimed again after worker.claim_idle_ms */
}

/* Decides what becomes of each job of the batch from its function's reply. A failure is
 * retried (left pending) until worker.max_attempts deliveries, then dead-lettered. */
static void judge_batch(imk_consumer_t *c, struct batch_job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct batch_job *bj = &jobs[i];
        if (bj->id == NULL) {
            continue;
        }
        if (!bj->decoded) {
            bj->outcome = IMK_JOB_DEAD;
            bj->dead_why = "malformed job or unknown kind";
            continue;
        }
        if (result_ok(bj->result)) {
            bj->outcome = answered_ok(bj->result) ? IMK_JOB_OK : IMK_JOB_ERROR;
            continue;
        }
        retry_or_bury(c, bj,
                      bj->result != NULL && bj->result->type == REDIS_REPLY_ERROR
                          ? bj->result->str
                          : "bad function reply");
    }
}

/* Sends the queued pipeline and reads its replies. Returns 0, or IMK_EREDIS when a node
 * failed (what it owed may or may not have run: the jobs are applied again when claimed). */
static int collect_all(imk_consumer_t *c)
{
    return imk_cluster_client_flush(c->redis) == 0 ? 0 : IMK_EREDIS;
}

/* Queues write w ([route key, command, arguments...]: is_follow_up) on the route's master.
 * Returns 1 or 0 (no memory). */
static int queue_write(imk_consumer_t *c, const redisReply *w)
{
    const char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS];
    size_t argc = w->elements - 1; /* at most MAX_ARGS: is_follow_up */
    for (size_t k = 0; k < argc; k++) {
        argv[k] = w->element[k + 1]->str;
        lens[k] = w->element[k + 1]->len;
    }
    return queue(c, imk_cluster_slot(w->element[0]->str, w->element[0]->len), (int)argc, argv,
                 lens);
}

/* Whether a job of the batch is still to be acknowledged with its effects. */
static bool still_applied(const struct batch_job *bj)
{
    return bj->outcome != IMK_JOB_FAILED && bj->outcome != IMK_JOB_DEAD;
}

/* A write for another slot queued in a round of run_follow_ups: the job it is for, and
 * its reply once read. */
struct follow_up {
    size_t job;
    redisReply *reply;
    bool answers; /* its reply is the job's answer */
    bool shared;  /* that reply is the job's (batch_job.answer), freed with it */
};

/* Queues the writes for other slots that reply r hands back, and the publish of its events
 * when it is itself a write's reply (a job's own events go out with its answer), for job
 * j, in round; holds its outbox write in held. Grows *list (capacity *cap) with one entry
 * per command queued. Returns 0 or IMK_ENOMEM. */
static int queue_follow_ups(imk_consumer_t *c, size_t j, int round, const redisReply *r,
                            bool publish, imk_outbox_writes_t *held, struct follow_up **list,
                            size_t *count, size_t *cap)
{
    for (size_t i = 2; i + 1 < r->elements; i += 2) {
        const redisReply *w = r->element[i + 1];
        bool write = is_follow_up(r->element[i], w);
        if (write && imk_outbox_write_marked(r->element[i])) {
            if (imk_outbox_writes_hold(held, j, round, r->element[i], w) != 0) {
                return IMK_ENOMEM;
            }
            continue;
        }
        if (!write && !publish) {
            continue;
        }
        if (*count == *cap) {
            size_t grown = *cap > 0 ? *cap * 2 : 16;
            struct follow_up *more = realloc(*list, grown * sizeof(*more));
            if (more == NULL) {
                return IMK_ENOMEM;
            }
            *list = more;
            *cap = grown;
        }
        int queued;
        if (write) {
            queued = queue_write(c, w);
        } else {
            queued = append_publish(c, r->element[i]->str, r->element[i]->len, w->str, w->len);
            c->stats.events += (uint64_t)queued;
        }
        if (queued == 0) {
            return IMK_ENOMEM;
        }
        (*list)[(*count)++] =
            (struct follow_up){j, NULL, write && answers_job(r->element[i]), false};
    }
    return 0;
}

static void free_follow_ups(struct follow_up *list, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (!list[i].shared) {
            freeReplyObject(list[i].reply);
        }
    }
    free(list);
}

/* Runs the writes for other slots that applied jobs hand back (on a cluster: Lua header,
 * Other slots), each on its key's master, round after round while the Functions among
 * them hand back more (at most FOLLOW_UP_ROUNDS), publishing those Functions' events; the
 * outbox writes among them are held (outbox_writes.h). A job with a write that failed is
 * left to retry (it hands the same writes back when replayed). Costs nothing when no job
 * hands any back. */
static void run_follow_ups(imk_consumer_t *c, struct batch_job *jobs, size_t n,
                           imk_outbox_writes_t *held)
{
    struct follow_up *prev = NULL;
    size_t nprev = 0;
    for (int round = 0; round < FOLLOW_UP_ROUNDS; round++) {
        struct follow_up *list = NULL;
        size_t count = 0, cap = 0;
        int rc = 0;
        for (size_t j = 0; j < n && round == 0 && rc == 0; j++) {
            if (jobs[j].outcome == IMK_JOB_OK || jobs[j].outcome == IMK_JOB_ERROR) {
                rc =
                    queue_follow_ups(c, j, round, jobs[j].result, false, held, &list, &count, &cap);
            }
        }
        for (size_t k = 0; k < nprev && rc == 0; k++) {
            if (prev[k].reply != NULL && result_ok(prev[k].reply)) {
                rc = queue_follow_ups(c, prev[k].job, round, prev[k].reply, true, held, &list,
                                      &count, &cap);
            }
        }
        free_follow_ups(prev, nprev);
        prev = list;
        nprev = count;
        if (count == 0 && rc == 0) {
            break;
        }
        redisReply **replies = rc == 0 ? calloc(count, sizeof(*replies)) : NULL;
        if (replies == NULL) { /* no memory: every applied job of the batch is retried */
            (void)imk_cluster_client_flush(c->redis);
            for (size_t j = 0; j < n; j++) {
                if (jobs[j].outcome == IMK_JOB_OK || jobs[j].outcome == IMK_JOB_ERROR) {
                    retry_or_bury(c, &jobs[j], "no memory for its writes in other slots");
                }
            }
            break;
        }
        int got = imk_cluster_client_collect(c->redis, replies, (int)count);
        for (size_t k = 0; k < count; k++) {
            redisReply *r = got == (int)count ? replies[k] : NULL;
            struct batch_job *bj = &jobs[list[k].job];
            if ((r == NULL || r->type == REDIS_REPLY_ERROR) && still_applied(bj)) {
                IMK_WARN("follow_up_failed", "job=%.*s entry=%s error=\"%s\"", job_id_len(bj),
                         job_id(bj), bj->id, r != NULL ? r->str : "node unreachable");
                retry_or_bury(c, bj, "a write in another slot failed");
            }
            list[k].reply = r;
            if (list[k].answers && r != NULL && r->type != REDIS_REPLY_ERROR && !result_ok(r) &&
                still_applied(bj)) {
                retry_or_bury(c, bj, "bad reply of the write that answers");
            }
            if (list[k].answers && result_ok(r) && bj->answer == NULL) {
                bool ok = answered_ok(r);
                bj->outcome = bj->outcome == IMK_JOB_OK && !ok ? IMK_JOB_ERROR : bj->outcome;
                bj->answer = r; /* shared with the next round, which publishes its events */
                list[k].shared = true;
            }
        }
        free(replies);
    }
    for (size_t k = 0; k < nprev; k++) { /* the rounds ran out with writes still to run */
        struct batch_job *bj = &jobs[prev[k].job];
        if (result_ok(prev[k].reply) && has_follow_ups(prev[k].reply) && still_applied(bj)) {
            retry_or_bury(c, bj, "writes in other slots nested too deep");
        }
    }
    free_follow_ups(prev, nprev);
}

/* Queues the writes an outbox write's reply hands back: the trims of the homes' outboxes up
 * to what is now in the feed. Their replies do not matter: a trim that did not happen
 * leaves entries that the next call hands back again, and that are not written twice.
 * Returns the number queued. */
static int queue_trims(imk_consumer_t *c, const redisReply *r)
{
    int n = 0;
    for (size_t i = 2; i + 1 < r->elements; i += 2) {
        const redisReply *w = r->element[i + 1];
        if (is_follow_up(r->element[i], w) && r->element[i]->len == 0) {
            n += queue_write(c, w);
        }
    }
    return n;
}

/* Runs the outbox writes held by run_follow_ups, a job's deepest first, for the jobs whose
 * other writes all ran; a job whose write (or the presence read it needs) failed is left to
 * retry, and its outbox write is applied once however often it is handed back. */
static void run_outbox_writes(imk_consumer_t *c, struct batch_job *jobs, imk_outbox_writes_t *held)
{
    if (held->n == 0) {
        return;
    }
    size_t *queued = calloc(held->n, sizeof(*queued)); /* the held write of each command */
    redisReply **replies = calloc(held->n, sizeof(*replies));
    int rc = queued != NULL && replies != NULL
                 ? imk_outbox_writes_prepare(held, c->redis, c->cfg->redis_prefix)
                 : IMK_ENOMEM;
    size_t count = 0;
    for (size_t i = 0; i < held->n && rc == 0; i++) {
        imk_outbox_write_t *w = &held->v[i];
        if (w->failed && still_applied(&jobs[w->job])) {
            retry_or_bury(c, &jobs[w->job], "a read of members' presence failed");
        }
        if (still_applied(&jobs[w->job])) {
            const char *argv[IMK_OUTBOX_WRITE_ARGS];
            size_t lens[IMK_OUTBOX_WRITE_ARGS];
            int argc = imk_outbox_write_command(w, argv, lens);
            rc = queue(c, imk_cluster_slot(w->argv[0], w->lens[0]), argc, argv, lens) == 1
                     ? 0
                     : IMK_ENOMEM;
            queued[count++] = i;
        }
    }
    int got = rc == 0 ? imk_cluster_client_collect(c->redis, replies, (int)count) : -1;
    if (rc != 0) { /* no memory: every job with an outbox write is retried */
        (void)imk_cluster_client_flush(c->redis);
        for (size_t i = 0; i < held->n; i++) {
            if (still_applied(&jobs[held->v[i].job])) {
                retry_or_bury(c, &jobs[held->v[i].job], "no memory for its outbox write");
            }
        }
    }
    int trims = 0;
    for (size_t k = 0; k < count && rc == 0; k++) {
        struct batch_job *bj = &jobs[held->v[queued[k]].job];
        redisReply *r = got == (int)count ? replies[k] : NULL;
        bool ok = answered_ok(r);
        if (!ok && still_applied(bj)) {
            IMK_WARN("outbox_write_failed", "job=%.*s entry=%s error=\"%s\"", job_id_len(bj),
                     job_id(bj), bj->id,
                     r == NULL                      ? "node unreachable"
                     : r->type == REDIS_REPLY_ERROR ? r->str
                     : result_ok(r)                 ? r->element[1]->str
                                                    : "bad reply");
            retry_or_bury(c, bj, "an outbox write failed");
        }
        trims += ok ? queue_trims(c, r) : 0;
        freeReplyObject(r);
    }
    if (trims > 0) {
        (void)imk_cluster_client_flush(c->redis);
    }
    free(replies);
    free(queued);
}

/* Second half of a batch: effects and acknowledgements, or leaving a failed job pending for
 * a retry. Returns 0 or IMK_EREDIS. */
static int finish_batch(imk_consumer_t *c, struct batch_job *jobs, size_t n)
{
    judge_batch(c, jobs, n);
    imk_outbox_writes_t held = IMK_OUTBOX_WRITES_INIT;
    run_follow_ups(c, jobs, n, &held);
    run_outbox_writes(c, jobs, &held);
    imk_outbox_writes_clear(&held);
    int queued = 0, events = 0, answers = 0;
    for (size_t i = 0; i < n; i++) {
        struct batch_job *bj = &jobs[i];
        if (bj->id == NULL || bj->outcome == IMK_JOB_FAILED) {
            continue;
        }
        queued += bj->outcome == IMK_JOB_DEAD ? append_dead_letter(c, bj)
                                              : append_effects(c, bj, &events, &answers);
    }
    queued += append_ack(c, jobs, n);
    int rc = queued > 0 ? collect_all(c) : 0;
    if (rc == 0) {
        count_jobs(c, jobs, n, events, answers);
    }
    return rc;
}

/* Runs every decoded job's FCALL in one pipeline (each on its home's master) and keeps each
 * reply in its job. Returns 0 or IMK_EREDIS when a node failed. */
static int call_functions(imk_consumer_t *c, struct batch_job *jobs, size_t n)
{
    int calls = 0;
    bool all_queued = true;
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].decoded) {
            int queued = append_fcall(c, &jobs[i]);
            calls += queued;
            all_queued = all_queued && queued == 1;
        }
    }
    if (calls == 0 && all_queued) {
        return 0;
    }
    /* Replies are matched to jobs by their place: one job left out would shift them all. */
    redisReply **replies = all_queued ? calloc((size_t)calls, sizeof(*replies)) : NULL;
    if (replies == NULL) {
        (void)collect_all(c);
        return IMK_ENOMEM;
    }
    int64_t start_us = imk_metrics_now_us();
    int got = imk_cluster_client_collect(c->redis, replies, calls);
    int rc = got == calls ? 0 : IMK_EREDIS;
    for (size_t i = 0, k = 0; i < n && (int)k < got; i++) {
        if (jobs[i].decoded) {
            jobs[i].result = replies[k++];
            rc = jobs[i].result == NULL ? IMK_EREDIS : rc;
        }
    }
    free(replies);
    if (rc == 0) {
        /* The calls of one pipeline cannot be timed apart from here: each is observed as an
         * equal share of the whole, so the sum and count are exact, the buckets approximate. */
        double seconds = (double)(imk_metrics_now_us() - start_us) / 1e6;
        imk_hist_observe_n(&c->stats.function_duration, seconds / (double)calls, (uint64_t)calls);
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
    for (size_t i = 0; i < n; i++) {
        read_entry(&jobs[i], stream, entries->element[i]);
    }
    int rc = call_functions(c, jobs, n);
    if (rc == 0) {
        c->stats.batches++;
        rc = finish_batch(c, jobs, n);
    }
    for (size_t i = 0; i < n; i++) {
        freeReplyObject(jobs[i].result);
        freeReplyObject(jobs[i].answer);
    }
    free(jobs);
    return rc;
}

/* XAUTOCLAIM on every stream: jobs idle longer than worker.claim_idle_ms belong to a worker
 * that died or hangs; whoever claims them applies them again (idempotent). */
static int claim_idle(imk_consumer_t *c)
{
    char idle[16], count[16];
    snprintf(idle, sizeof(idle), "%d", c->cfg->worker_claim_idle_ms);
    snprintf(count, sizeof(count), "%d", c->cfg->worker_batch);
    for (int i = 0; i < c->nstreams; i++) {
        const char *argv[] = {"XAUTOCLAIM", c->streams[i], IMK_JOBS_GROUP, c->name,
                              idle,         "0-0",         "COUNT",        count};
        redisReply *r = RUN(c, c->streams[i], argv);
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

/* The fields name, pending and idle of one XINFO CONSUMERS entry. */
static void consumer_info(const redisReply *info, const char **name, long long *pending,
                          long long *idle)
{
    for (size_t k = 0; info->type == REDIS_REPLY_ARRAY && k + 1 < info->elements; k += 2) {
        const char *field = info->element[k]->str;
        const redisReply *v = info->element[k + 1];
        if (strcmp(field, "name") == 0) {
            *name = v->str;
        } else if (strcmp(field, "pending") == 0) {
            *pending = v->integer;
        } else if (strcmp(field, "idle") == 0) {
            *idle = v->integer;
        }
    }
}

/* Removes from the group the consumers (workers) that have been idle longer than
 * worker.dead_consumer_ms and hold no pending job: workers that stopped or died long ago.
 * A consumer with pending jobs stays until XAUTOCLAIM has moved them. */
static int remove_dead_consumers(imk_consumer_t *c, const char *stream)
{
    const char *argv[] = {"XINFO", "CONSUMERS", stream, IMK_JOBS_GROUP};
    redisReply *r = RUN(c, stream, argv);
    if (r == NULL) {
        return IMK_EREDIS;
    }
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *name = NULL;
        long long pending = -1, idle = -1;
        consumer_info(r->element[i], &name, &pending, &idle);
        if (name != NULL && strcmp(name, c->name) != 0 && pending == 0 &&
            idle > c->cfg->worker_dead_consumer_ms) {
            IMK_INFO("consumer_removed", "stream=%s consumer=%s idle_ms=%lld", stream, name, idle);
            const char *del[] = {"XGROUP", "DELCONSUMER", stream, IMK_JOBS_GROUP, name};
            freeReplyObject(RUN(c, stream, del));
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
        const char *argv[] = {"XPENDING", c->streams[i], IMK_JOBS_GROUP, "-", "+", "1", c->name};
        redisReply *r = RUN(c, c->streams[i], argv);
        bool idle = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 0;
        freeReplyObject(r);
        if (idle) {
            const char *del[] = {"XGROUP", "DELCONSUMER", c->streams[i], IMK_JOBS_GROUP, c->name};
            freeReplyObject(RUN(c, c->streams[i], del));
        }
    }
}

/* The oldest id the group may still need: its oldest pending one, else its last delivered
 * one. NULL when neither could be read. Borrowed from the replies. */
static const char *oldest_needed(const redisReply *pending, const redisReply *groups)
{
    if (pending->type == REDIS_REPLY_ARRAY && pending->elements >= 2 &&
        pending->element[1]->type == REDIS_REPLY_STRING) {
        return pending->element[1]->str; /* oldest pending id, never newer than delivered */
    }
    const char *id = NULL;
    if (groups->type == REDIS_REPLY_ARRAY && groups->elements > 0) {
        const redisReply *g = groups->element[0];
        for (size_t k = 0; g->type == REDIS_REPLY_ARRAY && k + 1 < g->elements; k += 2) {
            if (strcmp(g->element[k]->str, "last-delivered-id") == 0) {
                id = g->element[k + 1]->str;
            }
        }
    }
    return id;
}

/* Deletes what the group has acknowledged: everything older than both the oldest pending
 * job and the last delivered one. A pending job is never trimmed. Also removes long-dead
 * consumers. */
static int trim_streams(imk_consumer_t *c)
{
    for (int i = 0; i < c->nstreams; i++) {
        const char *stream = c->streams[i];
        const char *pending_argv[] = {"XPENDING", stream, IMK_JOBS_GROUP};
        const char *groups_argv[] = {"XINFO", "GROUPS", stream};
        redisReply *pending = RUN(c, stream, pending_argv);
        redisReply *groups = RUN(c, stream, groups_argv);
        if (pending == NULL || groups == NULL) {
            freeReplyObject(pending);
            freeReplyObject(groups);
            return IMK_EREDIS;
        }
        const char *min_id = oldest_needed(pending, groups);
        if (min_id != NULL) {
            const char *trim[] = {"XTRIM", stream, "MINID", "~", min_id};
            freeReplyObject(RUN(c, stream, trim));
        }
        freeReplyObject(pending);
        freeReplyObject(groups);
        if (remove_dead_consumers(c, stream) != 0) {
            return IMK_EREDIS;
        }
    }
    return 0;
}

/* Pushes this worker's metrics when due (and at once after setting up). A refusal (Redis
 * out of memory) is counted, not fatal. Returns 0 or IMK_EREDIS. */
static int push_if_due(imk_consumer_t *c, bool now)
{
    int64_t t = now_ms();
    if (!now && t < c->next_push_ms) {
        return 0;
    }
    c->next_push_ms = t + c->cfg->metrics_push_ms;
    int refused = imk_worker_stats_push(&c->stats, c->redis, c->cfg->redis_prefix, c->name,
                                        3 * c->cfg->metrics_push_ms);
    if (refused > 0) {
        c->stats.redis_errors += (uint64_t)refused;
        IMK_WARN("metrics_push", "consumer=%s refused=%d", c->name, refused);
    }
    return refused == IMK_EREDIS ? IMK_EREDIS : 0;
}

/* Applies what one XREADGROUP brought: an array of [stream, entries], or nil when its
 * BLOCK ran out. An error reply (the reader is closed) means setting up again. */
static int apply_read(imk_consumer_t *c, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        return IMK_EREDIS;
    }
    int rc = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && rc == 0; i++) {
        const redisReply *s = r->element[i];
        if (s->type == REDIS_REPLY_ARRAY && s->elements == 2 &&
            s->element[0]->type == REDIS_REPLY_STRING) {
            rc = apply_entries(c, s->element[0]->str, s->element[1]);
        }
    }
    return rc;
}

/* Waits up to timeout_ms for one read (sending new ones when send) and applies it. */
static int read_batch(imk_consumer_t *c, bool send, int timeout_ms)
{
    redisReply *r = NULL;
    int got = send ? imk_readers_next(c->readers, timeout_ms, &r)
                   : imk_readers_finish(c->readers, timeout_ms, &r);
    if (got <= 0) {
        return got;
    }
    c->reads += r->type != REDIS_REPLY_ERROR;
    int rc = apply_read(c, r);
    freeReplyObject(r);
    return rc;
}

static int run_ready(imk_consumer_t *c, volatile sig_atomic_t *stop)
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
            rc = push_if_due(c, false);
        }
        if (rc == 0) {
            rc = read_batch(c, true, c->cfg->worker_block_ms + 1000);
        }
        if (rc != 0) {
            return rc;
        }
    }
    /* The reads in flight may deliver jobs to this consumer: apply them before leaving. */
    while (imk_readers_busy(c->readers)) {
        if (read_batch(c, false, c->cfg->worker_block_ms + 5000) != 0) {
            return IMK_EREDIS;
        }
    }
    return 0;
}

/* Drops every connection: the next set-up reloads the map and connects again. */
static void lose(imk_consumer_t *c)
{
    c->stats.redis_errors++;
    IMK_WARN("redis_lost", "consumer=%s", c->name);
    imk_readers_close(c->readers);
    (void)imk_cluster_client_refresh(c->redis);
    c->ready = false;
}

/* Sleeps *backoff ms (with jitter), then doubles it up to BACKOFF_MAX_MS. */
static void back_off(int *backoff)
{
    sleep_ms(*backoff + rand() % (*backoff / 2 + 1));
    *backoff = *backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *backoff * 2;
}

int imk_consumer_run(imk_consumer_t *c, volatile sig_atomic_t *stop)
{
    int backoff = BACKOFF_MIN_MS;
    while (!*stop) {
        if (!c->ready) {
            if (set_up(c) != 0) {
                c->stats.redis_errors++;
                imk_readers_close(c->readers);
                /* A master that turned replica refuses FUNCTION LOAD (READONLY) without a
                 * redirect: the map must be read again. */
                (void)imk_cluster_client_refresh(c->redis);
                back_off(&backoff);
                continue;
            }
            c->stats.reconnects += c->ready_before;
            c->ready = c->ready_before = true;
            (void)push_if_due(c, true); /* announce this worker's metrics at once */
        }
        uint64_t reads = c->reads;
        if (run_ready(c, stop) == 0) {
            continue;
        }
        lose(c);
        if (c->reads == reads) { /* failed again before any read: do not spin */
            back_off(&backoff);
        } else {
            backoff = BACKOFF_MIN_MS;
        }
    }
    if (c->ready) {
        (void)push_if_due(c, true); /* the last counts, kept until the hash expires */
        leave_group(c);
    }
    imk_readers_close(c->readers);
    IMK_INFO("stopped", "consumer=%s", c->name);
    return 0;
}
