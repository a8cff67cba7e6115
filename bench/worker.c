/* Load generator threads (see worker.h). */
#include "worker.h"
#include "client.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_US 1000

int lg_worker_init(lg_worker_t *w, lg_ctx_t *ctx, int index)
{
    const lg_opts_t *o = ctx->opts;
    memset(w, 0, sizeof(*w));
    w->index = index;
    w->ctx = ctx;
    w->phase = -1;
    for (int i = index; i < o->clients; i += o->threads) {
        w->nclients++;
    }
    w->clients = calloc((size_t)w->nclients + 1, sizeof(*w->clients));
    w->senders = calloc((size_t)w->nclients + 1, sizeof(*w->senders));
    w->acked = calloc((size_t)ctx->nrooms + 1, sizeof(*w->acked));
    w->base = event_base_new();
    if (w->clients == NULL || w->senders == NULL || w->acked == NULL || w->base == NULL) {
        return -1;
    }
    int n = 0;
    for (int i = index; i < o->clients; i += o->threads) {
        lg_client_t *c = &w->clients[n++];
        if (lg_client_init(c, w, o->index_offset + i) != 0) {
            return -1;
        }
        if (c->sender) {
            w->senders[w->nsenders++] = c;
        }
    }
    return 0;
}

/* Starts clients not yet started in this step, at most limit connecting at once. */
static void start_clients(lg_worker_t *w, int limit)
{
    while (w->next_start < w->nclients && w->connecting < limit) {
        lg_client_start(&w->clients[w->next_start++]);
    }
}

/* Open loop: every send due by now goes out, each stamped with its scheduled time, so a
 * late send shows as latency rather than as a lower rate. Send k is due at t0 + k / rate,
 * so by now those up to floor((now - t0) * rate) are: one more than whole periods elapsed
 * (counting one fewer would stamp every send a period early). */
static void pace(lg_worker_t *w, int64_t now)
{
    if (w->rate <= 0 || w->nsenders == 0) {
        return;
    }
    uint64_t due = (uint64_t)((double)(now - w->pace_t0) * w->rate / 1e6) + 1;
    while (w->paced < due) {
        lg_client_t *c = w->senders[w->rr++ % w->nsenders];
        int64_t t = w->pace_t0 + (int64_t)((double)w->paced * 1e6 / w->rate);
        lg_client_send(c, t);
        w->paced++;
    }
}

static void enter_run(lg_worker_t *w)
{
    const lg_opts_t *o = w->ctx->opts;
    int total_senders = o->room_size > 0 ? o->clients / o->room_size * o->senders : 0;
    w->pace_t0 = lg_now_us();
    w->paced = 0;
    w->rate = o->rate > 0 && total_senders > 0 ? o->rate * w->nsenders / total_senders : 0;
    if (o->rate <= 0) {
        for (int i = 0; i < w->nsenders; i++) {
            lg_client_fill_window(w->senders[i]);
        }
    }
}

static void enter(lg_worker_t *w, int phase)
{
    w->phase = phase;
    switch (phase) {
    case LG_PH_ROOMS:
        for (int i = 0; i < w->nclients; i++) {
            lg_client_setup_room(&w->clients[i]);
        }
        break;
    case LG_PH_RUN:
        enter_run(w);
        break;
    case LG_PH_RECONNECT:
        for (int i = 0; i < w->nclients; i++) {
            lg_client_forget_recent(&w->clients[i]);
        }
        w->next_start = 0;
        break;
    case LG_PH_STOP:
        for (int i = 0; i < w->nclients; i++) {
            lg_client_drop(&w->clients[i]);
        }
        event_base_loopbreak(w->base);
        break;
    default:
        break;
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lg_worker_t *w = arg;
    int phase = atomic_load(&w->ctx->phase);
    if (phase != w->phase) {
        enter(w, phase);
        if (phase == LG_PH_RECONNECT) {
            return; /* libevent closes the dropped sockets later in this loop iteration */
        }
    }
    if (phase == LG_PH_SETUP) {
        start_clients(w, w->ctx->opts->concurrency);
    } else if (phase == LG_PH_RECONNECT) {
        start_clients(w, w->nclients); /* all at once */
    } else if (phase == LG_PH_RUN) {
        pace(w, lg_now_us());
    }
}

static void *run(void *arg)
{
    lg_worker_t *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

int lg_worker_start(lg_worker_t *w)
{
    w->tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
    struct timeval tv = {0, TICK_US};
    if (w->tick == NULL || event_add(w->tick, &tv) != 0) {
        return -1;
    }
    return pthread_create(&w->thread, NULL, run, w) == 0 ? 0 : -1;
}

void lg_worker_join(lg_worker_t *w)
{
    pthread_join(w->thread, NULL);
}

void lg_worker_deinit(lg_worker_t *w)
{
    for (int i = 0; w->clients != NULL && i < w->nclients; i++) {
        lg_client_deinit(&w->clients[i]);
    }
    for (int r = 0; w->acked != NULL && r < w->ctx->nrooms; r++) {
        lg_bitmap_deinit(&w->acked[r]);
    }
    if (w->tick != NULL) {
        event_free(w->tick);
    }
    if (w->base != NULL) {
        event_base_free(w->base);
    }
    free(w->clients);
    free(w->senders);
    free(w->acked);
}

int64_t lg_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t lg_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lg_error(lg_worker_t *w, const char *fmt, ...)
{
    if (w->s.error[0] != '\0') {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->s.error, sizeof(w->s.error), fmt, ap);
    va_end(ap);
}
