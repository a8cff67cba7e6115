/* The configuration table and its three sources (file, environment, command line).
 * Called once by each binary's main() before anything else starts. */
#include "imkit/config.h"
#include "imkit/err.h"
#include "imkit/version.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum key_type { KEY_STR, KEY_INT, KEY_BOOL };

struct key_spec {
    const char *name;
    enum key_type type;
    size_t offset;
    long min;
    long max;
    const char *def;
    const char *help;
};

#define STR(name, field, def, help)                                                                \
    {                                                                                              \
        name, KEY_STR, offsetof(imk_config_t, field), 0, 0, def, help                              \
    }
#define INT(name, field, min, max, def, help)                                                      \
    {                                                                                              \
        name, KEY_INT, offsetof(imk_config_t, field), min, max, def, help                          \
    }
#define BOOL(name, field, def, help)                                                               \
    {                                                                                              \
        name, KEY_BOOL, offsetof(imk_config_t, field), 0, 1, def, help                             \
    }

static const struct key_spec keys[] = {
    STR("redis.url", redis_url, "redis://127.0.0.1:6379/0", "the Redis server"),
    STR("redis.cluster", redis_cluster, "",
        "Redis Cluster seed nodes host:port,...: cluster mode instead of redis.url's server"),
    STR("redis.prefix", redis_prefix, "imkit:", "prefix of every key and channel"),
    INT("jobs.partitions", jobs_partitions, 1, 256, "4", "job streams imkit:jobs:0..N-1"),
    STR("gateway.public_listen", gateway_public_listen, "0.0.0.0:7600",
        "WebSocket, health, SDK and demo listener"),
    STR("gateway.admin_listen", gateway_admin_listen, "127.0.0.1:7601",
        "admin REST API and metrics listener"),
    STR("gateway.id", gateway_id, "",
        "gateway name for channels and heartbeat; empty: host name + pid"),
    INT("gateway.processes", gateway_processes, 0, 256, "0",
        "gateway processes sharing the public port (SO_REUSEPORT); 0: one per core"),
    STR("gateway.static_dir", gateway_static_dir, IMK_DEFAULT_STATIC_DIR,
        "folder served as /sdk/ (and its demo/ as /demo/)"),
    INT("gateway.request_timeout_ms", gateway_request_timeout_ms, 100, 600000, "5000",
        "a request unanswered this long gets 'unavailable'"),
    INT("gateway.heartbeat_ms", gateway_heartbeat_ms, 100, 600000, "5000",
        "how often a gateway renews its liveness key"),
    STR("gateway.allowed_origins", gateway_allowed_origins, "",
        "comma-separated origins allowed to open /ws (empty: any)"),
    STR("tls.cert", tls_cert, "", "PEM certificate chain: both listeners speak TLS"),
    STR("tls.key", tls_key, "", "PEM private key of tls.cert"),
    STR("auth.jwt_secrets", auth_jwt_secrets, "", "HS256 secrets: kid:secret,kid:secret"),
    STR("admin.api_keys", admin_api_keys, "", "comma-separated admin API keys"),
    BOOL("dev.demo_tokens", dev_demo_tokens, "off",
         "serve /dev/token (any id, no password): local development only"),
    INT("worker.batch", worker_batch, 1, 10000, "128", "jobs read per XREADGROUP"),
    INT("worker.block_ms", worker_block_ms, 10, 60000, "1000", "XREADGROUP BLOCK time"),
    INT("worker.claim_idle_ms", worker_claim_idle_ms, 100, 3600000, "5000",
        "jobs pending this long are claimed from dead workers"),
    INT("worker.max_attempts", worker_max_attempts, 1, 100, "5",
        "deliveries of a failing job before it goes to the dead-letter stream"),
    INT("worker.dead_consumer_ms", worker_dead_consumer_ms, 1000, INT_MAX, "3600000",
        "consumers idle this long with nothing pending are removed from the group"),
    INT("metrics.push_ms", metrics_push_ms, 100, 60000, "5000",
        "how often a worker pushes its metrics to Redis; they expire after 3 intervals"),
    STR("webhook.url", webhook_url, "", "where workers POST signed events (empty: none)"),
    STR("webhook.secret", webhook_secret, "",
        "HMAC-SHA256 secret(s), comma-separated: each signs every event"),
    INT("webhook.timeout_ms", webhook_timeout_ms, 100, 60000, "5000",
        "a webhook POST unanswered this long is retried"),
    INT("webhook.retry_for_s", webhook_retry_for_s, 3600, 31536000, "86400",
        "how long an event is retried before it is given up"),
    INT("events.retention_s", events_retention_s, 0, 31536000, "0",
        "how long events are kept for GET /v1/events and webhooks (0: off)"),
    INT("limits.ws_message", limits_ws_message, 1024, 16777216, "65536",
        "largest WebSocket message after defragmentation (close 1009)"),
    INT("limits.slow_reader_bytes", limits_slow_reader_bytes, 65536, INT_MAX, "1048576",
        "bytes queued to a client that does not read (close 4408)"),
    INT("limits.ping_interval_ms", limits_ping_interval_ms, 100, 3600000, "25000",
        "the server pings a quiet WebSocket this often"),
    INT("limits.ping_misses", limits_ping_misses, 1, 100, "2",
        "pings in a row without any frame back before close 1001"),
    INT("limits.message_timeout_ms", limits_message_timeout_ms, 100, 3600000, "30000",
        "a WebSocket message begun must be complete within this (close 1008)"),
    INT("limits.head_timeout_ms", limits_head_timeout_ms, 100, 600000, "10000",
        "time to send a whole HTTP request head on the public listener"),
    INT("limits.connections", limits_connections, 1, INT_MAX, "100000",
        "open connections on one gateway's public listener"),
    INT("limits.connections_per_ip", limits_connections_per_ip, 1, INT_MAX, "1000",
        "open connections from one source address"),
    INT("limits.text", limits_text, 1, 1048576, "16384", "bytes of a message's text"),
    INT("limits.payload", limits_payload, 16, 1048576, "8192", "bytes of payload or meta JSON"),
    INT("limits.ids", limits_ids, 1, 10000, "100", "ids in one request"),
    INT("limits.members", limits_members, 2, 1000000, "10000", "members in a group room"),
    INT("limits.auth_timeout_ms", limits_auth_timeout_ms, 100, 600000, "10000",
        "time to authenticate after the upgrade (close 4401)"),
    INT("limits.auth_failures", limits_auth_failures, 1, 100, "3",
        "failed auth requests before close 4401"),
    INT("limits.token_ttl", limits_token_ttl, 1, 31536000, "86400",
        "default lifetime of an opaque token, seconds"),
    INT("limits.rate", limits_rate, 1, 100000, "50", "requests per second a connection sustains"),
    INT("limits.burst", limits_burst, 1, 100000, "100", "requests a connection may send at once"),
    INT("limits.rate_abuse", limits_rate_abuse, 1, 1000000, "200",
        "requests refused rate_limited within 10 s before close 4429"),
    STR("log.level", log_level, "info", "debug, info, warn or error"),
    STR("log.format", log_format, "text", "text (key=value) or json"),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const struct key_spec *find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].name, name) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *yes[] = {"on", "true", "yes", "1"};
    static const char *no[] = {"off", "false", "no", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return IMK_EINVAL;
}

static int set_spec(imk_config_t *cfg, const struct key_spec *k, const char *value, char *err,
                    size_t errlen)
{
    char *field = (char *)cfg + k->offset;
    switch (k->type) {
    case KEY_STR: {
        char *copy = strdup(value);
        if (copy == NULL) {
            return IMK_ENOMEM;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case KEY_INT: {
        char *end;
        errno = 0;
        long n = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || n < k->min || n > k->max) {
            snprintf(err, errlen, "%s: '%s' is not an integer in %ld..%ld", k->name, value, k->min,
                     k->max);
            return IMK_EINVAL;
        }
        *(int *)field = (int)n;
        return 0;
    }
    case KEY_BOOL:
        if (parse_bool(value, (bool *)field) != 0) {
            snprintf(err, errlen, "%s: '%s' is not on or off", k->name, value);
            return IMK_EINVAL;
        }
        return 0;
    }
    return IMK_EINVAL;
}

int imk_config_set(imk_config_t *cfg, const char *key, const char *value, char *err, size_t errlen)
{
    const struct key_spec *k = find_key(key);
    if (k == NULL) {
        snprintf(err, errlen, "unknown configuration key '%s'", key);
        return IMK_EINVAL;
    }
    return set_spec(cfg, k, value, err, errlen);
}

int imk_config_init(imk_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    char err[256];
    for (size_t i = 0; i < NKEYS; i++) {
        int rc = set_spec(cfg, &keys[i], keys[i].def, err, sizeof(err));
        if (rc != 0) {
            imk_config_deinit(cfg);
            return rc;
        }
    }
    return 0;
}

void imk_config_deinit(imk_config_t *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == KEY_STR) {
            char **field = (char **)((char *)cfg + keys[i].offset);
            free(*field);
            *field = NULL;
        }
    }
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        s[--n] = '\0';
    }
    return s;
}

int imk_config_load_file(imk_config_t *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return IMK_EIO;
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    int rc = 0;
    while (rc == 0 && getline(&line, &cap, f) != -1) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash != NULL) {
            *hash = '\0';
        }
        char *s = trim(line);
        if (*s == '\0') {
            continue;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
            rc = IMK_EINVAL;
            break;
        }
        *eq = '\0';
        char msg[256];
        rc = imk_config_set(cfg, trim(s), trim(eq + 1), msg, sizeof(msg));
        if (rc != 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
        }
    }
    free(line);
    fclose(f);
    return rc;
}

/* "gateway.public_listen" -> "IMKIT_GATEWAY_PUBLIC_LISTEN" */
static void env_name(const char *key, char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "IMKIT_");
    for (const char *p = key; *p != '\0' && n + 1 < outlen; p++) {
        out[n++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
    }
    out[n] = '\0';
}

int imk_config_load_env(imk_config_t *cfg, char *const *envp, char *err, size_t errlen)
{
    for (size_t i = 0; i < NKEYS; i++) {
        char name[128];
        env_name(keys[i].name, name, sizeof(name));
        size_t len = strlen(name);
        for (char *const *e = envp; e != NULL && *e != NULL; e++) {
            if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') {
                int rc = set_spec(cfg, &keys[i], *e + len + 1, err, errlen);
                if (rc != 0) {
                    return rc;
                }
            }
        }
    }
    return 0;
}

void imk_config_print_keys(FILE *out)
{
    for (size_t i = 0; i < NKEYS; i++) {
        char env[128];
        env_name(keys[i].name, env, sizeof(env));
        fprintf(out, "  %-28s %s\n  %-28s default: %s; environment: %s\n", keys[i].name,
                keys[i].help, "", keys[i].def[0] != '\0' ? keys[i].def : "(none)", env);
    }
}

static void print_help(const char *program)
{
    printf("Usage: %s [--config FILE] [--set section.key=value]... [--help] [--version]\n\n"
           "Configuration is read from FILE, then IMKIT_* environment variables, then --set\n"
           "options; later wins. Keys:\n\n",
           program);
    imk_config_print_keys(stdout);
}

static int apply_set(imk_config_t *cfg, const char *assignment, char *err, size_t errlen)
{
    const char *eq = strchr(assignment, '=');
    if (eq == NULL || eq == assignment) {
        snprintf(err, errlen, "--set expects section.key=value, got '%s'", assignment);
        return IMK_EINVAL;
    }
    char key[128];
    size_t klen = (size_t)(eq - assignment);
    if (klen >= sizeof(key)) {
        snprintf(err, errlen, "--set: key too long");
        return IMK_EINVAL;
    }
    memcpy(key, assignment, klen);
    key[klen] = '\0';
    return imk_config_set(cfg, key, eq + 1, err, errlen);
}

static int validate(const imk_config_t *cfg, char *err, size_t errlen)
{
    if (strcmp(cfg->log_level, "debug") != 0 && strcmp(cfg->log_level, "info") != 0 &&
        strcmp(cfg->log_level, "warn") != 0 && strcmp(cfg->log_level, "error") != 0) {
        snprintf(err, errlen, "log.level: '%s' is not debug, info, warn or error", cfg->log_level);
        return IMK_EINVAL;
    }
    if (strcmp(cfg->log_format, "text") != 0 && strcmp(cfg->log_format, "json") != 0) {
        snprintf(err, errlen, "log.format: '%s' is not text or json", cfg->log_format);
        return IMK_EINVAL;
    }
    if ((cfg->tls_cert[0] == '\0') != (cfg->tls_key[0] == '\0')) {
        snprintf(err, errlen, "tls.cert and tls.key: give both or neither");
        return IMK_EINVAL;
    }
    if (cfg->webhook_url[0] != '\0' &&
        (cfg->events_retention_s == 0 || cfg->webhook_secret[0] == '\0')) {
        snprintf(err, errlen,
                 "webhook.url needs webhook.secret and events.retention_s > 0 "
                 "(e.g. 604800: a week)");
        return IMK_EINVAL;
    }
    if (cfg->redis_prefix[0] == '\0' || strlen(cfg->redis_prefix) > 64) {
        snprintf(err, errlen, "redis.prefix: 1 to 64 bytes");
        return IMK_EINVAL;
    }
    return 0;
}

int imk_config_load(imk_config_t *cfg, int argc, char **argv, char *const *envp,
                    const char *program, char *err, size_t errlen)
{
    int rc = imk_config_init(cfg);
    if (rc != 0) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help(program);
            return IMK_CONFIG_EXIT_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("%s %s\n", program, IMK_VERSION);
            return IMK_CONFIG_EXIT_OK;
        }
        if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "--set") == 0) && i + 1 < argc) {
            if (argv[i][2] == 'c') {
                file = argv[i + 1];
            }
            i++;
            continue;
        }
        snprintf(err, errlen, "unknown argument '%s' (see --help)", argv[i]);
        return IMK_EINVAL;
    }
    if (file != NULL && (rc = imk_config_load_file(cfg, file, err, errlen)) != 0) {
        return rc;
    }
    if ((rc = imk_config_load_env(cfg, envp, err, errlen)) != 0) {
        return rc;
    }
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--set") == 0) {
            if ((rc = apply_set(cfg, argv[i + 1], err, errlen)) != 0) {
                return rc;
            }
            i++;
        } else if (strcmp(argv[i], "--config") == 0) {
            i++;
        }
    }
    return validate(cfg, err, errlen);
}
