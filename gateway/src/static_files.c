/* Mapping request paths to files, refusing anything that could escape the root. */
#include "static_files.h"
#include "imkit/err.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".ts", "text/plain; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
};

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(dot, types[i].ext) == 0) {
            return types[i].type;
        }
    }
    return "application/octet-stream";
}

/* Only plain names: letters, digits, '-', '_', '.', '/' and no "..", no hidden files. */
static bool safe_relative(const char *rel)
{
    if (*rel == '\0' || strstr(rel, "..") != NULL || strstr(rel, "//") != NULL ||
        strstr(rel, "/.") != NULL || rel[0] == '.') {
        return false;
    }
    for (const char *p = rel; *p != '\0'; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.' || ch == '/')) {
            return false;
        }
    }
    return true;
}

int imk_static_open(const char *root, const char *path, imk_static_file_t *file)
{
    char rel[512];
    if (strncmp(path, "/sdk/", 5) == 0) {
        snprintf(rel, sizeof(rel), "%s", path + 5);
    } else if (strcmp(path, "/demo/") == 0) {
        snprintf(rel, sizeof(rel), "demo/index.html");
    } else if (strncmp(path, "/demo/", 6) == 0) {
        snprintf(rel, sizeof(rel), "demo/%s", path + 6);
    } else {
        return IMK_ENOTFOUND;
    }
    if (!safe_relative(rel) || strncmp(rel, "test/", 5) == 0) {
        return IMK_ENOTFOUND;
    }
    char full[1024];
    if ((size_t)snprintf(full, sizeof(full), "%s/%s", root, rel) >= sizeof(full)) {
        return IMK_ENOTFOUND;
    }
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        return IMK_ENOTFOUND;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return IMK_ENOTFOUND;
    }
    file->fd = fd;
    file->size = st.st_size;
    file->content_type = content_type(rel);
    return 0;
}

void imk_static_close(imk_static_file_t *file)
{
    if (file->fd >= 0) {
        close(file->fd);
        file->fd = -1;
    }
}
