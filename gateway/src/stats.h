/* The gateway's request metrics: per protocol operation, the requests answered, their
 * latency (request in, answer out) and their errors by code. Updated by the session (answers
 * given at once) and the pending table (answers that came from Redis), kept in
 * imk_gateway_t, rendered by GET /metrics (scrape.c). All zero is the start state: nothing
 * to create or free. One event loop updates and reads them. */
#ifndef IMKIT_GATEWAY_STATS_H
#define IMKIT_GATEWAY_STATS_H

#include "imkit/metrics.h"

#include <stddef.h>
#include <stdint.h>

/* Label values of op: 0 is "no request"; then the operations of the client protocol
 * (PROTOCOL.md §2: the session's own, and every client operation of ops.c, which
 * test_ops checks); the last is "invalid" (a frame whose op is missing or unknown). */
#define IMK_STATS_OP_NONE 0
#define IMK_STATS_OPS 22
/* Label values of code: the contract's error codes, then "other". */
#define IMK_STATS_CODES 10

/* A request being handled: its op label and when it came in. */
typedef struct imk_stats_req {
    int op; /* IMK_STATS_OP_NONE: no request, or already counted */
    int64_t at_us;
} imk_stats_req_t;

typedef struct imk_stats {
    imk_hist_t latency[IMK_STATS_OPS]; /* answered requests; count is requests_total */
    uint64_t errors[IMK_STATS_OPS][IMK_STATS_CODES];
    uint64_t rate_limited;   /* refused rate_limited */
    uint64_t deliveries;     /* event frames written to sessions */
    uint64_t admin_requests; /* /v1 requests */
} imk_stats_t;

/* A frame came in: starts r, labelled "invalid" until imk_stats_name names its op. */
void imk_stats_begin(imk_stats_req_t *r);
/* Names r's op from the frame's op string (NULL or unknown: "invalid"). */
void imk_stats_name(imk_stats_req_t *r, const char *op);
/* r was answered with status ("ok" or an error code; status_len bytes): counts it once and
 * ends it (later calls do nothing until the next begin). */
void imk_stats_end(imk_stats_t *st, imk_stats_req_t *r, const char *status, size_t status_len);

/* Label values, for rendering: the name of op index i (1 .. IMK_STATS_OPS-1) and of code
 * index i (0 .. IMK_STATS_CODES-1). */
const char *imk_stats_op_label(int i);
const char *imk_stats_code_label(int i);

#endif
