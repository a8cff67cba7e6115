/* Redis key and channel names on the C side (DESIGN.md's schema). The Lua library
 * (worker/lua/imkit.lua) builds the same names from the same prefix: change both together.
 * Each function writes a NUL-terminated name into out and returns its length, or
 * IMK_ETOOBIG when outlen is too small. */
#ifndef IMKIT_KEYS_H
#define IMKIT_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define IMK_KEY_MAX 256

int imk_key_jobs(char *out, size_t outlen, const char *prefix, int partition);
int imk_key_dead(char *out, size_t outlen, const char *prefix);
int imk_key_token(char *out, size_t outlen, const char *prefix, const char *sha256_hex);
int imk_key_online(char *out, size_t outlen, const char *prefix, const char *client);
int imk_key_gateway_alive(char *out, size_t outlen, const char *prefix, const char *gateway);
/* <prefix>gwc:<gateway>: the clients a gateway counts in their presence (Lua K.gw_clients). */
int imk_key_gateway_clients(char *out, size_t outlen, const char *prefix, const char *gateway);
int imk_key_client_rooms(char *out, size_t outlen, const char *prefix, const char *client);

int imk_channel_gateway(char *out, size_t outlen, const char *prefix, const char *gateway);
int imk_channel_room(char *out, size_t outlen, const char *prefix, const char *room);
int imk_channel_client(char *out, size_t outlen, const char *prefix, const char *client);
int imk_channel_presence(char *out, size_t outlen, const char *prefix, const char *client);
/* "{<id>}" (id: len bytes): the hash tag every key of a room or client carries. Declared as
 * a Function's key and used as a route, it names their Redis Cluster slot. */
int imk_key_tag(char *out, size_t outlen, const char *id, size_t len);
/* The set of gateway ids that ever announced themselves (cleaned when they die). */
int imk_key_gateways(char *out, size_t outlen, const char *prefix);

/* Redis names of the workers' pushed metrics : a hash per
 * worker, `<prefix>metrics:worker:<name>` with fields `text` (its exposition) and `at` (ms,
 * the worker's clock), expiring unless renewed; and the set of worker names that pushed,
 * `<prefix>metrics:workers`, from which readers remove the names whose hash has expired.
 * Each writes a NUL-terminated name and returns its length, or IMK_ETOOBIG. */
int imk_key_metrics_worker(char *out, size_t outlen, const char *prefix, const char *worker);
int imk_key_metrics_workers(char *out, size_t outlen, const char *prefix);

/* The job streams' consumer group. */
#define IMK_JOBS_GROUP "workers"

/* The job stream partition of a room or client id: FNV-1a of the id mod partitions, so
 * every job about one room lands in one stream. */
int imk_partition(const char *id, size_t len, int partitions);

#endif
