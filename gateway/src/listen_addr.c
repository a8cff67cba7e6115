/* Listener address parsing. */
#include "listen_addr.h"
#include "imkit/err.h"

#include <event2/util.h>
#include <stdio.h>
#include <string.h>

int imk_listen_addr_parse(const char *spec, struct sockaddr_storage *addr, socklen_t *addrlen,
                          char *host, size_t hostlen, int *port)
{
    int len = (int)sizeof(*addr);
    memset(addr, 0, sizeof(*addr));
    if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)addr, &len) != 0) {
        return IMK_EINVAL;
    }
    *addrlen = (socklen_t)len;
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || (size_t)(colon - spec) >= hostlen) {
        return IMK_EINVAL;
    }
    snprintf(host, hostlen, "%.*s", (int)(colon - spec), spec);
    if (host[0] == '[') { /* [::1] -> ::1 for evhttp */
        memmove(host, host + 1, strlen(host));
        host[strcspn(host, "]")] = '\0';
    }
    *port = (int)ntohs(((struct sockaddr_in *)addr)->sin_port);
    return 0;
}
