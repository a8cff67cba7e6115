/* Allocation-free scanning of the few JSON fields the hot path needs (seq, id, text) in
 * frames whose shape the servers fix, and of the load generator's own message text. */
#ifndef LG_SCAN_H
#define LG_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The integer right after the first occurrence of needle; false if absent. */
bool lg_scan_int(const char *s, size_t len, const char *needle, int64_t *out);

/* The string value right after needle (which ends with the opening quote), without
 * unescaping; false if absent. */
bool lg_scan_str(const char *s, size_t len, const char *needle, const char **out, size_t *out_len);

/* Parses the unsigned decimal at *p, advancing it. */
int64_t lg_scan_digits(const char **p, const char *end);

/* A message text "k<key>.t<send us>.s<sender>.xxxx": false if it is not one of ours. */
bool lg_text_parse(const char *text, size_t len, int64_t *key, int64_t *t_us, int64_t *sender);

/* Writes a message text of exactly size bytes (at least the header) into out; returns its
 * length. */
size_t lg_text_make(char *out, size_t outlen, int64_t key, int64_t t_us, int64_t sender, int size);

#endif
