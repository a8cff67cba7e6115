/* The product version (project() in CMakeLists.txt), and where an installed gateway finds the
 * Web SDK by default. Both are set by the build. */
#ifndef IMKIT_VERSION_H
#define IMKIT_VERSION_H

#ifndef IMK_VERSION
#error "IMK_VERSION comes from the build (common/CMakeLists.txt)"
#endif

#ifndef IMK_DEFAULT_STATIC_DIR
#define IMK_DEFAULT_STATIC_DIR "/usr/share/imkit/web"
#endif

#endif
