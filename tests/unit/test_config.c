/* Unit tests of common/src/config.c through imkit/config.h: defaults, the file parser
 * (comments, blanks, bad lines reported with their line number), IMKIT_* variables from a
 * caller-given envp, --set, the precedence file < environment < --set, --help/--version,
 * and the refusal of unknown keys and bad or out-of-bounds values with the key named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "imkit/config.h"
#include "imkit/redis_url.h"
#include "imkit/err.h"

/* ---- helpers ---------------------------------------------------------------------------- */

/* Writes text to a new temporary file; returns its path (static storage per slot). */
static const char *write_file(const char *text)
{
    static char paths[4][64];
    static int next;
    char *path = paths[next++ % 4];
    const char *dir =
        getenv("TMPDIR") != NULL && strlen(getenv("TMPDIR")) < 32 ? getenv("TMPDIR") : "/tmp";
    snprintf(path, sizeof(paths[0]), "%s/imkit-conf-XXXXXX", dir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

/* Runs imk_config_load on a NULL-terminated argument list; returns the code. */
static int load(imk_config_t *cfg, char *const *envp, char *err, size_t errlen, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    argv[argc++] = (char *)"imkit-test";
    va_start(ap, errlen);
    for (char *a = va_arg(ap, char *); a != NULL; a = va_arg(ap, char *)) {
        assert_true(argc < 31);
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;
    err[0] = '\0';
    return imk_config_load(cfg, argc, argv, envp, "imkit-test", err, errlen);
}

static char *const NO_ENV[] = {NULL};

/* ---- defaults --------------------------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    imk_config_t cfg;

    assert_int_equal(imk_config_init(&cfg), 0);
    assert_string_equal(cfg.redis_url, "redis://127.0.0.1:6379/0");
    assert_string_equal(cfg.redis_prefix, "imkit:");
    assert_int_equal(cfg.jobs_partitions, 4);
    assert_string_equal(cfg.gateway_public_listen, "0.0.0.0:7600");
    assert_string_equal(cfg.gateway_admin_listen, "127.0.0.1:7601");
    assert_string_equal(cfg.gateway_id, "");
    assert_non_null(cfg.gateway_static_dir);
    assert_true(strlen(cfg.gateway_static_dir) > 0);
    assert_int_equal(cfg.gateway_request_timeout_ms, 5000);
    assert_int_equal(cfg.gateway_heartbeat_ms, 5000);
    assert_string_equal(cfg.auth_jwt_secrets, "");
    assert_string_equal(cfg.admin_api_keys, "");
    assert_false(cfg.dev_demo_tokens);
    assert_int_equal(cfg.worker_batch, 128);
    assert_int_equal(cfg.worker_block_ms, 1000);
    assert_int_equal(cfg.worker_claim_idle_ms, 5000);
    assert_int_equal(cfg.worker_max_attempts, 5);
    assert_int_equal(cfg.limits_ws_message, 65536);
    assert_int_equal(cfg.limits_text, 16384);
    assert_int_equal(cfg.limits_payload, 8192);
    assert_int_equal(cfg.limits_ids, 100);
    assert_int_equal(cfg.limits_members, 10000);
    assert_int_equal(cfg.limits_auth_timeout_ms, 10000);
    assert_int_equal(cfg.limits_auth_failures, 3);
    assert_int_equal(cfg.limits_token_ttl, 86400);
    assert_int_equal(cfg.limits_rate, 50);
    assert_int_equal(cfg.limits_burst, 100);
    assert_int_equal(cfg.limits_rate_abuse, 200);
    assert_string_equal(cfg.log_level, "info");
    assert_string_equal(cfg.log_format, "text");
    imk_config_deinit(&cfg);
    imk_config_deinit(&cfg); /* deinit leaves NULLs: a second call is harmless */
}

/* With no arguments and no variables, load gives the defaults. */
static void test_load_nothing(void **state)
{
    (void)state;
    imk_config_t cfg;
    char err[256];

    assert_int_equal(load(&cfg, NO_ENV, err, sizeof(err), NULL), IMK_CONFIG_RUN);
    assert_int_equal(cfg.jobs_partitions, 4);
    imk_config_deinit(&cfg);
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), NULL), IMK_CONFIG_RUN);
    assert_string_equal(cfg.redis_prefix, "imkit:");
    imk_config_deinit(&cfg);
}

/* ---- imk_config_set --------------------------------------------------------------------- */

static void test_set_values(void **state)
{
    (void)state;
    imk_config_t cfg;
    char err[256];

    assert_int_equal(imk_config_init(&cfg), 0);
    assert_int_equal(imk_config_set(&cfg, "redis.url", "redis://h:1/2", err, sizeof(err)), 0);
    assert_string_equal(cfg.redis_url, "redis://h:1/2");
    assert_int_equal(imk_config_set(&cfg, "redis.url", "redis://other", err, sizeof(err)), 0);
    assert_string_equal(cfg.redis_url, "redis://other");
    assert_int_equal(imk_config_set(&cfg, "gateway.id", "", err, sizeof(err)), 0);
    assert_string_equal(cfg.gateway_id, "");

    /* Bounds are inclusive. */
    assert_int_equal(imk_config_set(&cfg, "jobs.partitions", "1", err, sizeof(err)), 0);
    assert_int_equal(cfg.jobs_partitions, 1);
    assert_int_equal(imk_config_set(&cfg, "jobs.partitions", "256", err, sizeof(err)), 0);
    assert_int_equal(cfg.jobs_partitions, 256);
    assert_int_equal(imk_config_set(&cfg, "limits.text", "1048576", err, sizeof(err)), 0);
    assert_int_equal(cfg.limits_text, 1048576);
    assert_int_equal(imk_config_set(&cfg, "limits.payload", "16", err, sizeof(err)), 0);
    assert_int_equal(cfg.limits_payload, 16);
    assert_int_equal(imk_config_set(&cfg, "worker.claim_idle_ms", "3600000", err, sizeof(err)), 0);
    assert_int_equal(cfg.worker_claim_idle_ms, 3600000);

    /* Every spelling of a boolean, in any case. */
    static const char *const yes[] = {"on", "true", "yes", "1", "ON", "True", "YES"};
    static const char *const no[] = {"off", "false", "no", "0", "OFF", "False", "No"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        cfg.dev_demo_tokens = false;
        assert_int_equal(imk_config_set(&cfg, "dev.demo_tokens", yes[i], err, sizeof(err)), 0);
        assert_true(cfg.dev_demo_tokens);
        assert_int_equal(imk_config_set(&cfg, "dev.demo_tokens", no[i], err, sizeof(err)), 0);
        assert_false(cfg.dev_demo_tokens);
    }
    imk_config_deinit(&cfg);
}

static void test_set_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        const char *value;
    } bad[] = {
        {"jobs.partitions", "abc"},
        {"jobs.partitions", "12x"},
        {"jobs.partitions", ""},
        {"jobs.partitions", "4.0"},
        {"jobs.partitions", "0"},
        {"jobs.partitions", "257"},
        {"jobs.partitions", "-1"},
        {"jobs.partitions", "99999999999999999999999"},
        {"jobs.partitions", "4294967300"}, /* would wrap to 4 if cast to int first */
        {"limits.text", "0"},
        {"limits.text", "1048577"},
        {"limits.payload", "15"},
        {"limits.ids", "10001"},
        {"worker.block_ms", "9"},
        {"gateway.request_timeout_ms", "600001"},
        {"dev.demo_tokens", "maybe"},
        {"dev.demo_tokens", ""},
        {"dev.demo_tokens", "2"},
        {"dev.demo_tokens", "onn"},
    };
    imk_config_t cfg;
    char err[256];

    assert_int_equal(imk_config_init(&cfg), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(imk_config_set(&cfg, bad[i].key, bad[i].value, err, sizeof(err)),
                         IMK_EINVAL);
        assert_non_null(strstr(err, bad[i].key));
    }
    /* A refused value leaves the key as it was. */
    assert_int_equal(cfg.jobs_partitions, 4);
    assert_int_equal(cfg.limits_text, 16384);
    assert_false(cfg.dev_demo_tokens);

    static const char *const unknown[] = {
        "nope", "redis", "redis.", "redis.URL", "jobs.partition", "jobs.partitionsx", ".url", ""};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        err[0] = '\0';
        assert_int_equal(imk_config_set(&cfg, unknown[i], "1", err, sizeof(err)), IMK_EINVAL);
        assert_non_null(strstr(err, "unknown"));
        char quoted[64];
        snprintf(quoted, sizeof(quoted), "'%s'", unknown[i]);
        assert_non_null(strstr(err, quoted));
    }
    /* A short err buffer is cut, never overrun. */
    char tiny[8];
    memset(tiny, 'x', sizeof(tiny));
    assert_int_equal(imk_config_set(&cfg, "jobs.partitions", "0", tiny, sizeof(tiny)), IMK_EINVAL);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    imk_config_deinit(&cfg);
}

/* ---- the file --------------------------------------------------------------------------- */

static void test_file(void **state)
{
    (void)state;
    imk_config_t cfg;
    char err[256] = "";
    const char *path = write_file("# IMKit configuration\n"
                                  "\n"
                                  "   \t  \n"
                                  "redis.url = redis://10.0.0.1:6380/3\n"
                                  "redis.prefix=test:   # trailing comment\n"
                                  "  jobs.partitions   =   16  \n"
                                  "\tdev.demo_tokens = on\r\n"
                                  "# limits.text = 5\n"
                                  "gateway.id = gw name with spaces\n"
                                  "admin.api_keys = a=b,c\n"
                                  "limits.text = 100"); /* no final newline */

    assert_int_equal(imk_config_init(&cfg), 0);
    assert_int_equal(imk_config_load_file(&cfg, path, err, sizeof(err)), 0);
    assert_string_equal(cfg.redis_url, "redis://10.0.0.1:6380/3");
    assert_string_equal(cfg.redis_prefix, "test:");
    assert_int_equal(cfg.jobs_partitions, 16);
    assert_true(cfg.dev_demo_tokens);
    assert_string_equal(cfg.gateway_id, "gw name with spaces");
    assert_string_equal(cfg.admin_api_keys, "a=b,c"); /* split at the first '=' only */
    assert_int_equal(cfg.limits_text, 100);
    assert_string_equal(cfg.log_level, "info"); /* untouched keys keep their defaults */
    imk_config_deinit(&cfg);
    unlink(path);

    /* An empty file and a comments-only file change nothing. */
    path = write_file("");
    assert_int_equal(imk_config_init(&cfg), 0);
    assert_int_equal(imk_config_load_file(&cfg, path, err, sizeof(err)), 0);
    unlink(path);
    path = write_file("#\n# x = y\n\n");
    assert_int_equal(imk_config_load_file(&cfg, path, err, sizeof(err)), 0);
    assert_int_equal(cfg.jobs_partitions, 4);
    imk_config_deinit(&cfg);
    unlink(path);
}

/* Asserts that loading text fails with code, an err holding "<path>:<line>:" and needle. */
static void check_bad_file(const char *text, int code, int line, const char *needle)
{
    imk_config_t cfg;
    char err[512] = "";
    char where[128];
    const char *path = write_file(text);

    assert_int_equal(imk_config_init(&cfg), 0);
    assert_int_equal(imk_config_load_file(&cfg, path, err, sizeof(err)), code);
    snprintf(where, sizeof(where), "%s:%d:", path, line);
    assert_non_null(strstr(err, where));
    assert_non_null(strstr(err, needle));
    imk_config_deinit(&cfg);
    unlink(path);
}

static void test_file_bad_lines(void **state)
{
    (void)state;
    check_bad_file("redis.prefix = a:\njust words\n", IMK_EINVAL, 2, "key = value");
    check_bad_file("# one\n\n# three\nbogus.key = 1\n", IMK_EINVAL, 4, "bogus.key");
    check_bad_file("\n\n\njobs.partitions = many\n", IMK_EINVAL, 4, "jobs.partitions");
    check_bad_file("jobs.partitions = 0\n", IMK_EINVAL, 1, "jobs.partitions");
    check_bad_file("jobs.partitions = 4\nlimits.text = 2000000\n", IMK_EINVAL, 2, "limits.text");
    check_bad_file("dev.demo_tokens = perhaps\n", IMK_EINVAL, 1, "dev.demo_tokens");
    check_bad_file("a\r\n", IMK_EINVAL, 1, "key = value");
    check_bad_file("= value\n", IMK_EINVAL, 1, "unknown");
}

static void test_file_missing(void **state)
{
    (void)state;
    imk_config_t cfg;
    char err[256] = "";

    assert_int_equal(imk_config_init(&cfg), 0);
    assert_int_equal(imk_config_load_file(&cfg, "/nonexistent/imkit.conf", err, sizeof(err)),
                     IMK_EIO);
    assert_non_null(strstr(err, "/nonexistent/imkit.conf"));
    imk_config_deinit(&cfg);
}

/* A line longer than the reader's buffer must be taken whole or refused with its own line
 * number, never cut into a shorter value and a second line. */
static void test_file_long_line(void **state)
{
    (void)state;
    size_t n = 6000;
    char *text = malloc(n + 64);
    assert_non_null(text);
    int off = snprintf(text, n + 64, "auth.jwt_secrets = ");
    memset(text + off, 'k', n);
    strcpy(text + off + n, "\n");
    const char *path = write_file(text);
    imk_config_t cfg;
    char err[256] = "";
    char where[128];

    assert_int_equal(imk_config_init(&cfg), 0);
    int rc = imk_config_load_file(&cfg, path, err, sizeof(err));
    size_t got = strlen(cfg.auth_jwt_secrets);
    snprintf(where, sizeof(where), "%s:1:", path);
    bool right_line = strstr(err, where) != NULL;
    imk_config_deinit(&cfg);
    unlink(path);
    free(text);
    if (rc == 0) {
        assert_int_equal(got, n);
    } else {
        assert_int_equal(rc, IMK_EINVAL);
        if (!right_line) {
            fail_msg("a one-line file refused at another line: %s", err);
        }
    }
}

/* A long comment (say, a commented-out list of secrets) is a comment to its end: the file
 * is valid and the key after it is read. */
static void test_file_long_comment(void **state)
{
    (void)state;
    size_t n = 6000;
    char *text = malloc(n + 64);
    assert_non_null(text);
    int off = snprintf(text, n + 64, "# auth.jwt_secrets = ");
    memset(text + off, 'k', n);
    strcpy(text + off + n, "\nlimits.ids = 7\n");
    const char *path = write_file(text);
    imk_config_t cfg;
    char err[256] = "";

    assert_int_equal(imk_config_init(&cfg), 0);
    int rc = imk_config_load_file(&cfg, path, err, sizeof(err));
    int ids = cfg.limits_ids;
    imk_config_deinit(&cfg);
    unlink(path);
    free(text);
    if (rc != 0) {
        fail_msg("refused a valid file: %s", err);
    }
    assert_int_equal(ids, 7);
}

/* ---- the environment -------------------------------------------------------------------- */

static void test_env(void **state)
{
    (void)state;
    char *envp[] = {
        (char *)"PATH=/usr/bin",
        (char *)"IMKIT_GATEWAY_PUBLIC_LISTEN=127.0.0.1:9000",
        (char *)"IMKIT_JOBS_PARTITIONS=8",
        (char *)"IMKIT_DEV_DEMO_TOKENS=yes",
        (char *)"IMKIT_LIMITS_WS_MESSAGE=2048",
        (char *)"IMKIT_REDIS_PREFIX=env:",
        (char *)"IMKIT_UNKNOWN_KEY=1",  /* not a key: ignored */
        (char *)"IMKIT_LIMITS_TEXTX=7", /* a longer name is another variable */
        (char *)"IMKIT_LIMITS_TEX=7",   /* so is a shorter one */
        (char *)"imkit_limits_ids=7",   /* names are upper case */
        (char *)"IMKIT_LIMITS_PAYLOAD", /* no '=': not an assignment */
        (char *)"IMKIT_GATEWAY_ID=a=b", /* the value may hold '=' */
        NULL,
    };
    imk_config_t cfg;
    char err[256] = "";

    assert_int_equal(imk_config_init(&cfg), 0);
    assert_int_equal(imk_config_load_env(&cfg, envp, err, sizeof(err)), 0);
    assert_string_equal(cfg.gateway_public_listen, "127.0.0.1:9000");
    assert_int_equal(cfg.jobs_partitions, 8);
    assert_true(cfg.dev_demo_tokens);
    assert_int_equal(cfg.limits_ws_message, 2048);
    assert_string_equal(cfg.redis_prefix, "env:");
    assert_int_equal(cfg.limits_text, 16384);
    assert_int_equal(cfg.limits_ids, 100);
    assert_int_equal(cfg.limits_payload, 8192);
    assert_string_equal(cfg.gateway_id, "a=b");
    assert_int_equal(imk_config_load_env(&cfg, NULL, err, sizeof(err)), 0);
    imk_config_deinit(&cfg);
}

static void test_env_refusals(void **state)
{
    (void)state;
    char *bad_int[] = {(char *)"IMKIT_WORKER_BATCH=lots", NULL};
    char *bad_bound[] = {(char *)"IMKIT_LIMITS_IDS=0", NULL};
    char *bad_bool[] = {(char *)"IMKIT_DEV_DEMO_TOKENS=sure", NULL};
    char *const *cases[] = {bad_int, bad_bound, bad_bool};
    const char *keys[] = {"worker.batch", "limits.ids", "dev.demo_tokens"};
    imk_config_t cfg;
    char err[256];

    for (size_t i = 0; i < 3; i++) {
        err[0] = '\0';
        assert_int_equal(imk_config_init(&cfg), 0);
        assert_int_equal(imk_config_load_env(&cfg, cases[i], err, sizeof(err)), IMK_EINVAL);
        assert_non_null(strstr(err, keys[i]));
        imk_config_deinit(&cfg);

        assert_int_equal(load(&cfg, cases[i], err, sizeof(err), NULL), IMK_EINVAL);
        assert_non_null(strstr(err, keys[i]));
        imk_config_deinit(&cfg);
    }
}

/* ---- the command line ------------------------------------------------------------------- */

static void test_set_option(void **state)
{
    (void)state;
    imk_config_t cfg;
    char err[256];

    assert_int_equal(load(&cfg, NO_ENV, err, sizeof(err), "--set", "limits.text=10", "--set",
                          "log.format=json", "--set", "gateway.id=x=y", "--set",
                          "redis.url=redis://h", NULL),
                     IMK_CONFIG_RUN);
    assert_int_equal(cfg.limits_text, 10);
    assert_string_equal(cfg.log_format, "json");
    assert_string_equal(cfg.gateway_id, "x=y");
    assert_string_equal(cfg.redis_url, "redis://h");
    imk_config_deinit(&cfg);

    /* The same key twice: the last wins. */
    assert_int_equal(load(&cfg, NO_ENV, err, sizeof(err), "--set", "limits.ids=5", "--set",
                          "limits.ids=6", NULL),
                     IMK_CONFIG_RUN);
    assert_int_equal(cfg.limits_ids, 6);
    imk_config_deinit(&cfg);
}

static void test_cli_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *args[3];
        const char *needle;
    } cases[] = {
        {{"--set", "nope.key=1", NULL}, "nope.key"},
        {{"--set", "limits.ids=x", NULL}, "limits.ids"},
        {{"--set", "limits.ids=100000", NULL}, "limits.ids"},
        {{"--set", "dev.demo_tokens=2", NULL}, "dev.demo_tokens"},
        {{"--set", "limits.ids", NULL}, "limits.ids"},
        {{"--set", "=5", NULL}, "=5"},
        {{"--set", NULL, NULL}, "--set"},
        {{"--config", NULL, NULL}, "--config"},
        {{"--bogus", NULL, NULL}, "--bogus"},
        {{"extra", NULL, NULL}, "extra"},
        {{"--set", "log.level=loud", NULL}, "log.level"},
        {{"--set", "log.format=xml", NULL}, "log.format"},
        {{"--set", "redis.prefix=", NULL}, "redis.prefix"},
        {{"--config", "/nonexistent/x.conf", NULL}, "/nonexistent/x.conf"},
    };
    imk_config_t cfg;
    char err[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = load(&cfg, NO_ENV, err, sizeof(err), cases[i].args[0], cases[i].args[1], NULL);
        assert_true(rc < 0);
        assert_non_null(strstr(err, cases[i].needle));
        imk_config_deinit(&cfg);
    }
    char long_key[300];
    memset(long_key, 'k', sizeof(long_key) - 3);
    strcpy(long_key + sizeof(long_key) - 3, "=1");
    assert_int_equal(load(&cfg, NO_ENV, err, sizeof(err), "--set", long_key, NULL), IMK_EINVAL);
    imk_config_deinit(&cfg);
}

static void test_help_version(void **state)
{
    (void)state;
    imk_config_t cfg;
    char err[256];

    assert_int_equal(load(&cfg, NO_ENV, err, sizeof(err), "--help", NULL), IMK_CONFIG_EXIT_OK);
    imk_config_deinit(&cfg);
    assert_int_equal(load(&cfg, NO_ENV, err, sizeof(err), "-h", NULL), IMK_CONFIG_EXIT_OK);
    imk_config_deinit(&cfg);
    assert_int_equal(load(&cfg, NO_ENV, err, sizeof(err), "--version", NULL), IMK_CONFIG_EXIT_OK);
    imk_config_deinit(&cfg);
    /* --help wins over options around it, even bad ones after it. */
    assert_int_equal(
        load(&cfg, NO_ENV, err, sizeof(err), "--set", "limits.ids=5", "--help", "--bogus", NULL),
        IMK_CONFIG_EXIT_OK);
    imk_config_deinit(&cfg);
    /* "--help" as the value of --set is a value, not the option. */
    assert_true(load(&cfg, NO_ENV, err, sizeof(err), "--set", "--help", NULL) < 0);
    imk_config_deinit(&cfg);
}

static void test_print_keys(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    char text[16384];

    assert_non_null(f);
    imk_config_print_keys(f);
    rewind(f);
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    static const char *const needles[] = {
        "gateway.public_listen", "IMKIT_GATEWAY_PUBLIC_LISTEN",
        "jobs.partitions",       "IMKIT_JOBS_PARTITIONS",
        "dev.demo_tokens",       "IMKIT_LIMITS_TOKEN_TTL",
        "limits.text",           "16384",
    };
    for (size_t i = 0; i < sizeof(needles) / sizeof(needles[0]); i++) {
        assert_non_null(strstr(text, needles[i]));
    }
}

/* ---- precedence ------------------------------------------------------------------------- */

static void test_precedence(void **state)
{
    (void)state;
    const char *path = write_file("limits.ids = 11\n"
                                  "limits.text = 11\n"
                                  "limits.payload = 1100\n"
                                  "log.level = debug\n");
    char *envp[] = {(char *)"IMKIT_LIMITS_TEXT=22", (char *)"IMKIT_LIMITS_PAYLOAD=2200",
                    (char *)"IMKIT_LOG_LEVEL=warn", NULL};
    imk_config_t cfg;
    char err[256];

    /* file < env < --set, whatever the order of the options. */
    assert_int_equal(
        load(&cfg, envp, err, sizeof(err), "--set", "limits.payload=3300", "--config", path, NULL),
        IMK_CONFIG_RUN);
    assert_int_equal(cfg.limits_ids, 11);       /* file only */
    assert_int_equal(cfg.limits_text, 22);      /* file, env */
    assert_int_equal(cfg.limits_payload, 3300); /* file, env, --set */
    assert_string_equal(cfg.log_level, "warn");
    imk_config_deinit(&cfg);

    assert_int_equal(
        load(&cfg, envp, err, sizeof(err), "--config", path, "--set", "limits.ids=33", NULL),
        IMK_CONFIG_RUN);
    assert_int_equal(cfg.limits_ids, 33);
    assert_int_equal(cfg.limits_text, 22);
    assert_int_equal(cfg.limits_payload, 2200);
    imk_config_deinit(&cfg);

    /* No env: the file's values stand. */
    assert_int_equal(load(&cfg, NO_ENV, err, sizeof(err), "--config", path, NULL), IMK_CONFIG_RUN);
    assert_int_equal(cfg.limits_text, 11);
    assert_string_equal(cfg.log_level, "debug");
    imk_config_deinit(&cfg);

    /* The last --config wins, as for --set. */
    const char *other = write_file("limits.ids = 44\n");
    assert_int_equal(
        load(&cfg, NO_ENV, err, sizeof(err), "--config", path, "--config", other, NULL),
        IMK_CONFIG_RUN);
    assert_int_equal(cfg.limits_ids, 44);
    imk_config_deinit(&cfg);

    /* A bad value in the file is reported even when --set would override it. */
    const char *bad = write_file("limits.ids = zero\n");
    assert_int_equal(
        load(&cfg, NO_ENV, err, sizeof(err), "--config", bad, "--set", "limits.ids=5", NULL),
        IMK_EINVAL);
    assert_non_null(strstr(err, "limits.ids"));
    imk_config_deinit(&cfg);
    unlink(bad);
    unlink(other);
    unlink(path);
}

/* What logs may show of redis.url: never the password. */
static void test_redis_url_redact(void **state)
{
    (void)state;
    static const struct {
        const char *url, *shown;
    } cases[] = {
        {"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
        {"redis://:s3cret@redis:6380/1", "redis://:***@redis:6380/1"},
        {"redis://s3cret@redis", "redis://***@redis"},
        {"redis://user:pw@h:1/2", "redis://user:***@h:1/2"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[128];
        imk_redis_url_redact(cases[i].url, out, sizeof(out));
        assert_string_equal(out, cases[i].shown);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_load_nothing),
        cmocka_unit_test(test_set_values),
        cmocka_unit_test(test_set_refusals),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_file_bad_lines),
        cmocka_unit_test(test_file_missing),
        cmocka_unit_test(test_file_long_line),
        cmocka_unit_test(test_file_long_comment),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_env_refusals),
        cmocka_unit_test(test_set_option),
        cmocka_unit_test(test_cli_refusals),
        cmocka_unit_test(test_help_version),
        cmocka_unit_test(test_print_keys),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_redis_url_redact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
