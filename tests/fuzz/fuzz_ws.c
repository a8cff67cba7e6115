/* libFuzzer driver for WebSocket frames through our wslay callbacks (gateway/src/ws.c;
 * seeds: corpus/ws/): the input is written, as a client would, into one end of a libevent
 * bufferevent pair whose other end is an imk_ws with small limits; the loop runs until
 * nothing is left to do. Whatever the bytes, the session must end or stay sane: every text
 * message delivered is valid UTF-8 within the size limit, nothing crashes or leaks. */
#include "imkit/text.h"
#include "ws.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MESSAGE 1024

struct outcome {
    imk_ws_t *ws;
    bool closed;
};

static void on_text(void *arg, const char *text, size_t len)
{
    struct outcome *o = arg;
    if (len > MAX_MESSAGE || !imk_utf8_valid(text, len)) {
        abort();
    }
    imk_ws_send_text(o->ws, text, len); /* echo: exercises the send path too */
}

static void on_closed(void *arg)
{
    struct outcome *o = arg;
    o->closed = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const imk_ws_callbacks_t callbacks = {on_text, on_closed};
    static const imk_ws_limits_t limits = {MAX_MESSAGE, 65536, 60000, 2, 60000};
    struct event_base *base = event_base_new();
    struct bufferevent *pair[2];
    if (base == NULL || bufferevent_pair_new(base, 0, pair) != 0) {
        if (base != NULL) {
            event_base_free(base);
        }
        return 0;
    }
    struct outcome o = {NULL, false};
    o.ws = imk_ws_create(pair[0], &limits, &callbacks, &o);
    if (o.ws == NULL) {
        bufferevent_free(pair[0]);
    } else {
        bufferevent_enable(pair[1], EV_READ | EV_WRITE);
        bufferevent_write(pair[1], data, size);
        for (int i = 0; i < 64 && !o.closed; i++) {
            event_base_loop(base, EVLOOP_NONBLOCK);
        }
        imk_ws_destroy(o.ws);
    }
    bufferevent_free(pair[1]);
    event_base_free(base);
    return 0;
}
