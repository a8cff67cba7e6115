/* message.sent's "offline" on a Redis Cluster: which members of a room have no open
 * connection. Their presence hashes (<prefix>online:{<id>}) are in their own slots, so the
 * call that stores the message cannot read them; it hands the members to the worker, which
 * reads each hash on its master and passes on the ids found offline (Lua header: Outbox). */
#ifndef IMKIT_WORKER_OFFLINE_H
#define IMKIT_WORKER_OFFLINE_H

#include "imkit/buf.h"
#include "imkit/cluster_client.h"

#include <stddef.h>

/* Appends to out, comma-separated and in their order, the ids of ids (len bytes of client
 * ids separated by commas) whose presence hash holds no gateway's count: a client is
 * connected while some gateway counts a session of it (any field but last_seen). Reads the
 * hashes in pipelines of at most a few hundred; call it with no pipeline pending. Returns
 * 0, IMK_ENOMEM, or IMK_EREDIS when a read got no reply or an error (out is then
 * incomplete). */
int imk_offline_of(imk_cluster_client_t *redis, const char *prefix, const char *ids, size_t len,
                   imk_buf_t *out);

#endif
