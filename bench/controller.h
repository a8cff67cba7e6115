/* The controller: moves every load generator thread through the scenario's phases, samples
 * the server's costs at the edges of each measured step, and waits with bounded timeouts.
 * Runs on the main thread. */
#ifndef LG_CONTROLLER_H
#define LG_CONTROLLER_H

#include "lg.h"
#include "probe.h"
#include "report.h"

#include <signal.h>

/* Runs the scenario of ctx (threads already started) to LG_PH_STOP, filling r. stop is set
 * by a signal (idle: end the hold). Returns 0, or -1 with r->error set. */
int lg_controller_run(lg_ctx_t *ctx, const lg_watch_t *watch, int nwatch,
                      volatile sig_atomic_t *stop, lg_result_t *r);

#endif
