/* A minimal blocking HTTP/1.1 POST client (http:// and https:// with certificate checks),
 * bounded in time, for the webhook deliverer. One request per connection. */
#ifndef IMKIT_WORKER_HTTP_POST_H
#define IMKIT_WORKER_HTTP_POST_H

#include <stddef.h>

/* Posts body (JSON) to url with the extra header lines (each ending "\r\n"). Returns the
 * HTTP status (100-599), or a negative imk_err when the URL is bad, the connection fails,
 * or no answer came within timeout_ms (IMK_EIO). */
int imk_http_post(const char *url, const char *headers, const char *body, size_t len,
                  int timeout_ms);

#endif
