/* Redis Cluster key slots, seed lists, redirect texts and CLUSTER SLOTS replies: the pure
 * half of the cluster layer, used by client.c and by the tests. No I/O. */
#include "imkit/cluster.h"
#include "imkit/err.h"
#include "imkit/text.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

/* ---- slots ----------------------------------------------------------------------------- */

/* CRC16/XMODEM (polynomial 0x1021, initial value 0), as the Redis Cluster specification. */
static uint16_t crc16(const char *p, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint16_t)(unsigned char)p[i] << 8);
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000) != 0 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

uint16_t imk_cluster_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open != NULL) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close != NULL && close > open + 1) {
            return crc16(open + 1, (size_t)(close - open - 1)) % IMK_CLUSTER_SLOTS;
        }
    }
    return crc16(key, len) % IMK_CLUSTER_SLOTS;
}

/* ---- addresses ------------------------------------------------------------------------- */

/* Host bytes are printable and not spaces: they become a C string and a log field. */
static int set_host(imk_cluster_addr_t *a, const char *h, size_t n)
{
    if (n >= sizeof(a->host)) {
        return IMK_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (h[i] <= ' ' || h[i] > '~') {
            return IMK_EINVAL;
        }
    }
    memcpy(a->host, h, n);
    a->host[n] = '\0';
    return 0;
}

static int set_port(imk_cluster_addr_t *a, const char *p, size_t n)
{
    int64_t port;
    if (imk_parse_decimal(p, n, 1, 65535, &port) != 0) {
        return IMK_EINVAL;
    }
    a->port = (int)port;
    return 0;
}

/* One seed, "host:port" or "[v6]:port", already trimmed. */
static int parse_seed(const char *s, size_t n, imk_cluster_addr_t *out)
{
    const char *host = s;
    size_t hlen;
    const char *colon;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL || close + 1 >= s + n || close[1] != ':') {
            return IMK_EINVAL;
        }
        host = s + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = memchr(s, ':', n);
        if (colon == NULL || memchr(colon + 1, ':', n - (size_t)(colon + 1 - s)) != NULL) {
            return IMK_EINVAL; /* none, or an unbracketed IPv6 address */
        }
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || set_host(out, host, hlen) != 0) {
        return IMK_EINVAL;
    }
    return set_port(out, colon + 1, n - (size_t)(colon + 1 - s));
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

int imk_cluster_parse_seeds(const char *text, imk_cluster_addr_t *out, int max)
{
    int count = 0;
    const char *p = text;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma != NULL ? comma : p + strlen(p);
        const char *b = p;
        const char *e = end;
        while (b < e && is_blank(*b)) {
            b++;
        }
        while (e > b && is_blank(e[-1])) {
            e--;
        }
        if (count >= max || parse_seed(b, (size_t)(e - b), &out[count]) != 0) {
            return IMK_EINVAL;
        }
        count++;
        if (comma == NULL) {
            return count;
        }
        p = comma + 1;
    }
}

int imk_cluster_check_config(const char *seeds, const char *prefix, char *err, size_t errlen)
{
    imk_cluster_addr_t addrs[IMK_CLUSTER_SEEDS_MAX];
    if (seeds[0] == '\0') {
        return 0;
    }
    if (imk_cluster_parse_seeds(seeds, addrs, IMK_CLUSTER_SEEDS_MAX) <= 0) {
        snprintf(err, errlen, "redis.cluster: expected host:port,host:port,... (at most %d)",
                 IMK_CLUSTER_SEEDS_MAX);
        return IMK_EINVAL;
    }
    if (strpbrk(prefix, "{}") != NULL) {
        snprintf(err, errlen,
                 "redis.prefix: no '{' or '}' on a Redis Cluster (they would make or end every "
                 "key's hash tag)");
        return IMK_EINVAL;
    }
    return 0;
}

/* ---- redirects ------------------------------------------------------------------------- */

int imk_cluster_parse_redirect(const char *err, size_t len, imk_cluster_redirect_t *out)
{
    size_t word;
    if (len > 6 && memcmp(err, "MOVED ", 6) == 0) {
        out->kind = IMK_CLUSTER_MOVED;
        word = 6;
    } else if (len > 4 && memcmp(err, "ASK ", 4) == 0) {
        out->kind = IMK_CLUSTER_ASK;
        word = 4;
    } else {
        return IMK_EINVAL;
    }
    const char *slot = err + word;
    const char *end = err + len;
    const char *space = memchr(slot, ' ', (size_t)(end - slot));
    int64_t v;
    if (space == NULL ||
        imk_parse_decimal(slot, (size_t)(space - slot), 0, IMK_CLUSTER_SLOTS - 1, &v) != 0) {
        return IMK_EINVAL;
    }
    out->slot = (uint16_t)v;
    const char *ep = space + 1;
    const char *colon = NULL;
    for (const char *q = ep; q < end; q++) {
        if (*q == ':') {
            colon = q;
        }
    }
    if (colon == NULL || set_host(&out->addr, ep, (size_t)(colon - ep)) != 0) {
        return IMK_EINVAL;
    }
    return set_port(&out->addr, colon + 1, (size_t)(end - colon - 1));
}

/* ---- slot map -------------------------------------------------------------------------- */

static void map_clear(imk_cluster_map_t *m)
{
    m->n = 0;
    for (int s = 0; s < IMK_CLUSTER_SLOTS; s++) {
        m->owner[s] = -1;
    }
}

int imk_cluster_map_find(const imk_cluster_map_t *m, const imk_cluster_addr_t *addr)
{
    for (int i = 0; i < m->n; i++) {
        if (m->masters[i].port == addr->port && strcmp(m->masters[i].host, addr->host) == 0) {
            return i;
        }
    }
    return -1;
}

static int is_slot(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER && r->integer >= 0 && r->integer < IMK_CLUSTER_SLOTS;
}

/* A node entry [ip, port, id?, ...] into out; *unknown set for ip "?". */
static int parse_node(const redisReply *r, const imk_cluster_addr_t *asked, imk_cluster_addr_t *out,
                      int *unknown)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        return IMK_EINVAL;
    }
    const redisReply *ip = r->element[0];
    const redisReply *port = r->element[1];
    if (ip->type != REDIS_REPLY_STRING || port->type != REDIS_REPLY_INTEGER || port->integer < 1 ||
        port->integer > 65535) {
        return IMK_EINVAL;
    }
    if (r->elements >= 3 && r->element[2]->type != REDIS_REPLY_STRING) {
        return IMK_EINVAL;
    }
    *unknown = ip->len == 1 && ip->str[0] == '?';
    if (ip->len == 0) {
        if (asked == NULL || asked->host[0] == '\0') {
            return IMK_EINVAL;
        }
        memcpy(out->host, asked->host, sizeof(out->host));
    } else if (set_host(out, ip->str, ip->len) != 0) {
        return IMK_EINVAL;
    }
    out->port = (int)port->integer;
    return 0;
}

/* The index of addr among the masters, added when new. */
static int add_master(imk_cluster_map_t *m, const imk_cluster_addr_t *addr)
{
    int i = imk_cluster_map_find(m, addr);
    if (i >= 0) {
        return i;
    }
    if (m->n >= IMK_CLUSTER_MAX_MASTERS) {
        return IMK_ETOOBIG;
    }
    m->masters[m->n] = *addr;
    return m->n++;
}

/* One range [start, end, master, replicas...]; slots are claimed by the master's index, or
 * by IMK_CLUSTER_MAX_MASTERS for an unknown endpoint until every range is read. */
static int add_range(imk_cluster_map_t *m, const redisReply *r, const imk_cluster_addr_t *asked)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || !is_slot(r->element[0]) ||
        !is_slot(r->element[1]) || r->element[0]->integer > r->element[1]->integer) {
        return IMK_EINVAL;
    }
    imk_cluster_addr_t node;
    int unknown;
    int rc = parse_node(r->element[2], asked, &node, &unknown);
    for (size_t i = 3; rc == 0 && i < r->elements; i++) {
        imk_cluster_addr_t replica;
        int replica_unknown;
        rc = parse_node(r->element[i], asked, &replica, &replica_unknown);
    }
    if (rc != 0) {
        return rc;
    }
    int index = unknown ? IMK_CLUSTER_MAX_MASTERS : add_master(m, &node);
    if (index < 0) {
        return index;
    }
    for (long long s = r->element[0]->integer; s <= r->element[1]->integer; s++) {
        if (m->owner[s] != -1) {
            return IMK_EINVAL; /* overlapping ranges */
        }
        m->owner[s] = (int16_t)index;
    }
    return 0;
}

int imk_cluster_map_from_reply(imk_cluster_map_t *m, const struct redisReply *slots_reply,
                               const imk_cluster_addr_t *asked)
{
    map_clear(m);
    if (slots_reply == NULL || slots_reply->type != REDIS_REPLY_ARRAY) {
        return IMK_EINVAL;
    }
    for (size_t i = 0; i < slots_reply->elements; i++) {
        int rc = add_range(m, slots_reply->element[i], asked);
        if (rc != 0) {
            map_clear(m);
            return rc;
        }
    }
    for (int s = 0; s < IMK_CLUSTER_SLOTS; s++) {
        if (m->owner[s] == IMK_CLUSTER_MAX_MASTERS) {
            m->owner[s] = -1;
        }
    }
    return 0;
}

/* A tag j<k> whose slot lies in [lo, hi): the first k; -1 when none below a million. */
static long first_tag_in(uint32_t lo, uint32_t hi)
{
    char tag[16];
    for (long k = 0; k < 1000000; k++) {
        int n = snprintf(tag, sizeof(tag), "j%ld", k);
        uint16_t slot = imk_cluster_slot(tag, (size_t)n);
        if (slot >= lo && slot < hi) {
            return k;
        }
    }
    return -1;
}

int imk_cluster_job_streams(char (*out)[IMK_KEY_MAX], int partitions, const char *prefix,
                            bool cluster)
{
    if (partitions < 1 || partitions > 256) {
        return IMK_EINVAL;
    }
    for (int p = 0; p < partitions; p++) {
        if (!cluster) {
            if (imk_key_jobs(out[p], IMK_KEY_MAX, prefix, p) <= 0) {
                return IMK_EINVAL;
            }
            continue;
        }
        /* The middle half of the share: a master's range rounded by a slot, or moved by a
         * few, still holds it. */
        uint32_t lo = (uint32_t)p * IMK_CLUSTER_SLOTS / (uint32_t)partitions;
        uint32_t hi = (uint32_t)(p + 1) * IMK_CLUSTER_SLOTS / (uint32_t)partitions;
        long k = first_tag_in(lo + (hi - lo) / 4, hi - (hi - lo) / 4);
        int n = snprintf(out[p], IMK_KEY_MAX, "%sjobs:%d:{j%ld}", prefix, p, k);
        if (k < 0 || n < 0 || n >= IMK_KEY_MAX) {
            return IMK_EINVAL;
        }
    }
    return 0;
}
