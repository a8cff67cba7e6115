/* A synchronous Redis Cluster client for the worker: keeps the slot map (CLUSTER SLOTS), one
 * blocking hiredis connection per master, and routes each command to its slot's master,
 * following MOVED and ASK redirects. Calls block the caller's thread (each connect, read or
 * write up to timeout_ms; retries add short sleeps). Not thread-safe: one thread uses a
 * client at a time. The library logs nothing; callers log what they get back. */
#ifndef IMKIT_CLUSTER_CLIENT_H
#define IMKIT_CLUSTER_CLIENT_H

#include "imkit/cluster.h"

#include <stddef.h>
#include <stdint.h>

struct redisContext;
struct redisReply;

typedef struct imk_cluster_client imk_cluster_client_t;

/* A client for the cluster reached through seeds (n >= 1 addresses, copied). timeout_ms (> 0)
 * bounds each connect and each read or write. user may be NULL (AUTH <password>); password
 * NULL means no AUTH. Connects to nothing yet: the first call that needs the map loads it.
 * Returns NULL on bad arguments or no memory; caller frees with imk_cluster_client_destroy. */
imk_cluster_client_t *imk_cluster_client_create(const imk_cluster_addr_t *seeds, int n,
                                                int timeout_ms, const char *user,
                                                const char *password);

/* A client for one plain Redis (not a cluster) at node, through the same calls: the node
 * owns every slot, refresh reads nothing, and no redirect ever comes. db (>= 0) is selected
 * on every connection when not 0. Returns NULL as imk_cluster_client_create does. */
imk_cluster_client_t *imk_cluster_client_create_single(const imk_cluster_addr_t *node,
                                                       int timeout_ms, const char *user,
                                                       const char *password, int db);

/* Closes every connection and frees c, queued pipeline entries included. NULL is a no-op. */
void imk_cluster_client_destroy(imk_cluster_client_t *c);

/* Reloads the slot map with CLUSTER SLOTS from the first node that answers one: the known
 * masters in order, then the seeds. Connections to nodes that are no longer masters close.
 * Returns 0; IMK_EREDIS when no node gave a valid map (the previous map stays in use);
 * IMK_EINVAL while a pipeline is pending (appended, not collected), as reloading would
 * close connections that still owe replies. */
int imk_cluster_client_refresh(imk_cluster_client_t *c);

/* The connected context of slot's master, for commands the caller sends itself. Loads the
 * map first when it was never loaded or is stale (not while a pipeline is pending), and
 * connects lazily (AUTH when configured). Returns NULL when slot is out of range, no master
 * is known for it, or the master is unreachable (the map is then marked stale).
 * Borrowed: valid until the next call on c. When a command on it fails, leave it: the
 * client sees its error on the next call, reconnects and refreshes the map. */
struct redisContext *imk_cluster_client_node(imk_cluster_client_t *c, uint16_t slot);

/* The address of slot's master, loading the map as imk_cluster_client_node does, into
 * *out. Returns 0, or IMK_EREDIS when no map could be loaded or no master is known for the
 * slot (the map is then marked stale). */
int imk_cluster_client_owner(imk_cluster_client_t *c, uint16_t slot, imk_cluster_addr_t *out);

/* A new connection to addr, made as the client's own are (timeout, AUTH, SELECT): for a
 * caller that keeps a connection apart, such as one blocked in a read. NULL when it cannot
 * be made. The caller frees it with redisFree. */
struct redisContext *imk_cluster_client_connect(const imk_cluster_client_t *c,
                                                const imk_cluster_addr_t *addr);

/* Every master of the map, connected, for per-node work (reading each node's streams):
 * out[i] is master i's context, or NULL when that master is unreachable. Loads the map as
 * imk_cluster_client_node does. Returns the number of masters written (0 when the map has
 * none); IMK_EREDIS when no map could be loaded; IMK_ETOOBIG when there are more than max.
 * The contexts are borrowed, as for imk_cluster_client_node. */
int imk_cluster_client_masters(imk_cluster_client_t *c, struct redisContext **out, int max);

/* Runs one command (argc >= 1 arguments of lens[i] bytes, borrowed) on slot's master and
 * returns its final reply:
 * - MOVED: the map is reloaded and the command sent again to the new owner;
 * - ASK: ASKING then the command are sent once to the named node;
 * - TRYAGAIN or CLUSTERDOWN: the command is sent again after a short sleep (10 to 160 ms),
 *   the map reloaded first after CLUSTERDOWN;
 * at most 5 redirects and retries in all; past them, the last error reply is returned.
 * Other error replies are returned as they are: check reply->type.
 * Returns NULL when the node could not be reached or failed mid-command (its connection is
 * dropped and the map marked stale, so the next call reloads it), when no master owns the
 * slot, on bad arguments (slot out of range, argc < 1) and while a pipeline is pending.
 * The caller frees the reply with freeReplyObject. */
struct redisReply *imk_cluster_client_command(imk_cluster_client_t *c, uint16_t slot, int argc,
                                              const char **argv, const size_t *lens);

/* Pipelines. imk_cluster_client_append queues a command for slot's master (arguments are
 * copied) and writes it to that connection's output buffer; nothing is sent before
 * imk_cluster_client_collect. The first append of a pipeline loads the map if needed; later
 * ones use the same map. Returns the command's index in the pipeline (0, 1, ...), or
 * IMK_EINVAL (slot out of range, argc < 1), IMK_ENOMEM. A command whose master is
 * unreachable is still queued: its reply will be NULL.
 * While a pipeline is pending, call only append and collect on c (and destroy). Keep
 * pipelines to a few hundred commands: each node's replies are read one node at a time. */
int imk_cluster_client_append(imk_cluster_client_t *c, uint16_t slot, int argc, const char **argv,
                              const size_t *lens);

/* Sends every queued command and reads every reply into replies[0..count), in append order,
 * then empties the pipeline. A reply that is a MOVED or ASK redirect (the command was not
 * run) is replaced by the reply of imk_cluster_client_command for the same slot and
 * arguments, once every node has been read. A node that fails yields NULL for each of its
 * commands not yet answered (its connection is dropped, the map marked stale): such a
 * command may or may not have run. n is the capacity of replies.
 * Returns count (>= 0); IMK_EINVAL when n < count (nothing is read, the pipeline stays).
 * The caller frees each non-NULL reply with freeReplyObject. */
int imk_cluster_client_collect(imk_cluster_client_t *c, struct redisReply **replies, int n);

/* As imk_cluster_client_collect, for a pipeline whose replies do not matter but for having
 * come: each is read and freed. Returns the number of commands that got no reply (their
 * node failed: they may or may not have run), 0 when every one got one. */
int imk_cluster_client_flush(imk_cluster_client_t *c);

#endif
