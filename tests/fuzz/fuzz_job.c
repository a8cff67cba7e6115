/* libFuzzer driver for the job codec (common/src/job.c; seeds: corpus/job/): arbitrary bytes
 * go to imk_job_decode and imk_answer_decode; whatever decodes is encoded again and must
 * decode to the same fields (abort on a mismatch). Build with clang
 * -fsanitize=fuzzer,address,undefined. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imkit/err.h"
#include "imkit/job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_str(imk_str_t a, imk_str_t b)
{
    if (a.len != b.len || (a.len > 0 && memcmp(a.ptr, b.ptr, a.len) != 0)) {
        abort();
    }
}

static void check_job(const char *data, size_t size)
{
    imk_job_t job, again;
    int rc = imk_job_decode(data, size, &job);
    if (rc != 0) {
        if (rc != IMK_EPROTO) {
            abort();
        }
        return;
    }
    if (job.v != IMK_JOB_VERSION || job.kind.len == 0) {
        abort();
    }
    imk_buf_t buf = IMK_BUF_INIT;
    if (imk_job_encode(&job, &buf) != 0) {
        abort();
    }
    if (imk_job_decode(buf.data, buf.len, &again) != 0) {
        abort();
    }
    same_str(job.kind, again.kind);
    same_str(job.job_id, again.job_id);
    same_str(job.gw, again.gw);
    same_str(job.from, again.from);
    same_str(job.args, again.args);
    if (again.v != job.v || again.conn != job.conn || again.req != job.req || again.at != job.at) {
        abort();
    }
    imk_buf_deinit(&buf);
}

static void check_answer(const char *data, size_t size)
{
    imk_answer_t a, again;
    int rc = imk_answer_decode(data, size, &a);
    if (rc != 0) {
        if (rc != IMK_EPROTO) {
            abort();
        }
        return;
    }
    if (a.status.len == 0) {
        abort();
    }
    imk_buf_t buf = IMK_BUF_INIT;
    if (imk_answer_encode(&a, &buf) != 0) {
        abort();
    }
    if (imk_answer_decode(buf.data, buf.len, &again) != 0) {
        abort();
    }
    same_str(a.status, again.status);
    same_str(a.body, again.body);
    if (again.conn != a.conn || again.req != a.req) {
        abort();
    }
    imk_buf_deinit(&buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of the exact size, so ASan sees any read past size. */
    char *copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(copy, data, size);
    }
    check_job(copy, size);
    check_answer(copy, size);
    free(copy);
    return 0;
}
