# The Debian package: `cpack -G DEB` in a build directory configured with
# -DCMAKE_INSTALL_PREFIX=/usr writes imkit_<version>_<arch>.deb: both binaries, the Web SDK
# and demo, /etc/imkit/imkit.conf (a conffile), the systemd units, the example Redis
# configuration, and maintainer scripts that create the `imkit` system user.
#
# The gateway's default gateway.static_dir is compiled in from CMAKE_INSTALL_PREFIX, so
# the package is built only when that prefix is the packaging prefix (checked by cpack).
# A published package sets the cache entries CPACK_PACKAGE_CONTACT (the Maintainer field)
# and CPACK_PACKAGE_HOMEPAGE_URL.

# Debian 12 keeps packaged units in /lib/systemd/system; other prefixes get their own
# lib/systemd/system, which systemd also reads for /usr/local.
if(NOT DEFINED IMKIT_SYSTEMD_UNIT_DIR)
  if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(IMKIT_SYSTEMD_UNIT_DIR /lib/systemd/system)
  else()
    set(IMKIT_SYSTEMD_UNIT_DIR ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
  endif()
endif()

# The units in conf/systemd name /usr/bin, /etc/imkit and /usr/share/doc/imkit; the
# installed copies name this build's directories instead (the same ones for /usr).
set(IMKIT_UNITS imkit-gateway.service imkit-worker@.service imkit.target)
set(imkit_unit_files)
foreach(unit IN LISTS IMKIT_UNITS)
  set(src ${PROJECT_SOURCE_DIR}/conf/systemd/${unit})
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})
  file(READ ${src} text)
  string(REPLACE "/usr/bin/" "${CMAKE_INSTALL_FULL_BINDIR}/" text "${text}")
  string(REPLACE "/etc/imkit/" "${CMAKE_INSTALL_FULL_SYSCONFDIR}/imkit/" text "${text}")
  string(REPLACE "/usr/share/doc/imkit/" "${CMAKE_INSTALL_FULL_DOCDIR}/" text "${text}")
  file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/systemd/${unit} CONTENT "${text}")
  list(APPEND imkit_unit_files ${PROJECT_BINARY_DIR}/systemd/${unit})
endforeach()
install(FILES ${imkit_unit_files} DESTINATION ${IMKIT_SYSTEMD_UNIT_DIR})
install(FILES conf/redis.conf DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(PROGRAMS scripts/autoscale DESTINATION ${CMAKE_INSTALL_BINDIR} RENAME imkit-autoscale)
install(FILES README.md docs/OPERATIONS.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

# Maintainer scripts. postinst: the `imkit` user and group, the configuration readable by
# that group only (it holds secrets), units reloaded, running units restarted on upgrade.
# Nothing is enabled or started on install: set the secrets first, then
# `systemctl enable --now imkit-gateway imkit-worker@1 imkit-worker@2`.
set(IMKIT_CONF_FILE ${CMAKE_INSTALL_FULL_SYSCONFDIR}/imkit/imkit.conf)
function(imkit_maintainer_script name text)
  string(CONFIGURE "${text}" text @ONLY)
  file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/debian/${name} CONTENT "${text}")
endfunction()
imkit_maintainer_script(postinst [=[#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd imkit >/dev/null; then
        adduser --system --group --no-create-home --home /nonexistent --quiet imkit
    fi
    if ! dpkg-statoverride --list '@IMKIT_CONF_FILE@' >/dev/null 2>&1; then
        chown root:imkit '@IMKIT_CONF_FILE@'
        chmod 0640 '@IMKIT_CONF_FILE@'
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
        if [ -n "$2" ]; then
            systemctl try-restart imkit-gateway.service 'imkit-worker@*.service' || true
        fi
    fi
fi
exit 0
]=])

# prerm: stop everything on removal (an upgrade restarts it in postinst instead).
imkit_maintainer_script(prerm [=[#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop imkit.target imkit-gateway.service 'imkit-worker@*.service' || true
fi
exit 0
]=])

# postrm: forget the units on removal; on purge, also their enablement links. The
# `imkit` user stays, as files may still belong to it.
imkit_maintainer_script(postrm [=[#!/bin/sh
set -e
if [ "$1" = purge ]; then
    rm -f /etc/systemd/system/imkit.target.wants/imkit-gateway.service \
          /etc/systemd/system/imkit.target.wants/imkit-worker@*.service \
          /etc/systemd/system/multi-user.target.wants/imkit.target
    rmdir /etc/systemd/system/imkit.target.wants 2>/dev/null || true
    rmdir /etc/imkit 2>/dev/null || true
fi
if { [ "$1" = remove ] || [ "$1" = purge ]; } && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
exit 0
]=])

file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/debian/conffiles CONTENT "${IMKIT_CONF_FILE}\n")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME imkit)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "IMKit")
set(CPACK_PACKAGE_CONTACT "IMKit maintainers <maintainers@imkit.invalid>"
    CACHE STRING "Maintainer field of the package")
set(CPACK_PACKAGE_HOMEPAGE_URL "https://imkit.invalid/" CACHE STRING "Homepage field of the package")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "in-web chat server (WebSocket gateway, Redis workers, Web SDK)")
# The extended description, in lines as dpkg shows them.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "\
IMKit lets a website's users chat with each other, one-to-one and in
groups, without leaving the site. imkit-gateway holds the browsers'
WebSocket connections and the website backend's REST API; imkit-worker
applies every change atomically in Redis 7, the one stateful part. The
gateway also serves the Web SDK and a demo page.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Library dependencies come from dpkg-shlibdeps (package dpkg-dev), added to these.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "redis-server (>= 5:7.0)")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_BINARY_DIR}/debian/postinst ${PROJECT_BINARY_DIR}/debian/prerm
    ${PROJECT_BINARY_DIR}/debian/postrm ${PROJECT_BINARY_DIR}/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# Read by cpack. The binary package: refuse one whose gateway would look for the Web SDK
# elsewhere. The source package (`make package_source`): the source tree as it is.
set(CPACK_IMKIT_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/CPackImkit.cmake @ONLY CONTENT [=[
if(CPACK_INSTALLED_DIRECTORIES)
  set(CPACK_PACKAGING_INSTALL_PREFIX /)
elseif(NOT CPACK_PACKAGING_INSTALL_PREFIX STREQUAL CPACK_IMKIT_INSTALL_PREFIX)
  message(FATAL_ERROR "This build was configured with CMAKE_INSTALL_PREFIX="
    "${CPACK_IMKIT_INSTALL_PREFIX}, and its binaries look for their files there; the package "
    "installs under ${CPACK_PACKAGING_INSTALL_PREFIX}. Reconfigure with "
    "-DCMAKE_INSTALL_PREFIX=${CPACK_PACKAGING_INSTALL_PREFIX}.")
endif()
]=])
set(CPACK_PROJECT_CONFIG_FILE ${PROJECT_BINARY_DIR}/CPackImkit.cmake)

# `make package_source`: the sources without build trees, run data or npm packages (the
# patterns are unescaped twice on their way to cpack).
set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_IGNORE_FILES
    "^${PROJECT_SOURCE_DIR}/(\\\\.git|build[^/]*|var|tests/artifacts)(/|$)" "/node_modules(/|$)")

include(CPack)
