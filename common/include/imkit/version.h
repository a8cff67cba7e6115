/* The product version, and where an installed gateway finds the Web SDK by default. */
#ifndef IMKIT_VERSION_H
#define IMKIT_VERSION_H

#define IMK_VERSION "0.1.0"

#ifndef IMK_DEFAULT_STATIC_DIR
#define IMK_DEFAULT_STATIC_DIR "/usr/share/imkit/web"
#endif

#endif
