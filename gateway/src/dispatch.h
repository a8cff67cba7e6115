/* Sending a validated request on its way: a query straight to Redis (FCALL_RO), a command
 * as a job on its stream (XADD), the answer of either delivered through the pending table.
 * Also receives the workers' answers from this gateway's channel. */
#ifndef IMKIT_GATEWAY_DISPATCH_H
#define IMKIT_GATEWAY_DISPATCH_H

#include "gateway.h"
#include "imkit/buf.h"
#include "pending.h"

#include <stdbool.h>

typedef struct imk_call {
    const char *function;  /* "imkit_msg_send" */
    bool query;            /* FCALL_RO now, or a job for the workers */
    const char *from;      /* acting client id, "" for the admin API */
    const char *partition; /* id choosing the job stream; NULL: from */
    uint64_t conn;         /* the asking session, for logs; 0 for the admin API */
    const imk_buf_t *args; /* msgpack arguments, copied */
    /* The client request this call answers, for metrics; NULL for none (admin API). On
     * success the pending table counts it when the answer comes, and *req is ended. */
    imk_stats_req_t *req;
} imk_call_t;

/* Returns 0: fn(ctx, tag, ...) will be called exactly once, with the answer or with
 * "unavailable" after gateway.request_timeout_ms. Returns IMK_EREDIS when Redis is
 * unreachable now or IMK_ENOMEM: fn is never called, call->req is left as it was; answer
 * "unavailable" yourself. */
int imk_dispatch(imk_gateway_t *gw, const imk_call_t *call, imk_pending_fn *fn, void *ctx,
                 uint64_t tag);

/* An answer published on this gateway's channel (an imk_answer_t envelope). */
void imk_dispatch_on_answer(imk_gateway_t *gw, const char *data, size_t len);

#endif
