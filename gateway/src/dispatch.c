/* Queries and jobs on their way to Redis, answers on their way back. */
#include "dispatch.h"
#include "imkit/err.h"
#include "imkit/job.h"
#include "imkit/keys.h"
#include "imkit/log.h"
#include "gather.h"
#include "link.h"
#include "ops.h"

#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* What a Redis reply callback needs to find its waiting request, and to name it in logs. */
struct reply_ref {
    imk_gateway_t *gw;
    uint64_t req;
    uint64_t conn;
    const char *kind; /* the function: a static string of the operations table */
    bool job;
};

/* A job's envelope around its arguments: kind, job id, gateway, ids and times. */
#define ENVELOPE_HEAD 512

static const char unavailable[] = "unavailable";
static const char redis_gone[] = "storage unreachable; safe to retry";

/* A job's id: "<answers channel>.<req>", unique across gateways and restarts, so a worker's
 * log lines (job=) lead back to the gateway and its request (req=). Returns its length. */
static int job_id(const imk_gateway_t *gw, uint64_t req, char *out, size_t len)
{
    return snprintf(out, len, "%s.%llu", gw->answers, (unsigned long long)req);
}

static void answer_failure(const struct reply_ref *q, const redisReply *reply)
{
    imk_gateway_t *gw = q->gw;
    uint64_t req = q->req;
    if (reply == NULL) {
        imk_pending_answer(gw->pending, req, unavailable, sizeof(unavailable) - 1, redis_gone,
                           sizeof(redis_gone) - 1);
        return;
    }
    char job[200] = "-";
    if (q->job) {
        job_id(gw, req, job, sizeof(job));
    }
    IMK_ERROR("redis_reply", "session=%llu req=%llu kind=%s job=%s error=\"%s\"",
              (unsigned long long)q->conn, (unsigned long long)req, q->kind, job,
              reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    bool no_function = imk_link_no_function(reply);
    const char *status = no_function ? unavailable : "internal";
    const char *msg = no_function ? "no worker has started yet; safe to retry" : "internal error";
    imk_pending_answer(gw->pending, req, status, strlen(status), msg, strlen(msg));
}

/* The reply of a FCALL_RO: {status, body} as the function library returns it. */
static void on_query_reply(struct redisReply *reply, void *arg)
{
    struct reply_ref *q = arg;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING) {
        imk_pending_answer(q->gw->pending, q->req, reply->element[0]->str, reply->element[0]->len,
                           reply->element[1]->str, reply->element[1]->len);
    } else {
        answer_failure(q, reply);
    }
    free(q);
}

/* The reply of the XADD of a job: only a failure matters, the answer comes from a worker. */
static void on_job_queued(struct redisReply *reply, void *arg)
{
    struct reply_ref *q = arg;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        answer_failure(q, reply);
    }
    free(q);
}

/* The room or client a call is about: the hash tag of the keys its function works on, its
 * job's home, and what picks its job stream. */
static const char *call_home(const imk_call_t *call)
{
    return call->partition != NULL ? call->partition : call->from;
}

/* A query declares its route, "{<home>}", as its one key: a cluster that moved the slot
 * answers MOVED, which the link follows. */
static int send_query(imk_gateway_t *gw, const imk_call_t *call, struct reply_ref *q)
{
    imk_link_fcall_t fcall = {call->function,  true, call_home(call), call->from, call->args->data,
                              call->args->len, NULL};
    return imk_link_fcall(gw->link, &fcall, on_query_reply, q);
}

static int send_job(imk_gateway_t *gw, const imk_call_t *call, struct reply_ref *q)
{
    char id[200];
    uint64_t req = q->req;
    int id_len = job_id(gw, req, id, sizeof(id));
    const char *home = call_home(call);
    imk_job_t job = {
        .v = IMK_JOB_VERSION,
        .kind = {call->function, strlen(call->function)},
        .job_id = {id, (size_t)id_len},
        .gw = {gw->answers, strlen(gw->answers)},
        .conn = call->conn,
        .req = req,
        .from = {call->from, strlen(call->from)},
        .at = imk_now_ms(),
        .args = {call->args->data, call->args->len},
        .home = {home, strlen(home)},
    };
    char storage[IMK_OP_ARGS_STORAGE + ENVELOPE_HEAD];
    imk_buf_t envelope;
    imk_buf_init_on(&envelope, storage, sizeof(storage));
    if (imk_job_encode(&job, &envelope) != 0) {
        imk_buf_deinit(&envelope);
        return IMK_ENOMEM;
    }
    const char *stream =
        gw->job_streams[imk_partition(home, strlen(home), gw->cfg->jobs_partitions)];
    const char *argv[] = {"XADD", stream, "*", "j", envelope.data};
    size_t lens[] = {4, strlen(stream), 1, 1, envelope.len};
    int rc = imk_link_command(gw->link, stream, on_job_queued, q, 5, argv, lens);
    imk_buf_deinit(&envelope);
    return rc;
}

int imk_dispatch(imk_gateway_t *gw, const imk_call_t *call, imk_pending_fn *fn, void *ctx,
                 uint64_t tag)
{
    if (!imk_link_ready(gw->link)) {
        return IMK_EREDIS;
    }
    struct reply_ref *q = malloc(sizeof(*q));
    if (q == NULL) {
        return IMK_ENOMEM;
    }
    uint64_t req = imk_pending_add(gw->pending, fn, ctx, tag);
    if (req == 0) {
        free(q);
        return IMK_ENOMEM;
    }
    q->gw = gw;
    q->req = req;
    q->conn = call->conn;
    q->kind = call->function;
    q->job = !call->query;
    int rc;
    if (!call->query) {
        rc = send_job(gw, call, q);
    } else if (imk_gather_wanted(gw, call)) {
        rc = imk_gather_send(gw, req, call);
        if (rc == 0) {
            free(q); /* the gather answers the pending request itself */
        }
    } else {
        rc = send_query(gw, call, q);
    }
    if (rc != 0) {
        /* Nobody will answer: drop the entry silently, the caller answers. */
        imk_pending_forget_req(gw->pending, req);
        free(q);
        return rc;
    }
    imk_pending_track(gw->pending, req, call->req != NULL ? &gw->stats : NULL, call->req,
                      call->conn);
    return 0;
}

void imk_dispatch_on_answer(imk_gateway_t *gw, const char *data, size_t len)
{
    imk_answer_t answer;
    if (imk_answer_decode(data, len, &answer) != 0) {
        IMK_WARN("bad_answer", "bytes=%zu", len);
        return;
    }
    imk_pending_answer(gw->pending, answer.req, answer.status.ptr, answer.status.len,
                       answer.body.ptr, answer.body.len);
}
