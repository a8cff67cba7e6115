/* Job and answer envelopes in msgpack (msgpack-c), and the argument writer. */
#include "imkit/job.h"
#include "imkit/err.h"

#include <msgpack.h>
#include <string.h>

#define DECODE_ZONE_CHUNK 512

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

static void pack_field_uint(imk_mp_t *mp, const char *name, uint64_t value)
{
    PACKER(mp);
    imk_mp_cstr(mp, name);
    msgpack_pack_uint64(&pk, value);
}

int imk_job_encode(const imk_job_t *job, imk_buf_t *out)
{
    imk_mp_t mp;
    imk_mp_init(&mp, out);
    imk_mp_map(&mp, 10);
    pack_field_int(&mp, "v", IMK_JOB_VERSION);
    pack_field_str(&mp, "kind", job->kind);
    pack_field_str(&mp, "job_id", job->job_id);
    pack_field_str(&mp, "gw", job->gw);
    pack_field_uint(&mp, "conn", job->conn);
    pack_field_uint(&mp, "req", job->req);
    pack_field_str(&mp, "from", job->from);
    pack_field_int(&mp, "at", job->at);
    imk_mp_cstr(&mp, "args");
    imk_mp_bin(&mp, job->args.ptr, job->args.len);
    pack_field_str(&mp, "home", job->home);
    return mp.err;
}

int imk_answer_encode(const imk_answer_t *answer, imk_buf_t *out)
{
    imk_mp_t mp;
    imk_mp_init(&mp, out);
    imk_mp_map(&mp, 4);
    pack_field_uint(&mp, "conn", answer->conn);
    pack_field_uint(&mp, "req", answer->req);
    pack_field_str(&mp, "status", answer->status);
    pack_field_str(&mp, "body", answer->body);
    return mp.err;
}

/* What a field of an envelope must hold, and where it goes. */
enum field_kind {
    FIELD_STR,  /* str or bin, into an imk_str_t */
    FIELD_UINT, /* a non-negative integer, into a uint64_t */
    FIELD_INT,  /* any integer, into an int64_t */
};

struct field {
    const char *name;
    enum field_kind kind;
    void *dst;
    bool seen;
    bool optional; /* may be absent (added after version 1 went out) */
};

static bool key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, name, n) == 0;
}

static int store_field(struct field *f, const msgpack_object *v)
{
    if (f->kind == FIELD_STR) {
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
    } else if (f->kind == FIELD_UINT && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *(uint64_t *)f->dst = v->via.u64;
    } else if (f->kind == FIELD_INT && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
               v->via.u64 <= INT64_MAX) {
        *(int64_t *)f->dst = (int64_t)v->via.u64;
    } else if (f->kind == FIELD_INT && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *(int64_t *)f->dst = v->via.i64;
    } else {
        return IMK_EPROTO;
    }
    f->seen = true;
    return 0;
}

/* Walks msgpack bytes without allocating and checks that every container could fit in what
 * is left: msgpack-c reserves memory for a container's declared size before it reads the
 * elements, so five bytes claiming 2^32 entries would otherwise ask for gigabytes. */
static bool plausible(const unsigned char *p, size_t len)
{
    size_t pos = 0;
    uint64_t pending = 1; /* objects still to read */
    while (pending > 0) {
        if (pos >= len) {
            return false;
        }
        unsigned char b = p[pos++];
        uint64_t count = 0, skip = 0;
        size_t width = 0; /* bytes of a following length or value */
        if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3)) {
            /* fixint, nil, bool */
        } else if (b >= 0x80 && b <= 0x8f) {
            count = 2u * (b & 0x0f);
        } else if (b >= 0x90 && b <= 0x9f) {
            count = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4:
            case 0xd9:
                width = 1;
                break; /* bin8, str8: length follows */
            case 0xc5:
            case 0xda:
                width = 2;
                break;
            case 0xc6:
            case 0xdb:
                width = 4;
                break;
            case 0xcc:
            case 0xd0:
                skip = 1;
                break;
            case 0xcd:
            case 0xd1:
                skip = 2;
                break;
            case 0xca:
            case 0xce:
            case 0xd2:
                skip = 4;
                break;
            case 0xcb:
            case 0xcf:
            case 0xd3:
                skip = 8;
                break;
            case 0xdc:
            case 0xde:
                width = 2;
                break; /* array16, map16 */
            case 0xdd:
            case 0xdf:
                width = 4;
                break;
            case 0xd4:
                skip = 2;
                break; /* fixext: type + data */
            case 0xd5:
                skip = 3;
                break;
            case 0xd6:
                skip = 5;
                break;
            case 0xd7:
                skip = 9;
                break;
            case 0xd8:
                skip = 17;
                break;
            case 0xc7:
                width = 1;
                skip = 1;
                break; /* ext8: length, then type */
            case 0xc8:
                width = 2;
                skip = 1;
                break;
            case 0xc9:
                width = 4;
                skip = 1;
                break;
            default:
                return false; /* 0xc1: never used */
            }
        }
        if (width > 0) {
            if (len - pos < width) {
                return false;
            }
            uint64_t n = 0;
            for (size_t i = 0; i < width; i++) {
                n = (n << 8) | p[pos++];
            }
            if (b == 0xdc || b == 0xdd) {
                count = n;
            } else if (b == 0xde || b == 0xdf) {
                count = 2 * n;
            } else {
                skip += n;
            }
        }
        if (skip > len - pos) {
            return false;
        }
        pos += skip;
        pending += count - 1;
        if (pending > len - pos) {
            return false; /* each pending object needs at least one byte */
        }
    }
    return true;
}

/* Decodes a map whose every field in fields must appear; unknown keys are skipped, so a
 * newer writer may add fields. */
static int decode_map(const char *data, size_t len, struct field *fields, size_t nfields)
{
    /* The objects go to a zone of DECODE_ZONE_CHUNK bytes, enough for a job's or an answer's
     * map, made once per thread and cleared after each decode (msgpack_zone_clear keeps one
     * chunk): no allocation per job or answer. msgpack_unpack_next would make an 8 KiB zone
     * per call. The strings stay in data; nothing decoded points into the zone. */
    static _Thread_local msgpack_zone zone;
    static _Thread_local bool zone_ready;
    if (!zone_ready && !(zone_ready = msgpack_zone_init(&zone, DECODE_ZONE_CHUNK))) {
        return IMK_ENOMEM;
    }
    msgpack_object obj;
    size_t off = 0;
    int rc = IMK_EPROTO;
    if (!plausible((const unsigned char *)data, len) ||
        msgpack_unpack(data, len, &off, &zone, &obj) != MSGPACK_UNPACK_SUCCESS || off != len ||
        obj.type != MSGPACK_OBJECT_MAP) {
        goto out;
    }
    const msgpack_object_map *map = &obj.via.map;
    for (uint32_t i = 0; i < map->size; i++) {
        for (size_t f = 0; f < nfields; f++) {
            if (!fields[f].seen && key_is(&map->ptr[i].key, fields[f].name) &&
                store_field(&fields[f], &map->ptr[i].val) != 0) {
                goto out;
            }
        }
    }
    for (size_t f = 0; f < nfields; f++) {
        if (!fields[f].seen && !fields[f].optional) {
            goto out;
        }
    }
    rc = 0;
out:
    msgpack_zone_clear(&zone);
    return rc;
}

int imk_job_decode(const char *data, size_t len, imk_job_t *job)
{
    uint64_t v = 0;
    memset(job, 0, sizeof(*job));
    struct field fields[] = {
        {"v", FIELD_UINT, &v, false, false},
        {"kind", FIELD_STR, &job->kind, false, false},
        {"job_id", FIELD_STR, &job->job_id, false, false},
        {"gw", FIELD_STR, &job->gw, false, false},
        {"conn", FIELD_UINT, &job->conn, false, false},
        {"req", FIELD_UINT, &job->req, false, false},
        {"from", FIELD_STR, &job->from, false, false},
        {"at", FIELD_INT, &job->at, false, false},
        {"args", FIELD_STR, &job->args, false, false},
        {"home", FIELD_STR, &job->home, false, true},
    };
    int rc = decode_map(data, len, fields, sizeof(fields) / sizeof(fields[0]));
    if (rc != 0 || v != IMK_JOB_VERSION || job->kind.len == 0) {
        return IMK_EPROTO;
    }
    job->v = (uint32_t)v;
    return 0;
}

int imk_answer_decode(const char *data, size_t len, imk_answer_t *answer)
{
    memset(answer, 0, sizeof(*answer));
    struct field fields[] = {
        {"conn", FIELD_UINT, &answer->conn, false, false},
        {"req", FIELD_UINT, &answer->req, false, false},
        {"status", FIELD_STR, &answer->status, false, false},
        {"body", FIELD_STR, &answer->body, false, false},
    };
    int rc = decode_map(data, len, fields, sizeof(fields) / sizeof(fields[0]));
    if (rc != 0 || answer->status.len == 0) {
        return IMK_EPROTO;
    }
    return 0;
}
