/* Requests waiting for an answer: a job's answer published by a worker on this gateway's
 * channel, or a query's reply. Each has a number (the job's `req`) and a deadline
 * (gateway.request_timeout_ms), past which its owner is answered `unavailable`. */
#ifndef IMKIT_GATEWAY_PENDING_H
#define IMKIT_GATEWAY_PENDING_H

#include "stats.h"

#include <stddef.h>
#include <stdint.h>

struct event_base;

typedef struct imk_pending imk_pending_t;

/* Called exactly once per request: with the answer, or with status "unavailable" when the
 * deadline passed or the gateway is stopping. status and body are borrowed. */
typedef void imk_pending_fn(void *ctx, uint64_t tag, const char *status, size_t status_len,
                            const char *body, size_t body_len);

imk_pending_t *imk_pending_create(struct event_base *base, int timeout_ms);
/* Answers every waiting request "unavailable", then frees. NULL is a no-op. */
void imk_pending_destroy(imk_pending_t *p);

/* Registers a waiting request. ctx and tag are handed back to fn (the owner's context and,
 * e.g., the client's own request id). Returns the request number (never 0), or 0 on no
 * memory. */
uint64_t imk_pending_add(imk_pending_t *p, imk_pending_fn *fn, void *ctx, uint64_t tag);

/* Counts request req, when it is answered, as the client request r (copied; r is ended)
 * in st, which must outlive the table; session is the asking session, for logs. An
 * unknown number is ignored. A request forgotten (its session closed) is not counted. */
void imk_pending_track(imk_pending_t *p, uint64_t req, imk_stats_t *st, imk_stats_req_t *r,
                       uint64_t session);

/* Delivers an answer; an unknown number (answered already, timed out) is ignored. */
void imk_pending_answer(imk_pending_t *p, uint64_t req, const char *status, size_t status_len,
                        const char *body, size_t body_len);

/* Forgets one request without calling its fn (nobody will answer it). */
void imk_pending_forget_req(imk_pending_t *p, uint64_t req);

/* Forgets every request of ctx without calling fn (its owner is gone). */
void imk_pending_forget(imk_pending_t *p, void *ctx);

size_t imk_pending_count(const imk_pending_t *p);

#endif
