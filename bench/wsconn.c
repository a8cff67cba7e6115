/* WebSocket client connections (see wsconn.h): bufferevent for the socket, a hand-written
 * upgrade request, wslay's client context for frames (masking with a cheap PRNG). */
#include "wsconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#define HEAD_MAX 4096

struct lg_ws {
    struct bufferevent *bev;
    wslay_event_context_ptr ctx; /* NULL until the upgrade is accepted */
    const lg_ws_callbacks_t *cb;
    void *arg;
    uint64_t prng;
    bool in_recv;    /* inside wslay_event_recv: sends are flushed when it returns */
    bool in_connect; /* inside bufferevent_socket_connect: a failure is its return value */
};

static ssize_t on_wslay_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                             void *user_data)
{
    (void)flags;
    lg_ws_t *ws = user_data;
    int n = evbuffer_remove(bufferevent_get_input(ws->bev), buf, len);
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return n;
}

static ssize_t on_wslay_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                             int flags, void *user_data)
{
    (void)flags;
    lg_ws_t *ws = user_data;
    if (evbuffer_add(bufferevent_get_output(ws->bev), data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

/* Masking keys need not be secret here: xorshift64. */
static int on_wslay_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user_data)
{
    (void)ctx;
    lg_ws_t *ws = user_data;
    for (size_t i = 0; i < len; i++) {
        ws->prng ^= ws->prng << 13;
        ws->prng ^= ws->prng >> 7;
        ws->prng ^= ws->prng << 17;
        buf[i] = (uint8_t)ws->prng;
    }
    return 0;
}

static void on_wslay_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m,
                         void *user_data)
{
    (void)ctx;
    lg_ws_t *ws = user_data;
    if (m->opcode == WSLAY_TEXT_FRAME) {
        ws->cb->on_text(ws->arg, (const char *)m->msg, m->msg_length);
    }
}

static const struct wslay_event_callbacks wslay_callbacks = {
    on_wslay_recv, on_wslay_send, on_wslay_genmask, NULL, NULL, NULL, on_wslay_msg,
};

static void fail(lg_ws_t *ws, const char *why)
{
    bufferevent_disable(ws->bev, EV_READ | EV_WRITE);
    if (ws->in_connect) {
        return;
    }
    ws->cb->on_close(ws->arg, why);
}

/* Reads the 101 answer; returns 1 when upgraded, 0 when more bytes are needed, -1 on error. */
static int read_upgrade(lg_ws_t *ws)
{
    struct evbuffer *in = bufferevent_get_input(ws->bev);
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0) {
        return evbuffer_get_length(in) > HEAD_MAX ? -1 : 0;
    }
    char status[16] = {0};
    evbuffer_copyout(in, status, sizeof(status) - 1);
    if (strncmp(status, "HTTP/1.1 101", 12) != 0) {
        return -1;
    }
    evbuffer_drain(in, (size_t)end.pos + 4);
    if (wslay_event_context_client_init(&ws->ctx, &wslay_callbacks, ws) != 0) {
        ws->ctx = NULL;
        return -1;
    }
    return 1;
}

static void flush(lg_ws_t *ws)
{
    if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0) {
        fail(ws, "send failed");
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    lg_ws_t *ws = arg;
    if (ws->ctx == NULL) {
        int rc = read_upgrade(ws);
        if (rc <= 0) {
            if (rc < 0) {
                fail(ws, "upgrade refused");
            }
            return;
        }
        ws->cb->on_open(ws->arg);
    }
    ws->in_recv = true;
    int rc = wslay_event_recv(ws->ctx);
    ws->in_recv = false;
    if (rc != 0) {
        fail(ws, "protocol error");
        return;
    }
    if (!wslay_event_want_read(ws->ctx)) {
        fail(ws, "closed by the server");
        return;
    }
    flush(ws);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    lg_ws_t *ws = arg;
    if (what & BEV_EVENT_CONNECTED) {
        return; /* the upgrade request is already queued */
    }
    (void)bev;
    fail(ws, (what & BEV_EVENT_EOF)     ? "connection closed"
             : (what & BEV_EVENT_ERROR) ? strerror(EVUTIL_SOCKET_ERROR())
                                        : "connection error");
}

static int open_socket(const struct sockaddr_in *src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    /* Ports are chosen at connect time, per destination: many more than one per source. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)src, sizeof(*src)) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static void queue_upgrade(lg_ws_t *ws, const struct sockaddr_in *dst, const char *path,
                          const char *subprotocol)
{
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &dst->sin_addr, host, sizeof(host));
    evbuffer_add_printf(bufferevent_get_output(ws->bev),
                        "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                        path, host, ntohs(dst->sin_port),
                        subprotocol != NULL ? "Sec-WebSocket-Protocol: " : "",
                        subprotocol != NULL ? subprotocol : "", subprotocol != NULL ? "\r\n" : "");
}

lg_ws_t *lg_ws_connect(struct event_base *base, const struct sockaddr_in *src,
                       const struct sockaddr_in *dst, const char *path, const char *subprotocol,
                       const lg_ws_callbacks_t *callbacks, void *arg)
{
    int fd = open_socket(src);
    if (fd < 0) {
        return NULL;
    }
    lg_ws_t *ws = calloc(1, sizeof(*ws));
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (ws == NULL || bev == NULL) {
        free(ws);
        if (bev != NULL) {
            bufferevent_free(bev);
        } else {
            close(fd);
        }
        errno = ENOMEM;
        return NULL;
    }
    ws->bev = bev;
    ws->cb = callbacks;
    ws->arg = arg;
    ws->prng = ((uint64_t)(uintptr_t)ws * 0x9E3779B97F4A7C15ull) | 1;
    bufferevent_setcb(bev, on_read, NULL, on_event, ws);
    queue_upgrade(ws, dst, path, subprotocol);
    ws->in_connect = true;
    int rc = bufferevent_socket_connect(bev, (const struct sockaddr *)dst, sizeof(*dst));
    ws->in_connect = false;
    if (rc != 0) {
        int saved = EVUTIL_SOCKET_ERROR();
        lg_ws_free(ws);
        errno = saved != 0 ? saved : ECONNREFUSED;
        return NULL;
    }
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    return ws;
}

int lg_ws_send(lg_ws_t *ws, const char *data, size_t len)
{
    if (ws == NULL || ws->ctx == NULL) {
        return -1;
    }
    struct wslay_event_msg msg = {WSLAY_TEXT_FRAME, (const uint8_t *)data, len};
    if (wslay_event_queue_msg(ws->ctx, &msg) != 0) {
        return -1;
    }
    if (ws->in_recv) {
        return 0;
    }
    return wslay_event_send(ws->ctx) == 0 ? 0 : -1;
}

void lg_ws_free(lg_ws_t *ws)
{
    if (ws == NULL) {
        return;
    }
    if (ws->ctx != NULL) {
        wslay_event_context_free(ws->ctx);
    }
    bufferevent_free(ws->bev);
    free(ws);
}
