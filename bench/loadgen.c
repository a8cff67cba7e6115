/* imkit-loadgen: the benchmark's load generator. Parses the options, starts the threads
 * (worker.c), lets the controller run the scenario (controller.c) and prints the JSON
 * report (report.c). scripts/bench runs it; `imkit-loadgen --help` lists the options. */
#include "controller.h"
#include "lg.h"
#include "proto.h"
#include "report.h"
#include "worker.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *to)
{
    fputs("Usage: imkit-loadgen --system imkit|socketio|nchan --scenario idle|direct|fanout|storm\n"
          "         --target HOST:PORT [--target ...] --clients N [options]\n\n"
          "  --room-size N       members per room (direct: 2; fanout: N; idle: none)\n"
          "  --senders N         senders per room (direct: 2, fanout: 10, storm: 1)\n"
          "  --rate R            open loop: messages/s over all senders; 0: closed loop\n"
          "  --window W          closed loop: messages in flight per sender (1)\n"
          "  --cap N             messages per sender (storm: --storm-backlog)\n"
          "  --storm-backlog N   messages each client missed and syncs back (5)\n"
          "  --warmup S --duration S --drain S --setup-timeout S --hold S\n"
          "  --msg-size N        bytes of message text (100)\n"
          "  --threads N         event loops (1); --concurrency N connects at once per thread\n"
          "  --src-first N --src-count N   source addresses 127.0.0.N.. (2, 8)\n"
          "  --index-offset N    first client index (several processes in one run)\n"
          "  --secret S          HS256 secret of the tokens; --run-id ID prefixes every id\n"
          "  --redis-port P      read INFO commandstats of that Redis around the window\n"
          "  --watch NAME=PID,PID  CPU, writes and RSS of these processes (repeatable)\n"
          "  --ready-file PATH   idle: written once every client is authenticated\n"
          "  --nchan-path P      Nchan pubsub location prefix (/pubsub/)\n"
          "  --out FILE          the JSON report (stdout)\n",
          to);
}

static int parse_target(const char *spec, struct sockaddr_in *out)
{
    const char *colon = strrchr(spec, ':');
    char host[64];
    if (colon == NULL || (size_t)(colon - spec) >= sizeof(host)) {
        return -1;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

static int parse_enum(const char *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(v, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static void defaults(lg_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->room_size = -1;
    o->senders = -1;
    o->window = 1;
    o->storm_backlog = 5;
    o->warmup = 2;
    o->duration = 10;
    o->drain = 10;
    o->setup_timeout = 120;
    o->msg_size = 100;
    o->threads = 1;
    o->concurrency = 500;
    o->src_first = 2;
    o->src_count = 8;
    o->secret = "bench-secret";
}

/* Fills what depends on the scenario and checks the whole. Returns 0 or -1. */
static int finish(lg_opts_t *o, char *run_id, size_t len)
{
    static const int room_sizes[] = {0, 2, 1000, 2};
    static const int senders[] = {0, 2, 10, 1};
    if (o->room_size < 0) {
        o->room_size = room_sizes[o->scenario];
    }
    if (o->senders < 0) {
        o->senders = senders[o->scenario];
    }
    if (o->scenario == LG_STORM) {
        o->cap = o->storm_backlog;
        o->rate = 0;
    }
    if (o->run_id == NULL) {
        snprintf(run_id, len, "b%lx%x", (unsigned long)time(NULL) & 0xffffff,
                 (unsigned)getpid() & 0xfff);
        o->run_id = run_id;
    }
    if (o->senders > o->room_size) {
        o->senders = o->room_size;
    }
    return o->ntargets > 0 && o->clients > 0 && o->threads > 0 && o->threads <= 64 &&
                   o->src_count > 0 && o->src_first + o->src_count <= 255 && o->msg_size >= 0 &&
                   o->msg_size <= LG_FRAME_MAX / 2 - 64 &&
                   (o->room_size == 0 || o->clients % o->room_size == 0) &&
                   (o->scenario != LG_STORM || o->proto != LG_NCHAN)
               ? 0
               : -1;
}

static int parse_option(lg_opts_t *o, int opt, const char *arg)
{
    static const char *const protos[] = {"imkit", "socketio", "nchan"};
    static const char *const scenarios[] = {"idle", "direct", "fanout", "storm"};
    switch (opt) {
    case 'y':
        return (int)(o->proto = (enum lg_proto)parse_enum(arg, protos, 3)) < 0 ? -1 : 0;
    case 's':
        return (int)(o->scenario = (enum lg_scenario)parse_enum(arg, scenarios, 4)) < 0 ? -1 : 0;
    case 't':
        return o->ntargets < LG_MAX_PORTS ? parse_target(arg, &o->targets[o->ntargets++]) : -1;
    case 'c':
        o->clients = atoi(arg);
        break;
    case 'r':
        o->room_size = atoi(arg);
        break;
    case 'S':
        o->senders = atoi(arg);
        break;
    case 'R':
        o->rate = atof(arg);
        break;
    case 'w':
        o->window = atoi(arg);
        break;
    case 'C':
        o->cap = atoi(arg);
        break;
    case 'B':
        o->storm_backlog = atoi(arg);
        break;
    case 'W':
        o->warmup = atof(arg);
        break;
    case 'd':
        o->duration = atof(arg);
        break;
    case 'D':
        o->drain = atof(arg);
        break;
    case 'T':
        o->setup_timeout = atof(arg);
        break;
    case 'H':
        o->hold = atof(arg);
        break;
    case 'm':
        o->msg_size = atoi(arg);
        break;
    case 'j':
        o->threads = atoi(arg);
        break;
    case 'n':
        o->concurrency = atoi(arg);
        break;
    case 'f':
        o->src_first = atoi(arg);
        break;
    case 'F':
        o->src_count = atoi(arg);
        break;
    case 'i':
        o->index_offset = atoi(arg);
        break;
    case 'k':
        o->secret = arg;
        break;
    case 'I':
        o->run_id = arg;
        break;
    case 'p':
        o->redis_port = atoi(arg);
        break;
    case 'a':
        o->ready_file = arg;
        break;
    case 'P':
        o->path = arg;
        break;
    case 'x':
        if (o->nwatch >= 8) {
            return -1;
        }
        o->watch[o->nwatch++] = arg;
        break;
    default:
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, lg_opts_t *o, const char **out, char *run_id,
                      size_t len)
{
    static const struct option longs[] = {
        {"system", 1, 0, 'y'},        {"scenario", 1, 0, 's'},      {"target", 1, 0, 't'},
        {"clients", 1, 0, 'c'},       {"room-size", 1, 0, 'r'},     {"senders", 1, 0, 'S'},
        {"rate", 1, 0, 'R'},          {"window", 1, 0, 'w'},        {"cap", 1, 0, 'C'},
        {"storm-backlog", 1, 0, 'B'}, {"warmup", 1, 0, 'W'},        {"duration", 1, 0, 'd'},
        {"drain", 1, 0, 'D'},         {"setup-timeout", 1, 0, 'T'}, {"hold", 1, 0, 'H'},
        {"msg-size", 1, 0, 'm'},      {"threads", 1, 0, 'j'},       {"concurrency", 1, 0, 'n'},
        {"src-first", 1, 0, 'f'},     {"src-count", 1, 0, 'F'},     {"index-offset", 1, 0, 'i'},
        {"secret", 1, 0, 'k'},        {"run-id", 1, 0, 'I'},        {"redis-port", 1, 0, 'p'},
        {"ready-file", 1, 0, 'a'},    {"nchan-path", 1, 0, 'P'},    {"watch", 1, 0, 'x'},
        {"out", 1, 0, 'o'},           {"help", 0, 0, 'h'},          {0, 0, 0, 0},
    };
    int opt;
    defaults(o);
    while ((opt = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            exit(0);
        } else if (opt == 'o') {
            *out = optarg;
        } else if (parse_option(o, opt, optarg) != 0) {
            return -1;
        }
    }
    return optind == argc ? finish(o, run_id, len) : -1;
}

static int make_rooms(lg_ctx_t *ctx)
{
    const lg_opts_t *o = ctx->opts;
    ctx->nrooms = o->room_size > 0 ? o->clients / o->room_size : 0;
    ctx->rooms = calloc((size_t)ctx->nrooms + 1, sizeof(*ctx->rooms));
    if (ctx->rooms == NULL) {
        return -1;
    }
    for (int r = 0; r < ctx->nrooms; r++) {
        /* Direct rooms get their id from the server; groups and channels are named here. */
        if (o->proto == LG_NCHAN || o->room_size > 2) {
            snprintf(ctx->rooms[r].id, LG_ID_MAX, "%s-g%d", o->run_id, r);
        }
    }
    return 0;
}

static int write_report(json_t *report, const char *out)
{
    FILE *f = out != NULL ? fopen(out, "w") : stdout;
    if (f == NULL || report == NULL) {
        return -1;
    }
    json_dumpf(report, f, JSON_INDENT(1) | JSON_REAL_PRECISION(6));
    fputc('\n', f);
    return f != stdout ? fclose(f) : fflush(f);
}

/* Worker threads take no signals: the controller does. */
static int start_threads(lg_ctx_t *ctx)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    for (int t = 0; t < ctx->opts->threads && rc == 0; t++) {
        rc = lg_worker_init(&ctx->workers[t], ctx, t) == 0 ? lg_worker_start(&ctx->workers[t]) : -1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int main(int argc, char **argv)
{
    static lg_opts_t opts;
    static lg_ctx_t ctx;
    static lg_watch_t watch[8];
    static lg_result_t result;
    const char *out = NULL;
    char run_id[32];
    if (parse_args(argc, argv, &opts, &out, run_id, sizeof(run_id)) != 0) {
        usage(stderr);
        return 2;
    }
    for (int g = 0; g < opts.nwatch; g++) {
        if (lg_watch_parse(opts.watch[g], &watch[g]) != 0) {
            fprintf(stderr, "imkit-loadgen: bad --watch %s\n", opts.watch[g]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR1, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    static const lg_proto_ops_t *const protos[] = {&lg_proto_imkit, &lg_proto_sio, &lg_proto_nchan};
    ctx.opts = &opts;
    ctx.proto = protos[opts.proto];
    ctx.workers = calloc((size_t)opts.threads, sizeof(*ctx.workers));
    if (ctx.workers == NULL || make_rooms(&ctx) != 0 || start_threads(&ctx) != 0) {
        fprintf(stderr, "imkit-loadgen: cannot start (out of memory or threads)\n");
        return 1;
    }
    int rc = lg_controller_run(&ctx, watch, opts.nwatch, &stop_requested, &result);
    for (int t = 0; t < opts.threads; t++) {
        lg_worker_join(&ctx.workers[t]);
    }
    json_t *report = lg_report(&ctx, watch, opts.nwatch, &result);
    if (write_report(report, out) != 0) {
        rc = -1;
    }
    json_decref(report);
    for (int t = 0; t < opts.threads; t++) {
        lg_worker_deinit(&ctx.workers[t]);
    }
    free(ctx.workers);
    free(ctx.rooms);
    return rc == 0 ? 0 : 1;
}
