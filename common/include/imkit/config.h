/* Configuration of both binaries: one table of keys (name, type, bounds, default, help),
 * loaded from the file given by --config, then IMKIT_SECTION_KEY environment variables,
 * then --set section.key=value; later wins. Validated at start, read-only afterwards. */
#ifndef IMKIT_CONFIG_H
#define IMKIT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct imk_config {
    char *redis_url;
    char *redis_cluster; /* "" = a single Redis (redis.url) */
    char *redis_prefix;
    int jobs_partitions;

    char *gateway_public_listen;
    char *gateway_admin_listen;
    char *gateway_id;
    char *gateway_static_dir;
    int gateway_processes;
    int gateway_request_timeout_ms;
    int gateway_heartbeat_ms;
    char *gateway_allowed_origins;

    char *tls_cert;
    char *tls_key;

    char *auth_jwt_secrets;
    char *admin_api_keys;
    bool dev_demo_tokens;

    int worker_batch;
    int worker_block_ms;
    int worker_claim_idle_ms;
    int worker_max_attempts;
    int worker_dead_consumer_ms;

    int metrics_push_ms;

    char *webhook_url;
    char *webhook_secret;
    int webhook_timeout_ms;
    int webhook_retry_for_s;
    int events_retention_s;

    int limits_ws_message;
    int limits_slow_reader_bytes;
    int limits_ping_interval_ms;
    int limits_ping_misses;
    int limits_message_timeout_ms;
    int limits_head_timeout_ms;
    int limits_connections;
    int limits_connections_per_ip;
    int limits_text;
    int limits_payload;
    int limits_ids;
    int limits_members;
    int limits_auth_timeout_ms;
    int limits_auth_failures;
    int limits_token_ttl;
    int limits_rate;
    int limits_burst;
    int limits_rate_abuse;

    char *log_level;
    char *log_format;
} imk_config_t;

/* Sets every key to its default. Returns 0 or IMK_ENOMEM. */
int imk_config_init(imk_config_t *cfg);
void imk_config_deinit(imk_config_t *cfg);

/* Sets one key from text. Returns 0, or IMK_EINVAL (unknown key, bad value, out of
 * bounds) with a sentence in err. */
int imk_config_set(imk_config_t *cfg, const char *key, const char *value, char *err, size_t errlen);

/* Reads "section.key = value" lines; '#' starts a comment; blank lines are skipped. */
int imk_config_load_file(imk_config_t *cfg, const char *path, char *err, size_t errlen);

/* Applies every IMKIT_SECTION_KEY variable of envp that names a known key. */
int imk_config_load_env(imk_config_t *cfg, char *const *envp, char *err, size_t errlen);

enum imk_config_action {
    IMK_CONFIG_RUN = 0,
    IMK_CONFIG_EXIT_OK = 1, /* --help or --version was printed */
};

/* The whole start-up sequence: defaults, --config file, environment, --set options.
 * Returns IMK_CONFIG_RUN, IMK_CONFIG_EXIT_OK, or a negative code with err filled. */
int imk_config_load(imk_config_t *cfg, int argc, char **argv, char *const *envp,
                    const char *program, char *err, size_t errlen);

/* Prints every key with its default and meaning. */
void imk_config_print_keys(FILE *out);

#endif
