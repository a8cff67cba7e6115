/* Drives imkit-cluster's routing client against a real Redis Cluster for
 * tests/cluster/router.test.mjs, and prints one JSON line of counts.
 *   cluster_probe SEEDS write N   SET k<i> v<i> for i < N, pipelined in chunks
 *                                 (append/collect), then GET each back one by one;
 *   cluster_probe SEEDS loop MS   for MS milliseconds, SET then GET l<i mod 1000> to a value
 *                                 new each time, one command at a time: every slot of those
 *                                 keys comes back several times a second. */
#include "imkit/cluster.h"
#include "imkit/cluster_client.h"
#include "imkit/err.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK 100
#define LOOP_KEYS 1000
#define TIMEOUT_MS 1000

struct counts {
    long ok;     /* read back as written */
    long wrong;  /* read back as something else */
    long errors; /* error replies */
    long nulls;  /* NULL replies: a node unreachable */
};

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Counts a failed reply; true when r is a usable reply. */
static bool usable(struct counts *n, const redisReply *r)
{
    if (r == NULL) {
        n->nulls++;
        return false;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        n->errors++;
        return false;
    }
    return true;
}

static redisReply *run(imk_cluster_client_t *c, const char *cmd, const char *key, const char *value)
{
    const char *argv[3] = {cmd, key, value};
    size_t lens[3] = {strlen(cmd), strlen(key), value != NULL ? strlen(value) : 0};
    return imk_cluster_client_command(c, imk_cluster_slot(key, lens[1]), value != NULL ? 3 : 2,
                                      argv, lens);
}

/* GET key, compared with value; true when the command got an answer. */
static bool check(imk_cluster_client_t *c, struct counts *n, const char *key, const char *value)
{
    redisReply *r = run(c, "GET", key, NULL);
    bool answered = usable(n, r);
    if (answered) {
        if (r->type == REDIS_REPLY_STRING && strcmp(r->str, value) == 0) {
            n->ok++;
        } else {
            n->wrong++;
        }
    }
    freeReplyObject(r);
    return answered;
}

static void set_chunk(imk_cluster_client_t *c, struct counts *n, long from, long to)
{
    redisReply *replies[CHUNK];
    for (long i = from; i < to; i++) {
        char key[32];
        char value[32];
        snprintf(key, sizeof(key), "k%ld", i);
        snprintf(value, sizeof(value), "v%ld", i);
        const char *argv[3] = {"SET", key, value};
        size_t lens[3] = {3, strlen(key), strlen(value)};
        if (imk_cluster_client_append(c, imk_cluster_slot(key, lens[1]), 3, argv, lens) < 0) {
            n->nulls++;
        }
    }
    int got = imk_cluster_client_collect(c, replies, CHUNK);
    for (int k = 0; k < got; k++) {
        if (usable(n, replies[k]) && replies[k]->type != REDIS_REPLY_STATUS) {
            n->errors++;
        }
        freeReplyObject(replies[k]);
    }
}

static void write_mode(imk_cluster_client_t *c, long count)
{
    struct counts n = {0, 0, 0, 0};
    for (long from = 0; from < count; from += CHUNK) {
        set_chunk(c, &n, from, from + CHUNK < count ? from + CHUNK : count);
    }
    for (long i = 0; i < count; i++) {
        char key[32];
        char value[32];
        snprintf(key, sizeof(key), "k%ld", i);
        snprintf(value, sizeof(value), "v%ld", i);
        check(c, &n, key, value);
    }
    printf("{\"mode\":\"write\",\"n\":%ld,\"ok\":%ld,\"wrong\":%ld,\"errors\":%ld,\"nulls\":%ld}\n",
           count, n.ok, n.wrong, n.errors, n.nulls);
}

static void loop_mode(imk_cluster_client_t *c, long ms)
{
    struct counts n = {0, 0, 0, 0};
    long start = now_ms();
    long last = start;
    long max_gap = 0;
    long i = 0;
    for (long t = start; t - start < ms; t = now_ms(), i++) {
        char key[32];
        char value[32];
        snprintf(key, sizeof(key), "l%ld", i % LOOP_KEYS);
        snprintf(value, sizeof(value), "%ld", i);
        redisReply *r = run(c, "SET", key, value);
        bool done = usable(&n, r) && check(c, &n, key, value);
        freeReplyObject(r);
        if (done) {
            long at = now_ms();
            max_gap = at - last > max_gap ? at - last : max_gap;
            last = at;
        }
    }
    long end = now_ms();
    max_gap = end - last > max_gap ? end - last : max_gap;
    printf("{\"mode\":\"loop\",\"ms\":%ld,\"iterations\":%ld,\"ok\":%ld,\"wrong\":%ld,"
           "\"errors\":%ld,\"nulls\":%ld,\"max_gap_ms\":%ld}\n",
           end - start, i, n.ok, n.wrong, n.errors, n.nulls, max_gap);
}

int main(int argc, char **argv)
{
    imk_cluster_addr_t seeds[16];
    int nseeds = argc == 4 ? imk_cluster_parse_seeds(argv[1], seeds, 16) : IMK_EINVAL;
    long arg = argc == 4 ? strtol(argv[3], NULL, 10) : 0;
    bool write = argc == 4 && strcmp(argv[2], "write") == 0;
    if (nseeds < 0 || arg <= 0 || (!write && strcmp(argv[2], "loop") != 0)) {
        fprintf(stderr, "usage: cluster_probe host:port[,host:port...] write N | loop MS\n");
        return 2;
    }
    imk_cluster_client_t *c = imk_cluster_client_create(seeds, nseeds, TIMEOUT_MS, NULL, NULL);
    if (c == NULL) {
        fprintf(stderr, "cluster_probe: no memory\n");
        return 1;
    }
    if (write) {
        write_mode(c, arg);
    } else {
        loop_mode(c, arg);
    }
    imk_cluster_client_destroy(c);
    return 0;
}
