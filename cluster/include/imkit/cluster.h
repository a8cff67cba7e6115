/* Redis Cluster arithmetic and parsing for IMKit's cluster mode (redis.cluster): key slots,
 * the seed list, MOVED/ASK redirects and the slot map from CLUSTER SLOTS. Pure functions,
 * no I/O; the routing client (imkit/cluster_client.h) and its tests call them. */
#ifndef IMKIT_CLUSTER_H
#define IMKIT_CLUSTER_H

#include "imkit/keys.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redisReply;

#define IMK_CLUSTER_SLOTS 16384
#define IMK_CLUSTER_MAX_MASTERS 128
#define IMK_CLUSTER_SEEDS_MAX 32 /* redis.cluster: seed nodes */
#define IMK_CLUSTER_HOST_MAX 256 /* host buffer, NUL included */

/* A node address. host is NUL-terminated, IPv6 without brackets; port 1..65535. */
typedef struct imk_cluster_addr {
    char host[IMK_CLUSTER_HOST_MAX];
    int port;
} imk_cluster_addr_t;

typedef enum imk_cluster_redirect_kind {
    IMK_CLUSTER_MOVED = 1, /* the slot has a new owner: update the map */
    IMK_CLUSTER_ASK = 2,   /* this one command goes to addr, preceded by ASKING */
} imk_cluster_redirect_kind_t;

typedef struct imk_cluster_redirect {
    imk_cluster_redirect_kind_t kind;
    uint16_t slot;
    imk_cluster_addr_t addr; /* host empty: the host of the node that sent the redirect */
} imk_cluster_redirect_t;

/* Which master owns each slot. owner[s] indexes masters, or is -1 when no master is known
 * for slot s. Large (about 66 KB): keep it on the heap or in a long-lived struct. */
typedef struct imk_cluster_map {
    int n;
    imk_cluster_addr_t masters[IMK_CLUSTER_MAX_MASTERS];
    int16_t owner[IMK_CLUSTER_SLOTS];
} imk_cluster_map_t;

/* The Redis Cluster slot of key (len bytes, not NUL-terminated): CRC16/XMODEM of the key,
 * or of its hash tag (the bytes between the first '{' and the first '}' after it, when there
 * are any), mod 16384. */
uint16_t imk_cluster_slot(const char *key, size_t len);

/* The names of the job streams, partitions of them (1..256) into out: <prefix>jobs:<p> on
 * one Redis (DESIGN.md); on a cluster <prefix>jobs:<p>:{j<k>}, j<k> the first such tag whose
 * slot lies in the middle half of the p-th of partitions equal shares of the slots, so that
 * the streams spread over the masters as the slots do: with the slots split evenly over M
 * masters (redis-cli --cluster create) and partitions a multiple of M, each master holds
 * partitions / M streams (a prefix with '{' would defeat the tags: imk_cluster_check_config
 * refuses it). Returns 0, or IMK_EINVAL when partitions is out of range or a name does not
 * fit. */
int imk_cluster_job_streams(char (*out)[IMK_KEY_MAX], int partitions, const char *prefix,
                            bool cluster);

/* Parses redis.cluster: "host:port,host:port,..." with optional spaces around entries;
 * IPv6 hosts in brackets ("[::1]:7000"); ports 1..65535. Writes at most max addresses to out.
 * Returns the number of addresses (>= 1), or IMK_EINVAL when text is malformed, empty, or
 * holds more than max entries (out is then partly written). */
int imk_cluster_parse_seeds(const char *text, imk_cluster_addr_t *out, int max);

/* The start-up check of redis.cluster and redis.prefix shared by both binaries: 0 when
 * seeds is empty (one Redis), or a valid seed list of at most IMK_CLUSTER_SEEDS_MAX with a
 * prefix holding no '{' or '}'; else IMK_EINVAL with the message for the operator in err. */
int imk_cluster_check_config(const char *seeds, const char *prefix, char *err, size_t errlen);

/* Parses the text of a redirect error reply (len bytes, not NUL-terminated):
 * "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>". The last colon splits host
 * from port, so IPv6 hosts come unbracketed ("MOVED 1 ::1:7000"); an empty host
 * ("MOVED 1 :7000") means the host of the node that answered, left empty in out->addr.
 * Returns 0, or IMK_EINVAL for any other text (out is then unspecified). */
int imk_cluster_parse_redirect(const char *err, size_t len, imk_cluster_redirect_t *out);

/* Builds m from a CLUSTER SLOTS reply (borrowed, not kept): an array of
 * [start, end, [ip, port, id, ...], replicas...]. An empty ip stands for the node that was
 * asked, asked (may be NULL: an empty ip is then malformed); ip "?" (unknown endpoint) leaves
 * that range without an owner. Replica entries are checked but not recorded.
 * Returns 0; IMK_EINVAL when the reply is malformed (wrong types, a slot outside 0..16383,
 * start > end, overlapping ranges, a port outside 1..65535, a host too long or with spaces
 * or control bytes); IMK_ETOOBIG with more than IMK_CLUSTER_MAX_MASTERS masters. On error
 * m is left empty (n 0, every owner -1). */
int imk_cluster_map_from_reply(imk_cluster_map_t *m, const struct redisReply *slots_reply,
                               const imk_cluster_addr_t *asked);

/* The index of addr among m's masters, or -1. */
int imk_cluster_map_find(const imk_cluster_map_t *m, const imk_cluster_addr_t *addr);

#endif
