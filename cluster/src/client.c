/* The synchronous Redis Cluster routing client (imkit/cluster_client.h): the slot map, one
 * blocking hiredis connection per master, MOVED/ASK/TRYAGAIN handling and pipelines spread
 * over the masters. Used by the worker; slots.c does the parsing. */
#include "imkit/cluster_client.h"
#include "imkit/err.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REDIRECTS 5
#define RESEND (-2) /* entry.master of a redirected pipeline command, sent again alone */

/* A queued pipeline command: its slot, the master it was written to (-1: none, its reply
 * is NULL), and a copy of its arguments for a re-send after a redirect. */
struct entry {
    uint16_t slot;
    int master;
    int argc;
    char **argv; /* one allocation: argv[argc], then lens[argc], then the bytes */
    size_t *lens;
};

/* Where the next attempt of a command goes: a master of the map (master >= 0, its kept
 * connection) or another node (master -1, a connection for this attempt only). */
struct target {
    int master;
    bool asking;
    imk_cluster_addr_t addr;
};

struct imk_cluster_client {
    imk_cluster_addr_t *seeds;
    int nseeds;
    struct timeval timeout;
    char *user;     /* NULL: AUTH <password> */
    char *password; /* NULL: no AUTH */
    int db;         /* SELECT after AUTH when not 0 (a single node only) */
    bool single;    /* one plain Redis: its map is fixed, never read from CLUSTER SLOTS */
    bool loaded;    /* map was loaded once */
    bool stale;     /* reload map before the next routing decision */
    imk_cluster_map_t map;
    imk_cluster_map_t next;                      /* scratch for refresh */
    redisContext *conn[IMK_CLUSTER_MAX_MASTERS]; /* conn[i]: map.masters[i], or NULL */
    struct entry *queue;
    int queued;
    int cap;
};

/* ---- connections ----------------------------------------------------------------------- */

static void drop(imk_cluster_client_t *c, int i)
{
    if (c->conn[i] != NULL) {
        redisFree(c->conn[i]);
        c->conn[i] = NULL;
    }
    c->stale = true;
}

static int authenticate(const imk_cluster_client_t *c, redisContext *ctx)
{
    if (c->password == NULL) {
        return 0;
    }
    const char *argv[3] = {"AUTH", c->user, c->password};
    if (c->user == NULL) {
        argv[1] = c->password;
    }
    redisReply *r = redisCommandArgv(ctx, c->user != NULL ? 3 : 2, argv, NULL);
    int rc = r != NULL && r->type != REDIS_REPLY_ERROR ? 0 : IMK_EREDIS;
    freeReplyObject(r);
    return rc;
}

static int select_db(const imk_cluster_client_t *c, redisContext *ctx)
{
    if (c->db == 0) {
        return 0;
    }
    redisReply *r = redisCommand(ctx, "SELECT %d", c->db);
    int rc = r != NULL && r->type != REDIS_REPLY_ERROR ? 0 : IMK_EREDIS;
    freeReplyObject(r);
    return rc;
}

/* A new authenticated connection to a, or NULL. Caller frees with redisFree. */
static redisContext *connect_to(const imk_cluster_client_t *c, const imk_cluster_addr_t *a)
{
    redisContext *ctx = redisConnectWithTimeout(a->host, a->port, c->timeout);
    if (ctx == NULL) {
        return NULL;
    }
    if (ctx->err != 0 || redisSetTimeout(ctx, c->timeout) != REDIS_OK ||
        authenticate(c, ctx) != 0 || select_db(c, ctx) != 0) {
        redisFree(ctx);
        return NULL;
    }
    return ctx;
}

redisContext *imk_cluster_client_connect(const imk_cluster_client_t *c,
                                         const imk_cluster_addr_t *addr)
{
    return connect_to(c, addr);
}

/* Master i's connection, made when missing; a broken one is replaced (the map marked
 * stale), except while a pipeline is pending: replies owed on it must not be read from a
 * new connection. NULL when unreachable. */
static redisContext *master_conn(imk_cluster_client_t *c, int i)
{
    if (c->conn[i] != NULL && c->conn[i]->err != 0) {
        if (c->queued > 0) {
            return NULL;
        }
        drop(c, i);
    }
    if (c->conn[i] == NULL) {
        c->conn[i] = connect_to(c, &c->map.masters[i]);
        if (c->conn[i] == NULL) {
            c->stale = true;
        }
    }
    return c->conn[i];
}

/* ---- slot map -------------------------------------------------------------------------- */

/* CLUSTER SLOTS on ctx into c->next. A map without masters is no use: the next node may
 * know better. */
static int ask_slots(imk_cluster_client_t *c, redisContext *ctx, const imk_cluster_addr_t *asked)
{
    redisReply *r = redisCommand(ctx, "CLUSTER SLOTS");
    int rc = IMK_EREDIS;
    if (r != NULL && imk_cluster_map_from_reply(&c->next, r, asked) == 0 && c->next.n > 0) {
        rc = 0;
    }
    freeReplyObject(r);
    return rc;
}

/* Makes c->next the map, keeping the connections of masters found in both. */
static void adopt_next(imk_cluster_client_t *c)
{
    redisContext *kept[IMK_CLUSTER_MAX_MASTERS] = {NULL};
    for (int i = 0; i < c->next.n; i++) {
        int j = imk_cluster_map_find(&c->map, &c->next.masters[i]);
        if (j >= 0) {
            kept[i] = c->conn[j];
            c->conn[j] = NULL;
        }
    }
    for (int j = 0; j < c->map.n; j++) {
        if (c->conn[j] != NULL) {
            redisFree(c->conn[j]);
        }
    }
    memcpy(c->conn, kept, sizeof(kept));
    c->map = c->next;
    c->loaded = true;
    c->stale = false;
}

int imk_cluster_client_refresh(imk_cluster_client_t *c)
{
    if (c->queued > 0) {
        return IMK_EINVAL;
    }
    if (c->single) {
        c->stale = false; /* nothing to read: the node owns every slot */
        return 0;
    }
    int rc = IMK_EREDIS;
    for (int i = 0; rc != 0 && i < c->map.n; i++) {
        redisContext *ctx = master_conn(c, i);
        if (ctx != NULL) {
            rc = ask_slots(c, ctx, &c->map.masters[i]);
            if (ctx->err != 0) {
                drop(c, i);
            }
        }
    }
    for (int i = 0; rc != 0 && i < c->nseeds; i++) {
        redisContext *ctx = connect_to(c, &c->seeds[i]);
        if (ctx != NULL) {
            rc = ask_slots(c, ctx, &c->seeds[i]);
            redisFree(ctx);
        }
    }
    if (rc != 0) {
        return rc;
    }
    adopt_next(c);
    return 0;
}

/* Loads the map when never loaded or stale, unless a pipeline is pending. A failed reload
 * keeps the previous map: its nodes may be back. 0 when a map is loaded. */
static int ensure_map(imk_cluster_client_t *c)
{
    if ((!c->loaded || c->stale) && c->queued == 0) {
        (void)imk_cluster_client_refresh(c);
    }
    return c->loaded ? 0 : IMK_EREDIS;
}

redisContext *imk_cluster_client_node(imk_cluster_client_t *c, uint16_t slot)
{
    if (slot >= IMK_CLUSTER_SLOTS || ensure_map(c) != 0) {
        return NULL;
    }
    int i = c->map.owner[slot];
    if (i < 0) {
        c->stale = true;
        return NULL;
    }
    return master_conn(c, i);
}

int imk_cluster_client_owner(imk_cluster_client_t *c, uint16_t slot, imk_cluster_addr_t *out)
{
    if (slot >= IMK_CLUSTER_SLOTS || ensure_map(c) != 0) {
        return IMK_EREDIS;
    }
    int i = c->map.owner[slot];
    if (i < 0) {
        c->stale = true;
        return IMK_EREDIS;
    }
    *out = c->map.masters[i];
    return 0;
}

int imk_cluster_client_masters(imk_cluster_client_t *c, redisContext **out, int max)
{
    if (ensure_map(c) != 0) {
        return IMK_EREDIS;
    }
    if (c->map.n > max) {
        return IMK_ETOOBIG;
    }
    for (int i = 0; i < c->map.n; i++) {
        out[i] = master_conn(c, i);
    }
    return c->map.n;
}

/* ---- commands -------------------------------------------------------------------------- */

static int owner_target(imk_cluster_client_t *c, uint16_t slot, struct target *t)
{
    int i = c->map.owner[slot];
    if (i < 0) {
        c->stale = true;
        return IMK_EREDIS;
    }
    t->master = i;
    t->asking = false;
    t->addr = c->map.masters[i];
    return 0;
}

static bool error_is(const redisReply *r, const char *prefix)
{
    size_t n = strlen(prefix);
    return r->type == REDIS_REPLY_ERROR && r->len >= n && memcmp(r->str, prefix, n) == 0;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Points t at a redirect's node. MOVED reloads the map first and trusts the redirect over
 * it for this slot, as the node that sent it knows best. */
static void follow(imk_cluster_client_t *c, const imk_cluster_redirect_t *rd, struct target *t)
{
    imk_cluster_addr_t to = rd->addr;
    if (to.host[0] == '\0') {
        memcpy(to.host, t->addr.host, sizeof(to.host)); /* the node that answered */
    }
    if (rd->kind == IMK_CLUSTER_MOVED) {
        c->stale = true;
        (void)ensure_map(c);
    }
    t->addr = to;
    t->master = imk_cluster_map_find(&c->map, &to);
    t->asking = rd->kind == IMK_CLUSTER_ASK;
    if (rd->kind == IMK_CLUSTER_MOVED && t->master >= 0) {
        c->map.owner[rd->slot] = (int16_t)t->master;
    }
}

/* After error reply r to attempt number attempt: points t where the command goes next and
 * returns 0, or returns IMK_EREDIS when r is the final reply. */
static int retarget(imk_cluster_client_t *c, uint16_t slot, const redisReply *r, int attempt,
                    struct target *t)
{
    imk_cluster_redirect_t rd;
    if (imk_cluster_parse_redirect(r->str, r->len, &rd) == 0) {
        follow(c, &rd, t);
        return 0;
    }
    bool down = error_is(r, "CLUSTERDOWN");
    if (!down && !error_is(r, "TRYAGAIN")) {
        return IMK_EREDIS;
    }
    pause_ms(10L << attempt);
    if (down) {
        c->stale = true;
        (void)ensure_map(c);
    }
    return owner_target(c, slot, t);
}

/* Writes the command (after ASKING when asking) and reads its reply; NULL when the
 * connection failed, which leaves it unusable. */
static redisReply *send_once(redisContext *ctx, bool asking, int argc, const char **argv,
                             const size_t *lens)
{
    void *r = NULL;
    if (asking && redisAppendCommand(ctx, "ASKING") != REDIS_OK) {
        return NULL;
    }
    if (redisAppendCommandArgv(ctx, argc, argv, lens) != REDIS_OK) {
        return NULL;
    }
    if (asking) {
        if (redisGetReply(ctx, &r) != REDIS_OK) {
            return NULL;
        }
        freeReplyObject(r);
        r = NULL;
    }
    if (redisGetReply(ctx, &r) != REDIS_OK) {
        return NULL;
    }
    return r;
}

/* One attempt at t; NULL when its node is unreachable or failed (then dropped). */
static redisReply *attempt_at(imk_cluster_client_t *c, const struct target *t, int argc,
                              const char **argv, const size_t *lens)
{
    redisContext *ctx = t->master >= 0 ? master_conn(c, t->master) : connect_to(c, &t->addr);
    if (ctx == NULL) {
        c->stale = true;
        return NULL;
    }
    redisReply *r = send_once(ctx, t->asking, argc, argv, lens);
    if (t->master < 0) {
        redisFree(ctx);
    } else if (r == NULL) {
        drop(c, t->master);
    }
    if (r == NULL) {
        c->stale = true;
    }
    return r;
}

redisReply *imk_cluster_client_command(imk_cluster_client_t *c, uint16_t slot, int argc,
                                       const char **argv, const size_t *lens)
{
    struct target t;
    if (slot >= IMK_CLUSTER_SLOTS || argc < 1 || c->queued > 0 || ensure_map(c) != 0 ||
        owner_target(c, slot, &t) != 0) {
        return NULL;
    }
    for (int attempt = 0;; attempt++) {
        redisReply *r = attempt_at(c, &t, argc, argv, lens);
        if (r == NULL || r->type != REDIS_REPLY_ERROR || attempt == MAX_REDIRECTS ||
            retarget(c, slot, r, attempt, &t) != 0) {
            return r;
        }
        freeReplyObject(r);
    }
}

/* ---- pipelines ------------------------------------------------------------------------- */

/* Copies the arguments into e in one allocation. */
static int copy_args(struct entry *e, int argc, const char **argv, const size_t *lens)
{
    size_t head = (size_t)argc * (sizeof(char *) + sizeof(size_t));
    size_t total = head;
    for (int i = 0; i < argc; i++) {
        if (lens[i] > SIZE_MAX - total) {
            return IMK_ENOMEM;
        }
        total += lens[i];
    }
    char *block = malloc(total);
    if (block == NULL) {
        return IMK_ENOMEM;
    }
    e->argv = (char **)(void *)block;
    e->lens = (size_t *)(void *)(block + (size_t)argc * sizeof(char *));
    char *p = block + head;
    for (int i = 0; i < argc; i++) {
        if (lens[i] > 0) {
            memcpy(p, argv[i], lens[i]);
        }
        e->argv[i] = p;
        e->lens[i] = lens[i];
        p += lens[i];
    }
    e->argc = argc;
    return 0;
}

static int queue_reserve(imk_cluster_client_t *c)
{
    if (c->queued < c->cap) {
        return 0;
    }
    int cap = c->cap > 0 ? c->cap * 2 : 64;
    struct entry *q = realloc(c->queue, (size_t)cap * sizeof(*q));
    if (q == NULL) {
        return IMK_ENOMEM;
    }
    c->queue = q;
    c->cap = cap;
    return 0;
}

int imk_cluster_client_append(imk_cluster_client_t *c, uint16_t slot, int argc, const char **argv,
                              const size_t *lens)
{
    if (slot >= IMK_CLUSTER_SLOTS || argc < 1) {
        return IMK_EINVAL;
    }
    if (c->queued == 0) {
        (void)ensure_map(c); /* without a map, the command is queued to fail */
    }
    if (queue_reserve(c) != 0) {
        return IMK_ENOMEM;
    }
    struct entry *e = &c->queue[c->queued];
    if (copy_args(e, argc, argv, lens) != 0) {
        return IMK_ENOMEM;
    }
    e->slot = slot;
    e->master = c->loaded ? c->map.owner[slot] : -1;
    if (e->master >= 0) {
        redisContext *ctx = master_conn(c, e->master);
        if (ctx == NULL ||
            redisAppendCommandArgv(ctx, argc, (const char **)e->argv, e->lens) != REDIS_OK) {
            e->master = -1;
        }
    }
    return c->queued++;
}

/* Sends every connection's queued commands first, so that the masters work in parallel. */
static void flush_all(imk_cluster_client_t *c)
{
    for (int i = 0; i < c->map.n; i++) {
        int done = 0;
        while (c->conn[i] != NULL && !done) {
            if (redisBufferWrite(c->conn[i], &done) != REDIS_OK) {
                drop(c, i);
            }
        }
    }
}

static redisReply *read_reply(imk_cluster_client_t *c, const struct entry *e)
{
    if (e->master < 0 || c->conn[e->master] == NULL) {
        return NULL;
    }
    void *r = NULL;
    if (redisGetReply(c->conn[e->master], &r) != REDIS_OK) {
        drop(c, e->master);
        return NULL;
    }
    return r;
}

static bool is_redirect(const redisReply *r, imk_cluster_redirect_t *rd)
{
    return r != NULL && r->type == REDIS_REPLY_ERROR &&
           imk_cluster_parse_redirect(r->str, r->len, rd) == 0;
}

/* Reads every queued command's reply, follows redirects, and hands each final reply (or
 * NULL) to each(arg, k, reply) in append order, then empties the pipeline. */
static void drain(imk_cluster_client_t *c, void (*each)(void *, int, redisReply *), void *arg)
{
    int count = c->queued;
    flush_all(c);
    imk_cluster_redirect_t rd;
    for (int k = 0; k < count; k++) {
        redisReply *r = read_reply(c, &c->queue[k]);
        if (is_redirect(r, &rd)) {
            /* sent again below, once every connection is read; MOVED reloads the map once */
            c->stale = c->stale || rd.kind == IMK_CLUSTER_MOVED;
            freeReplyObject(r);
            r = NULL;
            c->queue[k].master = RESEND;
        } else {
            each(arg, k, r);
        }
    }
    c->queued = 0; /* every connection is read: re-sends and reloads may go ahead */
    for (int k = 0; k < count; k++) {
        struct entry *e = &c->queue[k];
        if (e->master == RESEND) {
            each(arg, k,
                 imk_cluster_client_command(c, e->slot, e->argc, (const char **)e->argv, e->lens));
        }
        free(e->argv);
    }
}

static void keep_reply(void *arg, int k, redisReply *r)
{
    ((redisReply **)arg)[k] = r;
}

int imk_cluster_client_collect(imk_cluster_client_t *c, redisReply **replies, int n)
{
    int count = c->queued;
    if (n < count) {
        return IMK_EINVAL;
    }
    drain(c, keep_reply, replies);
    return count;
}

static void count_missing(void *arg, int k, redisReply *r)
{
    (void)k;
    *(int *)arg += r == NULL;
    freeReplyObject(r);
}

int imk_cluster_client_flush(imk_cluster_client_t *c)
{
    int missing = 0;
    drain(c, count_missing, &missing);
    return missing;
}

/* ---- lifetime -------------------------------------------------------------------------- */

static char *copy_string(const char *s, bool *failed)
{
    if (s == NULL) {
        return NULL;
    }
    char *copy = strdup(s);
    if (copy == NULL) {
        *failed = true;
    }
    return copy;
}

imk_cluster_client_t *imk_cluster_client_create(const imk_cluster_addr_t *seeds, int n,
                                                int timeout_ms, const char *user,
                                                const char *password)
{
    if (seeds == NULL || n < 1 || timeout_ms <= 0) {
        return NULL;
    }
    imk_cluster_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    bool failed = false;
    c->seeds = malloc((size_t)n * sizeof(*seeds));
    c->user = copy_string(user, &failed);
    c->password = copy_string(password, &failed);
    if (c->seeds == NULL || failed) {
        imk_cluster_client_destroy(c);
        return NULL;
    }
    memcpy(c->seeds, seeds, (size_t)n * sizeof(*seeds));
    c->nseeds = n;
    c->timeout.tv_sec = timeout_ms / 1000;
    c->timeout.tv_usec = (timeout_ms % 1000) * 1000;
    memset(c->map.owner, 0xff, sizeof(c->map.owner)); /* -1: nothing known */
    return c;
}

imk_cluster_client_t *imk_cluster_client_create_single(const imk_cluster_addr_t *node,
                                                       int timeout_ms, const char *user,
                                                       const char *password, int db)
{
    imk_cluster_client_t *c = imk_cluster_client_create(node, 1, timeout_ms, user, password);
    if (c == NULL) {
        return NULL;
    }
    c->single = true;
    c->db = db;
    c->map.n = 1;
    c->map.masters[0] = *node;
    memset(c->map.owner, 0, sizeof(c->map.owner));
    c->loaded = true;
    return c;
}

void imk_cluster_client_destroy(imk_cluster_client_t *c)
{
    if (c == NULL) {
        return;
    }
    for (int k = 0; k < c->queued; k++) {
        free(c->queue[k].argv);
    }
    free(c->queue);
    for (int i = 0; i < IMK_CLUSTER_MAX_MASTERS; i++) {
        if (c->conn[i] != NULL) {
            redisFree(c->conn[i]);
        }
    }
    free(c->seeds);
    free(c->user);
    free(c->password);
    free(c);
}
