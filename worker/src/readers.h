/* The blocking reads of the job streams: XREADGROUP ... BLOCK on connections of their own,
 * one per group of streams that one command may read, waited on together with poll(). On a
 * single Redis one command reads every stream; on a Redis Cluster a command's keys must
 * share a slot, so each stream has its own reader, connected to its slot's master. A reply
 * is handed out as soon as it is complete, whichever reader it came from. */
#ifndef IMKIT_WORKER_READERS_H
#define IMKIT_WORKER_READERS_H

#include "imkit/cluster_client.h"
#include "imkit/config.h"
#include "imkit/keys.h"

#include <stdbool.h>

struct redisReply;

#define IMK_READ_STREAMS_MAX 256 /* jobs.partitions' upper bound */

typedef struct imk_readers imk_readers_t;

/* Readers of streams[0..n) (copied) for consumer (copied) of the job group, with cfg's
 * worker.batch and worker.block_ms (cfg borrowed). per_stream: one reader per stream (a
 * cluster), else one for all. Returns NULL on no memory. */
imk_readers_t *imk_readers_create(const imk_config_t *cfg, const char *consumer,
                                  const char (*streams)[IMK_KEY_MAX], int n, bool per_stream);
void imk_readers_destroy(imk_readers_t *r);

/* Connects every reader that is not connected, to the master that owns its first stream in
 * client's map (made with client's AUTH and SELECT). Returns 0, or IMK_EREDIS when one
 * could not be connected (those that could stay connected). */
int imk_readers_connect(imk_readers_t *r, imk_cluster_client_t *client);

/* Closes every reader. Entries an XREADGROUP in flight had delivered stay pending in this
 * consumer's name, for XAUTOCLAIM. */
void imk_readers_close(imk_readers_t *r);

/* Sends an XREADGROUP on every connected reader that has none in flight, then waits up to
 * timeout_ms for one complete reply. Returns 1 with *reply set (the caller frees it: an
 * array of [stream, entries], nil when the BLOCK ran out, or an error reply, after which
 * that reader is closed); 0 when no reply came in time or a signal interrupted the wait;
 * IMK_EREDIS when a reader's connection failed (that reader is closed). */
int imk_readers_next(imk_readers_t *r, int timeout_ms, struct redisReply **reply);

/* As imk_readers_next, but sends nothing new: for a stop, waits for the reads in flight.
 * When none answers within timeout_ms (a signal does not cut the wait short), every reader
 * is closed and 0 returned. */
int imk_readers_finish(imk_readers_t *r, int timeout_ms, struct redisReply **reply);

/* Whether an XREADGROUP is in flight: its entries, once delivered, are this consumer's. */
bool imk_readers_busy(const imk_readers_t *r);

#endif
