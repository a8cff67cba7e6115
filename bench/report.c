/* Result merging and JSON output (see report.h). */
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *proto_name(enum lg_proto p)
{
    return p == LG_IMKIT ? "imkit" : p == LG_SIO ? "socketio" : "nchan";
}

static const char *scenario_name(enum lg_scenario s)
{
    static const char *names[] = {"idle", "direct", "fanout", "storm"};
    return names[s];
}

static json_t *hist_json(const lg_hist_t *h)
{
    return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f}", "count", (json_int_t)h->count, "p50",
                     lg_hist_quantile(h, 0.50) / 1000.0, "p99", lg_hist_quantile(h, 0.99) / 1000.0,
                     "p999", lg_hist_quantile(h, 0.999) / 1000.0, "max", (double)h->max / 1000.0,
                     "mean", lg_hist_mean(h) / 1000.0);
}

/* Per-group CPU, writes and RSS between two samples, per message and per delivery. */
static json_t *cost_json(const lg_watch_t *watch, int nwatch, const lg_sample_t *a,
                         const lg_sample_t *b, double msgs, double deliveries)
{
    json_t *groups = json_object();
    double server = 0.0;
    double seconds = (double)(b->t_us - a->t_us) / 1e6;
    for (int g = 0; g < nwatch; g++) {
        double cpu = b->cpu_s[g] - a->cpu_s[g];
        double writes = (double)(b->syscw[g] - a->syscw[g]);
        server += cpu;
        json_object_set_new(groups, watch[g].name,
                            json_pack("{s:f,s:f,s:f,s:f,s:f,s:I,s:I}", "cpu_s", cpu, "us_per_msg",
                                      msgs > 0 ? cpu * 1e6 / msgs : 0.0, "us_per_delivery",
                                      deliveries > 0 ? cpu * 1e6 / deliveries : 0.0, "syscw",
                                      writes, "syscw_per_delivery",
                                      deliveries > 0 ? writes / deliveries : 0.0, "rss_kb_before",
                                      (json_int_t)a->rss_kb[g], "rss_kb_after",
                                      (json_int_t)b->rss_kb[g]));
    }
    json_t *cmds = json_object();
    uint64_t calls = 0;
    for (int i = 0; a->redis_ok && b->redis_ok && i < b->ncmds; i++) {
        uint64_t d = b->calls[i] - lg_probe_calls(a, b->cmd[i]);
        if (d > 0) {
            json_object_set_new(cmds, b->cmd[i], json_integer((json_int_t)d));
            calls += d;
        }
    }
    return json_pack(
        "{s:f,s:o,s:f,s:f,s:f,s:f,s:I,s:f,s:o,s:f}", "seconds", seconds, "groups", groups,
        "server_cpu_s", server, "server_cores", seconds > 0 ? server / seconds : 0.0,
        "server_us_per_msg", msgs > 0 ? server * 1e6 / msgs : 0.0, "server_us_per_delivery",
        deliveries > 0 ? server * 1e6 / deliveries : 0.0, "redis_calls", (json_int_t)calls,
        "redis_calls_per_msg", msgs > 0 ? (double)calls / msgs : 0.0, "redis_commands", cmds,
        "loadgen_cpu_s", b->self_cpu_s - a->self_cpu_s);
}

/* Sums every thread's statistics into total (histograms merged). */
static void merge_stats(const lg_ctx_t *ctx, lg_stats_t *total, lg_counters_t *sum)
{
    memset(total, 0, sizeof(*total));
    memset(sum, 0, sizeof(*sum));
    for (int t = 0; t < ctx->opts->threads; t++) {
        const lg_stats_t *s = &ctx->workers[t].s;
        const lg_counters_t *c = &ctx->workers[t].c;
        total->sent += s->sent;
        total->acked += s->acked;
        total->ack_errors += s->ack_errors;
        total->sent_window += s->sent_window;
        total->acked_window += s->acked_window;
        total->delivered_window += s->delivered_window;
        total->acks_in_window += s->acks_in_window;
        total->deliveries_in_window += s->deliveries_in_window;
        total->dups += s->dups;
        total->skipped += s->skipped;
        total->closed += s->closed;
        total->connect_errors += s->connect_errors;
        total->auth_errors += s->auth_errors;
        total->sync_incomplete += s->sync_incomplete;
        total->retries += s->retries;
        if (total->first_connect_us == 0 ||
            (s->first_connect_us != 0 && s->first_connect_us < total->first_connect_us)) {
            total->first_connect_us = s->first_connect_us;
        }
        if (s->last_ready_us > total->last_ready_us) {
            total->last_ready_us = s->last_ready_us;
        }
        lg_hist_merge(&total->connect, &s->connect);
        lg_hist_merge(&total->ack, &s->ack);
        lg_hist_merge(&total->e2e, &s->e2e);
        lg_hist_merge(&total->storm, &s->storm);
        if (total->error[0] == '\0') {
            memcpy(total->error, s->error, sizeof(total->error));
        }
        sum->ready += atomic_load(&c->ready);
        sum->failed += atomic_load(&c->failed);
        sum->inflight += atomic_load(&c->inflight);
        sum->synced += atomic_load(&c->synced);
    }
}

/* Each receiver against the messages acknowledged in its room: missing ones are lost,
 * ones never acknowledged are unexpected. Duplicates were counted as they came. */
static void check_deliveries(const lg_ctx_t *ctx, uint64_t *lost, uint64_t *unexpected)
{
    *lost = *unexpected = 0;
    lg_bitmap_t *acked = calloc((size_t)ctx->nrooms + 1, sizeof(*acked));
    if (acked == NULL) {
        return;
    }
    for (int t = 0; t < ctx->opts->threads; t++) {
        for (int r = 0; r < ctx->nrooms; r++) {
            lg_bitmap_or(&acked[r], &ctx->workers[t].acked[r]);
        }
    }
    for (int t = 0; t < ctx->opts->threads; t++) {
        const lg_worker_t *w = &ctx->workers[t];
        for (int i = 0; i < w->nclients; i++) {
            const lg_client_t *c = &w->clients[i];
            if (c->room >= 0) {
                *lost += lg_bitmap_count_missing(&acked[c->room], &c->recv);
                *unexpected += lg_bitmap_count_missing(&c->recv, &acked[c->room]);
            }
        }
    }
    for (int r = 0; r < ctx->nrooms; r++) {
        lg_bitmap_deinit(&acked[r]);
    }
    free(acked);
}

static json_t *config_json(const lg_opts_t *o)
{
    return json_pack("{s:i,s:i,s:i,s:i,s:f,s:i,s:i,s:f,s:f,s:i,s:i,s:i,s:i}", "clients", o->clients,
                     "room_size", o->room_size, "rooms",
                     o->room_size > 0 ? o->clients / o->room_size : 0, "senders_per_room",
                     o->senders, "rate", o->rate, "window", o->window, "cap", o->cap, "warmup_s",
                     o->warmup, "duration_s", o->duration, "msg_size", o->msg_size, "threads",
                     o->threads, "targets", o->ntargets, "source_addresses", o->src_count);
}

static json_t *setup_json(const lg_ctx_t *ctx, const lg_stats_t *s, const lg_counters_t *sum,
                          const lg_watch_t *watch, int nwatch, const lg_result_t *r)
{
    double seconds = (double)(s->last_ready_us - s->first_connect_us) / 1e6;
    json_t *o = json_pack(
        "{s:i,s:I,s:I,s:I,s:I,s:f,s:f,s:o,s:I,s:I}", "clients", ctx->opts->clients, "authenticated",
        (json_int_t)sum->ready, "failed", (json_int_t)sum->failed, "connect_errors",
        (json_int_t)s->connect_errors, "auth_errors", (json_int_t)s->auth_errors, "seconds",
        seconds, "per_s", seconds > 0 ? (double)sum->ready / seconds : 0.0, "connect_ms",
        hist_json(&s->connect), "first_connect_wall_ms",
        (json_int_t)(lg_wall_ms() - (lg_now_us() - s->first_connect_us) / 1000),
        "last_ready_wall_ms", (json_int_t)(lg_wall_ms() - (lg_now_us() - s->last_ready_us) / 1000));
    if (r->has_setup) {
        json_object_set_new(o, "cost",
                            cost_json(watch, nwatch, &r->setup0, &r->setup1, (double)sum->ready,
                                      (double)sum->ready));
    }
    return o;
}

static json_t *run_json(const lg_ctx_t *ctx, const lg_stats_t *s, const lg_counters_t *sum,
                        const lg_watch_t *watch, int nwatch, const lg_result_t *r)
{
    uint64_t lost, unexpected;
    check_deliveries(ctx, &lost, &unexpected);
    double window = (double)(atomic_load(&ctx->win_end_us) - atomic_load(&ctx->win_start_us)) / 1e6;
    /* Rates count what arrived within the window: a system that cannot keep up with an
     * open-loop rate shows a lower rate (and growing latency), not the offered one. */
    json_t *o = json_pack(
        "{s:f,s:s,s:I,s:I,s:I,s:f,s:f,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o}", "window_s", window,
        "mode", ctx->opts->rate > 0 ? "open" : "closed", "sent", (json_int_t)s->sent, "acked",
        (json_int_t)s->acked, "sent_in_window", (json_int_t)s->sent_window, "offered_msgs_per_s",
        window > 0 ? (double)s->sent_window / window : 0.0, "msgs_per_s",
        window > 0 ? (double)s->acks_in_window / window : 0.0, "deliveries_per_s",
        window > 0 ? (double)s->deliveries_in_window / window : 0.0, "ack_errors",
        (json_int_t)s->ack_errors, "unacked", (json_int_t)sum->inflight, "lost", (json_int_t)lost,
        "dup", (json_int_t)s->dups, "unexpected", (json_int_t)unexpected, "skipped",
        (json_int_t)s->skipped, "closed", (json_int_t)s->closed, "ack_ms", hist_json(&s->ack),
        "e2e_ms", hist_json(&s->e2e));
    /* Undelivered when the drain time ran out: late or lost, not told apart. */
    json_object_set_new(o, "drained", json_boolean(r->drained));
    json_object_set_new(o, "cost",
                        cost_json(watch, nwatch, &r->run0, &r->run1, (double)s->acks_in_window,
                                  (double)s->deliveries_in_window));
    return o;
}

static json_t *storm_json(const lg_ctx_t *ctx, const lg_stats_t *s, const lg_counters_t *sum,
                          const lg_watch_t *watch, int nwatch, const lg_result_t *r)
{
    double seconds = (double)(r->storm1.t_us - r->storm0.t_us) / 1e6;
    return json_pack(
        "{s:i,s:I,s:I,s:f,s:o,s:o}", "clients", ctx->opts->clients, "synced",
        (json_int_t)sum->synced, "incomplete", (json_int_t)s->sync_incomplete, "seconds", seconds,
        "per_client_ms", hist_json(&s->storm), "cost",
        cost_json(watch, nwatch, &r->storm0, &r->storm1, (double)sum->synced, (double)sum->synced));
}

json_t *lg_report(const lg_ctx_t *ctx, const lg_watch_t *watch, int nwatch, const lg_result_t *r)
{
    lg_stats_t *s = malloc(sizeof(*s));
    lg_counters_t sum;
    if (s == NULL) {
        return NULL;
    }
    merge_stats(ctx, s, &sum);
    char error[400] = "";
    if (r->error != NULL || s->error[0] != '\0') {
        snprintf(error, sizeof(error), "%s%s%s", r->error != NULL ? r->error : "",
                 r->error != NULL && s->error[0] != '\0' ? "; first: " : "", s->error);
    }
    json_t *out = json_pack("{s:s,s:s,s:o,s:o}", "system", proto_name(ctx->opts->proto), "scenario",
                            scenario_name(ctx->opts->scenario), "config", config_json(ctx->opts),
                            "setup", setup_json(ctx, s, &sum, watch, nwatch, r));
    json_object_set_new(out, "error", error[0] != '\0' ? json_string(error) : json_null());
    json_object_set_new(out, "failed_early",
                        json_boolean(r->error != NULL && !r->has_run && !r->has_storm));
    json_object_set_new(out, "retries", json_integer((json_int_t)s->retries));
    if (r->has_run) {
        json_object_set_new(out, "run", run_json(ctx, s, &sum, watch, nwatch, r));
    }
    if (r->has_storm) {
        json_object_set_new(out, "storm", storm_json(ctx, s, &sum, watch, nwatch, r));
    }
    free(s);
    return out;
}
