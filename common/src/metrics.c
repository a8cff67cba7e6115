/* Histograms, the Prometheus text format, the process's own metrics from /proc, and the merge
 * of expositions. Used by the gateway's GET /metrics and by the workers' pushes. */
#include "imkit/metrics.h"
#include "imkit/err.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const double imk_hist_bounds[IMK_HIST_BOUNDS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};

void imk_hist_observe_n(imk_hist_t *h, double seconds, uint64_t n)
{
    if (seconds != seconds || n == 0) {
        return; /* NaN */
    }
    if (seconds < 0) {
        seconds = 0;
    }
    size_t i = 0;
    while (i < IMK_HIST_BOUNDS && seconds > imk_hist_bounds[i]) {
        i++;
    }
    h->buckets[i] += n;
    h->count += n;
    h->sum += seconds * (double)n;
}

void imk_hist_observe(imk_hist_t *h, double seconds)
{
    imk_hist_observe_n(h, seconds, 1);
}

int64_t imk_metrics_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The shortest of %.15g and %.17g that reads back as v, as Prometheus clients print floats;
 * integers without a fraction. */
static void format_value(char *out, size_t len, double v)
{
    if (v != v) {
        snprintf(out, len, "NaN");
    } else if (v > 1.7976931348623157e308 || v < -1.7976931348623157e308) {
        snprintf(out, len, v > 0 ? "+Inf" : "-Inf");
    } else if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(int64_t)v) {
        snprintf(out, len, "%lld", (long long)v);
    } else {
        snprintf(out, len, "%.15g", v);
        if (strtod(out, NULL) != v) {
            snprintf(out, len, "%.17g", v);
        }
    }
}

int imk_metrics_family(imk_buf_t *out, const char *name, const char *type, const char *help)
{
    return imk_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int imk_metrics_sample(imk_buf_t *out, const char *name, const char *labels, double value)
{
    char text[40];
    format_value(text, sizeof(text), value);
    if (labels == NULL || labels[0] == '\0') {
        return imk_buf_printf(out, "%s %s\n", name, text);
    }
    return imk_buf_printf(out, "%s{%s} %s\n", name, labels, text);
}

int imk_metrics_single(imk_buf_t *out, const char *name, const char *type, const char *help,
                       const char *labels, double value)
{
    int rc = imk_metrics_family(out, name, type, help);
    return rc != 0 ? rc : imk_metrics_sample(out, name, labels, value);
}

int imk_metrics_hist(imk_buf_t *out, const char *name, const char *labels, const imk_hist_t *h)
{
    const char *sep = labels != NULL && labels[0] != '\0' ? "," : "";
    const char *own = labels != NULL ? labels : "";
    uint64_t cumulative = 0;
    int rc = 0;
    for (size_t i = 0; i <= IMK_HIST_BOUNDS && rc == 0; i++) {
        char le[40];
        if (i < IMK_HIST_BOUNDS) {
            format_value(le, sizeof(le), imk_hist_bounds[i]);
        } else {
            snprintf(le, sizeof(le), "+Inf");
        }
        cumulative += h->buckets[i];
        rc = imk_buf_printf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, own, sep, le,
                            (unsigned long long)cumulative);
    }
    char sum[40];
    format_value(sum, sizeof(sum), h->sum);
    if (rc == 0) {
        rc = own[0] != '\0' ? imk_buf_printf(out, "%s_sum{%s} %s\n%s_count{%s} %llu\n", name, own,
                                             sum, name, own, (unsigned long long)h->count)
                            : imk_buf_printf(out, "%s_sum %s\n%s_count %llu\n", name, sum, name,
                                             (unsigned long long)h->count);
    }
    return rc;
}

int imk_metrics_label(imk_buf_t *labels, const char *key, const char *value)
{
    int rc = imk_buf_printf(labels, "%s%s=\"", labels->len > 0 ? "," : "", key);
    for (const char *p = value; rc == 0 && *p != '\0'; p++) {
        if (*p == '\\' || *p == '"') {
            char esc[2] = {'\\', *p};
            rc = imk_buf_append(labels, esc, 2);
        } else if (*p == '\n') {
            rc = imk_buf_append(labels, "\\n", 2);
        } else {
            rc = imk_buf_append(labels, p, 1);
        }
    }
    return rc == 0 ? imk_buf_append(labels, "\"", 1) : rc;
}

/* Reads a small /proc file into buf (NUL-terminated); returns its length or -1. */
static ssize_t read_small(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (ssize_t)n;
}

/* The boot time in seconds since the epoch (`btime` of /proc/stat), or -1. Lines of
 * /proc/stat can be long (`intr`): read in pieces and look only at the starts of lines. */
static long long boot_time(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL) {
        return -1;
    }
    char piece[256];
    bool line_start = true;
    long long btime = -1;
    while (btime < 0 && fgets(piece, sizeof(piece), f) != NULL) {
        if (line_start && strncmp(piece, "btime ", 6) == 0) {
            btime = strtoll(piece + 6, NULL, 10);
        }
        line_start = strchr(piece, '\n') != NULL;
    }
    fclose(f);
    return btime;
}

int imk_metrics_process(imk_buf_t *out, const char *labels)
{
    char statm[256], stat[1024];
    long page = sysconf(_SC_PAGESIZE);
    long ticks = sysconf(_SC_CLK_TCK);
    long long btime = boot_time();
    if (read_small("/proc/self/statm", statm, sizeof(statm)) <= 0 ||
        read_small("/proc/self/stat", stat, sizeof(stat)) <= 0 || page <= 0 || ticks <= 0 ||
        btime < 0) {
        return IMK_EIO;
    }
    unsigned long long size_pages = 0, resident_pages = 0;
    if (sscanf(statm, "%llu %llu", &size_pages, &resident_pages) != 2) {
        return IMK_EIO;
    }
    /* Fields after the command name, which is in parentheses and may hold anything: field 3
     * (state) is the first; utime and stime are fields 14 and 15, starttime field 22. */
    const char *p = strrchr(stat, ')');
    unsigned long long field[20] = {0};
    int found = 0;
    if (p != NULL) {
        p++;
        for (int i = 3; i <= 22 && *p != '\0'; i++) {
            while (*p == ' ') {
                p++;
            }
            if (i >= 14) {
                field[i - 3] = strtoull(p, NULL, 10);
                found++;
            }
            while (*p != ' ' && *p != '\0') {
                p++;
            }
        }
    }
    if (found < 9) {
        return IMK_EIO;
    }
    const struct {
        const char *name, *type, *help;
        double value;
    } m[] = {
        {"process_resident_memory_bytes", "gauge", "resident memory size in bytes",
         (double)resident_pages * (double)page},
        {"process_cpu_seconds_total", "counter", "user and system CPU time spent, in seconds",
         (double)(field[14 - 3] + field[15 - 3]) / (double)ticks},
        {"process_start_time_seconds", "gauge",
         "start time of the process since the epoch, in seconds",
         (double)btime + (double)field[22 - 3] / (double)ticks},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]) && rc == 0; i++) {
        rc = imk_metrics_single(out, m[i].name, m[i].type, m[i].help, labels, m[i].value);
    }
    return rc;
}

/* ---- merging expositions ---------------------------------------------------------------- */

/* One family of the merged output; name, help and type point into the input texts. */
struct family {
    const char *name;
    size_t name_len;
    const char *help; /* the whole `# HELP` line, without its newline; NULL: none yet */
    size_t help_len;
    const char *type;
    size_t type_len;
    imk_buf_t samples;
};

struct families {
    struct family *v;
    size_t n;
    size_t cap;
};

/* Length of the metric name that starts p (at most len bytes), 0 when there is none. */
static size_t name_span(const char *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        char ch = p[i];
        bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ':';
        if (!alpha && !(i > 0 && ch >= '0' && ch <= '9')) {
            break;
        }
        i++;
    }
    return i;
}

/* Index of the family called name, added when new; -1 on no memory. */
static long family_index(struct families *f, const char *name, size_t len)
{
    for (size_t i = 0; i < f->n; i++) {
        if (f->v[i].name_len == len && memcmp(f->v[i].name, name, len) == 0) {
            return (long)i;
        }
    }
    if (f->n == f->cap) {
        size_t cap = f->cap != 0 ? f->cap * 2 : 32;
        struct family *v = realloc(f->v, cap * sizeof(*v));
        if (v == NULL) {
            return -1;
        }
        f->v = v;
        f->cap = cap;
    }
    struct family *fam = &f->v[f->n];
    memset(fam, 0, sizeof(*fam));
    fam->name = name;
    fam->name_len = len;
    return (long)f->n++;
}

/* Whether a sample called name (len bytes) belongs to family fam: its own name, or one of
 * the series a histogram or counter family is written as. */
static bool extends(const struct family *fam, const char *name, size_t len)
{
    static const char *const suffixes[] = {"", "_bucket", "_sum", "_count", "_total", "_created"};
    if (len < fam->name_len || memcmp(name, fam->name, fam->name_len) != 0) {
        return false;
    }
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        if (strlen(suffixes[i]) == len - fam->name_len &&
            memcmp(name + fam->name_len, suffixes[i], len - fam->name_len) == 0) {
            return true;
        }
    }
    return false;
}

/* Files one line (without its newline) of an exposition; *current is the family of the last
 * HELP or TYPE line seen in this text, -1 for none. Returns 0 or IMK_ENOMEM. */
static int merge_line(struct families *f, const char *line, size_t len, long *current)
{
    bool help = len > 7 && memcmp(line, "# HELP ", 7) == 0;
    bool type = len > 7 && memcmp(line, "# TYPE ", 7) == 0;
    if (help || type) {
        size_t n = name_span(line + 7, len - 7);
        if (n == 0) {
            return 0;
        }
        long i = family_index(f, line + 7, n);
        if (i < 0) {
            return IMK_ENOMEM;
        }
        struct family *fam = &f->v[i];
        if (help && fam->help == NULL) {
            fam->help = line;
            fam->help_len = len;
        } else if (type && fam->type == NULL) {
            fam->type = line;
            fam->type_len = len;
        }
        *current = i;
        return 0;
    }
    size_t n = name_span(line, len);
    if (n == 0 || n == len || (line[n] != '{' && line[n] != ' ')) {
        return 0; /* a comment, a blank line or garbage */
    }
    long i =
        *current >= 0 && extends(&f->v[*current], line, n) ? *current : family_index(f, line, n);
    if (i < 0) {
        return IMK_ENOMEM;
    }
    imk_buf_t *samples = &f->v[i].samples;
    if (imk_buf_append(samples, line, len) != 0 || imk_buf_append(samples, "\n", 1) != 0) {
        return IMK_ENOMEM;
    }
    return 0;
}

/* Appends a line and its newline; a NULL line appends nothing. */
static int append_line(imk_buf_t *out, const char *line, size_t len)
{
    if (line == NULL) {
        return 0;
    }
    int rc = imk_buf_append(out, line, len);
    return rc == 0 ? imk_buf_append(out, "\n", 1) : rc;
}

int imk_metrics_merge(const char *const *texts, const size_t *lens, size_t n, imk_buf_t *out)
{
    struct families f = {NULL, 0, 0};
    int rc = 0;
    for (size_t t = 0; t < n && rc == 0; t++) {
        long current = -1;
        const char *p = texts[t];
        const char *end = texts[t] + lens[t];
        while (p < end && rc == 0) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *stop = nl != NULL ? nl : end;
            size_t len = (size_t)(stop - p);
            if (len > 0 && p[len - 1] == '\r') {
                len--;
            }
            rc = merge_line(&f, p, len, &current);
            p = stop + 1;
        }
    }
    for (size_t i = 0; i < f.n && rc == 0; i++) {
        const struct family *fam = &f.v[i];
        rc = append_line(out, fam->help, fam->help_len);
        if (rc == 0) {
            rc = append_line(out, fam->type, fam->type_len);
        }
        if (rc == 0 && fam->samples.len > 0) {
            rc = imk_buf_append(out, fam->samples.data, fam->samples.len);
        }
    }
    for (size_t i = 0; i < f.n; i++) {
        imk_buf_deinit(&f.v[i].samples);
    }
    free(f.v);
    return rc;
}
