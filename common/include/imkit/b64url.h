/* Base64url (RFC 4648 section 5) without padding, as JWT (RFC 7515) uses it.
 * The decoder is strict: it refuses padding, any byte outside the alphabet, impossible
 * lengths and non-canonical encodings (unused trailing bits set), so one byte string has
 * exactly one accepted encoding. Called by the jwt module and its tests. */
#ifndef IMKIT_B64URL_H
#define IMKIT_B64URL_H

#include <stddef.h>

/* Error codes, negative, in the -6xx block that err.h leaves free (shared with jwt.h).
 * Only the functions below return them. */
enum imk_b64url_err {
    IMK_B64URL_EINVAL = -650, /* not canonical unpadded base64url */
    IMK_B64URL_ENOSPC = -651, /* output buffer too small; nothing useful was written */
};

/* Length of the encoding of len bytes, without a terminating NUL. SIZE_MAX when it would not
 * fit in a size_t. */
size_t imk_b64url_encoded_len(size_t len);

/* Bytes that imk_b64url_decode writes for an input of in_len characters (exact for every
 * length that can be valid; in_len % 4 == 1 never is, and decode refuses it). */
size_t imk_b64url_decoded_len(size_t in_len);

/* Encodes in_len bytes of in (may be NULL when in_len is 0) into out, followed by a NUL.
 * out_size must be at least imk_b64url_encoded_len(in_len) + 1. Stores the number of
 * characters written, NUL excluded, in *out_len when out_len is not NULL.
 * Returns 0, or IMK_B64URL_ENOSPC. Borrows every buffer; allocates nothing. */
int imk_b64url_encode(const void *in, size_t in_len, char *out, size_t out_size, size_t *out_len);

/* Decodes in_len characters of in (not NUL-terminated; may be NULL when in_len is 0) into out,
 * which must hold imk_b64url_decoded_len(in_len) bytes. Stores the decoded length in *out_len
 * when out_len is not NULL.
 * Returns 0; IMK_B64URL_EINVAL for '=' padding, a character outside [A-Za-z0-9_-] (NUL and
 * '+' '/' included), in_len % 4 == 1, or non-zero unused bits in the last character;
 * IMK_B64URL_ENOSPC when out_size is too small. On error out holds garbage.
 * Not constant-time: not meant for secret input. Borrows every buffer; allocates nothing. */
int imk_b64url_decode(const char *in, size_t in_len, void *out, size_t out_size, size_t *out_len);

#endif
