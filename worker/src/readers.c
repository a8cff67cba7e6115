/* The job streams' readers (readers.h): one hiredis connection each, written and read by
 * hand (redisBufferWrite, redisBufferRead, redisGetReplyFromReader) so that poll() can wait
 * on all of them at once. */
#include "readers.h"
#include "imkit/err.h"
#include "imkit/log.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct reader {
    int first; /* index of its first stream */
    int count; /* streams first..first+count-1 */
    redisContext *conn;
    bool in_flight;
};

struct imk_readers {
    const imk_config_t *cfg;
    char consumer[128];
    int nstreams;
    char (*streams)[IMK_KEY_MAX];
    int n;
    struct reader *readers;
    int next; /* where the next scan for a reply starts: no reader is always served last */
};

imk_readers_t *imk_readers_create(const imk_config_t *cfg, const char *consumer,
                                  const char (*streams)[IMK_KEY_MAX], int n, bool per_stream)
{
    imk_readers_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    r->cfg = cfg;
    snprintf(r->consumer, sizeof(r->consumer), "%s", consumer);
    r->nstreams = n;
    r->n = per_stream ? n : 1;
    r->streams = calloc((size_t)n, sizeof(*r->streams));
    r->readers = calloc((size_t)r->n, sizeof(*r->readers));
    if (r->streams == NULL || r->readers == NULL) {
        imk_readers_destroy(r);
        return NULL;
    }
    memcpy(r->streams, streams, (size_t)n * sizeof(*streams));
    for (int i = 0; i < r->n; i++) {
        r->readers[i].first = per_stream ? i : 0;
        r->readers[i].count = per_stream ? 1 : n;
    }
    return r;
}

static void close_reader(struct reader *rd)
{
    if (rd->conn != NULL) {
        redisFree(rd->conn);
        rd->conn = NULL;
    }
    rd->in_flight = false;
}

void imk_readers_close(imk_readers_t *r)
{
    for (int i = 0; i < r->n; i++) {
        close_reader(&r->readers[i]);
    }
}

void imk_readers_destroy(imk_readers_t *r)
{
    if (r == NULL) {
        return;
    }
    if (r->readers != NULL) {
        imk_readers_close(r);
    }
    free(r->readers);
    free(r->streams);
    free(r);
}

int imk_readers_connect(imk_readers_t *r, imk_cluster_client_t *client)
{
    int rc = 0;
    for (int i = 0; i < r->n; i++) {
        struct reader *rd = &r->readers[i];
        if (rd->conn != NULL) {
            continue;
        }
        const char *stream = r->streams[rd->first];
        imk_cluster_addr_t owner;
        if (imk_cluster_client_owner(client, imk_cluster_slot(stream, strlen(stream)), &owner) !=
                0 ||
            (rd->conn = imk_cluster_client_connect(client, &owner)) == NULL) {
            IMK_WARN("redis_connect", "what=reader stream=%s", stream);
            rc = IMK_EREDIS;
            continue;
        }
        /* For the reads of a stop (imk_readers_finish); a node that stops answering is
         * noticed by the routing client's commands, whose failure sets everything up again. */
        int ms = r->cfg->worker_block_ms + 5000;
        redisSetTimeout(rd->conn, (struct timeval){ms / 1000, (ms % 1000) * 1000});
    }
    return rc;
}

bool imk_readers_busy(const imk_readers_t *r)
{
    for (int i = 0; i < r->n; i++) {
        if (r->readers[i].in_flight) {
            return true;
        }
    }
    return false;
}

/* Queues XREADGROUP GROUP g <consumer> COUNT n BLOCK ms STREAMS s... >... and writes it. */
static int send_read(imk_readers_t *r, struct reader *rd)
{
    const char *argv[9 + 2 * IMK_READ_STREAMS_MAX];
    if (rd->count > IMK_READ_STREAMS_MAX) {
        return IMK_EINVAL;
    }
    char count[16], block[16];
    snprintf(count, sizeof(count), "%d", r->cfg->worker_batch);
    snprintf(block, sizeof(block), "%d", r->cfg->worker_block_ms);
    const char *head[] = {"XREADGROUP", "GROUP", IMK_JOBS_GROUP, r->consumer, "COUNT",
                          count,        "BLOCK", block,          "STREAMS"};
    memcpy(argv, head, sizeof(head));
    int argc = 9;
    for (int i = 0; i < rd->count; i++) {
        argv[argc + i] = r->streams[rd->first + i];
        argv[argc + rd->count + i] = ">";
    }
    argc += 2 * rd->count;
    if (redisAppendCommandArgv(rd->conn, argc, argv, NULL) != REDIS_OK) {
        return IMK_EREDIS;
    }
    int done = 0;
    while (!done) {
        if (redisBufferWrite(rd->conn, &done) != REDIS_OK) {
            return IMK_EREDIS;
        }
    }
    rd->in_flight = true;
    return 0;
}

/* A reply rd already holds in full, if any: 1 with *reply, 0, or IMK_EREDIS. */
static int take_reply(struct reader *rd, redisReply **reply)
{
    void *got = NULL;
    if (redisGetReplyFromReader(rd->conn, &got) != REDIS_OK) {
        return IMK_EREDIS;
    }
    if (got == NULL) {
        return 0;
    }
    rd->in_flight = false;
    *reply = got;
    return 1;
}

/* Reads what poll() said is there, then takes a reply when one is complete. */
static int read_ready(struct reader *rd, redisReply **reply)
{
    if (redisBufferRead(rd->conn) != REDIS_OK) {
        return IMK_EREDIS;
    }
    return take_reply(rd, reply);
}

/* The outcome of a reader's read: closes it after a failure or an error reply. */
static int settle(imk_readers_t *r, struct reader *rd, int rc, redisReply **reply)
{
    const char *stream = r->streams[rd->first];
    if (rc < 0) {
        IMK_WARN("redis_error", "what=xreadgroup stream=%s error=\"%s\"", stream,
                 rd->conn->errstr[0] != '\0' ? rd->conn->errstr : "connection lost");
        close_reader(rd);
    } else if (rc == 1 && (*reply)->type == REDIS_REPLY_ERROR) {
        /* NOGROUP (the stream was deleted), MOVED (its slot has a new master): connect
         * again once the map and the group are set up again. */
        IMK_WARN("xreadgroup", "stream=%s error=\"%s\"", stream, (*reply)->str);
        close_reader(rd);
    }
    return rc;
}

/* imk_readers_next, or when send is false imk_readers_finish. */
static int wait_reply(imk_readers_t *r, int timeout_ms, bool send, redisReply **reply)
{
    struct pollfd fds[IMK_READ_STREAMS_MAX];
    int owner[IMK_READ_STREAMS_MAX];
    int nfds = 0;
    for (int k = 0; k < r->n; k++) {
        int i = (r->next + k) % r->n;
        struct reader *rd = &r->readers[i];
        if (rd->conn == NULL || (!send && !rd->in_flight)) {
            continue;
        }
        if (!rd->in_flight && send_read(r, rd) != 0) {
            return settle(r, rd, IMK_EREDIS, reply);
        }
        int rc = take_reply(rd, reply); /* a reply read along with an earlier one */
        if (rc != 0) {
            r->next = (i + 1) % r->n;
            return settle(r, rd, rc, reply);
        }
        fds[nfds] = (struct pollfd){.fd = rd->conn->fd, .events = POLLIN};
        owner[nfds++] = i;
    }
    if (nfds == 0) {
        return 0;
    }
    int ready = poll(fds, (nfds_t)nfds, timeout_ms);
    if (ready < 0 && errno != EINTR) {
        return IMK_EREDIS;
    }
    for (int k = 0; ready > 0 && k < nfds; k++) {
        if (fds[k].revents == 0) {
            continue;
        }
        struct reader *rd = &r->readers[owner[k]];
        int rc = read_ready(rd, reply);
        if (rc != 0) {
            r->next = (owner[k] + 1) % r->n;
            return settle(r, rd, rc, reply);
        }
    }
    return 0;
}

int imk_readers_next(imk_readers_t *r, int timeout_ms, redisReply **reply)
{
    return wait_reply(r, timeout_ms, true, reply);
}

int imk_readers_finish(imk_readers_t *r, int timeout_ms, redisReply **reply)
{
    /* A wait may end early (part of a reply, a signal): wait again until the deadline. */
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = 0, left = timeout_ms;
    while (rc == 0 && left > 0 && imk_readers_busy(r)) {
        rc = wait_reply(r, left, false, reply);
        clock_gettime(CLOCK_MONOTONIC, &t);
        left =
            timeout_ms - (int)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
    }
    if (rc == 0) {
        imk_readers_close(r); /* nothing came in time: whatever comes later is claimed */
    }
    return rc;
}
