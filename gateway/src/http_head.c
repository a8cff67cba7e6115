/* http-parser driven to the end of a request head, collecting what the router needs. */
#define _GNU_SOURCE /* strcasestr */
#include "http_head.h"
#include "imkit/err.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct imk_http_head {
    http_parser parser;
    imk_http_request_t req;
    size_t head_bytes;
    size_t url_len;
    bool url_too_long;
    bool done;
    bool failed;
    char field[64];
    size_t field_len;
    char value[1024];
    size_t value_len;
    bool in_value;
};

static void copy_value(char *dst, size_t cap, const char *value)
{
    snprintf(dst, cap, "%.*s", (int)cap - 1, value);
}

/* A header is complete: keep it if it is one of ours. */
static void header_done(imk_http_head_t *h)
{
    imk_http_request_t *r = &h->req;
    h->field[h->field_len] = '\0';
    h->value[h->value_len] = '\0';
    if (strcasecmp(h->field, "Upgrade") == 0) {
        r->upgrade_websocket = strcasecmp(h->value, "websocket") == 0;
    } else if (strcasecmp(h->field, "Connection") == 0) {
        r->connection_upgrade = strcasestr(h->value, "upgrade") != NULL;
    } else if (strcasecmp(h->field, "Sec-WebSocket-Key") == 0) {
        copy_value(r->ws_key, sizeof(r->ws_key), h->value);
    } else if (strcasecmp(h->field, "Sec-WebSocket-Version") == 0) {
        copy_value(r->ws_version, sizeof(r->ws_version), h->value);
    } else if (strcasecmp(h->field, "Origin") == 0) {
        copy_value(r->origin, sizeof(r->origin), h->value);
        r->has_origin = true;
    } else if (strcasecmp(h->field, "Sec-WebSocket-Protocol") == 0) {
        char *save = NULL;
        for (char *tok = strtok_r(h->value, ", ", &save); tok != NULL;
             tok = strtok_r(NULL, ", ", &save)) {
            r->offers_imkit_v1 |= strcmp(tok, "imkit.v1") == 0;
        }
    }
    h->field_len = h->value_len = 0;
    h->in_value = false;
}

/* Appends what fits; the rest of an over-long field or value is dropped. */
static void append_bounded(char *dst, size_t *len, size_t cap, const char *at, size_t n)
{
    size_t take = *len + n < cap - 1 ? n : cap - 1 - *len;
    memcpy(dst + *len, at, take);
    *len += take;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    imk_http_head_t *h = p->data;
    if (h->url_len + n >= sizeof(h->req.url)) {
        h->url_too_long = true;
        return 1;
    }
    append_bounded(h->req.url, &h->url_len, sizeof(h->req.url), at, n);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    imk_http_head_t *h = p->data;
    if (h->in_value) {
        header_done(h);
    }
    append_bounded(h->field, &h->field_len, sizeof(h->field), at, n);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    imk_http_head_t *h = p->data;
    h->in_value = true;
    append_bounded(h->value, &h->value_len, sizeof(h->value), at, n);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    imk_http_head_t *h = p->data;
    if (h->in_value) {
        header_done(h);
    }
    h->req.url[h->url_len] = '\0';
    h->req.method = p->method == HTTP_GET    ? IMK_HTTP_GET
                    : p->method == HTTP_HEAD ? IMK_HTTP_HEAD
                                             : IMK_HTTP_OTHER;
    h->done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
};

imk_http_head_t *imk_http_head_create(void)
{
    imk_http_head_t *h = calloc(1, sizeof(*h));
    if (h != NULL) {
        http_parser_init(&h->parser, HTTP_REQUEST);
        h->parser.data = h;
    }
    return h;
}

void imk_http_head_destroy(imk_http_head_t *h)
{
    free(h);
}

int imk_http_head_feed(imk_http_head_t *h, const char *data, size_t len, size_t *used)
{
    *used = 0;
    if (h->done || h->failed) {
        return IMK_EINVAL;
    }
    if (len == 0) {
        return IMK_HTTP_HEAD_MORE; /* http-parser takes zero bytes as the end of the stream */
    }
    size_t n = http_parser_execute(&h->parser, &settings, data, len);
    enum http_errno err = HTTP_PARSER_ERRNO(&h->parser);
    h->head_bytes += n;
    *used = n;
    if (h->done && h->head_bytes > IMK_HTTP_HEAD_MAX) {
        h->failed = true; /* complete, but longer than allowed (it came in one read) */
        return IMK_ETOOBIG;
    }
    if (h->done) {
        /* Paused in on_headers_complete, http-parser leaves the head's last '\n' unread. */
        if (n < len && data[n] == '\n') {
            (*used)++;
        }
        return IMK_HTTP_HEAD_DONE;
    }
    if (err != HPE_OK) {
        h->failed = true;
        return h->url_too_long ? IMK_ETOOBIG : IMK_EPROTO;
    }
    if (h->head_bytes > IMK_HTTP_HEAD_MAX) {
        h->failed = true;
        return IMK_ETOOBIG;
    }
    return IMK_HTTP_HEAD_MORE;
}

const imk_http_request_t *imk_http_head_request(const imk_http_head_t *h)
{
    return &h->req;
}
