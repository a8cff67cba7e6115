/* TLS for both listeners (OpenSSL through libevent's bufferevent_openssl): when tls.cert and
 * tls.key are configured, the public listener speaks https/wss and the admin listener https.
 * TLS 1.2 and newer only. */
#ifndef IMKIT_GATEWAY_TLS_H
#define IMKIT_GATEWAY_TLS_H

#include <event2/util.h>

struct event_base;
struct bufferevent;
struct ssl_ctx_st;

typedef struct imk_tls imk_tls_t;

/* Loads the certificate chain and key (PEM). Returns NULL (logged) when either fails. */
imk_tls_t *imk_tls_create(const char *cert_file, const char *key_file);
void imk_tls_destroy(imk_tls_t *tls);

/* A bufferevent for an accepted socket: plain when tls is NULL, TLS (server side) otherwise.
 * Takes ownership of fd. Returns NULL on failure (fd closed). */
struct bufferevent *imk_tls_accept(imk_tls_t *tls, struct event_base *base, evutil_socket_t fd);

/* The same for evhttp's bufferevent callback (no socket yet). */
struct bufferevent *imk_tls_evhttp_bev(struct event_base *base, void *tls);

#endif
