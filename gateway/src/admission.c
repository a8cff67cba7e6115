/* Connection counts, total and per source address (map values are the counts). */
#include "admission.h"
#include "imkit/err.h"
#include "imkit/map.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct imk_admission {
    int max_total;
    int max_per_peer;
    size_t total;
    imk_map_t *per_peer;
};

imk_admission_t *imk_admission_create(int max_total, int max_per_peer)
{
    imk_admission_t *a = calloc(1, sizeof(*a));
    if (a == NULL || (a->per_peer = imk_map_create()) == NULL) {
        free(a);
        return NULL;
    }
    a->max_total = max_total;
    a->max_per_peer = max_per_peer;
    return a;
}

void imk_admission_destroy(imk_admission_t *a)
{
    if (a != NULL) {
        imk_map_destroy(a->per_peer);
        free(a);
    }
}

static void peer_name(const struct sockaddr *sa, char peer[IMK_PEER_MAX])
{
    if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, peer, IMK_PEER_MAX);
    } else if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, peer, IMK_PEER_MAX);
    } else {
        strcpy(peer, "local");
    }
}

int imk_admission_enter(imk_admission_t *a, const struct sockaddr *sa, char peer[IMK_PEER_MAX])
{
    peer_name(sa, peer);
    size_t len = strlen(peer);
    uintptr_t count = (uintptr_t)imk_map_get(a->per_peer, peer, len);
    if (a->total >= (size_t)a->max_total || count >= (uintptr_t)a->max_per_peer ||
        imk_map_put(a->per_peer, peer, len, (void *)(count + 1)) != 0) {
        return IMK_ETOOBIG;
    }
    a->total++;
    return 0;
}

void imk_admission_leave(imk_admission_t *a, const char *peer)
{
    size_t len = strlen(peer);
    uintptr_t count = (uintptr_t)imk_map_get(a->per_peer, peer, len);
    if (count == 0) {
        return;
    }
    if (count == 1) {
        imk_map_remove(a->per_peer, peer, len);
    } else {
        imk_map_put(a->per_peer, peer, len, (void *)(count - 1));
    }
    a->total--;
}

size_t imk_admission_count(const imk_admission_t *a)
{
    return a->total;
}
