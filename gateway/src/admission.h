/* Admission of connections on the public listener: at most limits.connections open at
 * once on this gateway, and limits.connections_per_ip from one source address. A refused
 * connection is closed at once, before any byte is read. */
#ifndef IMKIT_GATEWAY_ADMISSION_H
#define IMKIT_GATEWAY_ADMISSION_H

#include <stddef.h>
#include <sys/socket.h>

#define IMK_PEER_MAX 64

typedef struct imk_admission imk_admission_t;

imk_admission_t *imk_admission_create(int max_total, int max_per_peer);
void imk_admission_destroy(imk_admission_t *a);

/* Counts a new connection from sa. Returns 0 and writes the peer's address into peer (to
 * give back to imk_admission_leave), or IMK_ETOOBIG when a cap is reached. */
int imk_admission_enter(imk_admission_t *a, const struct sockaddr *sa, char peer[IMK_PEER_MAX]);
void imk_admission_leave(imk_admission_t *a, const char *peer);

size_t imk_admission_count(const imk_admission_t *a);

#endif
