/* Unit tests of common/src/job.c through imkit/job.h: job and answer envelopes round trips,
 * decoding of hostile bytes (every truncation, wrong version, missing fields, wrong types,
 * trailing bytes, unknown fields) and the imk_mp_* argument writer. Envelopes to decode are
 * built here with msgpack-c's own packer, so the decoder is checked against an outside
 * writer and the writer against msgpack-c's reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "imkit/err.h"
#include "imkit/job.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static imk_str_t S(const char *s)
{
    return (imk_str_t){s, strlen(s)};
}

static void assert_str_eq(imk_str_t got, imk_str_t want)
{
    assert_int_equal(got.len, want.len);
    if (want.len > 0) {
        assert_memory_equal(got.ptr, want.ptr, want.len);
    }
}

static void assert_job_eq(const imk_job_t *got, const imk_job_t *want)
{
    assert_int_equal(got->v, IMK_JOB_VERSION);
    assert_str_eq(got->kind, want->kind);
    assert_str_eq(got->job_id, want->job_id);
    assert_str_eq(got->gw, want->gw);
    assert_true(got->conn == want->conn);
    assert_true(got->req == want->req);
    assert_str_eq(got->from, want->from);
    assert_true(got->at == want->at);
    assert_str_eq(got->args, want->args);
    assert_str_eq(got->home, want->home);
}

static void assert_answer_eq(const imk_answer_t *got, const imk_answer_t *want)
{
    assert_true(got->conn == want->conn);
    assert_true(got->req == want->req);
    assert_str_eq(got->status, want->status);
    assert_str_eq(got->body, want->body);
}

/* A copy of exactly len bytes on the heap, so ASan sees any read past the end. */
static char *dup_exact(const char *data, size_t len)
{
    char *p = malloc(len ? len : 1);
    assert_non_null(p);
    if (len > 0) {
        memcpy(p, data, len);
    }
    return p;
}

/* The copy the last decode read from: kept until the next one, since decoded slices borrow
 * from it. */
static char *held;

static const char *hold_exact(const char *data, size_t len)
{
    free(held);
    held = dup_exact(data, len);
    return held;
}

static int free_held(void **state)
{
    (void)state;
    free(held);
    held = NULL;
    return 0;
}

static int job_decode_exact(const char *data, size_t len, imk_job_t *job)
{
    return imk_job_decode(hold_exact(data, len), len, job);
}

static int answer_decode_exact(const char *data, size_t len, imk_answer_t *answer)
{
    return imk_answer_decode(hold_exact(data, len), len, answer);
}

static const char ARGS_BYTES[] = "\x82\xa4room\xa2r1\xa4text\xa5hi\x00\xff!";

static imk_job_t sample_job(void)
{
    imk_job_t job = {
        .v = IMK_JOB_VERSION,
        .kind = S("imkit_msg_send"),
        .job_id = S("gw-1:42"),
        .gw = S("gw-1"),
        .conn = 7,
        .req = 42,
        .from = S("alice"),
        .at = INT64_C(1700000000123),
        .args = {ARGS_BYTES, sizeof(ARGS_BYTES) - 1},
        .home = S("r1"),
    };
    return job;
}

static imk_answer_t sample_answer(void)
{
    imk_answer_t a = {
        .conn = 7,
        .req = 42,
        .status = S("ok"),
        .body = S("{\"seq\":1}"),
    };
    return a;
}

/* ---- an envelope builder on msgpack-c's packer ------------------------------------------ */

enum vkind { V_END, V_STR, V_BIN, V_INT, V_UINT, V_NIL, V_BOOL, V_FLOAT, V_ARRAY, V_MAP, V_EXT };

struct fld {
    const char *name;
    enum vkind kind;
    int64_t i;
    uint64_t u;
    const char *s;
};

static void pack_value(msgpack_packer *pk, const struct fld *f)
{
    switch (f->kind) {
    case V_STR:
        msgpack_pack_str(pk, strlen(f->s));
        msgpack_pack_str_body(pk, f->s, strlen(f->s));
        break;
    case V_BIN:
        msgpack_pack_bin(pk, strlen(f->s));
        msgpack_pack_bin_body(pk, f->s, strlen(f->s));
        break;
    case V_INT:
        msgpack_pack_int64(pk, f->i);
        break;
    case V_UINT:
        msgpack_pack_uint64(pk, f->u);
        break;
    case V_NIL:
        msgpack_pack_nil(pk);
        break;
    case V_BOOL:
        msgpack_pack_true(pk);
        break;
    case V_FLOAT:
        msgpack_pack_double(pk, 1.5);
        break;
    case V_ARRAY:
        msgpack_pack_array(pk, 2);
        msgpack_pack_int(pk, 1);
        msgpack_pack_str(pk, 1);
        msgpack_pack_str_body(pk, "x", 1);
        break;
    case V_MAP:
        msgpack_pack_map(pk, 1);
        msgpack_pack_str(pk, 1);
        msgpack_pack_str_body(pk, "k", 1);
        msgpack_pack_map(pk, 1);
        msgpack_pack_int(pk, 3);
        msgpack_pack_nil(pk);
        break;
    case V_EXT:
        msgpack_pack_ext(pk, 2, 5);
        msgpack_pack_ext_body(pk, "ab", 2);
        break;
    case V_END:
        break;
    }
}

/* Packs a map of the fields of base (V_END-terminated), where a field named in override
 * takes that value instead (V_END in override: the field is left out), then extra. */
static void build(msgpack_sbuffer *sb, const struct fld *base, const struct fld *override,
                  const struct fld *extra)
{
    const struct fld *use[32];
    size_t n = 0;
    for (const struct fld *b = base; b->name != NULL; b++) {
        const struct fld *f = b;
        for (const struct fld *o = override; o != NULL && o->name != NULL; o++) {
            if (strcmp(o->name, b->name) == 0) {
                f = o;
            }
        }
        if (f->kind != V_END) {
            use[n++] = f;
        }
    }
    for (const struct fld *e = extra; e != NULL && e->name != NULL; e++) {
        use[n++] = e;
    }
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_str(&pk, strlen(use[i]->name));
        msgpack_pack_str_body(&pk, use[i]->name, strlen(use[i]->name));
        pack_value(&pk, use[i]);
    }
}

static const struct fld JOB_FIELDS[] = {
    {"v", V_INT, 1, 0, NULL},
    {"kind", V_STR, 0, 0, "imkit_room_read"},
    {"job_id", V_STR, 0, 0, "j-1"},
    {"gw", V_STR, 0, 0, "gw-a"},
    {"conn", V_INT, 3, 0, NULL},
    {"req", V_INT, 9, 0, NULL},
    {"from", V_STR, 0, 0, "bob"},
    {"at", V_INT, 1234, 0, NULL},
    {"args", V_BIN, 0, 0, "\x81\xa4room\xa1r"},
    {NULL, V_END, 0, 0, NULL},
};

static const struct fld ANSWER_FIELDS[] = {
    {"conn", V_INT, 3, 0, NULL},
    {"req", V_INT, 9, 0, NULL},
    {"status", V_STR, 0, 0, "not_found"},
    {"body", V_STR, 0, 0, "room: r1"},
    {NULL, V_END, 0, 0, NULL},
};

static int job_with(const struct fld *override, const struct fld *extra, imk_job_t *job)
{
    msgpack_sbuffer sb;
    build(&sb, JOB_FIELDS, override, extra);
    int rc = job_decode_exact(sb.data, sb.size, job);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static int answer_with(const struct fld *override, const struct fld *extra, imk_answer_t *a)
{
    msgpack_sbuffer sb;
    build(&sb, ANSWER_FIELDS, override, extra);
    int rc = answer_decode_exact(sb.data, sb.size, a);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* ---- round trips ------------------------------------------------------------------------ */

static void test_job_roundtrip(void **state)
{
    (void)state;
    imk_job_t in = sample_job(), out;
    imk_buf_t buf = IMK_BUF_INIT;

    assert_int_equal(imk_job_encode(&in, &buf), 0);
    assert_int_equal(job_decode_exact(buf.data, buf.len, &out), 0);
    assert_job_eq(&out, &in);

    /* The decoded slices point into the input (borrowed), not into a copy. */
    assert_int_equal(imk_job_decode(buf.data, buf.len, &out), 0);
    assert_true(out.kind.ptr >= buf.data && out.kind.ptr < buf.data + buf.len);
    assert_true(out.args.ptr >= buf.data && out.args.ptr < buf.data + buf.len);
    imk_buf_deinit(&buf);
}

static void test_job_roundtrip_edges(void **state)
{
    (void)state;
    /* Empty optional strings (NULL pointers too), zero and extreme numbers, big args. */
    size_t big_len = 200000;
    char *big = malloc(big_len);
    assert_non_null(big);
    for (size_t i = 0; i < big_len; i++) {
        big[i] = (char)(i * 31);
    }
    imk_job_t cases[] = {
        {.kind = S("k"),
         .job_id = {NULL, 0},
         .gw = {NULL, 0},
         .from = {NULL, 0},
         .args = {NULL, 0}},
        {.kind = S("k"), .conn = 0, .req = 0, .at = -1},
        {.kind = S("k"), .conn = (uint64_t)INT64_MAX, .req = (uint64_t)INT64_MAX, .at = INT64_MIN},
        {.kind = S("k"), .conn = 1u << 31, .req = UINT64_C(1) << 32, .at = INT64_MAX},
        {.kind = S("imkit_msg_send"), .job_id = S("x"), .args = {big, big_len}},
        {.kind = {"k\0k", 3}, .from = {"a\0b", 3}, .gw = S("g"), .args = {"\0", 1}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        imk_buf_t buf = IMK_BUF_INIT;
        imk_job_t out;
        assert_int_equal(imk_job_encode(&cases[i], &buf), 0);
        assert_int_equal(job_decode_exact(buf.data, buf.len, &out), 0);
        assert_job_eq(&out, &cases[i]);
        imk_buf_deinit(&buf);
    }
    free(big);
}

/* conn and req are uint64_t in the header: every value of the type must survive a round
 * trip. The encoder packs them as int64, so a value above INT64_MAX becomes a negative
 * integer that the decoder then refuses. */
static void test_job_roundtrip_conn_above_int64_max(void **state)
{
    (void)state;
    imk_job_t in = sample_job(), out;
    imk_buf_t buf = IMK_BUF_INIT;
    in.conn = UINT64_MAX;
    in.req = (uint64_t)INT64_MAX + 1;

    assert_int_equal(imk_job_encode(&in, &buf), 0);
    int rc = job_decode_exact(buf.data, buf.len, &out);
    imk_buf_deinit(&buf);
    if (rc != 0) {
        fail_msg("conn %llu, req %llu: the encoder's own output decoded to %s",
                 (unsigned long long)in.conn, (unsigned long long)in.req, imk_strerror(rc));
    }
    assert_job_eq(&out, &in);
}

static void test_answer_roundtrip(void **state)
{
    (void)state;
    imk_answer_t cases[] = {
        sample_answer(),
        {.conn = 0, .req = 0, .status = S("forbidden"), .body = {NULL, 0}},
        {.conn = (uint64_t)INT64_MAX, .req = 1, .status = S("ok"), .body = {"{}\0", 3}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        imk_buf_t buf = IMK_BUF_INIT;
        imk_answer_t out;
        assert_int_equal(imk_answer_encode(&cases[i], &buf), 0);
        assert_int_equal(answer_decode_exact(buf.data, buf.len, &out), 0);
        assert_answer_eq(&out, &cases[i]);
        imk_buf_deinit(&buf);
    }
}

static void test_encode_appends(void **state)
{
    (void)state;
    imk_job_t in = sample_job(), out;
    imk_answer_t a = sample_answer(), aout;
    imk_buf_t buf = IMK_BUF_INIT;

    assert_int_equal(imk_buf_append_str(&buf, "prefix"), 0);
    assert_int_equal(imk_job_encode(&in, &buf), 0);
    size_t job_end = buf.len;
    assert_int_equal(imk_answer_encode(&a, &buf), 0);
    assert_memory_equal(buf.data, "prefix", 6);
    assert_int_equal(imk_job_decode(buf.data + 6, job_end - 6, &out), 0);
    assert_job_eq(&out, &in);
    assert_int_equal(imk_answer_decode(buf.data + job_end, buf.len - job_end, &aout), 0);
    assert_answer_eq(&aout, &a);
    imk_buf_deinit(&buf);
}

/* The two envelopes are not interchangeable. */
static void test_cross_decode(void **state)
{
    (void)state;
    imk_job_t job = sample_job(), jout;
    imk_answer_t a = sample_answer(), aout;
    imk_buf_t jb = IMK_BUF_INIT, ab = IMK_BUF_INIT;

    assert_int_equal(imk_job_encode(&job, &jb), 0);
    assert_int_equal(imk_answer_encode(&a, &ab), 0);
    assert_int_equal(job_decode_exact(ab.data, ab.len, &jout), IMK_EPROTO);
    assert_int_equal(answer_decode_exact(jb.data, jb.len, &aout), IMK_EPROTO);
    imk_buf_deinit(&jb);
    imk_buf_deinit(&ab);
}

/* ---- hostile bytes ---------------------------------------------------------------------- */

static void test_job_truncated_every_offset(void **state)
{
    (void)state;
    imk_job_t in = sample_job(), out;
    imk_buf_t buf = IMK_BUF_INIT;

    assert_int_equal(imk_job_encode(&in, &buf), 0);
    for (size_t k = 0; k < buf.len; k++) {
        assert_int_equal(job_decode_exact(buf.data, k, &out), IMK_EPROTO);
        /* The tail alone, from every offset, is not an envelope either. */
        assert_int_equal(job_decode_exact(buf.data + k + 1, buf.len - k - 1, &out), IMK_EPROTO);
    }
    assert_int_equal(job_decode_exact(buf.data, buf.len, &out), 0);
    imk_buf_deinit(&buf);
}

static void test_answer_truncated_every_offset(void **state)
{
    (void)state;
    imk_answer_t in = sample_answer(), out;
    imk_buf_t buf = IMK_BUF_INIT;

    assert_int_equal(imk_answer_encode(&in, &buf), 0);
    for (size_t k = 0; k < buf.len; k++) {
        assert_int_equal(answer_decode_exact(buf.data, k, &out), IMK_EPROTO);
        assert_int_equal(answer_decode_exact(buf.data + k + 1, buf.len - k - 1, &out), IMK_EPROTO);
    }
    assert_int_equal(answer_decode_exact(buf.data, buf.len, &out), 0);
    imk_buf_deinit(&buf);
}

static void test_job_builder_baseline(void **state)
{
    (void)state;
    imk_job_t job;
    imk_answer_t a;

    assert_int_equal(job_with(NULL, NULL, &job), 0);
    assert_int_equal(job.v, 1);
    assert_str_eq(job.kind, S("imkit_room_read"));
    assert_str_eq(job.job_id, S("j-1"));
    assert_str_eq(job.gw, S("gw-a"));
    assert_true(job.conn == 3 && job.req == 9 && job.at == 1234);
    assert_str_eq(job.from, S("bob"));
    assert_str_eq(job.args, S("\x81\xa4room\xa1r"));

    assert_int_equal(answer_with(NULL, NULL, &a), 0);
    assert_true(a.conn == 3 && a.req == 9);
    assert_str_eq(a.status, S("not_found"));
    assert_str_eq(a.body, S("room: r1"));
}

static void test_job_wrong_version(void **state)
{
    (void)state;
    imk_job_t job;
    const struct fld bad[][2] = {
        {{"v", V_INT, 0, 0, NULL}, {NULL, V_END, 0, 0, NULL}},
        {{"v", V_INT, 2, 0, NULL}, {NULL, V_END, 0, 0, NULL}},
        {{"v", V_INT, -1, 0, NULL}, {NULL, V_END, 0, 0, NULL}},
        {{"v", V_UINT, 0, UINT64_C(1) << 32 | 1, NULL}, {NULL, V_END, 0, 0, NULL}},
        {{"v", V_UINT, 0, UINT64_MAX, NULL}, {NULL, V_END, 0, 0, NULL}},
        {{"v", V_STR, 0, 0, "1"}, {NULL, V_END, 0, 0, NULL}},
        {{"v", V_FLOAT, 0, 0, NULL}, {NULL, V_END, 0, 0, NULL}},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(job_with(bad[i], NULL, &job), IMK_EPROTO);
    }
    const struct fld ok[] = {{"v", V_UINT, 0, 1, NULL}, {NULL, V_END, 0, 0, NULL}};
    assert_int_equal(job_with(ok, NULL, &job), 0);
}

static void test_missing_fields(void **state)
{
    (void)state;
    imk_job_t job;
    imk_answer_t a;

    for (const struct fld *f = JOB_FIELDS; f->name != NULL; f++) {
        const struct fld drop[] = {{f->name, V_END, 0, 0, NULL}, {NULL, V_END, 0, 0, NULL}};
        assert_int_equal(job_with(drop, NULL, &job), IMK_EPROTO);
    }
    for (const struct fld *f = ANSWER_FIELDS; f->name != NULL; f++) {
        const struct fld drop[] = {{f->name, V_END, 0, 0, NULL}, {NULL, V_END, 0, 0, NULL}};
        assert_int_equal(answer_with(drop, NULL, &a), IMK_EPROTO);
    }
    /* A key that only differs in case or length is not the field. */
    const struct fld drop_kind[] = {{"kind", V_END, 0, 0, NULL}, {NULL, V_END, 0, 0, NULL}};
    const struct fld near[] = {{"Kind", V_STR, 0, 0, "k"},
                               {"kin", V_STR, 0, 0, "k"},
                               {"kinds", V_STR, 0, 0, "k"},
                               {NULL, V_END, 0, 0, NULL}};
    assert_int_equal(job_with(drop_kind, near, &job), IMK_EPROTO);

    /* home came later: a job without it (JOB_FIELDS has none) decodes, home empty; one
     * with it of another type does not. */
    assert_int_equal(job_with(NULL, NULL, &job), 0);
    assert_int_equal(job.home.len, 0);
    const struct fld home[] = {{"home", V_STR, 0, 0, "r9"}, {NULL, V_END, 0, 0, NULL}};
    assert_int_equal(job_with(NULL, home, &job), 0);
    assert_int_equal(job.home.len, 2);
    assert_memory_equal(job.home.ptr, "r9", 2);
    const struct fld bad_home[] = {{"home", V_INT, 5, 0, NULL}, {NULL, V_END, 0, 0, NULL}};
    assert_int_equal(job_with(NULL, bad_home, &job), IMK_EPROTO);
}

static void test_wrong_types(void **state)
{
    (void)state;
    static const enum vkind not_str[] = {V_INT, V_NIL, V_BOOL, V_FLOAT, V_ARRAY, V_MAP, V_EXT};
    static const enum vkind not_int[] = {V_STR,   V_BIN,   V_NIL, V_BOOL,
                                         V_FLOAT, V_ARRAY, V_MAP, V_EXT};
    imk_job_t job;
    imk_answer_t a;

    for (const struct fld *f = JOB_FIELDS; f->name != NULL; f++) {
        bool is_str = f->kind == V_STR || f->kind == V_BIN;
        const enum vkind *kinds = is_str ? not_str : not_int;
        size_t n =
            is_str ? sizeof(not_str) / sizeof(not_str[0]) : sizeof(not_int) / sizeof(not_int[0]);
        for (size_t k = 0; k < n; k++) {
            const struct fld bad[] = {{f->name, kinds[k], 1, 1, "1"}, {NULL, V_END, 0, 0, NULL}};
            assert_int_equal(job_with(bad, NULL, &job), IMK_EPROTO);
        }
    }
    for (const struct fld *f = ANSWER_FIELDS; f->name != NULL; f++) {
        bool is_str = f->kind == V_STR;
        const enum vkind *kinds = is_str ? not_str : not_int;
        size_t n =
            is_str ? sizeof(not_str) / sizeof(not_str[0]) : sizeof(not_int) / sizeof(not_int[0]);
        for (size_t k = 0; k < n; k++) {
            const struct fld bad[] = {{f->name, kinds[k], 1, 1, "1"}, {NULL, V_END, 0, 0, NULL}};
            assert_int_equal(answer_with(bad, NULL, &a), IMK_EPROTO);
        }
    }
}

/* Strings may come as msgpack str or bin (Redis hands back either). */
static void test_str_or_bin(void **state)
{
    (void)state;
    imk_job_t job;
    imk_answer_t a;
    const struct fld jb[] = {{"kind", V_BIN, 0, 0, "kb"}, {"job_id", V_BIN, 0, 0, "jb"},
                             {"gw", V_BIN, 0, 0, "gb"},   {"from", V_BIN, 0, 0, "fb"},
                             {"args", V_STR, 0, 0, "as"}, {NULL, V_END, 0, 0, NULL}};
    assert_int_equal(job_with(jb, NULL, &job), 0);
    assert_str_eq(job.kind, S("kb"));
    assert_str_eq(job.job_id, S("jb"));
    assert_str_eq(job.gw, S("gb"));
    assert_str_eq(job.from, S("fb"));
    assert_str_eq(job.args, S("as"));

    const struct fld ab[] = {
        {"status", V_BIN, 0, 0, "ok"}, {"body", V_BIN, 0, 0, "{}"}, {NULL, V_END, 0, 0, NULL}};
    assert_int_equal(answer_with(ab, NULL, &a), 0);
    assert_str_eq(a.status, S("ok"));
    assert_str_eq(a.body, S("{}"));
}

static void test_bad_values(void **state)
{
    (void)state;
    imk_job_t job;
    imk_answer_t a;
    const struct fld bad_job[][2] = {
        {{"kind", V_STR, 0, 0, ""}, {NULL, V_END, 0, 0, NULL}},
        {{"conn", V_INT, -1, 0, NULL}, {NULL, V_END, 0, 0, NULL}},
        {{"req", V_INT, INT64_MIN, 0, NULL}, {NULL, V_END, 0, 0, NULL}},
    };
    for (size_t i = 0; i < sizeof(bad_job) / sizeof(bad_job[0]); i++) {
        assert_int_equal(job_with(bad_job[i], NULL, &job), IMK_EPROTO);
    }
    const struct fld bad_answer[][2] = {
        {{"status", V_STR, 0, 0, ""}, {NULL, V_END, 0, 0, NULL}},
        {{"conn", V_INT, -5, 0, NULL}, {NULL, V_END, 0, 0, NULL}},
        {{"req", V_INT, -1, 0, NULL}, {NULL, V_END, 0, 0, NULL}},
    };
    for (size_t i = 0; i < sizeof(bad_answer) / sizeof(bad_answer[0]); i++) {
        assert_int_equal(answer_with(bad_answer[i], NULL, &a), IMK_EPROTO);
    }
    /* Empty optional strings and a negative clock are fine. */
    const struct fld ok[] = {{"gw", V_STR, 0, 0, ""},     {"from", V_STR, 0, 0, ""},
                             {"job_id", V_STR, 0, 0, ""}, {"args", V_BIN, 0, 0, ""},
                             {"at", V_INT, -7, 0, NULL},  {NULL, V_END, 0, 0, NULL}};
    assert_int_equal(job_with(ok, NULL, &job), 0);
    assert_true(job.gw.len == 0 && job.from.len == 0 && job.args.len == 0 && job.at == -7);
    const struct fld ok_body[] = {{"body", V_STR, 0, 0, ""}, {NULL, V_END, 0, 0, NULL}};
    assert_int_equal(answer_with(ok_body, NULL, &a), 0);
    assert_int_equal(a.body.len, 0);
}

static void test_trailing_bytes(void **state)
{
    (void)state;
    imk_job_t in = sample_job(), out;
    imk_answer_t a = sample_answer(), aout;
    imk_buf_t buf = IMK_BUF_INIT;

    assert_int_equal(imk_job_encode(&in, &buf), 0);
    size_t len = buf.len;
    assert_int_equal(imk_buf_append(&buf, "\xc0", 1), 0); /* a msgpack nil */
    assert_int_equal(job_decode_exact(buf.data, buf.len, &out), IMK_EPROTO);
    assert_int_equal(imk_job_encode(&in, &buf), 0); /* a second whole envelope */
    assert_int_equal(job_decode_exact(buf.data, buf.len, &out), IMK_EPROTO);
    assert_int_equal(job_decode_exact(buf.data, len, &out), 0);
    imk_buf_reset(&buf);

    assert_int_equal(imk_answer_encode(&a, &buf), 0);
    assert_int_equal(imk_buf_append(&buf, "\0", 1), 0);
    assert_int_equal(answer_decode_exact(buf.data, buf.len, &aout), IMK_EPROTO);
    imk_buf_deinit(&buf);
}

static void test_not_a_map(void **state)
{
    (void)state;
    imk_job_t job;
    imk_answer_t a;
    static const struct {
        const char *bytes;
        size_t len;
    } cases[] = {
        {"", 0},
        {"\xc0", 1},     /* nil */
        {"\x80", 1},     /* empty map: every field missing */
        {"\x90", 1},     /* empty array */
        {"\x91\x80", 2}, /* an array holding a map */
        {"\xa3"
         "abc",
         4},                         /* str */
        {"\xc1", 1},                 /* never used */
        {"\xdb\xff\xff\xff\xff", 5}, /* str32 claiming 4 GB */
        {"\xc6\xff\xff\xff\xff", 5}, /* bin32 likewise */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(job_decode_exact(cases[i].bytes, cases[i].len, &job), IMK_EPROTO);
        assert_int_equal(answer_decode_exact(cases[i].bytes, cases[i].len, &a), IMK_EPROTO);
    }
}

/* A few bytes claiming a container of billions of entries must be refused as truncated,
 * without asking for memory in proportion to the claim (STYLE.md: check every length
 * against its limit before allocating for network input). Each input runs in a child, so
 * a sanitizer's allocation-size abort is reported here as a failure, not a lost run. */
static void test_huge_claims(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
    } cases[] = {
        {"map32 of 4 billion pairs", "\xdf\xff\xff\xff\xff", 5},
        {"array32 of 4 billion items", "\xdd\xff\xff\xff\xff", 5},
        {"map of 1 pair holding an array32 of 4 billion", "\x81\xa1x\xdd\xff\xff\xff\xff", 8},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            imk_job_t job;
            imk_answer_t a;
            alarm(10);
            int ok = imk_job_decode(cases[i].bytes, cases[i].len, &job) == IMK_EPROTO &&
                     imk_answer_decode(cases[i].bytes, cases[i].len, &a) == IMK_EPROTO;
            _exit(ok ? 0 : 1);
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            print_error("decoding %s (%zu bytes): %s %d\n", cases[i].what, cases[i].len,
                        WIFEXITED(status) ? "exit" : "signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_unknown_fields_skipped(void **state)
{
    (void)state;
    imk_job_t job;
    imk_answer_t a;
    const struct fld extra[] = {
        {"zz", V_MAP, 0, 0, NULL},      {"arr", V_ARRAY, 0, 0, NULL},
        {"f", V_FLOAT, 0, 0, NULL},     {"n", V_NIL, 0, 0, NULL},
        {"e", V_EXT, 0, 0, NULL},       {"big", V_UINT, 0, UINT64_MAX, NULL},
        {"", V_STR, 0, 0, "empty key"}, {NULL, V_END, 0, 0, NULL}};
    assert_int_equal(job_with(NULL, extra, &job), 0);
    assert_str_eq(job.kind, S("imkit_room_read"));
    assert_true(job.conn == 3 && job.req == 9);
    assert_int_equal(answer_with(NULL, extra, &a), 0);
    assert_str_eq(a.status, S("not_found"));

    /* Keys that are not strings are unknown keys too. */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_str(&pk, 4);
    msgpack_pack_str_body(&pk, "oops", 4);
    msgpack_pack_bin(&pk, 6);
    msgpack_pack_bin_body(&pk, "status", 6); /* bin, not str: not the key */
    msgpack_pack_int(&pk, 1);
    for (const struct fld *f = ANSWER_FIELDS; f->name != NULL; f++) {
        msgpack_pack_str(&pk, strlen(f->name));
        msgpack_pack_str_body(&pk, f->name, strlen(f->name));
        pack_value(&pk, f);
    }
    assert_int_equal(answer_decode_exact(sb.data, sb.size, &a), 0);
    assert_str_eq(a.status, S("not_found"));
    msgpack_sbuffer_destroy(&sb);
}

/* ---- the imk_mp_* writer ---------------------------------------------------------------- */

static void unpack_one(const imk_buf_t *buf, size_t *off, msgpack_unpacked *msg)
{
    assert_int_equal(msgpack_unpack_next(msg, buf->data, buf->len, off), MSGPACK_UNPACK_SUCCESS);
}

static void test_mp_scalars(void **state)
{
    (void)state;
    static const int64_t ints[] = {
        0,  1,   127, 128,  255,  256,    65535,  65536,     INT32_MAX, UINT32_MAX,   INT64_MAX,
        -1, -32, -33, -128, -129, -32768, -32769, INT32_MIN, INT64_MIN, 1700000000123};
    imk_buf_t buf = IMK_BUF_INIT;
    imk_mp_t mp;
    msgpack_unpacked msg;
    size_t off = 0;

    imk_mp_init(&mp, &buf);
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        imk_mp_int(&mp, ints[i]);
    }
    imk_mp_bool(&mp, true);
    imk_mp_bool(&mp, false);
    imk_mp_str(&mp, "", 0);
    imk_mp_cstr(&mp, "héllo");
    imk_mp_str(&mp, "a\0b", 3);
    imk_mp_bin(&mp, "\x00\xff\x80", 3);
    imk_mp_bin(&mp, NULL, 0);
    assert_int_equal(mp.err, 0);

    msgpack_unpacked_init(&msg);
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        unpack_one(&buf, &off, &msg);
        if (ints[i] >= 0) {
            assert_int_equal(msg.data.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
            assert_true(msg.data.via.u64 == (uint64_t)ints[i]);
        } else {
            assert_int_equal(msg.data.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
            assert_true(msg.data.via.i64 == ints[i]);
        }
    }
    unpack_one(&buf, &off, &msg);
    assert_true(msg.data.type == MSGPACK_OBJECT_BOOLEAN && msg.data.via.boolean);
    unpack_one(&buf, &off, &msg);
    assert_true(msg.data.type == MSGPACK_OBJECT_BOOLEAN && !msg.data.via.boolean);
    unpack_one(&buf, &off, &msg);
    assert_true(msg.data.type == MSGPACK_OBJECT_STR && msg.data.via.str.size == 0);
    unpack_one(&buf, &off, &msg);
    assert_int_equal(msg.data.type, MSGPACK_OBJECT_STR);
    assert_int_equal(msg.data.via.str.size, strlen("héllo"));
    assert_memory_equal(msg.data.via.str.ptr, "héllo", strlen("héllo"));
    unpack_one(&buf, &off, &msg);
    assert_int_equal(msg.data.type, MSGPACK_OBJECT_STR);
    assert_int_equal(msg.data.via.str.size, 3);
    assert_memory_equal(msg.data.via.str.ptr, "a\0b", 3);
    unpack_one(&buf, &off, &msg);
    assert_int_equal(msg.data.type, MSGPACK_OBJECT_BIN);
    assert_int_equal(msg.data.via.bin.size, 3);
    assert_memory_equal(msg.data.via.bin.ptr, "\x00\xff\x80", 3);
    unpack_one(&buf, &off, &msg);
    assert_true(msg.data.type == MSGPACK_OBJECT_BIN && msg.data.via.bin.size == 0);
    assert_int_equal(off, buf.len);
    msgpack_unpacked_destroy(&msg);
    imk_buf_deinit(&buf);
}

static void test_mp_containers(void **state)
{
    (void)state;
    imk_buf_t buf = IMK_BUF_INIT;
    imk_mp_t mp;
    msgpack_unpacked msg;
    size_t off = 0;

    /* Sizes across every header width: fix, 16 and 32 bits. */
    static const uint32_t sizes[] = {0, 15, 16, 65535, 65536};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        imk_buf_reset(&buf);
        imk_mp_init(&mp, &buf);
        imk_mp_map(&mp, 2);
        imk_mp_cstr(&mp, "list");
        imk_mp_array(&mp, sizes[s]);
        for (uint32_t i = 0; i < sizes[s]; i++) {
            imk_mp_int(&mp, i);
        }
        imk_mp_cstr(&mp, "m");
        imk_mp_map(&mp, sizes[s]);
        for (uint32_t i = 0; i < sizes[s]; i++) {
            char key[16];
            snprintf(key, sizeof(key), "k%u", (unsigned)i);
            imk_mp_cstr(&mp, key);
            imk_mp_bool(&mp, i % 2 == 0);
        }
        assert_int_equal(mp.err, 0);

        msgpack_unpacked_init(&msg);
        off = 0;
        unpack_one(&buf, &off, &msg);
        assert_int_equal(off, buf.len);
        assert_int_equal(msg.data.type, MSGPACK_OBJECT_MAP);
        assert_int_equal(msg.data.via.map.size, 2);
        const msgpack_object *list = &msg.data.via.map.ptr[0].val;
        const msgpack_object *m = &msg.data.via.map.ptr[1].val;
        assert_int_equal(list->type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(list->via.array.size, sizes[s]);
        for (uint32_t i = 0; i < sizes[s]; i++) {
            assert_true(list->via.array.ptr[i].via.u64 == i);
        }
        assert_int_equal(m->type, MSGPACK_OBJECT_MAP);
        assert_int_equal(m->via.map.size, sizes[s]);
        if (sizes[s] > 0) {
            const msgpack_object_kv *last = &m->via.map.ptr[sizes[s] - 1];
            char key[16];
            int n = snprintf(key, sizeof(key), "k%u", (unsigned)(sizes[s] - 1));
            assert_int_equal(last->key.via.str.size, (size_t)n);
            assert_memory_equal(last->key.via.str.ptr, key, (size_t)n);
            assert_int_equal(last->val.via.boolean, (sizes[s] - 1) % 2 == 0);
        }
        msgpack_unpacked_destroy(&msg);
    }
    imk_buf_deinit(&buf);
}

static void test_mp_long_strings(void **state)
{
    (void)state;
    /* Lengths across the str8/str16/str32 and bin8/bin16/bin32 boundaries. */
    static const size_t lens[] = {31, 32, 255, 256, 65535, 65536, 300000};
    char *s = malloc(300000);
    assert_non_null(s);
    for (size_t i = 0; i < 300000; i++) {
        s[i] = (char)('a' + i % 26);
    }
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        imk_buf_t buf = IMK_BUF_INIT;
        imk_mp_t mp;
        msgpack_unpacked msg;
        size_t off = 0;
        imk_mp_init(&mp, &buf);
        imk_mp_str(&mp, s, lens[k]);
        imk_mp_bin(&mp, s, lens[k]);
        assert_int_equal(mp.err, 0);
        msgpack_unpacked_init(&msg);
        unpack_one(&buf, &off, &msg);
        assert_int_equal(msg.data.type, MSGPACK_OBJECT_STR);
        assert_int_equal(msg.data.via.str.size, lens[k]);
        assert_memory_equal(msg.data.via.str.ptr, s, lens[k]);
        unpack_one(&buf, &off, &msg);
        assert_int_equal(msg.data.type, MSGPACK_OBJECT_BIN);
        assert_int_equal(msg.data.via.bin.size, lens[k]);
        assert_memory_equal(msg.data.via.bin.ptr, s, lens[k]);
        assert_int_equal(off, buf.len);
        msgpack_unpacked_destroy(&msg);
        imk_buf_deinit(&buf);
    }
    free(s);
}

/* The writer appends to what the buffer holds, and a job built with it decodes. */
static void test_mp_args_in_job(void **state)
{
    (void)state;
    imk_buf_t args = IMK_BUF_INIT, env = IMK_BUF_INIT;
    imk_mp_t mp;
    imk_job_t job = sample_job(), out;

    assert_int_equal(imk_buf_append(&args, "\x81", 1), 0);
    imk_mp_init(&mp, &args);
    imk_mp_cstr(&mp, "room");
    imk_mp_cstr(&mp, "r1");
    assert_int_equal(mp.err, 0);
    assert_int_equal(args.len, 1 + 5 + 3);
    assert_memory_equal(args.data, "\x81\xa4room\xa2r1", 9);

    job.args = (imk_str_t){args.data, args.len};
    assert_int_equal(imk_job_encode(&job, &env), 0);
    assert_int_equal(imk_job_decode(env.data, env.len, &out), 0);
    assert_str_eq(out.args, job.args);
    imk_buf_deinit(&env);
    imk_buf_deinit(&args);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_roundtrip),
        cmocka_unit_test(test_job_roundtrip_edges),
        cmocka_unit_test(test_job_roundtrip_conn_above_int64_max),
        cmocka_unit_test(test_answer_roundtrip),
        cmocka_unit_test(test_encode_appends),
        cmocka_unit_test(test_cross_decode),
        cmocka_unit_test(test_job_truncated_every_offset),
        cmocka_unit_test(test_answer_truncated_every_offset),
        cmocka_unit_test(test_job_builder_baseline),
        cmocka_unit_test(test_job_wrong_version),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_str_or_bin),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_not_a_map),
        cmocka_unit_test(test_huge_claims),
        cmocka_unit_test(test_unknown_fields_skipped),
        cmocka_unit_test(test_mp_scalars),
        cmocka_unit_test(test_mp_containers),
        cmocka_unit_test(test_mp_long_strings),
        cmocka_unit_test(test_mp_args_in_job),
    };
    return cmocka_run_group_tests(tests, NULL, free_held);
}
