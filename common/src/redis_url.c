/* redis.url parsing. */
#include "imkit/redis_url.h"
#include "imkit/err.h"
#include "imkit/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_int(const char *s, size_t n, int min, int max, int *out)
{
    int64_t v;
    int rc = imk_parse_decimal(s, n, min, max, &v);
    if (rc == 0) {
        *out = (int)v;
    }
    return rc;
}

int imk_redis_url_parse(const char *url, imk_redis_url_t *out)
{
    static const char scheme[] = "redis://";
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
        return IMK_EINVAL;
    }
    const char *p = url + sizeof(scheme) - 1;
    const char *at = strchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon != NULL ? colon + 1 : p;
        size_t n = (size_t)(at - pw);
        if (n >= sizeof(out->password)) {
            return IMK_EINVAL;
        }
        memcpy(out->password, pw, n);
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *end = slash != NULL ? slash : p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *host_end = colon != NULL ? colon : end;
    size_t hlen = (size_t)(host_end - p);
    if (hlen == 0 || hlen >= sizeof(out->host)) {
        return IMK_EINVAL;
    }
    memcpy(out->host, p, hlen);
    if (colon != NULL && parse_int(colon + 1, (size_t)(end - colon - 1), 1, 65535, &out->port)) {
        return IMK_EINVAL;
    }
    if (slash != NULL && slash[1] != '\0' &&
        parse_int(slash + 1, strlen(slash + 1), 0, 100000, &out->db) != 0) {
        return IMK_EINVAL;
    }
    return 0;
}

void imk_redis_url_redact(const char *url, char *out, size_t outlen)
{
    const char *start = strstr(url, "://");
    start = start != NULL ? start + 3 : url;
    const char *at = strchr(start, '@');
    if (at == NULL) {
        snprintf(out, outlen, "%s", url);
        return;
    }
    const char *colon = memchr(start, ':', (size_t)(at - start));
    const char *secret = colon != NULL ? colon + 1 : start;
    snprintf(out, outlen, "%.*s***%s", (int)(secret - url), url, at);
}
