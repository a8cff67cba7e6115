/* libFuzzer driver for the gateway's WebSocket layer (gateway/src/ws.c and its frame parser
 * gateway/src/wsframe.c; seeds: corpus/ws/): the input is written, as a client would, to an
 * imk_ws with small limits, three times: over a socket pair (the plain-socket path the
 * gateway uses without TLS) in one write, then in small writes with the loop run between
 * them (frames arrive in pieces, headers included), and over a libevent bufferevent pair
 * (the bufferevent path TLS uses) one byte at a time. Whatever the bytes, nothing crashes or
 * leaks, every text message delivered is valid UTF-8 within the size limit, and every run
 * delivers the same messages: neither the transport nor how the bytes are split may change
 * what is read. */
#include "imkit/text.h"
#include "ws.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MESSAGE 1024

struct outcome {
    imk_ws_t *ws;
    bool closed;
    size_t messages;
    uint64_t hash; /* FNV-1a over every message delivered, with its length */
};

static void hash_bytes(struct outcome *o, const void *p, size_t len)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < len; i++) {
        o->hash = (o->hash ^ b[i]) * 1099511628211ull;
    }
}

static void on_text(void *arg, const char *text, size_t len)
{
    struct outcome *o = arg;
    if (len > MAX_MESSAGE || !imk_utf8_valid(text, len)) {
        abort();
    }
    o->messages++;
    hash_bytes(o, &len, sizeof(len));
    hash_bytes(o, text, len);
    /* Echo, exercising both send paths: a copy, or a frame shared as a broadcast would be. */
    if (len % 2 == 0) {
        imk_ws_send_text(o->ws, text, len);
    } else {
        imk_ws_shared_t *m = imk_ws_shared_create(text, len);
        if (m != NULL) {
            imk_ws_send_shared(o->ws, m);
            imk_ws_shared_release(m);
        }
    }
}

static void on_closed(void *arg)
{
    struct outcome *o = arg;
    o->closed = true;
}

/* The client's end: writes bytes and reads (and drops) what the server sends. */
struct client {
    struct bufferevent *bev; /* bufferevent pair; NULL: socket */
    evutil_socket_t fd;
};

static void client_write(struct client *c, const uint8_t *p, size_t len)
{
    if (c->bev != NULL) {
        bufferevent_write(c->bev, p, len);
        return;
    }
    while (len > 0) {
        ssize_t n = write(c->fd, p, len);
        if (n <= 0) {
            return; /* full or closed: the server stopped reading */
        }
        p += n;
        len -= (size_t)n;
    }
}

static void client_drain(struct client *c)
{
    char buf[4096];
    while (c->bev == NULL && read(c->fd, buf, sizeof(buf)) > 0) {
    }
}

/* Feeds data in writes of at most chunk bytes, over a socket pair or a bufferevent pair;
 * returns what was delivered. */
static struct outcome run(const uint8_t *data, size_t size, size_t chunk, bool socket)
{
    static const imk_ws_callbacks_t callbacks = {on_text, on_closed};
    /* A slow-reader limit low enough that echoes of big messages reach it. */
    static const imk_ws_limits_t limits = {MAX_MESSAGE, 4096, 60000, 2, 60000};
    struct outcome o = {NULL, false, 0, 1469598103934665603ull};
    struct event_base *base = event_base_new();
    struct bufferevent *server = NULL;
    struct client c = {NULL, -1};
    if (base == NULL) {
        return o;
    }
    if (socket) {
        evutil_socket_t sv[2];
        if (evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) {
            evutil_make_socket_nonblocking(sv[0]);
            evutil_make_socket_nonblocking(sv[1]);
            c.fd = sv[1];
            server = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
            if (server == NULL) {
                evutil_closesocket(sv[0]);
            }
        }
    } else {
        struct bufferevent *pair[2];
        if (bufferevent_pair_new(base, 0, pair) == 0) {
            server = pair[0];
            c.bev = pair[1];
            bufferevent_enable(c.bev, EV_READ | EV_WRITE);
        }
    }
    o.ws = server != NULL ? imk_ws_create(server, &limits, &callbacks, &o) : NULL;
    if (o.ws == NULL) {
        if (server != NULL) {
            bufferevent_free(server);
        }
    } else {
        for (size_t off = 0; off < size && !o.closed; off += chunk) {
            client_write(&c, data + off, size - off < chunk ? size - off : chunk);
            for (int i = 0; i < 4 && !o.closed; i++) {
                event_base_loop(base, EVLOOP_NONBLOCK);
                client_drain(&c);
            }
        }
        for (int i = 0; i < 64 && !o.closed; i++) {
            event_base_loop(base, EVLOOP_NONBLOCK);
            client_drain(&c);
        }
        imk_ws_destroy(o.ws);
    }
    if (c.bev != NULL) {
        bufferevent_free(c.bev);
    }
    if (c.fd >= 0) {
        evutil_closesocket(c.fd);
    }
    event_base_free(base);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct outcome whole = run(data, size, size > 0 ? size : 1, true);
    struct outcome pieces = run(data, size, 1 + size % 13, true);
    /* One byte at a time for small inputs; a few bytes at a time otherwise. */
    struct outcome bytes = run(data, size, size <= 2048 ? 1 : 1 + size % 7, false);
    if (whole.messages != pieces.messages || whole.hash != pieces.hash ||
        whole.messages != bytes.messages || whole.hash != bytes.hash) {
        abort();
    }
    return 0;
}
