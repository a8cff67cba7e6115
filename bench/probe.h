/* Server-side costs read at the edges of a measured window: CPU time (utime + stime),
 * write syscalls (syscw) and RSS of each watched group of processes from /proc, the
 * load generator's own CPU, and Redis's INFO commandstats. Runs on the controller thread. */
#ifndef LG_PROBE_H
#define LG_PROBE_H

#include <stdint.h>

#define LG_PROBE_GROUPS 8
#define LG_PROBE_PIDS 64
#define LG_PROBE_CMDS 96

typedef struct lg_watch {
    char name[32];
    int pids[LG_PROBE_PIDS];
    int npids;
} lg_watch_t;

typedef struct lg_sample {
    int64_t t_us;
    double cpu_s[LG_PROBE_GROUPS];
    uint64_t syscw[LG_PROBE_GROUPS];
    uint64_t rss_kb[LG_PROBE_GROUPS];
    double self_cpu_s;
    int ncmds;
    char cmd[LG_PROBE_CMDS][32];
    uint64_t calls[LG_PROBE_CMDS];
    int redis_ok;
} lg_sample_t;

/* Parses "name=pid,pid,..." into w. Returns 0 or -1. */
int lg_watch_parse(const char *spec, lg_watch_t *w);

/* Reads every group and, when redis_port > 0, Redis on 127.0.0.1:redis_port. */
void lg_probe_sample(const lg_watch_t *groups, int ngroups, int redis_port, lg_sample_t *s);

/* Calls of cmd in s (0 when absent). */
uint64_t lg_probe_calls(const lg_sample_t *s, const char *cmd);

#endif
