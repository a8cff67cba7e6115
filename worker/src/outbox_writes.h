/* The outbox writes of a batch's jobs on a Redis Cluster (Lua header: Outbox). A job's call
 * and its writes for other slots each hand back their own outbox write (channel '+', or '?'
 * for message.sent, whose last argument lists the members whose presence decides its
 * "offline"). They are held until the rounds of the job's other writes are over and then
 * run deepest first: a new member's client.created, handed back by the write that made its
 * profile, before the room.created of the call that added it, as one Redis orders them. */
#ifndef IMKIT_WORKER_OUTBOX_WRITES_H
#define IMKIT_WORKER_OUTBOX_WRITES_H

#include "imkit/buf.h"
#include "imkit/cluster_client.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#define IMK_OUTBOX_WRITE_ARGS 17 /* at most: the route, then 16 */

typedef struct imk_outbox_write {
    size_t job;    /* the batch's index of the job it is for */
    size_t seq;    /* the order it was held in */
    int round;     /* handed back by the job's call (0) or by a write of round - 1 */
    bool presence; /* '?': its last argument is replaced by the members found offline */
    bool failed;   /* that presence could not be read: the job is to be retried */
    int argc;
    char *argv[IMK_OUTBOX_WRITE_ARGS]; /* owned copies: [route key, command, arguments...] */
    size_t lens[IMK_OUTBOX_WRITE_ARGS];
    imk_buf_t offline; /* presence: the members found offline, comma-separated */
} imk_outbox_write_t;

typedef struct imk_outbox_writes {
    imk_outbox_write_t *v;
    size_t n, cap;
} imk_outbox_writes_t;

#define IMK_OUTBOX_WRITES_INIT                                                                     \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Whether a handed-back pair's channel marks an outbox write: '+', or '?' (presence). */
bool imk_outbox_write_marked(const redisReply *channel);

/* Holds a copy of payload ([route key, command, arguments...], all strings, at most
 * IMK_OUTBOX_WRITE_ARGS) for job, handed back in round, marked by channel. Returns 0,
 * IMK_EINVAL for a payload of another shape, or IMK_ENOMEM. */
int imk_outbox_writes_hold(imk_outbox_writes_t *w, size_t job, int round, const redisReply *channel,
                           const redisReply *payload);

/* Orders the held writes: by job, as held, then deepest round first, and reads the presence
 * of those that need it (call with no pipeline pending), marking failed those it could not
 * read. Returns 0 or IMK_ENOMEM. */
int imk_outbox_writes_prepare(imk_outbox_writes_t *w, imk_cluster_client_t *redis,
                              const char *prefix);

/* The command of write i as argv and lens (the route left out; presence: the offline ids
 * last). Returns its argc. */
int imk_outbox_write_command(const imk_outbox_write_t *write, const char **argv, size_t *lens);

/* Frees every held write; w can hold again. */
void imk_outbox_writes_clear(imk_outbox_writes_t *w);

#endif
