/* One simulated chat user: its connection, authentication, room setup, the messages it
 * sends and the deliveries it checks (lost, duplicated, latency). Driven by worker.c on
 * its thread; every function here runs on that thread. */
#ifndef LG_CLIENT_H
#define LG_CLIENT_H

#include "lg.h"

/* Places client idx (global) in its room; allocates a sender's request ring. Returns 0 or -1
 * when out of memory. */
int lg_client_init(lg_client_t *c, lg_worker_t *w, int idx);
void lg_client_deinit(lg_client_t *c);

/* Starts connecting (and then authenticating). Returns 0, or -1 after counting the failure. */
int lg_client_start(lg_client_t *c);

/* Closes the connection at once, keeping what the client received. */
void lg_client_drop(lg_client_t *c);

/* The rooms step: a creator creates its room, a member waits until it is in it. */
void lg_client_setup_room(lg_client_t *c);

/* Sends one message whose intended send time is t_us. Returns 0 or -1 (not ready, ring
 * full, connection gone). */
int lg_client_send(lg_client_t *c, int64_t t_us);

/* Closed loop: sends until opts->window messages are in flight (or the cap is reached). */
void lg_client_fill_window(lg_client_t *c);

/* Storm: remembers the seq it will claim to hold, then drops the connection. */
void lg_client_forget_recent(lg_client_t *c);

#endif
