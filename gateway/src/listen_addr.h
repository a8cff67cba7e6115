/* "host:port" of the configuration into a socket address, for both listeners. */
#ifndef IMKIT_GATEWAY_LISTEN_ADDR_H
#define IMKIT_GATEWAY_LISTEN_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Returns 0 or IMK_EINVAL. host receives the host part (for evhttp), port the number. */
int imk_listen_addr_parse(const char *spec, struct sockaddr_storage *addr, socklen_t *addrlen,
                          char *host, size_t hostlen, int *port);

#endif
