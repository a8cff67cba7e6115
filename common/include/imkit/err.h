/* Error codes shared by every IMKit module: 0 is success, failures are negative and
 * grouped by hundreds (I/O, protocol, bad input, Redis, memory). imk_strerror() names them. */
#ifndef IMKIT_ERR_H
#define IMKIT_ERR_H

enum imk_err {
    IMK_OK = 0,
    IMK_EIO = -100,     /* a socket or file failed; errno-derived codes are below -1000 */
    IMK_ECLOSED = -101, /* the peer or the link is gone */
    IMK_EPROTO = -200,  /* the peer broke the protocol */
    IMK_EINVAL = -300,  /* bad input: a field, a value, a configuration key */
    IMK_ETOOBIG = -301, /* input over a configured limit */
    IMK_ENOTFOUND = -302,
    IMK_EREDIS = -400, /* Redis answered an error or is unreachable */
    IMK_ENOMEM = -500,
};

/* A static string naming code; never NULL. */
const char *imk_strerror(int code);

#endif
