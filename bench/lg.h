/* Types shared by the load generator's modules: options, rooms, the phase every thread
 * follows, each thread's worker with its counters and statistics, and each client. */
#ifndef LG_H
#define LG_H

#include "hist.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct event;
struct lg_ws;
struct lg_proto_ops;

enum lg_proto { LG_IMKIT, LG_SIO, LG_NCHAN };
enum lg_scenario { LG_IDLE, LG_DIRECT, LG_FANOUT, LG_STORM };

/* The controller moves every thread through these, in this order (storm adds RECONNECT,
 * idle goes from ROOMS to HOLD). */
enum lg_phase {
    LG_PH_SETUP,     /* connect and authenticate every client */
    LG_PH_ROOMS,     /* creators create rooms, members wait until they are in */
    LG_PH_RUN,       /* senders send (warm-up, then the measured window) */
    LG_PH_DRAIN,     /* no new sends: wait for answers and deliveries in flight */
    LG_PH_HOLD,      /* idle: keep every connection open */
    LG_PH_RECONNECT, /* storm: drop every connection, reconnect all at once, sync */
    LG_PH_STOP,
};

#define LG_MAX_PORTS 16
#define LG_ID_MAX 96
#define LG_REQ_RING 256 /* messages in flight per sender */

typedef struct lg_opts {
    enum lg_proto proto;
    enum lg_scenario scenario;
    struct sockaddr_in targets[LG_MAX_PORTS]; /* spread over, client i -> i % ntargets */
    int ntargets;
    int src_first, src_count; /* source addresses 127.0.0.<first> .. <first+count-1> */
    int clients;              /* connections of this process */
    int index_offset;         /* first client index (several processes share a run) */
    int room_size;            /* 0: no rooms (idle) */
    int senders;              /* senders per room */
    double rate;              /* open loop: messages/s over the process; 0: closed loop */
    int window;               /* closed loop: messages in flight per sender */
    int cap;                  /* messages per sender, 0: no cap (storm uses it) */
    int storm_backlog;        /* messages each client says it missed */
    double warmup, duration, drain, setup_timeout, hold;
    int msg_size;
    int threads;
    int concurrency; /* connects in progress per thread */
    const char *secret;
    const char *run_id;
    const char *ready_file;
    const char *path; /* nchan: location prefix */
    int redis_port;   /* 0: no Redis statistics */
    const char *watch[8];
    int nwatch;
} lg_opts_t;

typedef struct lg_room {
    char id[LG_ID_MAX];
    atomic_llong next_key; /* the load generator's own key of each message sent */
} lg_room_t;

/* Counters the controller reads while the threads run. */
typedef struct lg_counters {
    atomic_llong ready;        /* clients connected and authenticated */
    atomic_llong joined;       /* clients in their room, ready to chat */
    atomic_llong failed;       /* clients that failed to connect, authenticate or join */
    atomic_llong inflight;     /* messages sent and not yet acknowledged */
    atomic_llong expected;     /* deliveries due for the acknowledged messages */
    atomic_llong delivered;    /* distinct deliveries */
    atomic_llong synced;       /* storm: clients back and caught up */
    atomic_llong senders_done; /* senders that sent their cap */
} lg_counters_t;

/* Everything else a thread measures; read by the controller after the threads end. */
typedef struct lg_stats {
    uint64_t sent, acked, ack_errors, unacked;
    uint64_t sent_window, acked_window, delivered_window; /* sent in the window */
    uint64_t acks_in_window, deliveries_in_window;        /* arrived in the window */
    uint64_t dups, skipped, closed, connect_errors, auth_errors, sync_incomplete, retries;
    int64_t first_connect_us, last_ready_us;
    lg_hist_t connect; /* connect start -> authenticated */
    lg_hist_t ack;     /* send -> answer with seq */
    lg_hist_t e2e;     /* send -> delivery, every receiver */
    lg_hist_t storm;   /* drop -> caught up, every client */
    char error[200];   /* the first error seen */
} lg_stats_t;

enum lg_cstate {
    LG_C_IDLE,
    LG_C_CONNECTING, /* TCP and the WebSocket upgrade */
    LG_C_AUTH,
    LG_C_AUTHED,
    LG_C_SETUP, /* creating or joining its room */
    LG_C_READY,
    LG_C_SYNC,
    LG_C_SYNCED,
    LG_C_FAILED,
};

enum lg_req_kind { LG_REQ_NONE, LG_REQ_AUTH, LG_REQ_CREATE, LG_REQ_ADD, LG_REQ_SEND, LG_REQ_SYNC };

typedef struct lg_req {
    uint32_t id;
    uint8_t kind;
    int64_t t_us; /* intended send time */
} lg_req_t;

typedef struct lg_client {
    struct lg_worker *w;
    struct lg_ws *ws;
    int idx;    /* global client index */
    int room;   /* index in ctx->rooms, -1: none */
    int member; /* position in its room; 0 creates it */
    bool sender;
    enum lg_cstate state;
    uint32_t next_id;
    uint32_t setup_id; /* the one setup request in flight */
    uint8_t setup_kind;
    int added;      /* creator: members named so far */
    int retries;    /* setup requests retried after `unavailable` */
    lg_req_t *reqs; /* senders: messages in flight, by id % LG_REQ_RING */
    int inflight;
    uint64_t sent;
    lg_bitmap_t recv; /* keys (seqs) received in its room */
    int64_t max_key;
    int64_t known; /* storm: the seq it says it holds */
    int64_t t_start;
    char room_id[LG_ID_MAX];
} lg_client_t;

typedef struct lg_worker {
    int index;
    struct lg_ctx *ctx;
    pthread_t thread;
    struct event_base *base;
    struct event *tick;
    lg_client_t *clients;
    int nclients;
    lg_client_t **senders;
    int nsenders;
    int next_start; /* clients started in this setup step */
    int connecting;
    int phase;          /* the phase this thread has entered */
    lg_bitmap_t *acked; /* per room: keys acknowledged to this thread's senders */
    double rate;        /* this thread's share of the open-loop rate */
    int64_t pace_t0;
    uint64_t paced;
    int rr;
    lg_counters_t c;
    lg_stats_t s;
} lg_worker_t;

typedef struct lg_ctx {
    const lg_opts_t *opts;
    const struct lg_proto_ops *proto;
    lg_room_t *rooms;
    int nrooms;
    lg_worker_t *workers;
    atomic_int phase;
    atomic_llong win_start_us, win_end_us; /* the measured window, monotonic microseconds */
    atomic_llong drop_us;                  /* storm: when the connections were dropped */
} lg_ctx_t;

/* Monotonic and wall-clock time in microseconds. */
int64_t lg_now_us(void);
int64_t lg_wall_ms(void);

/* Records the first error of a thread (printf-style). */
void lg_error(lg_worker_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
