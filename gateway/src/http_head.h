/* Parsing one HTTP/1.1 request head (http-parser) on the public listener: the method, the
 * URL and the few headers a WebSocket upgrade needs. Bounded: 8 KiB of head, 2 KiB of URL;
 * longer header values are cut (only their first bytes matter here). Fed bytes as they
 * arrive, split anywhere. */
#ifndef IMKIT_GATEWAY_HTTP_HEAD_H
#define IMKIT_GATEWAY_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>

#define IMK_HTTP_HEAD_MAX 8192

enum imk_http_method { IMK_HTTP_OTHER = 0, IMK_HTTP_GET, IMK_HTTP_HEAD };

typedef struct imk_http_request {
    enum imk_http_method method;
    char url[2048];
    bool upgrade_websocket;  /* Upgrade: websocket */
    bool connection_upgrade; /* Connection: ... upgrade ... */
    bool offers_imkit_v1;    /* Sec-WebSocket-Protocol lists imkit.v1 */
    bool has_origin;
    char ws_key[64];
    char ws_version[8];
    char origin[256];
} imk_http_request_t;

typedef struct imk_http_head imk_http_head_t;

imk_http_head_t *imk_http_head_create(void);
void imk_http_head_destroy(imk_http_head_t *h);

enum imk_http_head_status {
    IMK_HTTP_HEAD_MORE = 0, /* all bytes used; the head is not complete yet */
    IMK_HTTP_HEAD_DONE = 1, /* complete; bytes after *used are not part of it */
};

/* Feeds len bytes. Returns IMK_HTTP_HEAD_MORE or IMK_HTTP_HEAD_DONE with *used set, or
 * IMK_EPROTO (malformed: answer 400), IMK_ETOOBIG (head over IMK_HTTP_HEAD_MAX or URL too
 * long: answer 431). After DONE or an error, feeding again is IMK_EINVAL. */
int imk_http_head_feed(imk_http_head_t *h, const char *data, size_t len, size_t *used);

/* The request, valid once feed returned IMK_HTTP_HEAD_DONE; borrowed from h. */
const imk_http_request_t *imk_http_head_request(const imk_http_head_t *h);

#endif
