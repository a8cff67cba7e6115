/* Nchan's pubsub location over WebSocket: the connection subscribes to the channel in its
 * path, every text frame it sends is published to that channel, and every message of the
 * channel (its own included) arrives as a text frame holding just the message. There are
 * no requests, answers or authentication: a sender's own delivery stands for its answer. */
#include "proto.h"
#include "scan.h"
#include "wsconn.h"

#include <stdio.h>
#include <string.h>

static void nchan_path(const lg_client_t *c, char *out, size_t n)
{
    const char *prefix = c->w->ctx->opts->path != NULL ? c->w->ctx->opts->path : "/pubsub/";
    snprintf(out, n, "%s%s", prefix, c->room_id);
}

static int nchan_auth(lg_client_t *c, uint32_t id, const char *token)
{
    (void)c;
    (void)id;
    (void)token;
    return 0;
}

static int nchan_request(lg_client_t *c, uint32_t id, const char *op, const char *data, size_t len)
{
    (void)c;
    (void)id;
    (void)op;
    (void)data;
    (void)len;
    return -1; /* nothing to create: a channel exists once used */
}

static int nchan_message(lg_client_t *c, uint32_t id, int64_t key, const char *text, size_t len)
{
    (void)id;
    (void)key;
    return lg_ws_send(c->ws, text, len);
}

static void nchan_decode(lg_client_t *c, const char *msg, size_t len, lg_in_t *in)
{
    (void)c;
    memset(in, 0, sizeof(*in));
    if (lg_text_parse(msg, len, &in->key, &in->t_us, &in->sender)) {
        in->kind = LG_IN_MESSAGE;
    }
}

const lg_proto_ops_t lg_proto_nchan = {
    .name = "nchan",
    .subprotocol = NULL,
    .needs_auth = false,
    .auth_on_open = false,
    .server_seq = false,
    .path = nchan_path,
    .auth = nchan_auth,
    .request = nchan_request,
    .message = nchan_message,
    .decode = nchan_decode,
};
