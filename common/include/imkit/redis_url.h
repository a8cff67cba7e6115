/* Parses redis.url ("redis://[:password@]host[:port][/db]") for both binaries. */
#ifndef IMKIT_REDIS_URL_H
#define IMKIT_REDIS_URL_H

#include <stddef.h>

typedef struct imk_redis_url {
    char host[256];
    int port;
    int db;
    char password[256]; /* empty when none */
} imk_redis_url_t;

/* Returns 0 or IMK_EINVAL. */
int imk_redis_url_parse(const char *url, imk_redis_url_t *out);

/* url with its password, if any, replaced by "***": what logs may show. */
void imk_redis_url_redact(const char *url, char *out, size_t outlen);

#endif
