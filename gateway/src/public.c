/* Public listener: accepts, reads one request head (bounded in size and time), then either
 * hands the socket to a WebSocket session or answers and closes. */
#define _GNU_SOURCE /* strcasestr */
#include "public.h"
#include "admission.h"
#include "imkit/err.h"
#include "imkit/log.h"
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
#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#define HEAD_MAX 8192
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct imk_public {
    imk_gateway_t *gw;
    struct evconnlistener *listener;
};

/* One connection until its request head is read. */
struct http_conn {
    imk_public_t *owner;
    struct bufferevent *bev;
    http_parser parser;
    size_t head_bytes;
    bool head_done;
    bool responding;         /* an answer is queued: close once written */
    char peer[IMK_PEER_MAX]; /* counted by the admission caps until freed or upgraded */
    char url[2048];
    size_t url_len;
    char field[64];
    size_t field_len;
    char value[1024];
    size_t value_len;
    bool in_value;
    bool upgrade_websocket;
    bool connection_upgrade;
    bool offers_imkit_v1;
    char ws_key[64];
    char ws_version[8];
    char origin[256];
    bool has_origin;
};

static void conn_free(struct http_conn *c)
{
    imk_admission_leave(c->owner->gw->admission, c->peer);
    bufferevent_free(c->bev);
    free(c);
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
    c->responding = true;
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setcb(c->bev, NULL, on_response_written, NULL, c);
    bufferevent_enable(c->bev, EV_WRITE);
}

static void respond_text(struct http_conn *c, int status, const char *reason, const char *text)
{
    respond(c, status, reason, "text/plain; charset=utf-8", "", text, strlen(text));
}

/* http-parser callbacks: collect the URL and the few headers we need. */

static void header_done(struct http_conn *c)
{
    c->field[c->field_len] = '\0';
    c->value[c->value_len] = '\0';
    if (strcasecmp(c->field, "Upgrade") == 0) {
        c->upgrade_websocket = strcasecmp(c->value, "websocket") == 0;
    } else if (strcasecmp(c->field, "Connection") == 0) {
        c->connection_upgrade = strcasestr(c->value, "upgrade") != NULL;
    } else if (strcasecmp(c->field, "Sec-WebSocket-Key") == 0) {
        snprintf(c->ws_key, sizeof(c->ws_key), "%.*s", (int)sizeof(c->ws_key) - 1, c->value);
    } else if (strcasecmp(c->field, "Sec-WebSocket-Version") == 0) {
        snprintf(c->ws_version, sizeof(c->ws_version), "%.*s", (int)sizeof(c->ws_version) - 1,
                 c->value);
    } else if (strcasecmp(c->field, "Origin") == 0) {
        snprintf(c->origin, sizeof(c->origin), "%.*s", (int)sizeof(c->origin) - 1, c->value);
        c->has_origin = true;
    } else if (strcasecmp(c->field, "Sec-WebSocket-Protocol") == 0) {
        /* A comma-separated list; we speak only imkit.v1. */
        for (char *tok = strtok(c->value, ", "); tok != NULL; tok = strtok(NULL, ", ")) {
            if (strcmp(tok, "imkit.v1") == 0) {
                c->offers_imkit_v1 = true;
            }
        }
    }
    c->field_len = c->value_len = 0;
    c->in_value = false;
}

static int append_bounded(char *dst, size_t *len, size_t cap, const char *at, size_t n)
{
    size_t take = *len + n < cap - 1 ? n : cap - 1 - *len;
    memcpy(dst + *len, at, take);
    *len += take;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct http_conn *c = p->data;
    if (c->url_len + n >= sizeof(c->url)) {
        return 1; /* URL too long: a parse error answered 414 below */
    }
    return append_bounded(c->url, &c->url_len, sizeof(c->url), at, n);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct http_conn *c = p->data;
    if (c->in_value) {
        header_done(c);
    }
    return append_bounded(c->field, &c->field_len, sizeof(c->field), at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct http_conn *c = p->data;
    c->in_value = true;
    return append_bounded(c->value, &c->value_len, sizeof(c->value), at, n);
}

static int on_headers_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    if (c->in_value) {
        header_done(c);
    }
    c->url[c->url_len] = '\0';
    c->head_done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
};

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
static bool origin_allowed(const char *allowed, const struct http_conn *c)
{
    if (allowed[0] == '\0' || !c->has_origin) {
        return true;
    }
    size_t n = strlen(c->origin);
    for (const char *p = allowed; *p != '\0';) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        size_t len = strcspn(p, ", ");
        if (len == n && len > 0 && strncmp(p, c->origin, n) == 0) {
            return true;
        }
        p += len;
    }
    return false;
}

static void upgrade(struct http_conn *c)
{
    imk_gateway_t *gw = c->owner->gw;
    if (c->parser.method != HTTP_GET || !c->upgrade_websocket || !c->connection_upgrade ||
        !websocket_key_valid(c->ws_key)) {
        respond_text(c, 400, "Bad Request", "a WebSocket upgrade is expected here\n");
        return;
    }
    if (strcmp(c->ws_version, "13") != 0) {
        respond(c, 426, "Upgrade Required", "text/plain", "Sec-WebSocket-Version: 13\r\n",
                "WebSocket version 13 only\n", 26);
        return;
    }
    if (!origin_allowed(gw->cfg->gateway_allowed_origins, c)) {
        respond_text(c, 403, "Forbidden", "origin not allowed\n");
        return;
    }
    if (gw->stopping) {
        respond_text(c, 503, "Service Unavailable", "gateway stopping\n");
        return;
    }
    char accept[32];
    websocket_accept(c->ws_key, accept);
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
                        accept, c->offers_imkit_v1 ? "Sec-WebSocket-Protocol: imkit.v1\r\n" : "");
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    struct bufferevent *bev = c->bev;
    char peer[IMK_PEER_MAX];
    memcpy(peer, c->peer, sizeof(peer));
    free(c);
    if (imk_session_create(gw, bev, peer) == NULL) {
        imk_admission_leave(gw->admission, peer);
        bufferevent_free(bev);
    }
}

static void serve_health(struct http_conn *c)
{
    if (imk_link_ready(c->owner->gw->link) && !c->owner->gw->stopping) {
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
    char *query = strchr(c->url, '?');
    if (query != NULL) {
        *query++ = '\0';
    }
    const char *path = c->url;
    if (strcmp(path, "/ws") == 0) {
        upgrade(c);
    } else if (c->parser.method != HTTP_GET && c->parser.method != HTTP_HEAD) {
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
        if (c->parser.method == HTTP_GET) {
            evbuffer_add_file(out, file.fd, 0, file.size); /* takes the descriptor */
        } else {
            imk_static_close(&file);
        }
        c->responding = true;
        bufferevent_disable(c->bev, EV_READ);
        bufferevent_setcb(c->bev, NULL, on_response_written, NULL, c);
        bufferevent_enable(c->bev, EV_WRITE);
    }
}

static void on_head_read(struct bufferevent *bev, void *arg)
{
    struct http_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (!c->head_done && evbuffer_get_length(in) > 0) {
        size_t avail = evbuffer_get_contiguous_space(in);
        const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)avail);
        size_t used = http_parser_execute(&c->parser, &parser_settings, data, avail);
        enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
        evbuffer_drain(in, used);
        c->head_bytes += used;
        if (err != HPE_OK && err != HPE_PAUSED) {
            respond_text(c, 400, "Bad Request", "malformed request\n");
            return;
        }
        if (!c->head_done && c->head_bytes > HEAD_MAX) {
            respond_text(c, 431, "Request Header Fields Too Large", "request head too large\n");
            return;
        }
    }
    if (c->head_done) {
        /* Paused in on_headers_complete, http-parser leaves the head's last '\n' unread;
         * it is not the first byte of a WebSocket frame. */
        unsigned char last;
        if (evbuffer_copyout(in, &last, 1) == 1 && last == '\n') {
            evbuffer_drain(in, 1);
        }
        route(c);
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
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    int ms = p->gw->cfg->limits_head_timeout_ms;
    struct timeval head_timeout = {ms / 1000, (ms % 1000) * 1000};
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

void imk_public_destroy(imk_public_t *p)
{
    if (p == NULL) {
        return;
    }
    evconnlistener_free(p->listener);
    free(p);
}
