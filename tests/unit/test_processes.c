/* Unit tests of gateway/src/processes.c's per-process configuration (gateway.processes):
 * the id suffix, the admin port offset (an IPv6 host keeps its brackets), a single process
 * left as configured, a malformed admin address (or port 0) refused, and
 * gateway.processes resolved (0: the online cores). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "imkit/config.h"
#include "imkit/err.h"
#include "processes.h"

static void set(imk_config_t *cfg, const char *key, const char *value)
{
    char err[256];
    assert_int_equal(imk_config_set(cfg, key, value, err, sizeof(err)), 0);
}

static void test_configure_index(void **state)
{
    (void)state;
    imk_config_t cfg;
    assert_int_equal(imk_config_init(&cfg), 0);
    set(&cfg, "gateway.id", "gw");
    set(&cfg, "gateway.admin_listen", "127.0.0.1:7601");
    assert_int_equal(imk_processes_configure(&cfg, 3, 4), 0);
    assert_string_equal(cfg.gateway_id, "gw-3");
    assert_string_equal(cfg.gateway_admin_listen, "127.0.0.1:7604");
    imk_config_deinit(&cfg);
}

static void test_configure_defaults_and_edges(void **state)
{
    (void)state;
    imk_config_t cfg;
    assert_int_equal(imk_config_init(&cfg), 0);
    /* No gateway.id: the default (host name + pid) is distinct already. */
    set(&cfg, "gateway.admin_listen", "[::1]:7601");
    assert_int_equal(imk_processes_configure(&cfg, 1, 2), 0);
    assert_string_equal(cfg.gateway_id, "");
    assert_string_equal(cfg.gateway_admin_listen, "[::1]:7602");
    /* One process: nothing changes. */
    set(&cfg, "gateway.id", "solo");
    set(&cfg, "gateway.admin_listen", "127.0.0.1:7601");
    assert_int_equal(imk_processes_configure(&cfg, 0, 1), 0);
    assert_string_equal(cfg.gateway_id, "solo");
    assert_string_equal(cfg.gateway_admin_listen, "127.0.0.1:7601");
    /* A malformed admin address is refused, not guessed at; so is port 0, as the admin
     * listener itself refuses it. */
    set(&cfg, "gateway.admin_listen", "no-port");
    assert_int_equal(imk_processes_configure(&cfg, 1, 2), IMK_EINVAL);
    set(&cfg, "gateway.admin_listen", "127.0.0.1:0");
    assert_int_equal(imk_processes_configure(&cfg, 1, 2), IMK_EINVAL);
    /* Process 1 of a base port 65535 would listen on 65536. */
    set(&cfg, "gateway.admin_listen", "127.0.0.1:65535");
    assert_int_equal(imk_processes_configure(&cfg, 1, 2), IMK_EINVAL);
    assert_int_equal(imk_processes_configure(&cfg, 0, 2), 0);
    assert_string_equal(cfg.gateway_admin_listen, "127.0.0.1:65535");
    imk_config_deinit(&cfg);
}

static void test_admin_listen(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(imk_processes_admin_listen("127.0.0.1:65534", 1, out, sizeof(out)), 0);
    assert_string_equal(out, "127.0.0.1:65535");
    assert_int_equal(imk_processes_admin_listen("127.0.0.1:65534", 2, out, sizeof(out)),
                     IMK_EINVAL);
    assert_int_equal(imk_processes_admin_listen("[::1]:7601", 255, out, sizeof(out)), 0);
    assert_string_equal(out, "[::1]:7856");
    assert_int_equal(imk_processes_admin_listen("127.0.0.1:7601", 1, out, 8), IMK_EINVAL);
}

static void test_count(void **state)
{
    (void)state;
    imk_config_t cfg;
    assert_int_equal(imk_config_init(&cfg), 0);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(imk_processes_count(&cfg), cores < 1 ? 1 : (int)cores);
    set(&cfg, "gateway.processes", "3");
    assert_int_equal(imk_processes_count(&cfg), 3);
    imk_config_deinit(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_configure_index),
        cmocka_unit_test(test_admin_listen),
        cmocka_unit_test(test_configure_defaults_and_edges),
        cmocka_unit_test(test_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
