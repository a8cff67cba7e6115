/* Public listener: accepts, reads one request head (bounded in size and time), then either
 * hands the socket to a WebSocket session or answers and closes. */
#include "public.h"
#include "admission.h"
#include "imkit/err.h"
#include "imkit/log.h"
#include "http_head.h"
#include "link.h"
#include "listen_addr.h"
#include "session.h"
#include "static_files.h"
#include "tls.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* One connection until its request head is read. */
struct http_conn {
    imk_public_t *owner;
    struct http_conn *prev, *next; /* the owner's list, so none outlives the listener */
    struct bufferevent *bev;
    struct event *deadline; /* the whole head within limits.head_timeout_ms (slowloris) */
    imk_http_head_t *head;
    char peer[IMK_PEER_MAX]; /* counted by the admission caps until freed or upgraded */
};

struct imk_public {
    imk_gateway_t *gw;
    struct evconnlistener *listener;
    struct http_conn *conns;
};

static void conn_unlink(struct http_conn *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        c->owner->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    if (c->deadline != NULL) {
        event_free(c->deadline);
    }
    imk_http_head_destroy(c->head);
}

static void conn_free(struct http_conn *c)
{
    imk_admission_leave(c->owner->gw->admission, c->peer);
    conn_unlink(c);
    bufferevent_free(c->bev);
    free(c);
}

static void on_head_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_free(arg);
}

static void on_response_written(struct bufferevent *bev, void *arg)
{
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        conn_free(arg);
    }
}

static void respond(struct http_conn *c, int status, const char *reason, const char *type,
                    const char *extra_headers, const char *body, size_t body_len)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Cache-Control: no-cache\r\nConnection: close\r\n%s\r\n",
                        status, reason, type, body_len, extra_headers);
    evbuffer_add(out, body, body_len);
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setcb(c->bev, NULL, on_response_written, NULL, c);
    bufferevent_enable(c->bev, EV_WRITE);
}

static void respond_text(struct http_conn *c, int status, const char *reason, const char *text)
{
    respond(c, status, reason, "text/plain; charset=utf-8", "", text, strlen(text));
}

/* base64(SHA-1(key + GUID)) */
static void websocket_accept(const char *key, char out[32])
{
    char concat[128];
    unsigned char digest[SHA_DIGEST_LENGTH];
    int n = snprintf(concat, sizeof(concat), "%s" WS_GUID, key);
    SHA1((const unsigned char *)concat, (size_t)n, digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
}

static bool websocket_key_valid(const char *key)
{
    unsigned char raw[32];
    size_t len = strlen(key);
    /* 16 random bytes in base64: 24 characters ending in "==". */
    return len == 24 && key[22] == '=' && key[23] == '=' &&
           EVP_DecodeBlock(raw, (const unsigned char *)key, 24) == 18;
}

/* gateway.allowed_origins: empty allows any; otherwise the Origin must be listed exactly.
 * A request without Origin (not a browser) is allowed: the check protects browser users
 * from other sites, it is not authentication. */
static bool origin_allowed(const char *allowed, const imk_http_request_t *r)
{
    if (allowed[0] == '\0' || !r->has_origin) {
        return true;
    }
    size_t n = strlen(r->origin);
    for (const char *p = allowed; *p != '\0';) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        size_t len = strcspn(p, ", ");
        if (len == n && len > 0 && strncmp(p, r->origin, n) == 0) {
            return true;
        }
        p += len;
    }
    return false;
}

static void upgrade(struct http_conn *c)
{
    imk_gateway_t *gw = c->owner->gw;
    const imk_http_request_t *r = imk_http_head_request(c->head);
    if (r->method != IMK_HTTP_GET || !r->upgrade_websocket || !r->connection_upgrade ||
        !websocket_key_valid(r->ws_key)) {
        respond_text(c, 400, "Bad Request", "a WebSocket upgrade is expected here\n");
        return;
    }
    if (strcmp(r->ws_version, "13") != 0) {
        respond(c, 426, "Upgrade Required", "text/plain", "Sec-WebSocket-Version: 13\r\n",
                "WebSocket version 13 only\n", 26);
        return;
    }
    if (!origin_allowed(gw->cfg->gateway_allowed_origins, r)) {
        respond_text(c, 403, "Forbidden", "origin not allowed\n");
        return;
    }
    if (gw->stopping) {
        respond_text(c, 503, "Service Unavailable", "gateway stopping\n");
        return;
    }
    char accept[32];
    websocket_accept(r->ws_key, accept);
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
                        accept, r->offers_imkit_v1 ? "Sec-WebSocket-Protocol: imkit.v1\r\n" : "");
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    struct bufferevent *bev = c->bev;
    char peer[IMK_PEER_MAX];
    memcpy(peer, c->peer, sizeof(peer));
    conn_unlink(c);
    free(c);
    if (imk_session_create(gw, bev, peer) == NULL) {
        imk_admission_leave(gw->admission, peer);
        bufferevent_free(bev);
    }
}

static void serve_health(struct http_conn *c)
{
    if (imk_link_healthy(c->owner->gw->link) && !c->owner->gw->stopping) {
        respond(c, 200, "OK", "application/json", "", "{\"status\":\"ok\"}", 15);
    } else {
        respond(c, 503, "Service Unavailable", "application/json", "",
                "{\"status\":\"unavailable\"}", 24);
    }
}

/* GET /dev/token?id=&name= : a token for anyone, for the local demo only. */
static void serve_dev_token(struct http_conn *c, const char *query)
{
    imk_gateway_t *gw = c->owner->gw;
    if (!gw->cfg->dev_demo_tokens) {
        respond_text(c, 404, "Not Found", "not found\n");
        return;
    }
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    if (query == NULL || evhttp_parse_query_str(query, &params) != 0) {
        respond_text(c, 400, "Bad Request", "id is required\n");
        return;
    }
    const char *id = evhttp_find_header(&params, "id");
    const char *name = evhttp_find_header(&params, "name");
    int64_t now = imk_now_ms() / 1000;
    char *token = id != NULL ? imk_jwt_sign(gw->jwt, id, name, now, now + 86400) : NULL;
    if (token == NULL) {
        respond_text(c, 400, "Bad Request", "id: 1-64 bytes of [A-Za-z0-9_.@:-]\n");
    } else {
        char body[4096];
        int n = snprintf(body, sizeof(body), "{\"token\":\"%s\"}", token);
        respond(c, 200, "OK", "application/json", "", body, (size_t)n);
        free(token);
    }
    evhttp_clear_headers(&params);
}

static void route(struct http_conn *c)
{
    const imk_http_request_t *r = imk_http_head_request(c->head);
    evtimer_del(c->deadline); /* the head is complete */
    char url[sizeof(r->url)];
    memcpy(url, r->url, sizeof(url));
    char *query = strchr(url, '?');
    if (query != NULL) {
        *query++ = '\0';
    }
    const char *path = url;
    if (strcmp(path, "/ws") == 0) {
        upgrade(c);
    } else if (r->method == IMK_HTTP_OTHER) {
        respond_text(c, 405, "Method Not Allowed", "method not allowed\n");
    } else if (strcmp(path, "/healthz") == 0) {
        serve_health(c);
    } else if (strcmp(path, "/dev/token") == 0) {
        serve_dev_token(c, query);
    } else if (strcmp(path, "/") == 0 || strcmp(path, "/demo") == 0) {
        respond(c, 302, "Found", "text/plain", "Location: /demo/\r\n", "", 0);
    } else {
        imk_static_file_t file;
        int rc = imk_static_open(c->owner->gw->cfg->gateway_static_dir, path, &file);
        if (rc != 0) {
            respond_text(c, 404, "Not Found", "not found\n");
            return;
        }
        struct evbuffer *out = bufferevent_get_output(c->bev);
        evbuffer_add_printf(out,
                            "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %lld\r\n"
                            "Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
                            file.content_type, (long long)file.size);
        if (r->method == IMK_HTTP_GET) {
            evbuffer_add_file(out, file.fd, 0, file.size); /* takes the descriptor */
        } else {
            imk_static_close(&file);
        }
        bufferevent_disable(c->bev, EV_READ);
        bufferevent_setcb(c->bev, NULL, on_response_written, NULL, c);
        bufferevent_enable(c->bev, EV_WRITE);
    }
}

static void on_head_read(struct bufferevent *bev, void *arg)
{
    struct http_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    int rc = IMK_HTTP_HEAD_MORE;
    while (rc == IMK_HTTP_HEAD_MORE && evbuffer_get_length(in) > 0) {
        size_t avail = evbuffer_get_contiguous_space(in);
        const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)avail);
        size_t used;
        rc = imk_http_head_feed(c->head, data, avail, &used);
        evbuffer_drain(in, used); /* what follows the head stays: the first WebSocket frames */
    }
    if (rc == IMK_HTTP_HEAD_DONE) {
        route(c);
    } else if (rc == IMK_ETOOBIG) {
        evtimer_del(c->deadline);
        respond_text(c, 431, "Request Header Fields Too Large", "request head too large\n");
    } else if (rc != IMK_HTTP_HEAD_MORE) {
        evtimer_del(c->deadline);
        respond_text(c, 400, "Bad Request", "malformed request\n");
    }
}

static void on_conn_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        return; /* the TLS handshake finished */
    }
    conn_free(arg); /* EOF, error, or the head did not come in time */
}

static void on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    (void)listener;
    (void)socklen;
    imk_public_t *p = arg;
    char peer[IMK_PEER_MAX];
    if (imk_admission_enter(p->gw->admission, sa, peer) != 0) {
        evutil_closesocket(fd); /* over a connection cap: nothing read, nothing allocated */
        return;
    }
    /* Frames are small and written once per loop iteration: never hold one back for the
     * peer's acknowledgement of the previous (Nagle). */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct http_conn *c = calloc(1, sizeof(*c));
    struct bufferevent *bev = imk_tls_accept(p->gw->tls, p->gw->base, fd);
    if (c == NULL || bev == NULL) {
        free(c);
        if (bev != NULL) {
            bufferevent_free(bev);
        }
        imk_admission_leave(p->gw->admission, peer);
        return;
    }
    memcpy(c->peer, peer, sizeof(peer));
    c->owner = p;
    c->bev = bev;
    c->next = p->conns;
    if (p->conns != NULL) {
        p->conns->prev = c;
    }
    p->conns = c;
    c->head = imk_http_head_create();
    c->deadline = evtimer_new(p->gw->base, on_head_deadline, c);
    if (c->head == NULL || c->deadline == NULL) {
        conn_free(c);
        return;
    }
    int ms = p->gw->cfg->limits_head_timeout_ms;
    struct timeval head_timeout = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->deadline, &head_timeout);
    bufferevent_set_timeouts(bev, &head_timeout, &head_timeout);
    bufferevent_setcb(bev, on_head_read, NULL, on_conn_event, c);
    bufferevent_enable(bev, EV_READ);
}

imk_public_t *imk_public_create(imk_gateway_t *gw)
{
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[256];
    int port;
    if (imk_listen_addr_parse(gw->cfg->gateway_public_listen, &addr, &addrlen, host, sizeof(host),
                              &port) != 0) {
        IMK_ERROR("listen", "listener=public addr=%s error=\"bad address\"",
                  gw->cfg->gateway_public_listen);
        return NULL;
    }
    imk_public_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->gw = gw;
    p->listener = evconnlistener_new_bind(gw->base, on_accept, p,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                              LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_EXEC,
                                          1024, (struct sockaddr *)&addr, (int)addrlen);
    if (p->listener == NULL) {
        IMK_ERROR("listen", "listener=public addr=%s error=\"cannot bind\"",
                  gw->cfg->gateway_public_listen);
        free(p);
        return NULL;
    }
    IMK_INFO("listen", "listener=public addr=%s", gw->cfg->gateway_public_listen);
    return p;
}

void imk_public_stop(imk_public_t *p)
{
    if (p != NULL) {
        evconnlistener_disable(p->listener);
    }
}

void imk_public_destroy(imk_public_t *p)
{
    if (p == NULL) {
        return;
    }
    while (p->conns != NULL) {
        conn_free(p->conns);
    }
    evconnlistener_free(p->listener);
    free(p);
}
