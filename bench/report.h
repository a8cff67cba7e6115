/* The load generator's result: merges every thread's statistics, checks each receiver's
 * deliveries against the acknowledged messages of its room, and writes one JSON object. */
#ifndef LG_REPORT_H
#define LG_REPORT_H

#include "lg.h"
#include "probe.h"

#include <jansson.h>
#include <stdbool.h>

/* What the controller measured around each step. */
typedef struct lg_result {
    lg_sample_t setup0, setup1; /* before the first connect, after the last auth */
    lg_sample_t run0, run1;     /* the edges of the measured window */
    lg_sample_t storm0, storm1; /* the drop, and the last client caught up */
    bool has_setup, has_run, has_storm;
    bool drained;      /* every answer and delivery came in before the drain time ended */
    const char *error; /* the controller's own failure, or NULL */
} lg_result_t;

/* Builds the report; the caller frees it with json_decref. Call after the threads ended. */
json_t *lg_report(const lg_ctx_t *ctx, const lg_watch_t *watch, int nwatch, const lg_result_t *r);

#endif
