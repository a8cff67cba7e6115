/* Event frames read without a parser (event_scan.h). */
#include "event_scan.h"

#include <stdbool.h>
#include <string.h>

#define SEQ_DIGITS_MAX 18 /* below INT64_MAX whatever the digits */

static bool starts_with(const char *p, const char *end, const char *prefix)
{
    size_t n = strlen(prefix);
    return (size_t)(end - p) >= n && memcmp(p, prefix, n) == 0;
}

int64_t imk_event_message_seq(const char *frame, size_t len)
{
    static const char event[] = "{\"ev\":\"";
    static const char message[] = "message\",\"data\":{\"room\":\"";
    static const char seq_key[] = "\",\"seq\":";
    const char *end = frame + len;
    if (!starts_with(frame, end, event)) {
        return -1;
    }
    const char *p = frame + strlen(event);
    if (!starts_with(p, end, message)) {
        /* another event (its name is ours: no quote, no escape), or a message laid out
         * otherwise */
        const char *name_end = memchr(p, '"', (size_t)(end - p));
        bool is_message = name_end != NULL && (size_t)(name_end - p) == strlen("message") &&
                          memcmp(p, "message", strlen("message")) == 0;
        return name_end != NULL && !is_message ? 0 : -1;
    }
    p += strlen(message);
    const char *quote = memchr(p, '"', (size_t)(end - p)); /* an id holds no quote */
    if (quote == NULL || !starts_with(quote, end, seq_key)) {
        return -1;
    }
    int64_t seq = 0;
    int digits = 0;
    for (p = quote + strlen(seq_key); p < end && *p >= '0' && *p <= '9'; p++) {
        if (++digits > SEQ_DIGITS_MAX) {
            return -1;
        }
        seq = seq * 10 + (*p - '0');
    }
    return digits > 0 && p < end && (*p == ',' || *p == '}') ? seq : -1;
}
