/* Unit tests of common/src/metrics.c through imkit/metrics.h: histogram buckets at and around
 * every bound, the exposition text of samples, histograms and labels (escaping included), the
 * process's own metrics, the merge of several expositions (families shared by several
 * texts, histograms kept together, garbage dropped, a text split at every line), and the
 * Redis names of the workers' pushed metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imkit/buf.h"
#include "imkit/err.h"
#include "imkit/keys.h"
#include "imkit/metrics.h"

/* The number on the line of text that starts with prefix (a whole line), or -1. */
static double value_of(const char *text, const char *prefix)
{
    size_t len = strlen(prefix);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, prefix, len) == 0 && p[len] == ' ') {
            return strtod(p + len + 1, NULL);
        }
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    return -1;
}

static size_t count_lines(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++) {
        n++;
    }
    return n;
}

/* ---- histograms ------------------------------------------------------------------------ */

static void test_hist_buckets(void **state)
{
    (void)state;
    for (size_t b = 0; b < IMK_HIST_BOUNDS; b++) {
        imk_hist_t h;
        memset(&h, 0, sizeof(h));
        double bound = imk_hist_bounds[b];
        imk_hist_observe(&h, bound); /* le is inclusive: the bound's own bucket */
        assert_int_equal(h.buckets[b], 1);
        imk_hist_observe(&h, bound * 1.0001); /* just above: the next bucket */
        assert_int_equal(h.buckets[b + 1], 1);
        if (b > 0) {
            imk_hist_observe(&h, imk_hist_bounds[b - 1] * 1.0001); /* just above the previous */
            assert_int_equal(h.buckets[b], 2);
        }
        assert_int_equal(h.count, b > 0 ? 3 : 2);
    }
}

static void test_hist_edges(void **state)
{
    (void)state;
    imk_hist_t h;
    memset(&h, 0, sizeof(h));
    imk_hist_observe(&h, -1.0); /* a clock step backwards counts as 0 */
    imk_hist_observe(&h, 0.0);
    assert_int_equal(h.buckets[0], 2);
    imk_hist_observe(&h, 1e9); /* above every bound */
    assert_int_equal(h.buckets[IMK_HIST_BOUNDS], 1);
    double nan = 0.0 / 0.0;
    imk_hist_observe(&h, nan); /* ignored */
    assert_int_equal(h.count, 3);
    assert_true(h.sum == 1e9);
    imk_hist_observe_n(&h, 0.002, 4);
    assert_int_equal(h.count, 7);
    assert_int_equal(h.buckets[2], 4); /* 0.001 < 0.002 <= 0.0025 */
    assert_true(h.sum > 1e9 + 0.0079 && h.sum < 1e9 + 0.0081);
    imk_hist_observe_n(&h, 0.002, 0); /* nothing */
    assert_int_equal(h.count, 7);
}

static void test_hist_render(void **state)
{
    (void)state;
    imk_hist_t h;
    memset(&h, 0, sizeof(h));
    imk_hist_observe(&h, 0.0003);
    imk_hist_observe(&h, 0.02);
    imk_hist_observe(&h, 0.02);
    imk_hist_observe(&h, 40);
    imk_buf_t out = IMK_BUF_INIT;
    assert_int_equal(imk_metrics_hist(&out, "x_seconds", "op=\"a\"", &h), 0);
    const char *t = out.data;
    assert_int_equal(count_lines(t, "x_seconds_bucket{"), IMK_HIST_BOUNDS + 1);
    assert_true(value_of(t, "x_seconds_bucket{op=\"a\",le=\"0.0005\"}") == 1);
    assert_true(value_of(t, "x_seconds_bucket{op=\"a\",le=\"0.01\"}") == 1);
    assert_true(value_of(t, "x_seconds_bucket{op=\"a\",le=\"0.025\"}") == 3);
    assert_true(value_of(t, "x_seconds_bucket{op=\"a\",le=\"30\"}") == 3);
    assert_true(value_of(t, "x_seconds_bucket{op=\"a\",le=\"+Inf\"}") == 4);
    assert_true(value_of(t, "x_seconds_count{op=\"a\"}") == 4);
    double sum = value_of(t, "x_seconds_sum{op=\"a\"}");
    assert_true(sum > 40.0402 && sum < 40.0404);
    /* Buckets are cumulative: never decreasing, in the order of the bounds. */
    double last = 0;
    const char *p = t;
    for (size_t i = 0; i <= IMK_HIST_BOUNDS; i++) {
        p = strstr(p, "x_seconds_bucket{");
        assert_non_null(p);
        const char *sp = strchr(p, ' ');
        double v = strtod(sp + 1, NULL);
        assert_true(v >= last);
        last = v;
        p = sp;
    }
    imk_buf_reset(&out);
    /* Without labels: no empty braces before le, none at all on _sum and _count. */
    assert_int_equal(imk_metrics_hist(&out, "y", "", &h), 0);
    assert_non_null(strstr(out.data, "y_bucket{le=\"0.001\"} 1\n"));
    assert_non_null(strstr(out.data, "\ny_count 4\n"));
    assert_null(strstr(out.data, "{}"));
    imk_buf_deinit(&out);
}

/* ---- samples, families, labels ------------------------------------------------------------ */

static void test_sample_format(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0, "m 0\n"},           {12, "m 12\n"},
        {-3, "m -3\n"},         {1e15, "m 1000000000000000\n"},
        {0.1, "m 0.1\n"},       {2.5, "m 2.5\n"},
        {0.0005, "m 0.0005\n"}, {1.0 / 3.0, "m 0.33333333333333331\n"},
        {1e300, "m 1e+300\n"},  {0.1 + 0.2, "m 0.30000000000000004\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        imk_buf_t out = IMK_BUF_INIT;
        assert_int_equal(imk_metrics_sample(&out, "m", "", cases[i].v), 0);
        assert_string_equal(out.data, cases[i].want);
        /* What is printed reads back as the value. */
        assert_true(strtod(out.data + 2, NULL) == cases[i].v);
        imk_buf_deinit(&out);
    }
    imk_buf_t out = IMK_BUF_INIT;
    double zero = 0.0;
    assert_int_equal(imk_metrics_sample(&out, "m", "a=\"1\"", 1.0 / zero), 0);
    assert_int_equal(imk_metrics_sample(&out, "m", NULL, -1.0 / zero), 0);
    assert_int_equal(imk_metrics_sample(&out, "m", "", zero / zero), 0);
    assert_string_equal(out.data, "m{a=\"1\"} +Inf\nm -Inf\nm NaN\n");
    imk_buf_reset(&out);
    assert_int_equal(imk_metrics_family(&out, "m_total", "counter", "things done"), 0);
    assert_string_equal(out.data, "# HELP m_total things done\n# TYPE m_total counter\n");
    imk_buf_reset(&out);
    assert_int_equal(imk_metrics_single(&out, "g", "gauge", "a level", "k=\"v\"", 7), 0);
    assert_string_equal(out.data, "# HELP g a level\n# TYPE g gauge\ng{k=\"v\"} 7\n");
    imk_buf_deinit(&out);
}

static void test_labels(void **state)
{
    (void)state;
    imk_buf_t labels = IMK_BUF_INIT;
    assert_int_equal(imk_metrics_label(&labels, "gateway", "gw-1"), 0);
    assert_string_equal(labels.data, "gateway=\"gw-1\"");
    assert_int_equal(imk_metrics_label(&labels, "op", "a\"b\\c\nd"), 0);
    assert_string_equal(labels.data, "gateway=\"gw-1\",op=\"a\\\"b\\\\c\\nd\"");
    assert_int_equal(imk_metrics_label(&labels, "empty", ""), 0);
    assert_string_equal(labels.data + strlen(labels.data) - 9, ",empty=\"\"");
    imk_buf_deinit(&labels);
}

static void test_process(void **state)
{
    (void)state;
    imk_buf_t out = IMK_BUF_INIT;
    assert_int_equal(imk_metrics_process(&out, "worker=\"w\""), 0);
    double rss = value_of(out.data, "process_resident_memory_bytes{worker=\"w\"}");
    double cpu = value_of(out.data, "process_cpu_seconds_total{worker=\"w\"}");
    double start = value_of(out.data, "process_start_time_seconds{worker=\"w\"}");
    assert_true(rss > 64 * 1024); /* a process holds more than 64 KiB */
    assert_true(rss < 64.0 * 1024 * 1024 * 1024);
    assert_true(cpu >= 0 && cpu < 3600);
    assert_true(start > 1.6e9 && start < 4e9); /* seconds since the epoch, not ms, not ticks */
    assert_non_null(strstr(out.data, "# TYPE process_resident_memory_bytes gauge\n"));
    assert_non_null(strstr(out.data, "# TYPE process_cpu_seconds_total counter\n"));
    imk_buf_deinit(&out);
}

static void test_now_us(void **state)
{
    (void)state;
    int64_t a = imk_metrics_now_us();
    int64_t b = imk_metrics_now_us();
    assert_true(a > 0 && b >= a);
}

/* ---- merging ----------------------------------------------------------------------------- */

static const char gateway_text[] = "# HELP imkit_gateway_sessions WebSocket sessions\n"
                                   "# TYPE imkit_gateway_sessions gauge\n"
                                   "imkit_gateway_sessions{gateway=\"g\"} 2\n"
                                   "# HELP process_resident_memory_bytes rss\n"
                                   "# TYPE process_resident_memory_bytes gauge\n"
                                   "process_resident_memory_bytes{gateway=\"g\"} 100\n";

static const char worker_text[] = "# HELP imkit_worker_job_seconds latency\n"
                                  "# TYPE imkit_worker_job_seconds histogram\n"
                                  "imkit_worker_job_seconds_bucket{worker=\"w\",le=\"1\"} 1\n"
                                  "imkit_worker_job_seconds_bucket{worker=\"w\",le=\"+Inf\"} 2\n"
                                  "imkit_worker_job_seconds_sum{worker=\"w\"} 3.5\n"
                                  "imkit_worker_job_seconds_count{worker=\"w\"} 2\n"
                                  "# HELP process_resident_memory_bytes other help\n"
                                  "# TYPE process_resident_memory_bytes gauge\n"
                                  "process_resident_memory_bytes{worker=\"w\"} 200\n";

static char *merge(const char *const *texts, size_t n)
{
    size_t lens[8];
    for (size_t i = 0; i < n; i++) {
        lens[i] = strlen(texts[i]);
    }
    imk_buf_t out = IMK_BUF_INIT;
    assert_int_equal(imk_metrics_merge(texts, lens, n, &out), 0);
    return out.data != NULL ? out.data : strdup("");
}

/* The family of the sample line that starts with sample: the name of the last TYPE line
 * above it. Also checks that no family has two TYPE lines. */
static void assert_family(const char *text, const char *sample, const char *family)
{
    const char *at = strstr(text, sample);
    assert_non_null(at);
    const char *type = NULL;
    for (const char *p = text; p < at;) {
        if (strncmp(p, "# TYPE ", 7) == 0) {
            type = p + 7;
        }
        p = strchr(p, '\n') + 1;
    }
    assert_non_null(type);
    assert_memory_equal(type, family, strlen(family));
    assert_true(type[strlen(family)] == ' ');
}

static void test_merge_families(void **state)
{
    (void)state;
    const char *texts[] = {gateway_text, worker_text, worker_text + 0};
    char *m = merge(texts, 2);
    /* One family each, the first text's help, both processes' samples together. */
    assert_int_equal(count_lines(m, "# TYPE process_resident_memory_bytes "), 1);
    assert_int_equal(count_lines(m, "# HELP process_resident_memory_bytes "), 1);
    assert_non_null(strstr(m, "# HELP process_resident_memory_bytes rss\n"
                              "# TYPE process_resident_memory_bytes gauge\n"
                              "process_resident_memory_bytes{gateway=\"g\"} 100\n"
                              "process_resident_memory_bytes{worker=\"w\"} 200\n"));
    /* The histogram's series stay under their family, in order. */
    assert_family(m, "imkit_worker_job_seconds_bucket{worker=\"w\",le=\"1\"}",
                  "imkit_worker_job_seconds");
    assert_family(m, "imkit_worker_job_seconds_count", "imkit_worker_job_seconds");
    assert_true(strstr(m, "le=\"1\"") < strstr(m, "le=\"+Inf\""));
    assert_true(strstr(m, "le=\"+Inf\"") < strstr(m, "imkit_worker_job_seconds_sum"));
    /* The families keep the order they first appeared in. */
    assert_true(strstr(m, "imkit_gateway_sessions") < strstr(m, "process_resident"));
    assert_true(strstr(m, "process_resident") < strstr(m, "imkit_worker_job_seconds"));
    free(m);
    /* Two workers with the same families: still one TYPE line each. */
    texts[2] = worker_text;
    m = merge(texts, 3);
    assert_int_equal(count_lines(m, "# TYPE "), 3);
    assert_int_equal(count_lines(m, "imkit_worker_job_seconds_sum{"), 2);
    assert_int_equal(count_lines(m, "process_resident_memory_bytes{worker"), 2);
    free(m);
}

static void test_merge_garbage(void **state)
{
    (void)state;
    const char *texts[] = {
        "\n\n# a comment\r\n"
        "9starts_with_a_digit 1\n"
        "no_value\n"
        "bad!name 3\n"
        "ok_metric{a=\"1\"} 4\r\n"
        "# TYPE\n"
        "# HELP \n"
        "last_line_without_newline 5",
        "",
    };
    char *m = merge(texts, 2);
    assert_string_equal(m, "ok_metric{a=\"1\"} 4\nlast_line_without_newline 5\n");
    free(m);
    /* A sample without family lines of its own, after another family's TYPE, is not
     * taken into that family. */
    const char *mixed[] = {"# TYPE a counter\na_total 1\nab 2\n"};
    m = merge(mixed, 1);
    assert_string_equal(m, "# TYPE a counter\na_total 1\nab 2\n");
    assert_family(m, "a_total", "a");
    free(m);
    m = merge(mixed, 0);
    assert_string_equal(m, "");
    free(m);
}

/* A text cut into two at any line boundary loses no sample, and, cut between families,
 * merges to the same output as the whole. */
static void test_merge_split(void **state)
{
    (void)state;
    const char *whole[] = {worker_text};
    char *want = merge(whole, 1);
    assert_string_equal(want, worker_text);
    for (const char *cut = worker_text; (cut = strchr(cut, '\n')) != NULL;) {
        cut++;
        char *a = strndup(worker_text, (size_t)(cut - worker_text));
        const char *parts[] = {a, cut};
        char *got = merge(parts, 2);
        for (const char *line = worker_text; *line != '\0'; line = strchr(line, '\n') + 1) {
            if (line[0] != '#') {
                char sample[128];
                snprintf(sample, sizeof(sample), "%.*s", (int)(strchr(line, '\n') - line + 1),
                         line);
                assert_int_equal(count_lines(got, sample), 1);
            }
        }
        if (strncmp(cut, "# HELP ", 7) == 0 || *cut == '\0') {
            assert_string_equal(got, want);
        }
        free(got);
        free(a);
    }
    free(want);
}

/* ---- Redis names ------------------------------------------------------------------------- */

static void test_keys(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(imk_key_metrics_worker(out, sizeof(out), "imkit:", "vm-403"), 27);
    assert_string_equal(out, "imkit:metrics:worker:vm-403");
    assert_int_equal(imk_key_metrics_workers(out, sizeof(out), "p:"), 17);
    assert_string_equal(out, "p:metrics:workers");
    assert_int_equal(imk_key_metrics_worker(out, 10, "imkit:", "vm-403"), IMK_ETOOBIG);
    assert_int_equal(strlen(out), 9);
    assert_int_equal(imk_key_metrics_workers(out, 17, "p:"), IMK_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_buckets),  cmocka_unit_test(test_hist_edges),
        cmocka_unit_test(test_hist_render),   cmocka_unit_test(test_sample_format),
        cmocka_unit_test(test_labels),        cmocka_unit_test(test_process),
        cmocka_unit_test(test_now_us),        cmocka_unit_test(test_merge_families),
        cmocka_unit_test(test_merge_garbage), cmocka_unit_test(test_merge_split),
        cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
