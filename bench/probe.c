/* /proc and Redis INFO sampling (see probe.h). */
#include "probe.h"
#include "lg.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int lg_watch_parse(const char *spec, lg_watch_t *w)
{
    const char *eq = strchr(spec, '=');
    memset(w, 0, sizeof(*w));
    if (eq == NULL || eq == spec || (size_t)(eq - spec) >= sizeof(w->name)) {
        return -1;
    }
    memcpy(w->name, spec, (size_t)(eq - spec));
    for (const char *p = eq + 1; *p != '\0' && w->npids < LG_PROBE_PIDS;) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p || pid <= 0) {
            return -1;
        }
        w->pids[w->npids++] = (int)pid;
        p = *end == ',' ? end + 1 : end;
    }
    return 0;
}

/* utime + stime of pid in seconds (fields 14 and 15 of /proc/<pid>/stat). */
static double proc_cpu(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0.0;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long utime = 0, stime = 0;
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                            &stime) != 2) {
        return 0.0;
    }
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* A "Key: value" (or "key: value") number from a /proc/<pid>/<file>. */
static uint64_t proc_field(int pid, const char *file, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
    FILE *f = fopen(path, "r");
    uint64_t v = 0;
    size_t klen = strlen(key);
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtoull(line + klen + 1, NULL, 10);
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return v;
}

static int redis_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {2, 0};
    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads INFO commandstats as one bulk reply into buf. Returns its length or -1. */
static int redis_info(int port, char *buf, size_t cap)
{
    static const char cmd[] = "*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n";
    int fd = redis_connect(port);
    if (fd < 0 || write(fd, cmd, sizeof(cmd) - 1) != (ssize_t)(sizeof(cmd) - 1)) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    size_t len = 0;
    long want = -1;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        buf[len] = '\0';
        char *nl = strstr(buf, "\r\n");
        if (want < 0 && buf[0] == '$' && nl != NULL) {
            want = strtol(buf + 1, NULL, 10) + (long)(nl - buf) + 4;
        }
        if (want >= 0 && (long)len >= want) {
            break;
        }
    }
    close(fd);
    buf[len] = '\0';
    return (int)len;
}

static void parse_commandstats(const char *info, lg_sample_t *s)
{
    for (const char *p = strstr(info, "cmdstat_"); p != NULL && s->ncmds < LG_PROBE_CMDS;
         p = strstr(p + 1, "cmdstat_")) {
        const char *colon = strchr(p, ':');
        const char *calls = colon != NULL ? strstr(colon, "calls=") : NULL;
        size_t nlen = colon != NULL ? (size_t)(colon - p - 8) : 0;
        if (calls == NULL || nlen == 0 || nlen >= sizeof(s->cmd[0])) {
            continue;
        }
        memcpy(s->cmd[s->ncmds], p + 8, nlen);
        s->cmd[s->ncmds][nlen] = '\0';
        s->calls[s->ncmds++] = strtoull(calls + 6, NULL, 10);
    }
}

void lg_probe_sample(const lg_watch_t *groups, int ngroups, int redis_port, lg_sample_t *s)
{
    memset(s, 0, sizeof(*s));
    for (int g = 0; g < ngroups && g < LG_PROBE_GROUPS; g++) {
        for (int i = 0; i < groups[g].npids; i++) {
            int pid = groups[g].pids[i];
            s->cpu_s[g] += proc_cpu(pid);
            s->syscw[g] += proc_field(pid, "io", "syscw");
            s->rss_kb[g] += proc_field(pid, "status", "VmRSS");
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    s->self_cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    if (redis_port > 0) {
        size_t cap = 256 * 1024;
        char *info = malloc(cap);
        if (info != NULL && redis_info(redis_port, info, cap) > 0) {
            s->redis_ok = 1;
            parse_commandstats(info, s);
        }
        free(info);
    }
    s->t_us = lg_now_us();
}

uint64_t lg_probe_calls(const lg_sample_t *s, const char *cmd)
{
    for (int i = 0; i < s->ncmds; i++) {
        if (strcmp(s->cmd[i], cmd) == 0) {
            return s->calls[i];
        }
    }
    return 0;
}
