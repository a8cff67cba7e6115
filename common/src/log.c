/* The log sink: stderr, one line per record, text (key=value) or JSON. The settings are
 * written once at start by main() and only read afterwards. */
#include "imkit/log.h"
#include "imkit/err.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static struct {
    int level;
    int json;
    const char *program;
} settings = {IMK_LOG_INFO, 0, "imkit"};

static const char *level_names[] = {"debug", "info", "warn", "error"};

int imk_log_setup(const char *level, const char *format, const char *program)
{
    int found = -1;
    for (int i = 0; i < 4; i++) {
        if (strcmp(level, level_names[i]) == 0) {
            found = i;
        }
    }
    if (found < 0 || (strcmp(format, "text") != 0 && strcmp(format, "json") != 0)) {
        return IMK_EINVAL;
    }
    settings.level = found;
    settings.json = strcmp(format, "json") == 0;
    settings.program = program;
    return 0;
}

int imk_log_enabled(int level)
{
    return level >= settings.level;
}

/* Whether p (just after a double quote) ends a quoted value: the line ends, or the next
 * field ` key=` starts. */
static bool ends_value(const char *p)
{
    if (*p == '\0') {
        return true;
    }
    if (*p != ' ') {
        return false;
    }
    p++;
    const char *key = p;
    while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_') {
        p++;
    }
    return p > key && *p == '=';
}

/* The end of a value in double quotes, so that a quote inside one (Redis error texts hold
 * some) does not cut it. */
static const char *closing_quote(const char *value)
{
    const char *q = strchr(value, '"');
    while (q != NULL && !ends_value(q + 1)) {
        q = strchr(q + 1, '"');
    }
    return q;
}

/* Turns `a=1 b="x y"` into JSON members: values are kept as strings; a value in double
 * quotes runs to the closing quote and may hold spaces. */
static void write_json_fields(FILE *out, const char *fields)
{
    const char *p = fields;
    while (*p != '\0') {
        while (*p == ' ') {
            p++;
        }
        const char *eq = strchr(p, '=');
        if (*p == '\0' || eq == NULL) {
            break;
        }
        const char *value = eq + 1;
        bool quoted = *value == '"';
        value += quoted;
        const char *end = quoted ? closing_quote(value) : strchr(value, ' ');
        if (end == NULL) {
            end = value + strlen(value);
        }
        fprintf(out, ",\"%.*s\":\"", (int)(eq - p), p);
        for (const char *c = value; c < end; c++) {
            if (*c == '"' || *c == '\\') {
                fputc('\\', out);
            }
            if ((unsigned char)*c >= 0x20) {
                fputc(*c, out);
            }
        }
        fputc('"', out);
        p = *end == '"' ? end + 1 : end;
    }
}

void imk_log_write(int level, const char *event, const char *fmt, ...)
{
    char fields[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fields, sizeof(fields), fmt, ap);
    va_end(ap);
    /* One record, one line, whatever a value holds (an error text from Redis, a name). */
    for (char *c = fields; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20) {
            *c = ' ';
        }
    }

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);

    flockfile(stderr);
    if (settings.json) {
        fprintf(stderr, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"prog\":\"%s\",\"event\":\"%s\"",
                when, (long)(tv.tv_usec / 1000), level_names[level], settings.program, event);
        write_json_fields(stderr, fields);
        fputs("}\n", stderr);
    } else {
        fprintf(stderr, "ts=%s.%03ldZ level=%s prog=%s event=%s %s\n", when,
                (long)(tv.tv_usec / 1000), level_names[level], settings.program, event, fields);
    }
    funlockfile(stderr);
}
