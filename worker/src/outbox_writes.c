/* Held outbox writes (outbox_writes.h). */
#include "outbox_writes.h"
#include "offline.h"
#include "imkit/err.h"

#include <stdlib.h>
#include <string.h>

bool imk_outbox_write_marked(const redisReply *channel)
{
    return channel->type == REDIS_REPLY_STRING && channel->len == 1 &&
           (channel->str[0] == '+' || channel->str[0] == '?');
}

static void free_write(imk_outbox_write_t *write)
{
    for (int i = 0; i < write->argc; i++) {
        free(write->argv[i]);
    }
    imk_buf_deinit(&write->offline);
}

int imk_outbox_writes_hold(imk_outbox_writes_t *w, size_t job, int round, const redisReply *channel,
                           const redisReply *payload)
{
    if (payload->type != REDIS_REPLY_ARRAY || payload->elements < 3 ||
        payload->elements > IMK_OUTBOX_WRITE_ARGS) {
        return IMK_EINVAL;
    }
    for (size_t i = 0; i < payload->elements; i++) {
        if (payload->element[i]->type != REDIS_REPLY_STRING) {
            return IMK_EINVAL;
        }
    }
    if (w->n == w->cap) {
        size_t grown = w->cap > 0 ? w->cap * 2 : 8;
        imk_outbox_write_t *more = realloc(w->v, grown * sizeof(*more));
        if (more == NULL) {
            return IMK_ENOMEM;
        }
        w->v = more;
        w->cap = grown;
    }
    imk_outbox_write_t *write = &w->v[w->n];
    *write = (imk_outbox_write_t){
        .job = job, .seq = w->n, .round = round, .presence = channel->str[0] == '?'};
    write->offline = (imk_buf_t)IMK_BUF_INIT;
    for (size_t i = 0; i < payload->elements; i++) {
        const redisReply *a = payload->element[i];
        write->argv[i] = malloc(a->len + 1);
        if (write->argv[i] == NULL) {
            free_write(write);
            return IMK_ENOMEM;
        }
        memcpy(write->argv[i], a->str, a->len);
        write->argv[i][a->len] = '\0';
        write->lens[i] = a->len;
        write->argc++;
    }
    w->n++;
    return 0;
}

/* By job, then deepest round first, then as held. */
static int before(const void *a, const void *b)
{
    const imk_outbox_write_t *x = a, *y = b;
    if (x->job != y->job) {
        return x->job < y->job ? -1 : 1;
    }
    if (x->round != y->round) {
        return x->round > y->round ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq ? 1 : 0;
}

int imk_outbox_writes_prepare(imk_outbox_writes_t *w, imk_cluster_client_t *redis,
                              const char *prefix)
{
    if (w->n > 1) {
        qsort(w->v, w->n, sizeof(*w->v), before);
    }
    for (size_t i = 0; i < w->n; i++) {
        imk_outbox_write_t *write = &w->v[i];
        if (!write->presence) {
            continue;
        }
        int last = write->argc - 1;
        int rc =
            imk_offline_of(redis, prefix, write->argv[last], write->lens[last], &write->offline);
        if (rc == IMK_ENOMEM) {
            return rc;
        }
        write->failed = rc != 0;
    }
    return 0;
}

int imk_outbox_write_command(const imk_outbox_write_t *write, const char **argv, size_t *lens)
{
    int argc = write->argc - 1;
    for (int i = 0; i < argc; i++) {
        argv[i] = write->argv[i + 1];
        lens[i] = write->lens[i + 1];
    }
    if (write->presence) {
        argv[argc - 1] = write->offline.data != NULL ? write->offline.data : "";
        lens[argc - 1] = write->offline.len;
    }
    return argc;
}

void imk_outbox_writes_clear(imk_outbox_writes_t *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free_write(&w->v[i]);
    }
    free(w->v);
    *w = (imk_outbox_writes_t)IMK_OUTBOX_WRITES_INIT;
}
