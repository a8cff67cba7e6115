/* Blocking HTTP POST: resolve, connect with a deadline, optional TLS, write, read the status
 * line. Every step checks the same deadline. */
#include "http_post.h"
#include "imkit/err.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

struct url {
    bool tls;
    char host[256];
    char port[8];
    char path[1024];
};

static int parse_url(const char *s, struct url *u)
{
    memset(u, 0, sizeof(*u));
    const char *p;
    if (strncmp(s, "http://", 7) == 0) {
        p = s + 7;
        snprintf(u->port, sizeof(u->port), "80");
    } else if (strncmp(s, "https://", 8) == 0) {
        p = s + 8;
        u->tls = true;
        snprintf(u->port, sizeof(u->port), "443");
    } else {
        return IMK_EINVAL;
    }
    size_t hostport = strcspn(p, "/");
    const char *colon = memchr(p, ':', hostport);
    size_t hlen = colon != NULL ? (size_t)(colon - p) : hostport;
    if (hlen == 0 || hlen >= sizeof(u->host)) {
        return IMK_EINVAL;
    }
    memcpy(u->host, p, hlen);
    if (colon != NULL) {
        size_t plen = hostport - hlen - 1;
        if (plen == 0 || plen >= sizeof(u->port)) {
            return IMK_EINVAL;
        }
        memcpy(u->port, colon + 1, plen);
        u->port[plen] = '\0';
    }
    snprintf(u->path, sizeof(u->path), "%s", p[hostport] != '\0' ? p + hostport : "/");
    return 0;
}

static long long now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static int wait_fd(int fd, short events, long long deadline)
{
    long long left = deadline - now_ms();
    if (left <= 0) {
        return IMK_EIO;
    }
    struct pollfd pfd = {fd, events, 0};
    int n = poll(&pfd, 1, (int)left);
    return n == 1 ? 0 : IMK_EIO;
}

static int connect_with_deadline(const struct url *u, long long deadline)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(u->host, u->port, &hints, &res) != 0) {
        return IMK_EIO;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            continue;
        }
        int err = 0;
        socklen_t len = sizeof(err);
        if ((connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) ||
            wait_fd(fd, POLLOUT, deadline) != 0 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd >= 0 ? fd : IMK_EIO;
}

/* Plain or TLS I/O on one connection, non-blocking with the deadline. */
struct conn {
    int fd;
    SSL *ssl;
    long long deadline;
};

static int conn_io(struct conn *c, void *buf, size_t len, bool writing)
{
    for (;;) {
        ssize_t n;
        short want = writing ? POLLOUT : POLLIN;
        if (c->ssl != NULL) {
            n = writing ? SSL_write(c->ssl, buf, (int)len) : SSL_read(c->ssl, buf, (int)len);
            if (n > 0) {
                return (int)n;
            }
            int e = SSL_get_error(c->ssl, (int)n);
            if (e == SSL_ERROR_ZERO_RETURN) {
                return 0;
            }
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                return IMK_EIO;
            }
            want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        } else {
            n = writing ? send(c->fd, buf, len, MSG_NOSIGNAL) : recv(c->fd, buf, len, 0);
            if (n >= 0) {
                return (int)n;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                return IMK_EIO;
            }
        }
        if (wait_fd(c->fd, want, c->deadline) != 0) {
            return IMK_EIO;
        }
    }
}

static int write_all(struct conn *c, const char *data, size_t len)
{
    while (len > 0) {
        int n = conn_io(c, (void *)data, len, true);
        if (n <= 0) {
            return IMK_EIO;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int start_tls(struct conn *c, SSL_CTX **ctx, const char *host)
{
    *ctx = SSL_CTX_new(TLS_client_method());
    if (*ctx == NULL) {
        return IMK_EIO;
    }
    SSL_CTX_set_min_proto_version(*ctx, TLS1_2_VERSION);
    SSL_CTX_set_default_verify_paths(*ctx);
    SSL_CTX_set_verify(*ctx, SSL_VERIFY_PEER, NULL);
    c->ssl = SSL_new(*ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
        SSL_set_tlsext_host_name(c->ssl, host) != 1 || SSL_set1_host(c->ssl, host) != 1) {
        return IMK_EIO;
    }
    for (;;) {
        int r = SSL_connect(c->ssl);
        if (r == 1) {
            return 0;
        }
        int e = SSL_get_error(c->ssl, r);
        if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
            wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, c->deadline) != 0) {
            return IMK_EIO;
        }
    }
}

/* Reads until the status line is complete; returns the status code. */
static int read_status(struct conn *c)
{
    char buf[512];
    size_t have = 0;
    while (have < sizeof(buf) - 1) {
        int n = conn_io(c, buf + have, sizeof(buf) - 1 - have, false);
        if (n <= 0) {
            break;
        }
        have += (size_t)n;
        buf[have] = '\0';
        if (strstr(buf, "\r\n") != NULL) {
            int status;
            if (sscanf(buf, "HTTP/1.%*d %d", &status) == 1 && status >= 100 && status <= 599) {
                return status;
            }
            return IMK_EPROTO;
        }
    }
    return IMK_EIO;
}

int imk_http_post(const char *url, const char *headers, const char *body, size_t len,
                  int timeout_ms)
{
    struct url u;
    if (parse_url(url, &u) != 0) {
        return IMK_EINVAL;
    }
    struct conn c = {-1, NULL, now_ms() + timeout_ms};
    SSL_CTX *ctx = NULL;
    int rc = c.fd = connect_with_deadline(&u, c.deadline);
    if (c.fd >= 0 && u.tls) {
        rc = start_tls(&c, &ctx, u.host);
    }
    if (rc >= 0) {
        char head[2048];
        int n = snprintf(head, sizeof(head),
                         "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\nUser-Agent: imkit\r\n%s\r\n",
                         u.path, u.host, len, headers);
        rc = n > 0 && (size_t)n < sizeof(head) ? write_all(&c, head, (size_t)n) : IMK_EINVAL;
        if (rc == 0) {
            rc = write_all(&c, body, len);
        }
        if (rc == 0) {
            rc = read_status(&c);
        }
    }
    if (c.ssl != NULL) {
        SSL_free(c.ssl);
    }
    SSL_CTX_free(ctx);
    if (c.fd >= 0) {
        close(c.fd);
    }
    return rc;
}
