/* Static files of the public listener: /sdk/<file> from gateway.static_dir and
 * /demo/<file> from its demo/ folder; nothing outside them is reachable. */
#ifndef IMKIT_GATEWAY_STATIC_FILES_H
#define IMKIT_GATEWAY_STATIC_FILES_H

#include <sys/types.h>

typedef struct imk_static_file {
    int fd;
    off_t size;
    const char *content_type;
} imk_static_file_t;

/* Opens the file a request path names. Returns 0 (close with imk_static_close, or hand fd
 * to evbuffer_add_file), or IMK_ENOTFOUND for anything unsafe, missing or not a file. */
int imk_static_open(const char *root, const char *path, imk_static_file_t *file);
void imk_static_close(imk_static_file_t *file);

#endif
