/* The admin listener (libevent evhttp): the website backend's REST API under /v1 (API key
 * in `Authorization: Bearer`), `GET /healthz`, `GET /metrics` (scrape.h). Each endpoint maps
 * to an operation of ops.c, so admin changes are validated, applied and announced exactly
 * like a client's. */
#ifndef IMKIT_GATEWAY_ADMIN_H
#define IMKIT_GATEWAY_ADMIN_H

#include "gateway.h"

typedef struct imk_admin imk_admin_t;

/* Binds gateway.admin_listen. Returns NULL (logged) when it cannot. */
imk_admin_t *imk_admin_create(imk_gateway_t *gw);
void imk_admin_destroy(imk_admin_t *a);

#endif
