/* The gateway supervisor: forks gateway.processes children, restarts one that dies, and
 * on SIGTERM or SIGINT passes the signal on and waits for every child to stop.
 *
 * The supervisor holds no socket and runs no event loop: signals are blocked and taken
 * with sigtimedwait, so there is no handler to race with. Each child binds the public
 * port itself with SO_REUSEPORT (the kernel spreads new connections over the children)
 * and its own admin port (admin_listen's port + index). A child asks the kernel for
 * SIGKILL should the supervisor die, so a killed supervisor leaves no gateway behind. */
#include "processes.h"
#include "imkit/err.h"
#include "imkit/log.h"
#include "listen_addr.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCESSES 256
#define RESTART_DELAY_S 1 /* between a child's death and its replacement */
#define STOP_GRACE_S 15   /* after SIGTERM, before SIGKILL */

typedef struct child {
    pid_t pid;         /* 0: not running */
    time_t restart_at; /* when a dead child is started again */
} child_t;

int imk_processes_count(const imk_config_t *cfg)
{
    if (cfg->gateway_processes > 0) {
        return cfg->gateway_processes;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores < 1 ? 1 : cores > MAX_PROCESSES ? MAX_PROCESSES : (int)cores;
}

int imk_processes_admin_listen(const char *admin_listen, int index, char *out, size_t outlen)
{
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[256];
    int port;
    if (imk_listen_addr_parse(admin_listen, &addr, &addrlen, host, sizeof(host), &port) != 0 ||
        port + index > 65535) {
        return IMK_EINVAL;
    }
    bool ipv6 = strchr(host, ':') != NULL;
    int n =
        snprintf(out, outlen, "%s%s%s:%d", ipv6 ? "[" : "", host, ipv6 ? "]" : "", port + index);
    return n < 0 || (size_t)n >= outlen ? IMK_EINVAL : 0;
}

#define ADMIN_REFUSED                                                                              \
    "gateway.admin_listen is malformed, or its port + gateway.processes - 1 is above 65535"

static int offset_admin_port(imk_config_t *cfg, int index)
{
    char spec[300], err[128];
    int rc = imk_processes_admin_listen(cfg->gateway_admin_listen, index, spec, sizeof(spec));
    return rc != 0 ? rc : imk_config_set(cfg, "gateway.admin_listen", spec, err, sizeof(err));
}

int imk_processes_configure(imk_config_t *cfg, int index, int n)
{
    if (n <= 1) {
        return 0;
    }
    if (cfg->gateway_id[0] != '\0') {
        char id[160], err[128];
        snprintf(id, sizeof(id), "%s-%d", cfg->gateway_id, index);
        int rc = imk_config_set(cfg, "gateway.id", id, err, sizeof(err));
        if (rc != 0) {
            return rc;
        }
    }
    return offset_admin_port(cfg, index);
}

/* In the new child: the signal mask and dispositions the gateway expects, and death with
 * the supervisor. */
static void become_child(const sigset_t *saved_mask, pid_t supervisor)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != supervisor) { /* the supervisor died before prctl took effect */
        _exit(1);
    }
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    sigprocmask(SIG_SETMASK, saved_mask, NULL);
}

static pid_t start_child(int index)
{
    pid_t pid = fork();
    if (pid < 0) {
        IMK_ERROR("fork", "index=%d error=\"%s\"", index, strerror(errno));
    } else if (pid > 0) {
        IMK_INFO("process_started", "index=%d pid=%ld", index, (long)pid);
    }
    return pid;
}

/* Reaps every child that ended; returns how many are still running. */
static int reap(child_t *children, int n, bool stopping)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < n; i++) {
            if (children[i].pid != pid) {
                continue;
            }
            children[i].pid = 0;
            children[i].restart_at = time(NULL) + RESTART_DELAY_S;
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
            if (stopping) {
                IMK_INFO("process_stopped", "index=%d pid=%ld status=%d signal=%d", i, (long)pid,
                         code, sig);
            } else {
                IMK_ERROR("process_died", "index=%d pid=%ld status=%d signal=%d restart_in_s=%d", i,
                          (long)pid, code, sig, RESTART_DELAY_S);
            }
        }
    }
    int running = 0;
    for (int i = 0; i < n; i++) {
        running += children[i].pid != 0;
    }
    return running;
}

static void signal_all(const child_t *children, int n, int sig)
{
    for (int i = 0; i < n; i++) {
        if (children[i].pid != 0) {
            kill(children[i].pid, sig);
        }
    }
}

/* SIGTERM passed on; SIGKILL to whoever is left after the grace time. */
static void stop_all(child_t *children, int n, const sigset_t *wanted)
{
    signal_all(children, n, SIGTERM);
    time_t deadline = time(NULL) + STOP_GRACE_S;
    while (reap(children, n, true) > 0) {
        if (time(NULL) >= deadline) {
            IMK_WARN("process_kill", "after_s=%d", STOP_GRACE_S);
            signal_all(children, n, SIGKILL);
            deadline = time(NULL) + STOP_GRACE_S;
        }
        struct timespec tick = {0, 100 * 1000 * 1000};
        sigtimedwait(wanted, NULL, &tick);
    }
}

bool imk_processes_supervise(imk_config_t *cfg, int n, int *status)
{
    char last[300];
    if (imk_processes_admin_listen(cfg->gateway_admin_listen, n - 1, last, sizeof(last)) != 0) {
        /* Refused once here, not by every child forever. */
        fprintf(stderr, "imkit-gateway: %s\n", ADMIN_REFUSED);
        *status = 2;
        return false;
    }
    child_t children[MAX_PROCESSES];
    memset(children, 0, sizeof(children));
    n = n > MAX_PROCESSES ? MAX_PROCESSES : n;
    sigset_t wanted, saved;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGTERM);
    sigaddset(&wanted, SIGINT);
    sigaddset(&wanted, SIGCHLD);
    sigprocmask(SIG_BLOCK, &wanted, &saved);
    pid_t supervisor = getpid();
    IMK_INFO("supervisor", "processes=%d pid=%ld", n, (long)supervisor);

    for (;;) {
        for (int i = 0; i < n; i++) {
            if (children[i].pid != 0 || time(NULL) < children[i].restart_at) {
                continue;
            }
            pid_t pid = start_child(i);
            if (pid == 0) {
                become_child(&saved, supervisor);
                int rc = imk_processes_configure(cfg, i, n);
                if (rc != 0) {
                    fprintf(stderr, "imkit-gateway: %s\n", ADMIN_REFUSED);
                    _exit(2);
                }
                return true;
            }
            children[i].pid = pid > 0 ? pid : 0;
            children[i].restart_at = time(NULL) + RESTART_DELAY_S;
        }
        struct timespec tick = {1, 0};
        siginfo_t info;
        int sig = sigtimedwait(&wanted, &info, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            IMK_INFO("stopping", "processes=%d signal=%d", n, sig);
            stop_all(children, n, &wanted);
            break;
        }
        reap(children, n, false);
    }
    sigprocmask(SIG_SETMASK, &saved, NULL);
    *status = 0;
    return false;
}
