/* Job and answer envelopes in msgpack (msgpack-c), and the argument writer. */
#include "imkit/job.h"
#include "imkit/err.h"

#include <msgpack.h>
#include <string.h>

static int write_to_buf(void *data, const char *bytes, size_t len)
{
    imk_mp_t *mp = data;
    if (mp->err == 0 && imk_buf_append(mp->buf, bytes, len) != 0) {
        mp->err = IMK_ENOMEM;
    }
    return mp->err;
}

#define PACKER(mp) msgpack_packer pk = {(mp), write_to_buf}

void imk_mp_init(imk_mp_t *mp, imk_buf_t *buf)
{
    mp->buf = buf;
    mp->err = 0;
}

void imk_mp_map(imk_mp_t *mp, uint32_t n)
{
    PACKER(mp);
    msgpack_pack_map(&pk, n);
}

void imk_mp_array(imk_mp_t *mp, uint32_t n)
{
    PACKER(mp);
    msgpack_pack_array(&pk, n);
}

void imk_mp_str(imk_mp_t *mp, const char *s, size_t len)
{
    PACKER(mp);
    msgpack_pack_str(&pk, len);
    msgpack_pack_str_body(&pk, s, len);
}

void imk_mp_cstr(imk_mp_t *mp, const char *s)
{
    imk_mp_str(mp, s, strlen(s));
}

void imk_mp_int(imk_mp_t *mp, int64_t v)
{
    PACKER(mp);
    msgpack_pack_int64(&pk, v);
}

void imk_mp_bool(imk_mp_t *mp, bool v)
{
    PACKER(mp);
    if (v) {
        msgpack_pack_true(&pk);
    } else {
        msgpack_pack_false(&pk);
    }
}

void imk_mp_bin(imk_mp_t *mp, const void *data, size_t len)
{
    PACKER(mp);
    msgpack_pack_bin(&pk, len);
    msgpack_pack_bin_body(&pk, data, len);
}

static void pack_field_str(imk_mp_t *mp, const char *name, imk_str_t value)
{
    imk_mp_cstr(mp, name);
    imk_mp_str(mp, value.ptr != NULL ? value.ptr : "", value.len);
}

static void pack_field_int(imk_mp_t *mp, const char *name, int64_t value)
{
    imk_mp_cstr(mp, name);
    imk_mp_int(mp, value);
}

int imk_job_encode(const imk_job_t *job, imk_buf_t *out)
{
    imk_mp_t mp;
    imk_mp_init(&mp, out);
    imk_mp_map(&mp, 9);
    pack_field_int(&mp, "v", IMK_JOB_VERSION);
    pack_field_str(&mp, "kind", job->kind);
    pack_field_str(&mp, "job_id", job->job_id);
    pack_field_str(&mp, "gw", job->gw);
    pack_field_int(&mp, "conn", (int64_t)job->conn);
    pack_field_int(&mp, "req", (int64_t)job->req);
    pack_field_str(&mp, "from", job->from);
    pack_field_int(&mp, "at", job->at);
    imk_mp_cstr(&mp, "args");
    imk_mp_bin(&mp, job->args.ptr, job->args.len);
    return mp.err;
}

int imk_answer_encode(const imk_answer_t *answer, imk_buf_t *out)
{
    imk_mp_t mp;
    imk_mp_init(&mp, out);
    imk_mp_map(&mp, 4);
    pack_field_int(&mp, "conn", (int64_t)answer->conn);
    pack_field_int(&mp, "req", (int64_t)answer->req);
    pack_field_str(&mp, "status", answer->status);
    pack_field_str(&mp, "body", answer->body);
    return mp.err;
}

/* One field of an envelope: where to store it and what type it must have. */
struct field {
    const char *name;
    msgpack_object_type type; /* STR covers BIN too; POSITIVE_INTEGER covers NEGATIVE too */
    void *dst;
    bool seen;
};

static bool key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, name, n) == 0;
}

static int store_field(struct field *f, const msgpack_object *v)
{
    if (f->type == MSGPACK_OBJECT_STR) {
        imk_str_t *s = f->dst;
        if (v->type == MSGPACK_OBJECT_STR) {
            s->ptr = v->via.str.ptr;
            s->len = v->via.str.size;
        } else if (v->type == MSGPACK_OBJECT_BIN) {
            s->ptr = v->via.bin.ptr;
            s->len = v->via.bin.size;
        } else {
            return IMK_EPROTO;
        }
    } else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *(int64_t *)f->dst = (int64_t)v->via.u64;
    } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *(int64_t *)f->dst = v->via.i64;
    } else {
        return IMK_EPROTO;
    }
    f->seen = true;
    return 0;
}

/* Decodes a map whose every field in fields must appear; unknown keys are skipped, so a
 * newer writer may add fields. */
static int decode_map(const char *data, size_t len, struct field *fields, size_t nfields)
{
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);
    size_t off = 0;
    int rc = IMK_EPROTO;
    if (msgpack_unpack_next(&msg, data, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len ||
        msg.data.type != MSGPACK_OBJECT_MAP) {
        goto out;
    }
    const msgpack_object_map *map = &msg.data.via.map;
    for (uint32_t i = 0; i < map->size; i++) {
        for (size_t f = 0; f < nfields; f++) {
            if (!fields[f].seen && key_is(&map->ptr[i].key, fields[f].name) &&
                store_field(&fields[f], &map->ptr[i].val) != 0) {
                goto out;
            }
        }
    }
    for (size_t f = 0; f < nfields; f++) {
        if (!fields[f].seen) {
            goto out;
        }
    }
    rc = 0;
out:
    msgpack_unpacked_destroy(&msg);
    return rc;
}

int imk_job_decode(const char *data, size_t len, imk_job_t *job)
{
    int64_t v = 0, conn = 0, req = 0;
    memset(job, 0, sizeof(*job));
    struct field fields[] = {
        {"v", MSGPACK_OBJECT_POSITIVE_INTEGER, &v, false},
        {"kind", MSGPACK_OBJECT_STR, &job->kind, false},
        {"job_id", MSGPACK_OBJECT_STR, &job->job_id, false},
        {"gw", MSGPACK_OBJECT_STR, &job->gw, false},
        {"conn", MSGPACK_OBJECT_POSITIVE_INTEGER, &conn, false},
        {"req", MSGPACK_OBJECT_POSITIVE_INTEGER, &req, false},
        {"from", MSGPACK_OBJECT_STR, &job->from, false},
        {"at", MSGPACK_OBJECT_POSITIVE_INTEGER, &job->at, false},
        {"args", MSGPACK_OBJECT_STR, &job->args, false},
    };
    int rc = decode_map(data, len, fields, sizeof(fields) / sizeof(fields[0]));
    if (rc != 0 || v != IMK_JOB_VERSION || conn < 0 || req < 0 || job->kind.len == 0) {
        return IMK_EPROTO;
    }
    job->v = (uint32_t)v;
    job->conn = (uint64_t)conn;
    job->req = (uint64_t)req;
    return 0;
}

int imk_answer_decode(const char *data, size_t len, imk_answer_t *answer)
{
    int64_t conn = 0, req = 0;
    memset(answer, 0, sizeof(*answer));
    struct field fields[] = {
        {"conn", MSGPACK_OBJECT_POSITIVE_INTEGER, &conn, false},
        {"req", MSGPACK_OBJECT_POSITIVE_INTEGER, &req, false},
        {"status", MSGPACK_OBJECT_STR, &answer->status, false},
        {"body", MSGPACK_OBJECT_STR, &answer->body, false},
    };
    int rc = decode_map(data, len, fields, sizeof(fields) / sizeof(fields[0]));
    if (rc != 0 || conn < 0 || req < 0 || answer->status.len == 0) {
        return IMK_EPROTO;
    }
    answer->conn = (uint64_t)conn;
    answer->req = (uint64_t)req;
    return 0;
}
