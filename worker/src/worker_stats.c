/* The worker's counters and histograms, their exposition and its push to Redis. */
#include "worker_stats.h"
#include "imkit/err.h"
#include "imkit/keys.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

static const char *const outcomes[IMK_JOB_OUTCOMES] = {"ok", "error", "failed", "dead"};

const char *imk_worker_stats_outcome(enum imk_job_outcome outcome)
{
    return outcome >= 0 && outcome < IMK_JOB_OUTCOMES ? outcomes[outcome] : "";
}

void imk_worker_stats_job(imk_worker_stats_t *st, const char *kind, size_t len,
                          enum imk_job_outcome outcome)
{
    if (kind == NULL || len == 0) {
        kind = "unknown";
        len = 7;
    }
    size_t i = 0;
    while (i < st->nkinds &&
           !(strlen(st->kinds[i].name) == len && memcmp(st->kinds[i].name, kind, len) == 0)) {
        i++;
    }
    if (i == st->nkinds) {
        if (st->nkinds < IMK_WORKER_STATS_KINDS - 1 && len < sizeof(st->kinds[i].name)) {
            memcpy(st->kinds[i].name, kind, len);
            st->kinds[i].name[len] = '\0';
            st->nkinds++;
        } else {
            /* The last slot is "other" (a kind too long, or too many kinds). */
            i = IMK_WORKER_STATS_KINDS - 1;
            snprintf(st->kinds[i].name, sizeof(st->kinds[i].name), "other");
        }
    }
    st->kinds[i].jobs[outcome]++;
}

void imk_worker_stats_render(const imk_worker_stats_t *st, const char *worker, imk_buf_t *out)
{
    imk_buf_t labels = IMK_BUF_INIT, job_labels = IMK_BUF_INIT;
    imk_metrics_label(&labels, "worker", worker);
    const char *l = labels.data != NULL ? labels.data : "";

    imk_metrics_family(out, "imkit_worker_jobs_total", "counter", "jobs by kind and outcome");
    for (size_t i = 0; i < IMK_WORKER_STATS_KINDS; i++) {
        for (int o = 0; o < IMK_JOB_OUTCOMES && st->kinds[i].name[0] != '\0'; o++) {
            if (st->kinds[i].jobs[o] > 0) {
                imk_buf_reset(&job_labels);
                imk_buf_append_str(&job_labels, l);
                imk_metrics_label(&job_labels, "kind", st->kinds[i].name);
                imk_metrics_label(&job_labels, "outcome", outcomes[o]);
                imk_metrics_sample(out, "imkit_worker_jobs_total", job_labels.data,
                                   (double)st->kinds[i].jobs[o]);
            }
        }
    }
    imk_metrics_family(out, "imkit_worker_job_latency_seconds", "histogram",
                       "from a job's enqueue by the gateway to its acknowledgement");
    imk_metrics_hist(out, "imkit_worker_job_latency_seconds", l, &st->job_latency);
    imk_metrics_family(out, "imkit_worker_function_duration_seconds", "histogram",
                       "one Function call, as its share of its batch's pipelined calls");
    imk_metrics_hist(out, "imkit_worker_function_duration_seconds", l, &st->function_duration);
    imk_metrics_single(out, "imkit_worker_batches_total", "counter", "job batches applied", l,
                       st->batches);
    imk_metrics_single(out, "imkit_worker_jobs_claimed_total", "counter",
                       "jobs claimed from other consumers", l, st->claimed);
    imk_metrics_single(out, "imkit_worker_events_published_total", "counter", "events published", l,
                       st->events);
    imk_metrics_single(out, "imkit_worker_answers_published_total", "counter",
                       "answers published to gateways", l, st->answers);
    imk_metrics_single(out, "imkit_worker_redis_errors_total", "counter",
                       "Redis connections failed or lost, metrics pushes refused", l,
                       st->redis_errors);
    imk_metrics_single(out, "imkit_worker_redis_reconnects_total", "counter",
                       "Redis connections made again", l, st->reconnects);
    imk_metrics_process(out, l);
    imk_buf_deinit(&job_labels);
    imk_buf_deinit(&labels);
}

/* Runs the pipeline appended to redis: the number of error replies, or IMK_EREDIS. */
static int collect_refusals(imk_cluster_client_t *redis)
{
    redisReply *replies[2];
    int n = imk_cluster_client_collect(redis, replies, 2);
    int refused = 0;
    for (int i = 0; i < n; i++) {
        if (replies[i] == NULL) {
            refused = IMK_EREDIS;
        } else if (refused >= 0 && replies[i]->type == REDIS_REPLY_ERROR) {
            refused++;
        }
        freeReplyObject(replies[i]);
    }
    return n < 0 ? n : refused;
}

int imk_worker_stats_push(const imk_worker_stats_t *st, imk_cluster_client_t *redis,
                          const char *prefix, const char *worker, int ttl_ms)
{
    char key[IMK_KEY_MAX], set[IMK_KEY_MAX];
    if (imk_key_metrics_worker(key, sizeof(key), prefix, worker) < 0 ||
        imk_key_metrics_workers(set, sizeof(set), prefix) < 0) {
        return IMK_EINVAL;
    }
    imk_buf_t text = IMK_BUF_INIT;
    imk_worker_stats_render(st, worker, &text);
    if (text.data == NULL) {
        return IMK_ENOMEM;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char at[32], ttl[16];
    snprintf(at, sizeof(at), "%lld", (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000);
    snprintf(ttl, sizeof(ttl), "%d", ttl_ms);
    uint16_t slot = imk_cluster_slot(key, strlen(key));
    const char *hset[] = {"HSET", key, "text", text.data, "at", at};
    size_t hset_lens[] = {4, strlen(key), 4, text.len, 2, strlen(at)};
    const char *pexpire[] = {"PEXPIRE", key, ttl};
    size_t pexpire_lens[] = {7, strlen(key), strlen(ttl)};
    imk_cluster_client_append(redis, slot, 6, hset, hset_lens);
    imk_cluster_client_append(redis, slot, 3, pexpire, pexpire_lens);
    imk_buf_deinit(&text);
    int refused = collect_refusals(redis);
    if (refused < 0) {
        return refused;
    }
    const char *sadd[] = {"SADD", set, worker};
    size_t sadd_lens[] = {4, strlen(set), strlen(worker)};
    redisReply *r =
        imk_cluster_client_command(redis, imk_cluster_slot(set, strlen(set)), 3, sadd, sadd_lens);
    if (r == NULL) {
        return IMK_EREDIS;
    }
    refused += r->type == REDIS_REPLY_ERROR;
    freeReplyObject(r);
    return refused;
}
