/* A WebSocket connection: client frames are parsed straight from the input buffer (a frame
 * waits there until it is whole, its size checked first), server frames are appended to the
 * output buffer and written once per loop iteration. A plain TCP connection is served from
 * its socket with one embedded event (readable, keepalive tick, flush, end notice) and holds
 * an input or output buffer only while bytes are in flight: idle, it costs this struct. A
 * TLS connection keeps its bufferevent, the embedded event then being its timer. */
#include "ws.h"
#include "imkit/err.h"
#include "imkit/log.h"
#include "imkit/text.h"
#include "wsframe.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define CLOSE_WAIT_MS 2000
/* A shared frame at least this long is queued by reference; a shorter one is copied, which
 * costs less than the chain a reference takes in each output buffer. */
#define SHARE_BY_REFERENCE_MIN 512
/* At most this much is read from a socket per readable event (as a bufferevent does). */
#define READ_MAX 16384

struct imk_ws {
    struct bufferevent *bev; /* TLS (any bufferevent not on a plain socket); NULL: fd */
    evutil_socket_t fd;      /* a plain socket, served directly; -1 with bev */
    struct evbuffer *in;     /* fd: bytes of a frame not whole yet; NULL when there are none */
    struct evbuffer *out;    /* fd: bytes the socket has not taken yet; NULL when none */
    struct event *writable;  /* fd: waits for the socket to take more; only while it refuses */
    imk_ws_callbacks_t cb;
    void *arg;
    imk_ws_limits_t limits;
    /* fd: readable. Both: the keepalive tick (ping, or give up on a silent peer or an
     * unfinished message); once closing, the wait for the peer's close frame; once closed,
     * on_closed from the loop. fd: activated with EV_WRITE, the flush of what this loop
     * iteration queued. */
    struct event ev;
    int64_t close_at_ms;      /* closing: when to stop waiting for the peer's close frame */
    int64_t last_rx_ms;       /* when the peer last sent anything */
    int64_t last_ping_ms;     /* when we last pinged */
    int64_t message_start_ms; /* when the frame or message in progress began; 0: none */
    uint8_t *msg;             /* a fragmented message's text so far (only while one is) */
    size_t msg_len;
    size_t msg_cap;
    uint32_t utf8;      /* imk_wsframe_utf8_feed state of that message */
    uint8_t msg_opcode; /* opcode of the fragmented message in progress; 0: none */
    bool closing;       /* we queued a close frame: wait for the peer's, a moment */
    bool peer_closed;   /* the peer's close frame came: nothing more is read */
    bool broken;        /* framing is lost: input is dropped until the connection ends */
    bool closed;        /* on_closed was called or is scheduled */
    bool flushing;      /* fd: a flush is scheduled in this loop iteration */
};

struct imk_ws_shared {
    size_t refs;
    size_t len;
    uint8_t bytes[]; /* header and payload */
};

enum { FRAME_DONE, FRAME_MORE, FRAME_STOP };

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Sets the period of ev's timeout (it is persistent: each activation restarts it). Every
 * connection has the same periods, so they are libevent common timeouts: restarting one on
 * each activation is a queue operation, not a heap one. */
static void arm(imk_ws_t *ws, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    const struct timeval *common = event_base_init_common_timeout(event_get_base(&ws->ev), &tv);
    event_add(&ws->ev, common != NULL ? common : &tv);
}

/* The keepalive tick is finer than the limits it enforces, by a factor of four. */
static int tick_ms(const imk_ws_limits_t *limits)
{
    int shorter = limits->ping_interval_ms < limits->message_timeout_ms
                      ? limits->ping_interval_ms
                      : limits->message_timeout_ms;
    return shorter / 4;
}

static void drop_message(imk_ws_t *ws)
{
    free(ws->msg);
    ws->msg = NULL;
    ws->msg_len = 0;
    ws->msg_cap = 0;
    ws->msg_opcode = 0;
    ws->utf8 = 0;
}

/* The owner learns of the end from the loop, so that it may free everything in on_closed
 * even when the end was noticed inside one of its own calls (a send, a close). */
static void notify_closed(imk_ws_t *ws)
{
    if (!ws->closed) {
        ws->closed = true;
        if (ws->bev != NULL) {
            bufferevent_disable(ws->bev, EV_READ | EV_WRITE);
        }
        if (ws->writable != NULL) {
            event_del(ws->writable);
        }
        event_del(&ws->ev);
        event_active(&ws->ev, EV_TIMEOUT, 1);
    }
}

static void free_buffer(struct evbuffer **b)
{
    if (*b != NULL) {
        evbuffer_free(*b);
        *b = NULL;
    }
}

/* Where frames are queued: the bufferevent's output, or (fd) ws->out, created when the
 * first frame since the socket last took everything is queued. NULL on no memory. */
static struct evbuffer *output(imk_ws_t *ws)
{
    if (ws->bev != NULL) {
        return bufferevent_get_output(ws->bev);
    }
    if (ws->out == NULL) {
        ws->out = evbuffer_new();
    }
    return ws->out;
}

static size_t queued_bytes(const imk_ws_t *ws)
{
    if (ws->bev != NULL) {
        return evbuffer_get_length(bufferevent_get_output(ws->bev));
    }
    return ws->out != NULL ? evbuffer_get_length(ws->out) : 0;
}

/* fd: writes what is queued once the current loop iteration's callbacks have run, so that
 * every frame queued meanwhile (a burst of events) goes out in one system call, without
 * waiting for the socket to be reported writable. */
static void schedule_flush(imk_ws_t *ws)
{
    if (ws->bev == NULL && !ws->flushing && !ws->closed && ws->writable == NULL) {
        ws->flushing = true;
        event_active(&ws->ev, EV_WRITE, 1);
    }
}

/* Queues one unmasked frame with FIN. Returns 0 or IMK_ENOMEM (then nothing is queued). */
static int queue_frame(imk_ws_t *ws, uint8_t opcode, const void *data, size_t len)
{
    struct evbuffer *out = output(ws);
    uint8_t head[IMK_WS_SERVER_HEAD_MAX];
    size_t head_len = imk_wsframe_head_encode(head, opcode, len);
    /* Room for both first, so that a header is never queued without its payload. */
    if (out == NULL || evbuffer_expand(out, head_len + len) != 0 ||
        evbuffer_add(out, head, head_len) != 0 || (len > 0 && evbuffer_add(out, data, len) != 0)) {
        return IMK_ENOMEM;
    }
    schedule_flush(ws);
    return 0;
}

/* Queues our close frame (no body for code 0) and waits CLOSE_WAIT_MS for the peer's. */
static void queue_close(imk_ws_t *ws, uint16_t code, const char *reason)
{
    uint8_t body[IMK_WS_CONTROL_MAX];
    size_t len = 0;
    if (code != 0) {
        size_t rlen = strlen(reason);
        rlen = rlen > sizeof(body) - 2 ? sizeof(body) - 2 : rlen;
        body[0] = (uint8_t)(code >> 8);
        body[1] = (uint8_t)code;
        memcpy(body + 2, reason, rlen);
        len = 2 + rlen;
    }
    ws->closing = true;
    drop_message(ws);
    ws->close_at_ms = now_ms() + CLOSE_WAIT_MS;
    /* Re-armed before the frame is queued: re-arming drops an activation of ev by its
     * timeout that is still to run, and with it a flush scheduled on top of it. */
    arm(ws, CLOSE_WAIT_MS);
    if (queue_frame(ws, IMK_WS_OP_CLOSE, body, len) != 0) {
        notify_closed(ws);
    }
}

/* The stream cannot be read as frames any more (or must not be): close with code and drop
 * whatever else comes until the peer goes or the close wait ends. */
static void fail(imk_ws_t *ws, uint16_t code, const char *reason)
{
    IMK_DEBUG("ws_failed", "code=%u reason=\"%s\"", (unsigned)code, reason);
    ws->broken = true;
    if (!ws->closing) {
        queue_close(ws, code, reason);
    }
}

/* Both close frames have crossed and ours is written: the connection is finished. After our
 * close frame, the connection stays until the peer's comes (or the close wait ends), reading
 * and dropping what it still sends: closing a socket with unread bytes makes the kernel
 * reset it, and the reset can destroy the close frame (and the answers before it) on their
 * way to the client. */
static void check_finished(imk_ws_t *ws)
{
    if (!ws->closed && ws->closing && ws->peer_closed && queued_bytes(ws) == 0) {
        notify_closed(ws);
    }
}

static void check_queued(imk_ws_t *ws)
{
    size_t queued = queued_bytes(ws);
    if (!ws->closing && queued > ws->limits.max_queued) {
        IMK_INFO("ws_slow_reader", "queued=%zu", queued);
        imk_ws_close(ws, 4408, "too slow to read");
    }
}

static void on_control(imk_ws_t *ws, uint8_t opcode, const uint8_t *body, size_t len)
{
    if (opcode == IMK_WS_OP_PING) {
        if (!ws->closing) {
            queue_frame(ws, IMK_WS_OP_PONG, body, len);
        }
        return;
    }
    if (opcode != IMK_WS_OP_CLOSE) {
        return; /* a pong: that the peer is alive is all it says */
    }
    if (len == 1) {
        fail(ws, 1002, "close frame body of 1 byte");
        return;
    }
    uint16_t code = len >= 2 ? (uint16_t)(body[0] << 8 | body[1]) : 0;
    if (len >= 2 && !imk_wsframe_close_code_valid(code)) {
        fail(ws, 1002, "invalid close code");
        return;
    }
    if (len > 2 && !imk_utf8_valid((const char *)body + 2, len - 2)) {
        fail(ws, 1007, "invalid UTF-8 in close reason");
        return;
    }
    ws->peer_closed = true;
    if (!ws->closing) {
        queue_close(ws, code, ""); /* echo the code, or an empty close for an empty one */
    }
}

/* Appends a fragment's payload (unmasked) to the message in progress and delivers the
 * message after its last fragment. Returns FRAME_DONE or FRAME_STOP. */
static int on_fragment(imk_ws_t *ws, struct evbuffer *in, const imk_wsframe_head_t *h)
{
    size_t len = (size_t)h->payload_len;
    if (h->opcode != IMK_WS_OP_CONT) {
        ws->msg_opcode = h->opcode;
        ws->msg_len = 0;
        ws->utf8 = 0;
    }
    if (ws->msg_len + len > ws->msg_cap) {
        size_t cap = ws->msg_cap ? ws->msg_cap : 256;
        while (cap < ws->msg_len + len) {
            cap *= 2;
        }
        cap = cap > ws->limits.max_message ? ws->limits.max_message : cap;
        uint8_t *msg = realloc(ws->msg, cap > 0 ? cap : 1);
        if (msg == NULL) {
            fail(ws, 1011, "out of memory");
            return FRAME_STOP;
        }
        ws->msg = msg;
        ws->msg_cap = cap;
    }
    evbuffer_drain(in, h->head_len);
    uint8_t *p = ws->msg != NULL ? ws->msg + ws->msg_len : NULL; /* NULL: nothing yet, len 0 */
    if (len > 0) {
        evbuffer_remove(in, p, len);
        imk_wsframe_unmask(p, len, h->mask, 0);
        ws->msg_len += len;
    }
    /* Invalid bytes end the connection at once, not when a message that may never finish
     * does. */
    if (!imk_wsframe_utf8_feed(&ws->utf8, p, len) || (h->fin && ws->utf8 != 0)) {
        imk_ws_close(ws, 1007, "invalid UTF-8");
        return FRAME_DONE;
    }
    if (h->fin) {
        /* Taken from ws first: on_text may close, which drops a message in progress. */
        uint8_t *msg = ws->msg;
        size_t msg_len = ws->msg_len;
        ws->msg = NULL;
        drop_message(ws);
        ws->message_start_ms = 0;
        ws->cb.on_text(ws->arg, msg != NULL ? (const char *)msg : "", msg_len);
        free(msg);
    }
    return FRAME_DONE;
}

/* Reads one frame from the front of in if it is whole. Returns FRAME_DONE (read, look for
 * the next), FRAME_MORE (wait for more bytes) or FRAME_STOP (stop reading). */
static int read_frame(imk_ws_t *ws, struct evbuffer *in)
{
    uint8_t head[IMK_WS_HEAD_MAX];
    size_t avail = evbuffer_get_length(in);
    ev_ssize_t got = evbuffer_copyout(in, head, avail < sizeof(head) ? avail : sizeof(head));
    if (got <= 0) {
        return FRAME_MORE;
    }
    imk_wsframe_head_t h;
    bool length_known;
    int rc = imk_wsframe_head_parse(head, (size_t)got, &h, &length_known);
    if (rc == IMK_WSFRAME_EPROTO) {
        fail(ws, 1002, "protocol error");
        return FRAME_STOP;
    }
    bool control = (h.opcode & 0x08) != 0;
    if (!ws->closing && !control && (h.opcode == IMK_WS_OP_CONT) != (ws->msg_opcode != 0)) {
        /* a continuation with nothing to continue, or a new message inside one */
        fail(ws, 1002, "unexpected data frame");
        return FRAME_STOP;
    }
    if (length_known && !control) {
        /* Refused from its header, before a byte of its payload is waited for. */
        if (h.payload_len > ws->limits.max_message - ws->msg_len) {
            fail(ws, 1009, "message too big");
            return FRAME_STOP;
        }
        if (!ws->closing && h.opcode == IMK_WS_OP_BINARY) {
            imk_ws_close(ws, 1003, "text frames only");
        }
    }
    if (rc == IMK_WSFRAME_MORE || avail < h.head_len + h.payload_len) {
        return FRAME_MORE;
    }
    size_t len = (size_t)h.payload_len;
    if (control) {
        uint8_t body[IMK_WS_CONTROL_MAX];
        evbuffer_drain(in, h.head_len);
        evbuffer_remove(in, body, len);
        imk_wsframe_unmask(body, len, h.mask, 0);
        if (ws->msg_opcode == 0) {
            ws->message_start_ms = 0; /* between messages only: a ping must not restart one */
        }
        on_control(ws, h.opcode, body, len);
        return FRAME_DONE;
    }
    if (ws->closing) {
        evbuffer_drain(in, h.head_len + len); /* what comes after our close frame is dropped */
        return FRAME_DONE;
    }
    if (!h.fin || h.opcode == IMK_WS_OP_CONT) {
        return on_fragment(ws, in, &h);
    }
    /* A whole message in one frame, the usual case: unmasked and read where it lies. */
    uint8_t *frame = evbuffer_pullup(in, (ev_ssize_t)(h.head_len + len));
    if (frame == NULL) {
        fail(ws, 1011, "out of memory");
        return FRAME_STOP;
    }
    uint8_t *p = frame + h.head_len;
    imk_wsframe_unmask(p, len, h.mask, 0);
    if (!imk_utf8_valid((const char *)p, len)) {
        imk_ws_close(ws, 1007, "invalid UTF-8");
    } else {
        ws->message_start_ms = 0;
        ws->cb.on_text(ws->arg, (const char *)p, len);
    }
    evbuffer_drain(in, h.head_len + len);
    return FRAME_DONE;
}

/* Reads the whole frames at the front of in. */
static void read_input(imk_ws_t *ws, struct evbuffer *in)
{
    ws->last_rx_ms = now_ms();
    while (!ws->broken && !ws->peer_closed && !ws->closed && read_frame(ws, in) == FRAME_DONE) {
    }
    if (ws->broken || ws->peer_closed) {
        evbuffer_drain(in, evbuffer_get_length(in));
    }
    /* A frame (or message) begun and not finished is timed from the read that began it: its
     * header may trickle too. */
    if (ws->msg_opcode == 0 && evbuffer_get_length(in) == 0) {
        ws->message_start_ms = 0;
    } else if (ws->message_start_ms == 0) {
        ws->message_start_ms = ws->last_rx_ms;
    }
    check_finished(ws);
}

static void on_bev_read(struct bufferevent *bev, void *arg)
{
    read_input(arg, bufferevent_get_input(bev));
}

static void on_bev_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    check_finished(arg);
}

static void on_bev_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        return;
    }
    notify_closed(arg); /* EOF, error or timeout: the peer is gone */
}

static bool would_block(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/* fd: reads what the socket has; the input buffer lives only while a frame is partial.
 * Read into the stack rather than with evbuffer_read, which asks the socket for its byte
 * count (an ioctl) before every read. */
static void on_readable(imk_ws_t *ws)
{
    if (ws->in == NULL && (ws->in = evbuffer_new()) == NULL) {
        return; /* no memory: readable again at the next iteration */
    }
    char chunk[READ_MAX];
    ssize_t n = read(ws->fd, chunk, sizeof(chunk));
    if (n == 0 || (n < 0 && !would_block(errno))) {
        notify_closed(ws); /* EOF or error: the peer is gone */
        return;
    }
    if (n > 0 && evbuffer_add(ws->in, chunk, (size_t)n) != 0) {
        notify_closed(ws); /* no memory for bytes already taken from the socket */
        return;
    }
    if (evbuffer_get_length(ws->in) > 0) { /* also frames that came with the upgrade */
        read_input(ws, ws->in);
    }
    if (ws->in != NULL && evbuffer_get_length(ws->in) == 0) {
        free_buffer(&ws->in);
    }
}

static void on_writable(evutil_socket_t fd, short what, void *arg);

/* fd: writes what is queued; the output buffer lives only until the socket has taken it. */
static void flush(imk_ws_t *ws)
{
    while (ws->out != NULL && evbuffer_get_length(ws->out) > 0) {
        int n = evbuffer_write(ws->out, ws->fd);
        if (n < 0 && !would_block(errno)) {
            notify_closed(ws); /* the peer is gone */
            return;
        }
        if (n <= 0) {
            break;
        }
    }
    if (ws->out == NULL || evbuffer_get_length(ws->out) == 0) {
        free_buffer(&ws->out);
        if (ws->writable != NULL) {
            event_free(ws->writable);
            ws->writable = NULL;
        }
        check_finished(ws);
        return;
    }
    if (ws->writable == NULL) {
        /* The socket is full: wait until it takes more (a slow reader). */
        ws->writable =
            event_new(event_get_base(&ws->ev), ws->fd, EV_WRITE | EV_PERSIST, on_writable, ws);
        if (ws->writable == NULL || event_add(ws->writable, NULL) != 0) {
            notify_closed(ws);
        }
    }
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush(arg);
}

/* Pings a quiet peer, closes a silent one (1001), and one whose message never completes
 * (1008): a peer that trickles a frame forever holds memory and a slot. */
static void keepalive(imk_ws_t *ws)
{
    int64_t now = now_ms();
    if (ws->message_start_ms != 0 && now - ws->message_start_ms > ws->limits.message_timeout_ms) {
        imk_ws_close(ws, 1008, "message not completed in time");
    } else if (now - ws->last_rx_ms >=
               (int64_t)ws->limits.ping_interval_ms * ws->limits.ping_misses) {
        imk_ws_close(ws, 1001, "no answer to pings");
    } else if (now - ws->last_rx_ms >= ws->limits.ping_interval_ms &&
               now - ws->last_ping_ms >= ws->limits.ping_interval_ms) {
        ws->last_ping_ms = now;
        queue_frame(ws, IMK_WS_OP_PING, NULL, 0);
    }
}

/* ev's callback. Every activation restarts its timeout, so the time limits are checked on
 * each one, not only when the timeout fires: a peer trickling bytes, or receiving a stream of
 * events, may never let it fire. */
static void on_ev(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    imk_ws_t *ws = arg;
    if (ws->closed) {
        ws->cb.on_closed(ws->arg); /* may free ws */
        return;
    }
    bool was_closing = ws->closing; /* then a timeout is the close wait's */
    ws->flushing = false;           /* every activation flushes, whatever activated it */
    if (what & EV_READ) {
        on_readable(ws);
    }
    if (!ws->closed && ws->bev == NULL && ws->writable == NULL) {
        flush(ws);
    }
    if (ws->closed) {
        return;
    }
    if (ws->closing) {
        if ((was_closing && (what & EV_TIMEOUT)) || now_ms() >= ws->close_at_ms) {
            notify_closed(ws); /* the peer did not answer our close frame in time */
        }
    } else {
        keepalive(ws);
    }
}

imk_ws_t *imk_ws_create(struct bufferevent *bev, const imk_ws_limits_t *limits,
                        const imk_ws_callbacks_t *callbacks, void *arg)
{
    imk_ws_t *ws = calloc(1, sizeof(*ws));
    if (ws == NULL) {
        return NULL;
    }
    struct event_base *base = bufferevent_get_base(bev);
    evutil_socket_t fd = bufferevent_getfd(bev);
    bool plain = fd >= 0 && bufferevent_openssl_get_ssl(bev) == NULL;
    ws->fd = plain ? fd : -1;
    if (event_assign(&ws->ev, base, ws->fd, plain ? EV_READ | EV_PERSIST : EV_PERSIST, on_ev, ws) !=
        0) {
        free(ws);
        return NULL;
    }
    if (plain) {
        /* The socket leaves its bufferevent, with what it holds: the upgrade answer not
         * written yet, and frames that came with the request. Detached first: that also
         * lets its buffers be emptied from outside. */
        bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
        bufferevent_setfd(bev, -1);
        struct evbuffer *in = bufferevent_get_input(bev);
        struct evbuffer *out = bufferevent_get_output(bev);
        if ((evbuffer_get_length(in) > 0 &&
             ((ws->in = evbuffer_new()) == NULL || evbuffer_add_buffer(ws->in, in) != 0)) ||
            (evbuffer_get_length(out) > 0 &&
             ((ws->out = evbuffer_new()) == NULL || evbuffer_add_buffer(ws->out, out) != 0))) {
            if (ws->in != NULL) {
                evbuffer_prepend_buffer(in, ws->in);
            }
            if (ws->out != NULL) {
                evbuffer_prepend_buffer(out, ws->out);
            }
            free_buffer(&ws->in);
            free_buffer(&ws->out);
            bufferevent_setfd(bev, fd); /* the caller frees it, and so closes the socket */
            free(ws);
            return NULL;
        }
        bufferevent_free(bev); /* the socket stays open: it is ours now */
        bev = NULL;
    }
    ws->bev = bev;
    ws->limits = *limits;
    ws->last_rx_ms = now_ms();
    ws->cb = *callbacks;
    ws->arg = arg;
    arm(ws, tick_ms(limits));
    if (plain) {
        if (ws->in != NULL) {
            event_active(&ws->ev, EV_READ, 1); /* frames that came with the request */
        }
        schedule_flush(ws);
        return ws;
    }
    bufferevent_setcb(bev, on_bev_read, on_bev_write, on_bev_event, ws);
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
    event_del(&ws->ev);
    if (ws->writable != NULL) {
        event_free(ws->writable);
    }
    free(ws->msg);
    if (ws->bev != NULL) {
        bufferevent_free(ws->bev);
    } else {
        free_buffer(&ws->in);
        free_buffer(&ws->out);
        evutil_closesocket(ws->fd);
    }
    free(ws);
}

int imk_ws_send_text(imk_ws_t *ws, const char *data, size_t len)
{
    if (ws->closing || ws->closed) {
        return IMK_ECLOSED;
    }
    int rc = queue_frame(ws, IMK_WS_OP_TEXT, data, len);
    if (rc == 0) {
        check_queued(ws);
    }
    return rc;
}

imk_ws_shared_t *imk_ws_shared_create(const char *data, size_t len)
{
    imk_ws_shared_t *m = malloc(sizeof(*m) + IMK_WS_SERVER_HEAD_MAX + len);
    if (m == NULL) {
        return NULL;
    }
    size_t head_len = imk_wsframe_head_encode(m->bytes, IMK_WS_OP_TEXT, len);
    memcpy(m->bytes + head_len, data, len);
    m->len = head_len + len;
    m->refs = 1;
    return m;
}

void imk_ws_shared_release(imk_ws_shared_t *m)
{
    if (m != NULL && --m->refs == 0) {
        free(m);
    }
}

static void on_shared_written(const void *data, size_t len, void *extra)
{
    (void)data;
    (void)len;
    imk_ws_shared_release(extra);
}

int imk_ws_send_shared(imk_ws_t *ws, imk_ws_shared_t *m)
{
    if (ws->closing || ws->closed) {
        return IMK_ECLOSED;
    }
    struct evbuffer *out = output(ws);
    if (out == NULL) {
        return IMK_ENOMEM;
    }
    if (m->len < SHARE_BY_REFERENCE_MIN) {
        if (evbuffer_add(out, m->bytes, m->len) != 0) {
            return IMK_ENOMEM;
        }
    } else {
        m->refs++;
        if (evbuffer_add_reference(out, m->bytes, m->len, on_shared_written, m) != 0) {
            m->refs--; /* not called back when the add fails */
            return IMK_ENOMEM;
        }
    }
    schedule_flush(ws);
    check_queued(ws);
    return 0;
}

void imk_ws_close(imk_ws_t *ws, uint16_t code, const char *reason)
{
    if (ws->closing || ws->closed) {
        return;
    }
    queue_close(ws, code, reason);
}
