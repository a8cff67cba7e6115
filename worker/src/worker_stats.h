/* The worker's metrics: what its consumer did (jobs by kind and outcome, their latency from
 * the gateway's enqueue to the acknowledgement, the Function calls' time, batches, claims,
 * publishes, Redis errors), kept in memory and pushed to Redis every metrics.push_ms as the
 * hash <prefix>metrics:worker:<name>, which expires after three intervals without a push,
 * listed in the set <prefix>metrics:workers. Every gateway's GET /metrics serves them: the
 * workers listen on no port. Used by the consumer's thread only. */
#ifndef IMKIT_WORKER_STATS_H
#define IMKIT_WORKER_STATS_H

#include "imkit/buf.h"
#include "imkit/cluster_client.h"
#include "imkit/metrics.h"

#include <stddef.h>
#include <stdint.h>

/* What became of a job. */
enum imk_job_outcome {
    IMK_JOB_OK,     /* applied, answered "ok", acknowledged */
    IMK_JOB_ERROR,  /* applied, answered with an error reply (forbidden, ...), acknowledged */
    IMK_JOB_FAILED, /* its function failed: left pending, retried (counted at each attempt) */
    IMK_JOB_DEAD,   /* moved to the dead-letter stream and acknowledged */
    IMK_JOB_OUTCOMES,
};

/* Kinds counted apart; the job kinds are a fixed list (worker/src/functions.c), the rest is
 * counted as "other". */
#define IMK_WORKER_STATS_KINDS 32

typedef struct imk_worker_stats {
    struct {
        char name[48];
        uint64_t jobs[IMK_JOB_OUTCOMES];
    } kinds[IMK_WORKER_STATS_KINDS];
    size_t nkinds;
    imk_hist_t job_latency;       /* the envelope's `at` to the acknowledgement */
    imk_hist_t function_duration; /* one FCALL, as its share of the batch's pipeline */
    uint64_t batches;             /* job batches applied (read or claimed) */
    uint64_t claimed;             /* jobs taken over from other consumers (XAUTOCLAIM) */
    uint64_t events;              /* events published to room and client channels */
    uint64_t answers;             /* answers published to gateways */
    uint64_t redis_errors;        /* connections failed or lost, pushes refused */
    uint64_t reconnects;          /* connections made again after one was lost */
} imk_worker_stats_t;

/* The outcome's label value: "ok", "error", "failed" or "dead". */
const char *imk_worker_stats_outcome(enum imk_job_outcome outcome);

/* Counts a job of kind (len bytes; NULL or empty: "unknown"). All zero is the start state. */
void imk_worker_stats_job(imk_worker_stats_t *st, const char *kind, size_t len,
                          enum imk_job_outcome outcome);

/* Appends the worker's exposition, every series labelled worker="<worker>" (out of memory,
 * some series are left out). */
void imk_worker_stats_render(const imk_worker_stats_t *st, const char *worker, imk_buf_t *out);

/* Pushes the exposition, each command to its key's master: HSET of the hash (fields `text`,
 * `at`) and PEXPIRE of ttl_ms, then SADD of the name to the set, after them (a reader that
 * finds the name and no hash may take the worker for gone). Returns the number of commands
 * Redis refused (out of memory: the caller counts them, they are not fatal), or IMK_EREDIS
 * when a node could not be reached, IMK_ENOMEM. */
int imk_worker_stats_push(const imk_worker_stats_t *st, imk_cluster_client_t *redis,
                          const char *prefix, const char *worker, int ttl_ms);

#endif
