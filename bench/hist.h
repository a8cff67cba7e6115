/* Latency histograms (log-linear, mergeable, about 1.5 % resolution) and growable bitmaps
 * of message keys, used by every load generator thread and merged by the controller. */
#ifndef LG_HIST_H
#define LG_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LG_HIST_SUB 64
#define LG_HIST_BUCKETS (LG_HIST_SUB * 40)

/* Microsecond values; zero-initialised storage is an empty histogram. */
typedef struct {
    uint64_t count;
    uint64_t sum;
    uint64_t max;
    uint64_t buckets[LG_HIST_BUCKETS];
} lg_hist_t;

void lg_hist_add(lg_hist_t *h, int64_t value_us);
void lg_hist_merge(lg_hist_t *into, const lg_hist_t *from);
/* The value at quantile q (0..1), in microseconds; 0 for an empty histogram. */
double lg_hist_quantile(const lg_hist_t *h, double q);
double lg_hist_mean(const lg_hist_t *h);

/* A set of positive 64-bit keys (message seqs), dense from 1. Zero-initialised is empty. */
typedef struct {
    uint64_t *words;
    size_t nwords;
} lg_bitmap_t;

/* Sets key; returns 1 if it was new, 0 if already set, -1 when out of memory. */
int lg_bitmap_set(lg_bitmap_t *b, int64_t key);
bool lg_bitmap_has(const lg_bitmap_t *b, int64_t key);
/* into |= from; returns 0 or -1 when out of memory. */
int lg_bitmap_or(lg_bitmap_t *into, const lg_bitmap_t *from);
/* Keys in a that are not in b. */
uint64_t lg_bitmap_count_missing(const lg_bitmap_t *a, const lg_bitmap_t *b);
uint64_t lg_bitmap_count(const lg_bitmap_t *b);
void lg_bitmap_deinit(lg_bitmap_t *b);

#endif
