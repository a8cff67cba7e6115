/* Request counting by operation and error code, with fixed label tables so that nothing a
 * client sends can grow the number of series. */
#include "stats.h"

#include <string.h>

static const char *const ops[IMK_STATS_OPS] = {
    "",
    "auth",
    "ping",
    "typing",
    "presence.watch",
    "me.update",
    "client.get",
    "room.create",
    "room.get",
    "room.update",
    "room.members.add",
    "room.members.remove",
    "room.leave",
    "room.list",
    "room.read",
    "msg.send",
    "msg.history",
    "msg.edit",
    "msg.recall",
    "msg.react",
    "sync",
    "invalid",
};

#define OP_INVALID (IMK_STATS_OPS - 1)

static const char *const codes[IMK_STATS_CODES] = {
    "bad_request", "unauthenticated", "forbidden",   "not_found", "conflict",
    "too_large",   "rate_limited",    "unavailable", "internal",  "other",
};

void imk_stats_begin(imk_stats_req_t *r)
{
    r->op = OP_INVALID;
    r->at_us = imk_metrics_now_us();
}

void imk_stats_name(imk_stats_req_t *r, const char *op)
{
    r->op = OP_INVALID;
    for (int i = 1; op != NULL && i < OP_INVALID; i++) {
        if (strcmp(ops[i], op) == 0) {
            r->op = i;
            return;
        }
    }
}

void imk_stats_end(imk_stats_t *st, imk_stats_req_t *r, const char *status, size_t status_len)
{
    if (r->op <= IMK_STATS_OP_NONE || r->op >= IMK_STATS_OPS) {
        return;
    }
    imk_hist_observe(&st->latency[r->op], (double)(imk_metrics_now_us() - r->at_us) / 1e6);
    if (!(status_len == 2 && memcmp(status, "ok", 2) == 0)) {
        int code = IMK_STATS_CODES - 1;
        for (int i = 0; i < IMK_STATS_CODES - 1; i++) {
            if (strlen(codes[i]) == status_len && memcmp(codes[i], status, status_len) == 0) {
                code = i;
            }
        }
        st->errors[r->op][code]++;
    }
    r->op = IMK_STATS_OP_NONE;
}

const char *imk_stats_op_label(int i)
{
    return i > 0 && i < IMK_STATS_OPS ? ops[i] : "";
}

const char *imk_stats_code_label(int i)
{
    return i >= 0 && i < IMK_STATS_CODES ? codes[i] : "";
}
