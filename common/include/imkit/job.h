/* The job codec: the msgpack envelope a gateway writes to a job stream and a worker reads,
 * and the answer a worker publishes on the requesting gateway's channel. One codec for both
 * binaries; every decoder faces bytes from Redis and checks every type and length. */
#ifndef IMKIT_JOB_H
#define IMKIT_JOB_H

#include "imkit/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMK_JOB_VERSION 1

/* A borrowed byte slice. */
typedef struct imk_str {
    const char *ptr;
    size_t len;
} imk_str_t;

/* {v, kind, job_id, gw, conn, req, from, at, args, home}: args is the msgpack-encoded
 * argument map handed unchanged to the job's Redis Function (docs/FUNCTIONS.md); home (may
 * be absent: empty) is the room or client id whose hash tag the function works on. */
typedef struct imk_job {
    uint32_t v;
    imk_str_t kind;   /* the function to call, e.g. "imkit_msg_send" */
    imk_str_t job_id; /* unique per job, for logs */
    imk_str_t gw;     /* gateway that waits for the answer, empty for none */
    uint64_t conn;    /* connection on that gateway, 0 for the admin API */
    uint64_t req;     /* request number on that gateway, 0 when nobody waits */
    imk_str_t from;   /* acting client id, empty for the admin API */
    int64_t at;       /* gateway clock, ms, when the job was made */
    imk_str_t args;
    imk_str_t home; /* the room or client the job is about: its keys' hash tag; may be empty */
} imk_job_t;

/* Appends the envelope to out. Returns 0 or IMK_ENOMEM. */
int imk_job_encode(const imk_job_t *job, imk_buf_t *out);

/* Decodes data[0..len). On success the slices of job point into data (borrowed: valid while
 * data is). Returns 0, or IMK_EPROTO for anything malformed, of a wrong version, or with a
 * missing field. */
int imk_job_decode(const char *data, size_t len, imk_job_t *job);

/* {conn, req, status, body}: status "ok" with the answer's JSON data, or an error code of the
 * contract with a message (docs/FUNCTIONS.md). */
typedef struct imk_answer {
    uint64_t conn;
    uint64_t req;
    imk_str_t status;
    imk_str_t body;
} imk_answer_t;

int imk_answer_encode(const imk_answer_t *answer, imk_buf_t *out);
/* Same borrowing and errors as imk_job_decode. */
int imk_answer_decode(const char *data, size_t len, imk_answer_t *answer);

/* Tiny msgpack writer into an imk_buf_t, for building job arguments. Errors are sticky:
 * check mp->err once at the end (0 or IMK_ENOMEM). */
typedef struct imk_mp {
    imk_buf_t *buf;
    int err;
} imk_mp_t;

void imk_mp_init(imk_mp_t *mp, imk_buf_t *buf);
void imk_mp_map(imk_mp_t *mp, uint32_t n);
void imk_mp_array(imk_mp_t *mp, uint32_t n);
void imk_mp_str(imk_mp_t *mp, const char *s, size_t len);
void imk_mp_cstr(imk_mp_t *mp, const char *s);
void imk_mp_int(imk_mp_t *mp, int64_t v);
void imk_mp_bool(imk_mp_t *mp, bool v);
void imk_mp_bin(imk_mp_t *mp, const void *data, size_t len);

#endif
