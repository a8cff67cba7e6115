/* HS256 JSON Web Tokens for the load generator's clients, signed with the secret the
 * server shares (auth.jwt_secrets). */
#ifndef LG_JWT_H
#define LG_JWT_H

#include <stddef.h>
#include <stdint.h>

/* Writes "<header>.<claims>.<signature>" for {"sub","iat","exp"} into out (NUL-terminated).
 * Returns the token's length, or -1 when out is too small. */
int lg_jwt_sign(const char *secret, const char *sub, int64_t iat, int64_t exp, char *out,
                size_t outlen);

#endif
