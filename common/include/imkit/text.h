/* Text checks and JSON string escaping shared by the gateway's parsers. */
#ifndef IMKIT_TEXT_H
#define IMKIT_TEXT_H

#include "imkit/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF. */
bool imk_utf8_valid(const char *s, size_t len);

/* s[0..n) as a decimal in min..max: digits only (no sign, no spaces), at most
 * IMK_DECIMAL_DIGITS of them. Returns 0 (*out set) or IMK_EINVAL. */
#define IMK_DECIMAL_DIGITS 18 /* any 18 digits fit an int64_t */
int imk_parse_decimal(const char *s, size_t n, int64_t min, int64_t max, int64_t *out);

/* Appends s as a quoted JSON string. Returns 0 or IMK_ENOMEM. */
int imk_json_quote(imk_buf_t *out, const char *s, size_t len);

#endif
