/* libFuzzer driver for the cluster parsers (cluster/src/slots.c; seeds: corpus/cluster/).
 * The input is used three ways: as RESP bytes, fed to a hiredis reader in two pieces cut at
 * a point the input chooses, whose replies go to imk_cluster_map_from_reply; as a redirect
 * error text for imk_cluster_parse_redirect; and, NUL-terminated, as a redis.cluster value
 * for imk_cluster_parse_seeds. Nothing may crash or leak, and whatever is accepted must
 * hold only valid slots, owners, hosts and ports.
 *
 * hiredis 0.14 trusts the lengths it reads (a huge or negative bulk length, a multi-bulk of
 * billions of elements), so the driver gives the reader only inputs whose lengths are
 * small: hiredis is not the code under test, what it hands over is. */
#include "imkit/cluster.h"
#include "imkit/err.h"
#include "imkit/text.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BULK 4096
#define MAX_ELEMENTS 4096
#define MAX_DEPTH 7
#define MAX_REPLIES 8
#define MAX_SEEDS 8

/* ---- screening the reader's input ------------------------------------------------------ */

/* A RESP length: "-1", or digits at most max. */
static bool small_length(const uint8_t *p, size_t n, int64_t max, int64_t *out)
{
    if (n == 2 && p[0] == '-' && p[1] == '1') {
        *out = -1;
        return true;
    }
    return imk_parse_decimal((const char *)p, n, 0, max, out) == 0;
}

/* The line at *pos up to "\r\n" (as hiredis finds it); *pos moves past it. */
static bool next_line(const uint8_t *p, size_t n, size_t *pos, size_t *len)
{
    for (size_t i = *pos; i + 1 < n; i++) {
        if (p[i] == '\r' && p[i + 1] == '\n') {
            *len = i - *pos;
            *pos = i + 2;
            return true;
        }
    }
    return false;
}

/* Walks one value at *pos: 1 walked, 0 the input ends or hiredis will refuse it, -1 a
 * length or depth the reader must not see. */
static int walk(const uint8_t *p, size_t n, size_t *pos, int depth)
{
    if (*pos >= n) {
        return 0;
    }
    uint8_t type = p[(*pos)++];
    size_t start = *pos;
    size_t len;
    if (!next_line(p, n, pos, &len)) {
        return 0;
    }
    int64_t v;
    switch (type) {
    case '+':
    case '-':
    case ':':
        return 1;
    case '$':
        if (!small_length(p + start, len, MAX_BULK, &v)) {
            return -1;
        }
        if (v >= 0) {
            if (n - *pos < (size_t)v + 2) {
                return 0;
            }
            *pos += (size_t)v + 2;
        }
        return 1;
    case '*':
        if (depth >= MAX_DEPTH || !small_length(p + start, len, MAX_ELEMENTS, &v)) {
            return -1;
        }
        for (int64_t i = 0; i < v; i++) {
            int rc = walk(p, n, pos, depth + 1);
            if (rc <= 0) {
                return rc;
            }
        }
        return 1;
    default:
        return 0;
    }
}

static bool reader_safe(const uint8_t *p, size_t n)
{
    size_t pos = 0;
    for (int i = 0; i < MAX_REPLIES; i++) {
        int rc = walk(p, n, &pos, 0);
        if (rc < 0) {
            return false;
        }
        if (rc == 0) {
            return true;
        }
    }
    return true;
}

/* ---- checks ---------------------------------------------------------------------------- */

static void check_addr(const imk_cluster_addr_t *a, bool empty_host_ok)
{
    size_t len = strnlen(a->host, sizeof(a->host));
    if (len == sizeof(a->host) || (len == 0 && !empty_host_ok) || a->port < 1 || a->port > 65535) {
        abort();
    }
    for (size_t i = 0; i < len; i++) {
        if (a->host[i] <= ' ' || a->host[i] > '~') {
            abort();
        }
    }
}

static void check_map(const imk_cluster_map_t *m, int rc)
{
    if (m->n < 0 || m->n > IMK_CLUSTER_MAX_MASTERS || (rc != 0 && m->n != 0)) {
        abort();
    }
    for (int i = 0; i < m->n; i++) {
        check_addr(&m->masters[i], false);
    }
    for (int s = 0; s < IMK_CLUSTER_SLOTS; s++) {
        if (m->owner[s] < -1 || m->owner[s] >= m->n) {
            abort();
        }
    }
}

static void run_reader(const uint8_t *data, size_t size, imk_cluster_map_t *m)
{
    static const imk_cluster_addr_t asked = {"10.0.0.1", 7000};
    size_t split = size > 0 ? data[0] % (size + 1) : 0;
    redisReader *reader = redisReaderCreate();
    if (reader == NULL) {
        return;
    }
    if (redisReaderFeed(reader, (const char *)data, split) == REDIS_OK &&
        redisReaderFeed(reader, (const char *)data + split, size - split) == REDIS_OK) {
        for (int i = 0; i < MAX_REPLIES; i++) {
            void *reply = NULL;
            if (redisReaderGetReply(reader, &reply) != REDIS_OK || reply == NULL) {
                break;
            }
            int rc = imk_cluster_map_from_reply(m, reply, i % 2 == 0 ? &asked : NULL);
            if (rc != 0 && rc != IMK_EINVAL && rc != IMK_ETOOBIG) {
                abort();
            }
            check_map(m, rc);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(reader);
}

static void run_redirect(const uint8_t *data, size_t size)
{
    imk_cluster_redirect_t r;
    if (imk_cluster_parse_redirect((const char *)data, size, &r) == 0) {
        if ((r.kind != IMK_CLUSTER_MOVED && r.kind != IMK_CLUSTER_ASK) ||
            r.slot >= IMK_CLUSTER_SLOTS) {
            abort();
        }
        check_addr(&r.addr, true);
    }
}

static void run_seeds(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL) {
        return;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    imk_cluster_addr_t seeds[MAX_SEEDS];
    int n = imk_cluster_parse_seeds(text, seeds, MAX_SEEDS);
    if (n != IMK_EINVAL && (n < 1 || n > MAX_SEEDS)) {
        abort();
    }
    for (int i = 0; i < n; i++) {
        check_addr(&seeds[i], false);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static imk_cluster_map_t map; /* 66 KB: not on the stack */
    if (reader_safe(data, size)) {
        run_reader(data, size, &map);
    }
    run_redirect(data, size);
    run_seeds(data, size);
    if (size > 0) {
        (void)imk_cluster_slot((const char *)data, size);
    }
    return 0;
}
