/* GET /metrics on the admin listener: this gateway's metrics and, read from Redis when the
 * scrape comes, the metrics every live worker pushed there and the state of the job streams
 * (lag, pending, dead letters). Called by admin.c; runs on the gateway's loop. */
#ifndef IMKIT_GATEWAY_SCRAPE_H
#define IMKIT_GATEWAY_SCRAPE_H

#include "gateway.h"

struct evhttp_request;

/* Answers req, now or later on the loop, with the Prometheus text exposition. The part read
 * from Redis is left out, and imkit_redis_up is 0, when Redis is known to be unhealthy or
 * does not answer every read within a second; the admin listener is never held longer. With
 * the query `local=1` only this gateway's own metrics are served and Redis is not read. */
void imk_scrape_serve(imk_gateway_t *gw, struct evhttp_request *req);

#endif
