/* Metrics for both binaries: latency histograms with fixed buckets kept in the caller's
 * storage (an observation allocates nothing), the Prometheus text exposition format (0.0.4)
 * they and plain counters are written in, the process's own memory, CPU and start time, and
 * the merge of several expositions into one (a gateway serves its own metrics together with
 * those the workers pushed to Redis). Also the Redis names of the workers' pushed metrics.
 * Nothing here is thread-safe: a histogram belongs to the thread that observes it. */
#ifndef IMKIT_METRICS_H
#define IMKIT_METRICS_H

#include "imkit/buf.h"

#include <stddef.h>
#include <stdint.h>

/* Upper bounds, in seconds, of every histogram's buckets (0.5 ms to 30 s); one more bucket
 * holds what is above the last. Fixed, so every process renders the same `le` labels. */
#define IMK_HIST_BOUNDS 15
extern const double imk_hist_bounds[IMK_HIST_BOUNDS];

/* A histogram. All zero is empty and ready: there is nothing to init or deinit. */
typedef struct imk_hist {
    uint64_t buckets[IMK_HIST_BOUNDS + 1]; /* observations per bucket, not cumulative */
    uint64_t count;
    double sum; /* seconds */
} imk_hist_t;

/* Adds one observation (seconds; a negative value counts as 0, NaN is ignored). */
void imk_hist_observe(imk_hist_t *h, double seconds);
/* Adds n observations of the same value. */
void imk_hist_observe_n(imk_hist_t *h, double seconds, uint64_t n);

/* A monotonic clock in microseconds, for durations (never for timestamps). */
int64_t imk_metrics_now_us(void);

/* The exposition writer. Metric names are the caller's constants ([a-zA-Z_:][a-zA-Z0-9_:]*);
 * labels is "" or a label list without braces built with imk_metrics_label, e.g.
 * `gateway="gw1",op="msg.send"`. Each function appends to out and returns 0 or IMK_ENOMEM. */

/* `# HELP` and `# TYPE` lines; type is "counter", "gauge" or "histogram". */
int imk_metrics_family(imk_buf_t *out, const char *name, const char *type, const char *help);
/* One sample line. Integers print without a fraction; NaN and infinities as Prometheus does. */
int imk_metrics_sample(imk_buf_t *out, const char *name, const char *labels, double value);
/* The _bucket (cumulative, one per bound and +Inf), _sum and _count lines of h. */
/* A family with one sample: imk_metrics_family, then imk_metrics_sample. */
int imk_metrics_single(imk_buf_t *out, const char *name, const char *type, const char *help,
                       const char *labels, double value);
int imk_metrics_hist(imk_buf_t *out, const char *name, const char *labels, const imk_hist_t *h);
/* Appends `key="value"` to a label list, after a comma when the list is not empty; value is
 * escaped (backslash, double quote, newline). */
int imk_metrics_label(imk_buf_t *labels, const char *key, const char *value);

/* The process's own families, read from /proc: process_resident_memory_bytes,
 * process_cpu_seconds_total and process_start_time_seconds, each sample with labels. Returns
 * 0, IMK_ENOMEM, or IMK_EIO when /proc cannot be read (then nothing was appended). */
int imk_metrics_process(imk_buf_t *out, const char *labels);

/* Merges n expositions (texts[i], lens[i] bytes; borrowed) into out: each family once, its
 * HELP and TYPE lines from the first text that has them, then its samples from every text in
 * order. Several texts may carry the same family (every process reports
 * process_resident_memory_bytes): one output family must hold all its samples, or the
 * exposition would be invalid. A sample belongs to the family of the TYPE line above it
 * when its name extends that family's (name_bucket, name_sum, name_count), otherwise to the
 * family of its own name. Lines that are neither a comment nor a sample are dropped.
 * Returns 0 or IMK_ENOMEM (out then holds a part). */
int imk_metrics_merge(const char *const *texts, const size_t *lens, size_t n, imk_buf_t *out);

#endif
