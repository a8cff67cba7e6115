/* Field scanning for the hot path (see scan.h). */
#define _GNU_SOURCE /* memmem */
#include "scan.h"

#include <stdio.h>
#include <string.h>

int64_t lg_scan_digits(const char **p, const char *end)
{
    int64_t v = 0;
    while (*p < end && **p >= '0' && **p <= '9') {
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    return v;
}

bool lg_scan_int(const char *s, size_t len, const char *needle, int64_t *out)
{
    size_t nlen = strlen(needle);
    const char *at = memmem(s, len, needle, nlen);
    if (at == NULL) {
        return false;
    }
    const char *p = at + nlen, *end = s + len;
    if (p >= end || *p < '0' || *p > '9') {
        return false;
    }
    *out = lg_scan_digits(&p, end);
    return true;
}

bool lg_scan_str(const char *s, size_t len, const char *needle, const char **out, size_t *out_len)
{
    size_t nlen = strlen(needle);
    const char *at = memmem(s, len, needle, nlen);
    if (at == NULL) {
        return false;
    }
    const char *start = at + nlen, *end = s + len;
    const char *quote = memchr(start, '"', (size_t)(end - start));
    if (quote == NULL) {
        return false;
    }
    *out = start;
    *out_len = (size_t)(quote - start);
    return true;
}

static bool field(const char **p, const char *end, char tag, int64_t *v)
{
    if (*p >= end || **p != tag) {
        return false;
    }
    (*p)++;
    *v = lg_scan_digits(p, end);
    if (*p < end && **p == '.') {
        (*p)++;
    }
    return true;
}

bool lg_text_parse(const char *text, size_t len, int64_t *key, int64_t *t_us, int64_t *sender)
{
    const char *p = text, *end = text + len;
    return field(&p, end, 'k', key) && field(&p, end, 't', t_us) && field(&p, end, 's', sender);
}

size_t lg_text_make(char *out, size_t outlen, int64_t key, int64_t t_us, int64_t sender, int size)
{
    int n = snprintf(out, outlen, "k%lld.t%lld.s%lld.", (long long)key, (long long)t_us,
                     (long long)sender);
    if (n < 0) {
        return 0;
    }
    size_t len = (size_t)n < outlen ? (size_t)n : outlen - 1;
    while ((int)len < size && len + 1 < outlen) {
        out[len++] = 'x';
    }
    out[len] = '\0';
    return len;
}
