/* Logging for both binaries: one macro, the level checked before the arguments are
 * evaluated, printf-checked formats, key=value fields (text) or one JSON object per line.
 * Secrets (tokens, keys) are never passed to it. */
#ifndef IMKIT_LOG_H
#define IMKIT_LOG_H

enum imk_log_level {
    IMK_LOG_DEBUG = 0,
    IMK_LOG_INFO = 1,
    IMK_LOG_WARN = 2,
    IMK_LOG_ERROR = 3,
};

/* Set once by main() before anything logs; returns IMK_EINVAL for an unknown name. */
int imk_log_setup(const char *level, const char *format, const char *program);
int imk_log_enabled(int level);
void imk_log_write(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* IMK_LOG(IMK_LOG_INFO, "listen", "addr=%s", addr): event is a short word naming what
 * happened, the format carries key=value fields; a value with spaces goes in double quotes
 * (error="%s"). Control characters in values are written as spaces: one record, one line.
 * Fields keep the same names everywhere: a line about a client request says session= (the
 * connection, numbered per gateway process; 0 for the admin API) and req= (the gateway's
 * request number); a line about a job says job= (the envelope's job_id, "<gateway>.<boot>.
 * <req>", so it leads back to the gateway's req=), entry= (its stream entry id) and
 * stream=. Never use `ts`, `level`, `prog` or `event` as a field name: JSON has them. */
#define IMK_LOG(level, event, ...)                                                                 \
    do {                                                                                           \
        if (imk_log_enabled(level)) {                                                              \
            imk_log_write(level, event, __VA_ARGS__);                                              \
        }                                                                                          \
    } while (0)

#define IMK_DEBUG(event, ...) IMK_LOG(IMK_LOG_DEBUG, event, __VA_ARGS__)
#define IMK_INFO(event, ...) IMK_LOG(IMK_LOG_INFO, event, __VA_ARGS__)
#define IMK_WARN(event, ...) IMK_LOG(IMK_LOG_WARN, event, __VA_ARGS__)
#define IMK_ERROR(event, ...) IMK_LOG(IMK_LOG_ERROR, event, __VA_ARGS__)

#endif
