/* Gateway liveness: this gateway's heartbeat key, and the sweep that notices other gateways
 * whose heartbeat expired (killed, crashed, cut off) and cleans their presence counts so
 * their clients do not stay "online" forever. Runs on a timer of gateway.heartbeat_ms. */
#ifndef IMKIT_GATEWAY_LIVENESS_H
#define IMKIT_GATEWAY_LIVENESS_H

#include "gateway.h"

struct event;

/* Starts the timer; returns it (free with event_free) or NULL. */
struct event *imk_liveness_start(imk_gateway_t *gw);

#endif
