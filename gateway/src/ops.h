/* The operations of the client protocol and the admin API that run as Redis Functions: for
 * each, the function it calls, whether it is a query (FCALL_RO from the gateway) or a command
 * (a job for the workers), and the validation that turns its JSON data into the function's
 * msgpack arguments (docs/FUNCTIONS.md). Used by the session and the admin API alike, so a
 * change made either way is checked the same way. */
#ifndef IMKIT_GATEWAY_OPS_H
#define IMKIT_GATEWAY_OPS_H

#include "imkit/buf.h"
#include "imkit/config.h"
#include "imkit/ids.h"

#include <stdbool.h>
#include <stddef.h>

struct json_t;

/* Bytes of the stack a request's arguments map is built in (imk_buf_init_on): most maps,
 * a message with its text included, fit without an allocation. */
#define IMK_OP_ARGS_STORAGE 1024

/* A validation failure: code is a contract error code, message names the field. */
typedef struct imk_op_error {
    const char *code;
    char message[192];
} imk_op_error_t;

/* Who asks: a client acting for itself (client: its id), or the admin API (admin = true,
 * client NULL). */
typedef struct imk_op_ctx {
    const imk_config_t *cfg;
    bool admin;
    const char *client;
} imk_op_ctx_t;

/* Where a request goes, filled by build: the id of the room or client its function works
 * on (a direct room's creation: its pair "<a>|<b>"), which picks its job stream and, on a
 * Redis Cluster, its slot (borrowed from the data or from home; NULL: the acting
 * client's), and, for the admin API, the client to act as (NULL: the caller). */
typedef struct imk_op_route {
    const char *partition;
    const char *acting;
    char home[2 * IMK_ID_MAX + 2]; /* what build made: a new group room's id, a pair */
} imk_op_route_t;

typedef struct imk_op {
    const char *name;     /* "msg.send"; admin-only operations start with "admin." */
    const char *function; /* "imkit_msg_send" */
    bool query;
    /* Validates data (an object, or NULL when the request had none) and appends the
     * arguments map to args. Returns 0, or -1 with err filled. */
    int (*build)(const imk_op_ctx_t *ctx, struct json_t *data, imk_buf_t *args,
                 imk_op_route_t *route, imk_op_error_t *err);
} imk_op_t;

/* The operation named name, or NULL. */
const imk_op_t *imk_op_find(const char *name);

/* The i-th operation of the table (i from 0), or NULL past its end: to list them all. */
const imk_op_t *imk_op_at(size_t i);

/* Sets err to code and a formatted message; returns -1. */
int imk_op_fail(imk_op_error_t *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
