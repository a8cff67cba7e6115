/* Latency histograms and key bitmaps of the load generator (see hist.h). */
#include "hist.h"

#include <stdlib.h>
#include <string.h>

/* Values below 2 * LG_HIST_SUB have a bucket each; above, each power of two is split into
 * LG_HIST_SUB buckets. */
static size_t bucket_of(uint64_t v)
{
    if (v < 2 * LG_HIST_SUB) {
        return (size_t)v;
    }
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 6; /* log2(LG_HIST_SUB) */
    size_t idx = (size_t)shift * LG_HIST_SUB + (size_t)(v >> shift);
    return idx < LG_HIST_BUCKETS ? idx : LG_HIST_BUCKETS - 1;
}

/* The middle of a bucket's range. */
static double bucket_value(size_t idx)
{
    if (idx < 2 * LG_HIST_SUB) {
        return (double)idx;
    }
    int shift = (int)(idx / LG_HIST_SUB) - 1;
    uint64_t low = (uint64_t)(idx - (size_t)shift * LG_HIST_SUB) << shift;
    return (double)low + (double)((uint64_t)1 << shift) / 2.0;
}

void lg_hist_add(lg_hist_t *h, int64_t value_us)
{
    uint64_t v = value_us > 0 ? (uint64_t)value_us : 0;
    h->buckets[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max) {
        h->max = v;
    }
}

void lg_hist_merge(lg_hist_t *into, const lg_hist_t *from)
{
    for (size_t i = 0; i < LG_HIST_BUCKETS; i++) {
        into->buckets[i] += from->buckets[i];
    }
    into->count += from->count;
    into->sum += from->sum;
    if (from->max > into->max) {
        into->max = from->max;
    }
}

double lg_hist_quantile(const lg_hist_t *h, double q)
{
    if (h->count == 0) {
        return 0.0;
    }
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if (rank >= h->count) {
        rank = h->count - 1;
    }
    uint64_t seen = 0;
    for (size_t i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen > rank) {
            double v = bucket_value(i);
            return v > (double)h->max ? (double)h->max : v;
        }
    }
    return (double)h->max;
}

double lg_hist_mean(const lg_hist_t *h)
{
    return h->count > 0 ? (double)h->sum / (double)h->count : 0.0;
}

static int bitmap_grow(lg_bitmap_t *b, size_t nwords)
{
    if (nwords <= b->nwords) {
        return 0;
    }
    size_t cap = b->nwords ? b->nwords : 4;
    while (cap < nwords) {
        cap *= 2;
    }
    uint64_t *words = realloc(b->words, cap * sizeof(*words));
    if (words == NULL) {
        return -1;
    }
    memset(words + b->nwords, 0, (cap - b->nwords) * sizeof(*words));
    b->words = words;
    b->nwords = cap;
    return 0;
}

int lg_bitmap_set(lg_bitmap_t *b, int64_t key)
{
    if (key < 0) {
        return 0;
    }
    size_t word = (size_t)key / 64;
    uint64_t bit = (uint64_t)1 << ((uint64_t)key % 64);
    if (bitmap_grow(b, word + 1) != 0) {
        return -1;
    }
    if (b->words[word] & bit) {
        return 0;
    }
    b->words[word] |= bit;
    return 1;
}

bool lg_bitmap_has(const lg_bitmap_t *b, int64_t key)
{
    size_t word = (size_t)key / 64;
    return key >= 0 && word < b->nwords &&
           (b->words[word] & ((uint64_t)1 << ((uint64_t)key % 64))) != 0;
}

int lg_bitmap_or(lg_bitmap_t *into, const lg_bitmap_t *from)
{
    if (bitmap_grow(into, from->nwords) != 0) {
        return -1;
    }
    for (size_t i = 0; i < from->nwords; i++) {
        into->words[i] |= from->words[i];
    }
    return 0;
}

uint64_t lg_bitmap_count_missing(const lg_bitmap_t *a, const lg_bitmap_t *b)
{
    uint64_t n = 0;
    for (size_t i = 0; i < a->nwords; i++) {
        uint64_t have = i < b->nwords ? b->words[i] : 0;
        n += (uint64_t)__builtin_popcountll(a->words[i] & ~have);
    }
    return n;
}

uint64_t lg_bitmap_count(const lg_bitmap_t *b)
{
    uint64_t n = 0;
    for (size_t i = 0; i < b->nwords; i++) {
        n += (uint64_t)__builtin_popcountll(b->words[i]);
    }
    return n;
}

void lg_bitmap_deinit(lg_bitmap_t *b)
{
    free(b->words);
    b->words = NULL;
    b->nwords = 0;
}
