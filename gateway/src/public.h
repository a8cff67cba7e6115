/* The public listener: HTTP/1.1 request heads parsed with http-parser; `GET /ws` upgraded
 * to a WebSocket client session, `GET /healthz`, the Web SDK under /sdk/, the demo page
 * under /demo/, and, in local development only, /dev/token. */
#ifndef IMKIT_GATEWAY_PUBLIC_H
#define IMKIT_GATEWAY_PUBLIC_H

#include "gateway.h"

typedef struct imk_public imk_public_t;

/* Binds gateway.public_listen. Returns NULL (logged) when it cannot. */
imk_public_t *imk_public_create(imk_gateway_t *gw);
/* Stops accepting (SIGTERM); connections in progress finish. */
void imk_public_stop(imk_public_t *p);
/* Closes the listener and every connection not upgraded yet. NULL is a no-op. */
void imk_public_destroy(imk_public_t *p);

#endif
