/* Presence reads for message.sent's "offline" (offline.h). */
#include "offline.h"
#include "imkit/cluster.h"
#include "imkit/err.h"
#include "imkit/ids.h"
#include "imkit/keys.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <string.h>

#define PIPELINE 256 /* presence reads in flight at once */

/* Whether an HKEYS reply of a presence hash counts a session: a field besides last_seen. */
static bool counts_a_session(const redisReply *r)
{
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *f = r->element[i];
        if (f->type == REDIS_REPLY_STRING &&
            !(f->len == 9 && memcmp(f->str, "last_seen", 9) == 0)) {
            return true;
        }
    }
    return false;
}

/* The next id of ids[*at..len), advancing *at past its comma; its length in *id_len. */
static const char *next_id(const char *ids, size_t len, size_t *at, size_t *id_len)
{
    const char *start = ids + *at;
    const char *comma = memchr(start, ',', len - *at);
    *id_len = comma != NULL ? (size_t)(comma - start) : len - *at;
    *at += *id_len + (comma != NULL ? 1 : 0);
    return start;
}

/* Reads the presence of up to PIPELINE ids from ids[*at..) and appends those offline. */
static int read_some(imk_cluster_client_t *redis, const char *prefix, const char *ids, size_t len,
                     size_t *at, imk_buf_t *out)
{
    const char *id[PIPELINE];
    size_t id_len[PIPELINE];
    int n = 0;
    while (*at < len && n < PIPELINE) {
        id[n] = next_id(ids, len, at, &id_len[n]);
        if (id_len[n] == 0 || id_len[n] > IMK_ID_MAX) {
            continue; /* not an id: nobody to check */
        }
        char client[IMK_ID_MAX + 1], key[IMK_KEY_MAX];
        memcpy(client, id[n], id_len[n]);
        client[id_len[n]] = '\0';
        int key_len = imk_key_online(key, sizeof(key), prefix, client);
        if (key_len < 0) {
            (void)imk_cluster_client_flush(redis);
            return key_len;
        }
        const char *argv[] = {"HKEYS", key};
        size_t lens[] = {5, (size_t)key_len};
        if (imk_cluster_client_append(redis, imk_cluster_slot(key, (size_t)key_len), 2, argv,
                                      lens) < 0) {
            (void)imk_cluster_client_flush(redis);
            return IMK_ENOMEM;
        }
        n++;
    }
    redisReply *replies[PIPELINE];
    if (imk_cluster_client_collect(redis, replies, PIPELINE) != n) {
        return IMK_EREDIS;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (replies[i] == NULL || replies[i]->type != REDIS_REPLY_ARRAY) {
            rc = IMK_EREDIS;
        } else if (rc == 0 && !counts_a_session(replies[i])) {
            rc = (out->len > 0 && imk_buf_append(out, ",", 1) != 0) ||
                         imk_buf_append(out, id[i], id_len[i]) != 0
                     ? IMK_ENOMEM
                     : 0;
        }
        freeReplyObject(replies[i]);
    }
    return rc;
}

int imk_offline_of(imk_cluster_client_t *redis, const char *prefix, const char *ids, size_t len,
                   imk_buf_t *out)
{
    size_t at = 0;
    int rc = 0;
    while (rc == 0 && at < len) {
        rc = read_some(redis, prefix, ids, len, &at, out);
    }
    return rc;
}
