/* wslay driven from a bufferevent: the receive callback reads what the socket delivered and
 * reports would-block when it is empty; the send callback appends to the output buffer. */
#include "ws.h"
#include "imkit/err.h"
#include "imkit/log.h"
#include "imkit/text.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <wslay/wslay.h>

#define CLOSE_WAIT_MS 2000

struct imk_ws {
    struct bufferevent *bev;
    wslay_event_context_ptr ctx;
    imk_ws_limits_t limits;
    struct event *keepalive;  /* every ping interval: ping, or give up on a silent peer */
    int64_t last_rx_ms;       /* when the peer last sent anything */
    int64_t last_ping_ms;     /* when we last pinged */
    bool broken;              /* a frame could not be parsed: reading stopped, closing 1002 */
    bool fragmented;          /* a data message's first fragment came, not its last */
    int64_t message_start_ms; /* when the message in progress began; 0: none */
    imk_ws_callbacks_t cb;
    void *arg;
    bool closing;             /* we queued a close frame: wait for the peer's, a moment */
    struct event *close_wait; /* gives up waiting for the peer's close frame */
    bool closed;              /* on_closed was called or is scheduled */
    struct event *closed_ev;  /* runs on_closed from the loop, never from inside a call */
};

static void close_broken(imk_ws_t *ws);

static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *user_data)
{
    (void)ctx;
    imk_ws_t *ws = user_data;
    if (!wslay_is_ctrl_frame(arg->opcode) && !arg->fin) {
        ws->fragmented = true;
    }
}

static ssize_t on_wslay_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                             void *user_data)
{
    (void)flags;
    imk_ws_t *ws = user_data;
    int n = evbuffer_remove(bufferevent_get_input(ws->bev), buf, len);
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return (ssize_t)n;
}

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static ssize_t on_wslay_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                             int flags, void *user_data)
{
    (void)flags;
    imk_ws_t *ws = user_data;
    if (evbuffer_add(bufferevent_get_output(ws->bev), data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void on_close_wait(evutil_socket_t fd, short what, void *arg);

static void on_closed_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    imk_ws_t *ws = arg;
    ws->cb.on_closed(ws->arg);
}

/* The owner learns of the end from the loop, so that it may free everything in on_closed
 * even when the end was noticed inside one of its own calls (a send, a close). */
static void notify_closed(imk_ws_t *ws)
{
    if (!ws->closed) {
        ws->closed = true;
        bufferevent_disable(ws->bev, EV_READ | EV_WRITE);
        event_active(ws->closed_ev, EV_TIMEOUT, 0);
    }
}

static void on_wslay_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m,
                         void *user_data)
{
    (void)ctx;
    imk_ws_t *ws = user_data;
    /* A complete data message ends the clock; a control frame does only between messages
     * (a ping between two fragments must not restart it). */
    if (!wslay_is_ctrl_frame(m->opcode) || !ws->fragmented) {
        ws->message_start_ms = 0;
        ws->fragmented = false;
    }
    if (m->opcode == WSLAY_CONNECTION_CLOSE && m->msg_length == 1) {
        close_broken(ws); /* a close body is empty or holds a 2-byte code: 1002 */
        return;
    }
    if (ws->closing || wslay_is_ctrl_frame(m->opcode)) {
        return; /* wslay answers pings and close frames itself */
    }
    if (m->opcode != WSLAY_TEXT_FRAME) {
        imk_ws_close(ws, 1003, "text frames only");
        return;
    }
    if (!imk_utf8_valid((const char *)m->msg, m->msg_length)) {
        imk_ws_close(ws, 1007, "invalid UTF-8");
        return;
    }
    ws->cb.on_text(ws->arg, (const char *)m->msg, m->msg_length);
}

/* Writes whatever wslay has queued; decides whether the connection is finished. */
static void flush(imk_ws_t *ws)
{
    if (ws->closed) {
        return;
    }
    if (ws->broken) {
        return; /* wslay is out of the game; close_wait or the peer ends it */
    }
    if (wslay_event_send(ws->ctx) != 0) {
        notify_closed(ws);
        return;
    }
    size_t queued = evbuffer_get_length(bufferevent_get_output(ws->bev));
    if (!ws->closing && queued > ws->limits.max_queued) {
        IMK_INFO("ws_slow_reader", "queued=%zu", queued);
        imk_ws_close(ws, 4408, "too slow to read");
        return;
    }
    /* After our close frame, the connection stays until the peer's close frame comes (or
     * close_wait fires), reading and dropping what it still sends: closing a socket with
     * unread bytes makes the kernel reset it, and the reset can destroy the close frame
     * (and the answers before it) on their way to the client. */
    bool done = !wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx);
    if (done && queued == 0) {
        notify_closed(ws);
    }
}

/* wslay refused a frame (a control frame over 125 bytes or fragmented, a length with its top
 * bit set...) and may have queued a close without a code. The peer is owed 1002: write that
 * close frame ourselves, stop using wslay, and wait for the peer to go (or close_wait). */
static void close_broken(imk_ws_t *ws)
{
    static const unsigned char close_1002[] = {0x88, 0x02, 0x03, 0xea};
    ws->broken = true;
    if (!ws->closing) {
        evbuffer_add(bufferevent_get_output(ws->bev), close_1002, sizeof(close_1002));
        ws->closing = true;
        struct timeval wait = {CLOSE_WAIT_MS / 1000, (CLOSE_WAIT_MS % 1000) * 1000};
        evtimer_add(ws->close_wait, &wait);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    imk_ws_t *ws = arg;
    ws->last_rx_ms = now_ms();
    if (ws->message_start_ms == 0) {
        ws->message_start_ms = ws->last_rx_ms; /* a frame begins: its header may trickle too */
    }
    if (ws->broken) {
        /* After a frame wslay could not parse, nothing more is read as frames: drop what
         * comes until the close handshake ends or close_wait fires. */
        evbuffer_drain(bufferevent_get_input(ws->bev),
                       evbuffer_get_length(bufferevent_get_input(ws->bev)));
        return;
    }
    int rc = wslay_event_recv(ws->ctx);
    if (rc != 0) {
        IMK_DEBUG("ws_recv_failed", "error=%d", rc);
        close_broken(ws);
        return;
    }
    flush(ws);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    flush(arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        return;
    }
    notify_closed(arg); /* EOF, error or timeout: the peer is gone */
}

/* Pings a quiet peer, closes a silent one (1001), and one whose message never completes
 * (1008): a peer that trickles a frame forever holds memory and a slot. */
static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    imk_ws_t *ws = arg;
    int64_t now = now_ms();
    if (ws->closing || ws->closed) {
        return;
    }
    if (ws->message_start_ms != 0 && now - ws->message_start_ms > ws->limits.message_timeout_ms) {
        imk_ws_close(ws, 1008, "message not completed in time");
    } else if (now - ws->last_rx_ms >=
               (int64_t)ws->limits.ping_interval_ms * ws->limits.ping_misses) {
        imk_ws_close(ws, 1001, "no answer to pings");
    } else if (now - ws->last_rx_ms >= ws->limits.ping_interval_ms &&
               now - ws->last_ping_ms >= ws->limits.ping_interval_ms) {
        ws->last_ping_ms = now;
        struct wslay_event_msg ping = {WSLAY_PING, NULL, 0};
        wslay_event_queue_msg(ws->ctx, &ping);
        flush(ws);
    }
}

imk_ws_t *imk_ws_create(struct bufferevent *bev, const imk_ws_limits_t *limits,
                        const imk_ws_callbacks_t *callbacks, void *arg)
{
    static const struct wslay_event_callbacks wslay_callbacks = {
        on_wslay_recv, on_wslay_send, NULL, on_frame_start, NULL, NULL, on_wslay_msg,
    };
    imk_ws_t *ws = calloc(1, sizeof(*ws));
    if (ws == NULL) {
        return NULL;
    }
    if (wslay_event_context_server_init(&ws->ctx, &wslay_callbacks, ws) != 0) {
        free(ws);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, limits->max_message);
    ws->limits = *limits;
    ws->closed_ev = evtimer_new(bufferevent_get_base(bev), on_closed_event, ws);
    /* The keepalive tick is finer than the limits it enforces, by a factor of four. */
    int tick =
        (limits->ping_interval_ms < limits->message_timeout_ms ? limits->ping_interval_ms
                                                               : limits->message_timeout_ms) /
        4;
    ws->keepalive = event_new(bufferevent_get_base(bev), -1, EV_PERSIST, on_keepalive, ws);
    ws->close_wait = evtimer_new(bufferevent_get_base(bev), on_close_wait, ws);
    if (ws->closed_ev == NULL || ws->keepalive == NULL || ws->close_wait == NULL) {
        if (ws->closed_ev != NULL) {
            event_free(ws->closed_ev);
        }
        if (ws->keepalive != NULL) {
            event_free(ws->keepalive);
        }
        if (ws->close_wait != NULL) {
            event_free(ws->close_wait);
        }
        wslay_event_context_free(ws->ctx);
        free(ws);
        return NULL;
    }
    struct timeval tv = {tick / 1000, (tick % 1000) * 1000};
    evtimer_add(ws->keepalive, &tv);
    ws->last_rx_ms = now_ms();
    ws->bev = bev;
    ws->cb = *callbacks;
    ws->arg = arg;
    bufferevent_setcb(bev, on_read, on_write, on_event, ws);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    /* Bytes that arrived with the upgrade request are already in the input buffer. */
    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
        bufferevent_trigger(bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
    }
    return ws;
}

void imk_ws_destroy(imk_ws_t *ws)
{
    if (ws == NULL) {
        return;
    }
    event_free(ws->closed_ev);
    event_free(ws->keepalive);
    event_free(ws->close_wait);
    wslay_event_context_free(ws->ctx);
    bufferevent_free(ws->bev);
    free(ws);
}

int imk_ws_send_text(imk_ws_t *ws, const char *data, size_t len)
{
    if (ws->closing || ws->closed) {
        return IMK_ECLOSED;
    }
    struct wslay_event_msg msg = {WSLAY_TEXT_FRAME, (const uint8_t *)data, len};
    if (wslay_event_queue_msg(ws->ctx, &msg) != 0) {
        return IMK_ENOMEM;
    }
    flush(ws);
    return 0;
}

void imk_ws_close(imk_ws_t *ws, uint16_t code, const char *reason)
{
    if (ws->closing || ws->closed) {
        return;
    }
    ws->closing = true;
    wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, strlen(reason));
    struct timeval wait = {CLOSE_WAIT_MS / 1000, (CLOSE_WAIT_MS % 1000) * 1000};
    evtimer_add(ws->close_wait, &wait);
    flush(ws);
}

static void on_close_wait(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    notify_closed(arg); /* the peer did not answer our close frame in time */
}
