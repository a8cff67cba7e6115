/* OpenSSL server context and accepted-socket wrapping. */
#include "tls.h"
#include "imkit/log.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>

struct imk_tls {
    SSL_CTX *ctx;
};

static void log_openssl_error(const char *what, const char *file)
{
    char msg[256];
    ERR_error_string_n(ERR_get_error(), msg, sizeof(msg));
    IMK_ERROR("tls", "what=%s file=%s error=\"%s\"", what, file, msg);
}

imk_tls_t *imk_tls_create(const char *cert_file, const char *key_file)
{
    imk_tls_t *tls = calloc(1, sizeof(*tls));
    if (tls == NULL) {
        return NULL;
    }
    tls->ctx = SSL_CTX_new(TLS_server_method());
    if (tls->ctx == NULL) {
        free(tls);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(tls->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(tls->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Read and write buffers only while a record is in flight: an idle connection holds none. */
    SSL_CTX_set_mode(tls->ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(tls->ctx, cert_file) != 1) {
        log_openssl_error("certificate", cert_file);
        imk_tls_destroy(tls);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(tls->ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(tls->ctx) != 1) {
        log_openssl_error("private_key", key_file);
        imk_tls_destroy(tls);
        return NULL;
    }
    return tls;
}

void imk_tls_destroy(imk_tls_t *tls)
{
    if (tls == NULL) {
        return;
    }
    SSL_CTX_free(tls->ctx);
    free(tls);
}

struct bufferevent *imk_tls_evhttp_bev(struct event_base *base, void *arg)
{
    imk_tls_t *tls = arg;
    SSL *ssl = SSL_new(tls->ctx);
    if (ssl == NULL) {
        return NULL;
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
    }
    return bev;
}

struct bufferevent *imk_tls_accept(imk_tls_t *tls, struct event_base *base, evutil_socket_t fd)
{
    if (tls == NULL) {
        struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (bev == NULL) {
            evutil_closesocket(fd);
        }
        return bev;
    }
    SSL *ssl = SSL_new(tls->ctx);
    if (ssl == NULL) {
        evutil_closesocket(fd);
        return NULL;
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        evutil_closesocket(fd);
        return NULL;
    }
    /* A TLS close_notify is not required of browsers that just go away. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}
