/* Identifiers of the contract (client ids, room ids, cids): validation and random room
 * ids. Used by the gateway on every request and by the tests. */
#ifndef IMKIT_IDS_H
#define IMKIT_IDS_H

#include <stdbool.h>
#include <stddef.h>

#define IMK_ID_MAX 64

/* 1-64 bytes of [A-Za-z0-9_.@:-]. */
bool imk_id_valid(const char *s, size_t len);

/* Writes a random id of 16 base64url characters (96 bits from the OpenSSL CSPRNG) and a
 * NUL into out, which holds at least 17 bytes. Returns 0 or IMK_EIO. */
int imk_id_random(char out[17]);

#endif
