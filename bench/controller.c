/* Scenario phases (see controller.h). */
#include "controller.h"

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#define POLL_MS 2

typedef struct {
    const lg_watch_t *watch;
    int nwatch;
    volatile sig_atomic_t *stop;
} probe_set_t;

static long long sum(const lg_ctx_t *ctx, size_t offset)
{
    long long n = 0;
    for (int t = 0; t < ctx->opts->threads; t++) {
        n += atomic_load((atomic_llong *)((char *)&ctx->workers[t].c + offset));
    }
    return n;
}

#define SUM(ctx, field) sum((ctx), offsetof(lg_counters_t, field))

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls cond until it holds (true), the timeout passes or a stop was asked (false). */
static bool wait_for(lg_ctx_t *ctx, bool (*cond)(lg_ctx_t *), double timeout_s,
                     volatile sig_atomic_t *stop)
{
    int64_t deadline = lg_now_us() + (int64_t)(timeout_s * 1e6);
    while (!cond(ctx)) {
        if (lg_now_us() > deadline || *stop) {
            return false;
        }
        sleep_ms(POLL_MS);
    }
    return true;
}

static void sleep_s(double s, volatile sig_atomic_t *stop)
{
    int64_t until = lg_now_us() + (int64_t)(s * 1e6);
    while (lg_now_us() < until && !*stop) {
        sleep_ms(POLL_MS);
    }
}

static bool all_authed(lg_ctx_t *ctx)
{
    return SUM(ctx, ready) + SUM(ctx, failed) >= ctx->opts->clients;
}

static bool all_joined(lg_ctx_t *ctx)
{
    return SUM(ctx, joined) + SUM(ctx, failed) >= ctx->opts->clients;
}

static bool all_synced(lg_ctx_t *ctx)
{
    return SUM(ctx, synced) + SUM(ctx, failed) >= ctx->opts->clients;
}

/* Nothing in flight and every due delivery in (or a receiver gone). */
static bool drained(lg_ctx_t *ctx)
{
    return SUM(ctx, inflight) == 0 && SUM(ctx, delivered) >= SUM(ctx, expected);
}

/* Storm: every sender sent its cap, answered and delivered. */
static bool backlog_sent(lg_ctx_t *ctx)
{
    long long senders = (long long)ctx->nrooms * ctx->opts->senders;
    return SUM(ctx, senders_done) + SUM(ctx, failed) >= senders && drained(ctx);
}

static void set_phase(lg_ctx_t *ctx, int phase)
{
    atomic_store(&ctx->phase, phase);
}

static void sample(const probe_set_t *p, const lg_ctx_t *ctx, lg_sample_t *s)
{
    lg_probe_sample(p->watch, p->nwatch, ctx->opts->redis_port, s);
}

static int connect_all(lg_ctx_t *ctx, const probe_set_t *p, lg_result_t *r)
{
    sample(p, ctx, &r->setup0);
    set_phase(ctx, LG_PH_SETUP);
    bool done = wait_for(ctx, all_authed, ctx->opts->setup_timeout, p->stop);
    sample(p, ctx, &r->setup1);
    r->has_setup = true;
    if (!done || SUM(ctx, failed) > 0) {
        r->error = done ? "some clients failed to connect or authenticate"
                        : "timed out connecting and authenticating";
        return -1;
    }
    if (ctx->opts->room_size > 0) {
        set_phase(ctx, LG_PH_ROOMS);
        done = wait_for(ctx, all_joined, ctx->opts->setup_timeout, p->stop);
        if (!done || SUM(ctx, failed) > 0) {
            r->error = done ? "some clients failed to join their room" : "timed out joining rooms";
            return -1;
        }
    }
    return 0;
}

static void hold(lg_ctx_t *ctx, const probe_set_t *p)
{
    const char *file = ctx->opts->ready_file;
    if (file != NULL) {
        FILE *f = fopen(file, "w");
        if (f != NULL) {
            fprintf(f, "%lld\n", (long long)SUM(ctx, ready));
            fclose(f);
        }
    }
    set_phase(ctx, LG_PH_HOLD);
    sleep_s(ctx->opts->hold, p->stop);
}

static int run_traffic(lg_ctx_t *ctx, const probe_set_t *p, lg_result_t *r)
{
    const lg_opts_t *o = ctx->opts;
    set_phase(ctx, LG_PH_RUN);
    sleep_s(o->warmup, p->stop);
    sample(p, ctx, &r->run0);
    atomic_store(&ctx->win_start_us, r->run0.t_us);
    sleep_s(o->duration, p->stop);
    sample(p, ctx, &r->run1);
    atomic_store(&ctx->win_end_us, r->run1.t_us);
    r->has_run = true;
    set_phase(ctx, LG_PH_DRAIN);
    r->drained = wait_for(ctx, drained, o->drain, p->stop);
    if (!r->drained) {
        r->error = "messages still in flight or undelivered after the drain time";
        return -1;
    }
    return 0;
}

static int storm(lg_ctx_t *ctx, const probe_set_t *p, lg_result_t *r)
{
    const lg_opts_t *o = ctx->opts;
    set_phase(ctx, LG_PH_RUN);
    if (!wait_for(ctx, backlog_sent, o->setup_timeout, p->stop)) {
        r->error = "timed out sending the messages to catch up on";
        return -1;
    }
    if (SUM(ctx, failed) > 0) {
        r->error = "some clients failed sending the messages to catch up on";
        return -1;
    }
    set_phase(ctx, LG_PH_DRAIN);
    sample(p, ctx, &r->storm0);
    atomic_store(&ctx->drop_us, r->storm0.t_us);
    set_phase(ctx, LG_PH_RECONNECT);
    bool done = wait_for(ctx, all_synced, o->setup_timeout, p->stop);
    sample(p, ctx, &r->storm1);
    r->has_storm = true;
    if (!done || SUM(ctx, failed) > 0) {
        r->error = done ? "some clients failed to reconnect" : "timed out reconnecting";
        return -1;
    }
    return 0;
}

int lg_controller_run(lg_ctx_t *ctx, const lg_watch_t *watch, int nwatch,
                      volatile sig_atomic_t *stop, lg_result_t *r)
{
    probe_set_t p = {watch, nwatch, stop};
    int rc = connect_all(ctx, &p, r);
    if (rc == 0) {
        switch (ctx->opts->scenario) {
        case LG_IDLE:
            hold(ctx, &p);
            break;
        case LG_DIRECT:
        case LG_FANOUT:
            rc = run_traffic(ctx, &p, r);
            break;
        case LG_STORM:
            rc = storm(ctx, &p, r);
            break;
        }
    }
    set_phase(ctx, LG_PH_STOP);
    return rc;
}
