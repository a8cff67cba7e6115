/* gateway.processes: one supervisor process forks the gateway processes, which share the
 * public port with SO_REUSEPORT, restarts any that dies, and stops them all on SIGTERM. */
#ifndef IMKIT_GATEWAY_PROCESSES_H
#define IMKIT_GATEWAY_PROCESSES_H

#include "imkit/config.h"

#include <stdbool.h>

/* gateway.processes resolved: 0 means one per online core. */
int imk_processes_count(const imk_config_t *cfg);

/* Forks n gateway processes and supervises them. Returns true in a child, its configuration
 * adjusted to its index (imk_processes_configure): the caller runs the gateway. Returns
 * false in the supervisor once every child has stopped, with *status its exit status. */
bool imk_processes_supervise(imk_config_t *cfg, int n, int *status);

/* Process index of n: gateway.id gets "-<index>" appended (when set) and the admin
 * listener's port is offset by index, so every process has its own id and its own admin
 * port. Returns 0, or IMK_EINVAL for an admin address the listener would refuse too. */
int imk_processes_configure(imk_config_t *cfg, int index, int n);

/* The admin address of process index: admin_listen's port + index, written to out. Returns
 * 0, or IMK_EINVAL when admin_listen is malformed, the port would pass 65535, or out is too
 * small. */
int imk_processes_admin_listen(const char *admin_listen, int index, char *out, size_t outlen);

#endif
