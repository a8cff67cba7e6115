/* A load generator thread: its own event loop, its share of the clients (client i goes to
 * thread i % threads), and a 1 ms tick that follows the controller's phase, paces open-loop
 * sends and starts connections. */
#ifndef LG_WORKER_H
#define LG_WORKER_H

#include "lg.h"

/* Prepares thread index of ctx (clients, room bitmaps, loop). Returns 0 or -1. */
int lg_worker_init(lg_worker_t *w, lg_ctx_t *ctx, int index);
/* Starts the thread; it runs until the controller sets LG_PH_STOP. Returns 0 or -1. */
int lg_worker_start(lg_worker_t *w);
void lg_worker_join(lg_worker_t *w);
void lg_worker_deinit(lg_worker_t *w);

#endif
