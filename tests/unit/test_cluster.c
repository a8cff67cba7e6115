/* Unit tests of cluster/src/slots.c through imkit/cluster.h: key slots (CRC16/XMODEM and
 * hash tags), redis.cluster seed lists, MOVED/ASK redirect texts, and slot maps built from
 * CLUSTER SLOTS replies that a hiredis reader decodes from scripted RESP bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "imkit/cluster.h"
#include "imkit/err.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- slots ----------------------------------------------------------------------------- */

static uint16_t slot_of(const char *key)
{
    return imk_cluster_slot(key, strlen(key));
}

/* Expected values: the CRC16 check value of the XMODEM variant, the CLUSTER KEYSLOT
 * examples of the Redis documentation ("somekey", "foo"), and the rest computed from the
 * specification by an independent implementation. CLUSTER KEYSLOT answers only on a
 * cluster-enabled node (a standalone one says "cluster support disabled"); every value
 * below was checked once by hand against `redis-cli CLUSTER KEYSLOT` on a Redis 7.0 node
 * started with --cluster-enabled yes. */
static void test_slot_values(void **state)
{
    (void)state;
    assert_int_equal(slot_of("123456789"), 0x31C3);
    assert_int_equal(slot_of("somekey"), 11058);
    assert_int_equal(slot_of("foo"), 12182);
    assert_int_equal(slot_of("user1000"), 3443);
    assert_int_equal(slot_of(""), 0);
    assert_int_equal(slot_of("{}"), 15257);
    assert_int_equal(slot_of("{"), 4092);
    assert_int_equal(slot_of("}"), 12090);
}

static void test_slot_hash_tags(void **state)
{
    (void)state;
    assert_int_equal(slot_of("{user1000}.following"), slot_of("user1000"));
    assert_int_equal(slot_of("{user1000}.followers"), slot_of("user1000"));
    assert_int_equal(slot_of("{user1000}.following"), 3443);
    /* An empty first tag: the whole key. */
    assert_int_equal(slot_of("foo{}{bar}"), 8363);
    assert_int_not_equal(slot_of("foo{}{bar}"), slot_of("bar"));
    /* From the first '{' to the first '}' after it. */
    assert_int_equal(slot_of("foo{{bar}}zap"), slot_of("{bar"));
    assert_int_equal(slot_of("foo{{bar}}zap"), 4015);
    assert_int_equal(slot_of("foo{bar}{zap}"), slot_of("bar"));
    assert_int_equal(slot_of("foo{bar}{zap}"), 5061);
    /* No closing brace: the whole key. */
    assert_int_equal(slot_of("foo{bar"), imk_cluster_slot("foo{bar", 7));
    assert_int_not_equal(slot_of("foo{bar"), slot_of("bar"));
    /* The length is the key: bytes after it are not read, NULs inside are hashed. */
    assert_int_equal(imk_cluster_slot("{a}xyz", 3), slot_of("a"));
    assert_int_equal(imk_cluster_slot("{a", 2), slot_of("{a"));
    assert_int_equal(imk_cluster_slot("a\0b", 3), imk_cluster_slot("a\0b", 3));
    assert_int_not_equal(imk_cluster_slot("a\0b", 3), slot_of("a"));
}

/* ---- seeds ----------------------------------------------------------------------------- */

static void test_seeds_good(void **state)
{
    (void)state;
    imk_cluster_addr_t a[8];
    assert_int_equal(imk_cluster_parse_seeds("127.0.0.1:7000", a, 8), 1);
    assert_string_equal(a[0].host, "127.0.0.1");
    assert_int_equal(a[0].port, 7000);

    assert_int_equal(imk_cluster_parse_seeds("10.0.0.1:1,10.0.0.2:65535 , \tredis-3:7002 ,  "
                                             "[::1]:7003,[fe80::1%eth0]:7004",
                                             a, 8),
                     5);
    assert_string_equal(a[0].host, "10.0.0.1");
    assert_int_equal(a[0].port, 1);
    assert_string_equal(a[1].host, "10.0.0.2");
    assert_int_equal(a[1].port, 65535);
    assert_string_equal(a[2].host, "redis-3");
    assert_int_equal(a[2].port, 7002);
    assert_string_equal(a[3].host, "::1");
    assert_int_equal(a[3].port, 7003);
    assert_string_equal(a[4].host, "fe80::1%eth0");
    assert_int_equal(a[4].port, 7004);

    /* Exactly max entries. */
    assert_int_equal(imk_cluster_parse_seeds("a:1,b:2", a, 2), 2);
}

static void test_seeds_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",          " ",        "h",          "h:",       ":7000",     "h:0",        "h:65536",
        "h:123456",  "h:70a",    "h:+1",       "h:-1",     "h:7000,",   ",h:7000",    "h:7000,,h:1",
        "h :7000",   "h:7000 x", "h:7000;g:1", "::1:7000", "[::1]7000", "[::1]",      "[]:7000",
        "[::1:7000", "[::1]:",   "a b:1",      "h\x01:1",  "h:1:2",     "[::1]:1]:2", "h:1, ,g:2",
    };
    imk_cluster_addr_t a[4];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (imk_cluster_parse_seeds(bad[i], a, 4) != IMK_EINVAL) {
            fail_msg("seeds accepted: \"%s\"", bad[i]);
        }
    }
    /* More than max entries, and max 0. */
    assert_int_equal(imk_cluster_parse_seeds("a:1,b:2,c:3", a, 2), IMK_EINVAL);
    assert_int_equal(imk_cluster_parse_seeds("a:1", a, 0), IMK_EINVAL);
    /* A host that does not fit. */
    char longhost[IMK_CLUSTER_HOST_MAX + 8];
    memset(longhost, 'h', IMK_CLUSTER_HOST_MAX);
    snprintf(longhost + IMK_CLUSTER_HOST_MAX, 8, ":1");
    assert_int_equal(imk_cluster_parse_seeds(longhost, a, 4), IMK_EINVAL);
    snprintf(longhost + IMK_CLUSTER_HOST_MAX - 1, 8, ":1");
    assert_int_equal(imk_cluster_parse_seeds(longhost, a, 4), 1);
    assert_int_equal(strlen(a[0].host), IMK_CLUSTER_HOST_MAX - 1);
}

/* ---- redirects ------------------------------------------------------------------------- */

static int redirect(const char *text, imk_cluster_redirect_t *r)
{
    return imk_cluster_parse_redirect(text, strlen(text), r);
}

/* The start-up check both binaries run: empty is one Redis, the limit is the seeds'. */
static void test_check_config(void **state)
{
    (void)state;
    char err[128] = "";
    assert_int_equal(imk_cluster_check_config("", "imkit:", err, sizeof(err)), 0);
    assert_int_equal(
        imk_cluster_check_config("127.0.0.1:7000, [::1]:7001", "imkit:", err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(imk_cluster_check_config("nohost", "imkit:", err, sizeof(err)), IMK_EINVAL);
    assert_string_equal(err, "redis.cluster: expected host:port,host:port,... (at most 32)");
    char many[IMK_CLUSTER_SEEDS_MAX * 20 + 32] = "";
    for (int i = 0; i < IMK_CLUSTER_SEEDS_MAX; i++) {
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s10.0.0.1:%d",
                 i > 0 ? "," : "", 7000 + i);
    }
    assert_int_equal(imk_cluster_check_config(many, "imkit:", err, sizeof(err)), 0);
    strcat(many, ",10.0.0.2:7000");
    assert_int_equal(imk_cluster_check_config(many, "imkit:", err, sizeof(err)), IMK_EINVAL);
    /* A '{' in the prefix would make it every key's hash tag, a '}' would end the tag of
     * the outbox's keys early: refused on a cluster only. */
    assert_int_equal(imk_cluster_check_config("127.0.0.1:7000", "app{1}:", err, sizeof(err)),
                     IMK_EINVAL);
    assert_string_equal(err, "redis.prefix: no '{' or '}' on a Redis Cluster (they would make "
                             "or end every key's hash tag)");
    assert_int_equal(imk_cluster_check_config("127.0.0.1:7000", "app}:", err, sizeof(err)),
                     IMK_EINVAL);
    assert_int_equal(imk_cluster_check_config("", "app{1}:", err, sizeof(err)), 0);
}

static void test_redirects_good(void **state)
{
    (void)state;
    imk_cluster_redirect_t r;
    assert_int_equal(redirect("MOVED 3999 127.0.0.1:6381", &r), 0);
    assert_int_equal(r.kind, IMK_CLUSTER_MOVED);
    assert_int_equal(r.slot, 3999);
    assert_string_equal(r.addr.host, "127.0.0.1");
    assert_int_equal(r.addr.port, 6381);

    assert_int_equal(redirect("ASK 0 10.1.2.3:7000", &r), 0);
    assert_int_equal(r.kind, IMK_CLUSTER_ASK);
    assert_int_equal(r.slot, 0);
    assert_string_equal(r.addr.host, "10.1.2.3");
    assert_int_equal(r.addr.port, 7000);

    /* Redis 7 leaves the host out when it is the node's own. */
    assert_int_equal(redirect("MOVED 16383 :6381", &r), 0);
    assert_int_equal(r.slot, 16383);
    assert_string_equal(r.addr.host, "");
    assert_int_equal(r.addr.port, 6381);

    /* IPv6, unbracketed: the last colon splits. */
    assert_int_equal(redirect("MOVED 1 ::1:7000", &r), 0);
    assert_string_equal(r.addr.host, "::1");
    assert_int_equal(r.addr.port, 7000);
    assert_int_equal(redirect("ASK 12 2001:db8::7:65535", &r), 0);
    assert_string_equal(r.addr.host, "2001:db8::7");
    assert_int_equal(r.addr.port, 65535);

    /* Only len bytes are read. */
    assert_int_equal(imk_cluster_parse_redirect("MOVED 7 h:12345", 12, &r), 0);
    assert_int_equal(r.addr.port, 12);
}

static void test_redirects_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "MOVED",
        "MOVED ",
        "MOVED 1",
        "MOVED 1 ",
        "MOVED 1 h",
        "MOVED 1 h:",
        "MOVED 1 h:0",
        "MOVED 1 h:65536",
        "MOVED 1 h:7x",
        "MOVED 16384 h:1",
        "MOVED -1 h:1",
        "MOVED 1234567 h:1",
        "MOVED x h:1",
        "MOVED  1 h:1",
        "MOVED 1  h:1",
        "MOVED 1 h:1 ",
        "MOVED 1 h h:1",
        "moved 1 h:1",
        "ASK",
        "ASK 1",
        "ASKING 1 h:1",
        "MOVEDX 1 h:1",
        "ERR unknown command",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "CLUSTERDOWN The cluster is down",
    };
    imk_cluster_redirect_t r;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (redirect(bad[i], &r) != IMK_EINVAL) {
            fail_msg("redirect accepted: \"%s\"", bad[i]);
        }
    }
    /* A NUL inside the host. */
    assert_int_equal(imk_cluster_parse_redirect("MOVED 1 h\0x:1", 13, &r), IMK_EINVAL);
}

/* ---- slot maps ------------------------------------------------------------------------- */

/* RESP from a compact notation: space-separated tokens, "*N" an array of N, ":N" an integer,
 * "$text" a bulk string ("$" alone: empty), "+text" a status, "~" a nil. Caller frees. */
static char *resp(const char *spec)
{
    size_t cap = strlen(spec) * 4 + 64;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t n = 0;
    const char *p = spec;
    while (*p != '\0') {
        const char *end = strchr(p, ' ');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            int w;
            if (p[0] == '$') {
                w = snprintf(out + n, cap - n, "$%zu\r\n%.*s\r\n", len - 1, (int)len - 1, p + 1);
            } else if (p[0] == '~') {
                w = snprintf(out + n, cap - n, "$-1\r\n");
            } else {
                w = snprintf(out + n, cap - n, "%.*s\r\n", (int)len, p);
            }
            assert_true(w > 0 && (size_t)w < cap - n);
            n += (size_t)w;
        }
        p += len;
        while (*p == ' ') {
            p++;
        }
    }
    out[n] = '\0';
    return out;
}

/* The reply hiredis decodes from bytes fed in two pieces cut at split. Caller frees with
 * freeReplyObject. */
static redisReply *decode_split(const char *bytes, size_t len, size_t split)
{
    redisReader *reader = redisReaderCreate();
    assert_non_null(reader);
    void *reply = NULL;
    assert_int_equal(redisReaderFeed(reader, bytes, split), REDIS_OK);
    assert_int_equal(redisReaderFeed(reader, bytes + split, len - split), REDIS_OK);
    assert_int_equal(redisReaderGetReply(reader, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(reader);
    return reply;
}

static redisReply *decode(const char *spec)
{
    char *bytes = resp(spec);
    redisReply *r = decode_split(bytes, strlen(bytes), 0);
    free(bytes);
    return r;
}

static int map_from(imk_cluster_map_t *m, const char *spec, const imk_cluster_addr_t *asked)
{
    redisReply *r = decode(spec);
    int rc = imk_cluster_map_from_reply(m, r, asked);
    freeReplyObject(r);
    return rc;
}

static imk_cluster_map_t *map_new(void)
{
    imk_cluster_map_t *m = malloc(sizeof(*m));
    assert_non_null(m);
    memset(m, 0x5a, sizeof(*m)); /* garbage: the functions must set everything */
    return m;
}

static void assert_map_empty(const imk_cluster_map_t *m)
{
    assert_int_equal(m->n, 0);
    for (int s = 0; s < IMK_CLUSTER_SLOTS; s++) {
        assert_int_equal(m->owner[s], -1);
    }
}

/* Each slot range's owner, as the index of its master. */
static void assert_owners(const imk_cluster_map_t *m, int from, int to, int owner)
{
    for (int s = from; s <= to; s++) {
        if (m->owner[s] != owner) {
            fail_msg("slot %d: owner %d, expected %d", s, m->owner[s], owner);
        }
    }
}

/* What a Redis 7.0 cluster of 3 masters and 3 replicas answers (ids shortened), the last
 * master with the node metadata Redis 7 appends (hostname). */
static const char THREE_MASTERS[] =
    "*3 "
    "*4 :0 :5460 *3 $127.0.0.1 :7000 $a1 *3 $127.0.0.1 :7004 $d4 "
    "*4 :5461 :10922 *3 $127.0.0.1 :7001 $b2 *3 $127.0.0.1 :7005 $e5 "
    "*4 :10923 :16383 *4 $127.0.0.1 :7002 $c3 *2 $hostname $node-c "
    "*3 $127.0.0.1 :7003 $f6";

static void test_map_three_masters(void **state)
{
    (void)state;
    imk_cluster_map_t *m = map_new();
    char *bytes = resp(THREE_MASTERS);
    size_t len = strlen(bytes);
    for (size_t split = 0; split <= len; split++) {
        redisReply *r = decode_split(bytes, len, split);
        assert_int_equal(imk_cluster_map_from_reply(m, r, NULL), 0);
        freeReplyObject(r);
        assert_int_equal(m->n, 3);
        for (int i = 0; i < 3; i++) {
            assert_string_equal(m->masters[i].host, "127.0.0.1");
            assert_int_equal(m->masters[i].port, 7000 + i);
        }
        assert_owners(m, 0, 5460, 0);
        assert_owners(m, 5461, 10922, 1);
        assert_owners(m, 10923, 16383, 2);
    }
    free(bytes);
    imk_cluster_addr_t a = {"127.0.0.1", 7001};
    assert_int_equal(imk_cluster_map_find(m, &a), 1);
    a.port = 7003; /* a replica */
    assert_int_equal(imk_cluster_map_find(m, &a), -1);
    free(m);
}

static void test_map_shapes(void **state)
{
    (void)state;
    imk_cluster_map_t *m = map_new();
    /* Several ranges of one master, in any order, with gaps; no replicas. */
    assert_int_equal(map_from(m,
                              "*3 *3 :100 :199 *2 $10.0.0.2 :6379 "
                              "*3 :0 :9 *3 $10.0.0.1 :6379 $id "
                              "*3 :16383 :16383 *2 $10.0.0.2 :6379",
                              NULL),
                     0);
    assert_int_equal(m->n, 2);
    assert_string_equal(m->masters[0].host, "10.0.0.2");
    assert_string_equal(m->masters[1].host, "10.0.0.1");
    assert_owners(m, 0, 9, 1);
    assert_owners(m, 10, 99, -1);
    assert_owners(m, 100, 199, 0);
    assert_owners(m, 200, 16382, -1);
    assert_owners(m, 16383, 16383, 0);

    /* No slots assigned yet. */
    assert_int_equal(map_from(m, "*0", NULL), 0);
    assert_map_empty(m);
    free(m);
}

static void test_map_empty_ip_and_unknown(void **state)
{
    (void)state;
    imk_cluster_map_t *m = map_new();
    imk_cluster_addr_t asked = {"192.168.1.9", 7000};
    /* An empty ip is the node that was asked (its host; the port is the reply's). */
    static const char spec[] = "*3 *3 :0 :99 *3 $ :7001 $a "
                               "*4 :100 :199 *3 $? :7002 $b *3 $? :7003 $c "
                               "*3 :200 :16383 *3 $10.0.0.1 :7000 $d";
    assert_int_equal(map_from(m, spec, &asked), 0);
    assert_int_equal(m->n, 2);
    assert_string_equal(m->masters[0].host, "192.168.1.9");
    assert_int_equal(m->masters[0].port, 7001);
    assert_string_equal(m->masters[1].host, "10.0.0.1");
    assert_owners(m, 0, 99, 0);
    assert_owners(m, 100, 199, -1); /* "?": endpoint unknown */
    assert_owners(m, 200, 16383, 1);
    /* Without the asked node's address, an empty ip is malformed. */
    assert_int_equal(map_from(m, spec, NULL), IMK_EINVAL);
    assert_map_empty(m);
    /* A range only "?" knows. */
    assert_int_equal(map_from(m, "*1 *3 :0 :16383 *2 $? :7000", NULL), 0);
    assert_map_empty(m);
    free(m);
}

static void test_map_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        /* Wrong types. */
        "+OK",
        "-ERR",
        ":1",
        "~",
        "*1 :1",
        "*1 $x",
        "*1 *2 :0 :1",
        "*1 *3 $0 :1 *2 $h :1",
        "*1 *3 :0 $1 *2 $h :1",
        "*1 *3 :0 :1 $h",
        "*1 *3 :0 :1 *1 $h",
        "*1 *3 :0 :1 *2 :1 :1",
        "*1 *3 :0 :1 *2 $h $1",
        "*1 *3 :0 :1 *2 ~ :1",
        "*1 *3 :0 :1 *3 $h :1 :7",
        "*1 *4 :0 :1 *2 $h :1 :5",
        "*1 *4 :0 :1 *2 $h :1 *1 $r",
        "*1 *4 :0 :1 *2 $h :1 *2 $r $1",
        "*1 *3 ~ :1 *2 $h :1",
        /* Slots out of range, start after end, overlapping ranges. */
        "*1 *3 :0 :16384 *2 $h :1",
        "*1 *3 :-1 :1 *2 $h :1",
        "*1 *3 :16384 :16384 *2 $h :1",
        "*1 *3 :9223372036854775807 :1 *2 $h :1",
        "*1 *3 :10 :9 *2 $h :1",
        "*2 *3 :0 :10 *2 $h :1 *3 :10 :20 *2 $g :1",
        "*2 *3 :0 :10 *2 $h :1 *3 :5 :5 *2 $h :1",
        /* Bad ports, of the master or of a replica, unknown endpoints included. */
        "*1 *3 :0 :1 *2 $h :0",
        "*1 *3 :0 :1 *2 $h :-1",
        "*1 *3 :0 :1 *2 $h :65536",
        "*1 *3 :0 :1 *2 $? :0",
        "*1 *4 :0 :1 *2 $h :1 *2 $r :70000",
        /* Hosts with spaces or control bytes. */
        "*1 *3 :0 :1 *2 $h\x01 :1",
    };
    imk_cluster_map_t *m = map_new();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (map_from(m, bad[i], NULL) != IMK_EINVAL) {
            fail_msg("reply accepted: %s", bad[i]);
        }
        assert_map_empty(m);
    }
    /* A space inside a host (the notation cannot write one). */
    redisReply *r = decode("*1 *3 :0 :1 *2 $hx :1");
    r->element[0]->element[2]->element[0]->str[1] = ' ';
    assert_int_equal(imk_cluster_map_from_reply(m, r, NULL), IMK_EINVAL);
    freeReplyObject(r);
    assert_int_equal(imk_cluster_map_from_reply(m, NULL, NULL), IMK_EINVAL);
    assert_map_empty(m);
    free(m);
}

/* Limits: a host of IMK_CLUSTER_HOST_MAX - 1 bytes fits, one more does not; 128 masters
 * fit, 129 are IMK_ETOOBIG. */
static void test_map_limits(void **state)
{
    (void)state;
    imk_cluster_map_t *m = map_new();
    char host[IMK_CLUSTER_HOST_MAX + 1];
    memset(host, 'h', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    char spec[1024];
    snprintf(spec, sizeof(spec), "*1 *3 :0 :1 *2 $%s :1", host + 1);
    assert_int_equal(map_from(m, spec, NULL), 0);
    assert_int_equal(strlen(m->masters[0].host), IMK_CLUSTER_HOST_MAX - 1);
    snprintf(spec, sizeof(spec), "*1 *3 :0 :1 *2 $%s :1", host);
    assert_int_equal(map_from(m, spec, NULL), IMK_EINVAL);

    char *many = malloc(64 * 130);
    assert_non_null(many);
    for (int masters = 128; masters <= 129; masters++) {
        size_t n = (size_t)snprintf(many, 64, "*%d", masters);
        for (int i = 0; i < masters; i++) {
            n += (size_t)snprintf(many + n, 64, " *3 :%d :%d *2 $h :%d", i, i, 1000 + i);
        }
        int rc = map_from(m, many, NULL);
        if (masters == 128) {
            assert_int_equal(rc, 0);
            assert_int_equal(m->n, 128);
            assert_int_equal(m->owner[127], 127);
            assert_int_equal(m->masters[127].port, 1127);
        } else {
            assert_int_equal(rc, IMK_ETOOBIG);
            assert_map_empty(m);
        }
    }
    free(many);
    free(m);
}

/* The master of slot among m masters as `redis-cli --cluster create` splits the slots. */
static int create_master_of(uint16_t slot, int m)
{
    float per = (float)IMK_CLUSTER_SLOTS / (float)m, cursor = 0.0f;
    long first = 0;
    for (int i = 0; i < m; i++) {
        long last = lroundf(cursor + per - 1);
        if (last > IMK_CLUSTER_SLOTS || i == m - 1) {
            last = IMK_CLUSTER_SLOTS - 1;
        }
        if (slot >= first && slot <= last) {
            return i;
        }
        first = last + 1;
        cursor += per;
    }
    return -1;
}

static void test_job_streams_one_redis(void **state)
{
    (void)state;
    char names[4][IMK_KEY_MAX];
    assert_int_equal(imk_cluster_job_streams(names, 4, "imkit:", false), 0);
    assert_string_equal(names[0], "imkit:jobs:0");
    assert_string_equal(names[3], "imkit:jobs:3");
    assert_int_equal(imk_cluster_job_streams(names, 0, "imkit:", false), IMK_EINVAL);
}

/* On a cluster the streams spread as the slots do: for every count of masters from 1 to 8
 * and partitions k times that (up to 256), each master of a cluster made by redis-cli holds
 * exactly k streams; each name keeps its partition and carries its tag. */
static void test_job_streams_spread_over_masters(void **state)
{
    (void)state;
    static char names[256][IMK_KEY_MAX];
    for (int m = 1; m <= 8; m++) {
        for (int p = m; p <= 256; p += m) {
            assert_int_equal(imk_cluster_job_streams(names, p, "imkit:", true), 0);
            int held[8] = {0};
            for (int i = 0; i < p; i++) {
                char head[32];
                snprintf(head, sizeof(head), "imkit:jobs:%d:{j", i);
                assert_memory_equal(names[i], head, strlen(head));
                int master = create_master_of(imk_cluster_slot(names[i], strlen(names[i])), m);
                assert_in_range(master, 0, m - 1);
                held[master]++;
            }
            for (int i = 0; i < m; i++) {
                assert_int_equal(held[i], p / m);
            }
        }
    }
    assert_int_equal(imk_cluster_job_streams(names, 257, "imkit:", true), IMK_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_values),
        cmocka_unit_test(test_slot_hash_tags),
        cmocka_unit_test(test_seeds_good),
        cmocka_unit_test(test_seeds_bad),
        cmocka_unit_test(test_check_config),
        cmocka_unit_test(test_redirects_good),
        cmocka_unit_test(test_redirects_bad),
        cmocka_unit_test(test_map_three_masters),
        cmocka_unit_test(test_map_shapes),
        cmocka_unit_test(test_map_empty_ip_and_unknown),
        cmocka_unit_test(test_map_malformed),
        cmocka_unit_test(test_map_limits),
        cmocka_unit_test(test_job_streams_one_redis),
        cmocka_unit_test(test_job_streams_spread_over_masters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
