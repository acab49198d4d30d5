# packaging.cmake — a Debian package of the installed tree with CPack:
#   cmake -S . -B build-deb -DCMAKE_INSTALL_PREFIX=/usr && cmake --build build-deb
#   cd build-deb && cpack -G DEB        # -> moad_<version>_<arch>.deb
# Configure with the /usr prefix for a real package: the daemon compiles its
# paths in (see install.cmake). The files under /etc are conffiles, so
# upgrades keep local edits. postinst creates the moad user (sysusers) and
# reloads systemd; the units are not enabled automatically.

set(CPACK_GENERATOR DEB)
# The package holds the configured paths (compiled into moad), whatever
# CPack's own default prefix (/usr) would be.
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_PACKAGE_NAME moad)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "moad")
set(CPACK_PACKAGE_CONTACT "moad maintainers <moad@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Mixture-of-Agents daemon: specialist agents, weighted layers, one answer")
set(CPACK_PACKAGE_DESCRIPTION
    "moad routes questions to specialist agent plugins (legal, medical, finance, code, general) with their own knowledge bases, runs them through proposer, refiner and aggregator layers on any OpenAI-compatible endpoint or an offline extractive provider, and streams one answer over a Unix socket.")
set(CPACK_RESOURCE_FILE_LICENSE ${CMAKE_SOURCE_DIR}/LICENSE)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Explicit runtime dependencies (Debian 12 names), so building the package
# needs no dpkg-shlibdeps.
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libsystemd0, libmicrohttpd12, libcurl4, libjansson4, libyaml-0-2, libsqlite3-0 (>= 3.9), libstemmer0d, systemd")

set(MOAD_DEB_DIR ${CMAKE_BINARY_DIR}/debian)
file(MAKE_DIRECTORY ${MOAD_DEB_DIR})
file(GLOB MOAD_DEB_AGENT_FILES RELATIVE ${CMAKE_SOURCE_DIR}/agents.d CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/agents.d/*.yaml)
set(MOAD_DEB_CONFFILES "${MOAD_CONF_DIR}/moad.yaml\n")
foreach(f ${MOAD_DEB_AGENT_FILES})
  string(APPEND MOAD_DEB_CONFFILES "${MOAD_CONF_DIR}/agents.d/${f}\n")
endforeach()
file(WRITE ${MOAD_DEB_DIR}/conffiles "${MOAD_DEB_CONFFILES}")
file(WRITE ${MOAD_DEB_DIR}/postinst "#!/bin/sh
set -e
if [ \"$1\" = configure ]; then
        systemd-sysusers moad.conf >/dev/null 2>&1 || true
        if [ -d /run/systemd/system ]; then
                systemctl daemon-reload >/dev/null 2>&1 || true
        fi
fi
exit 0
")
file(CHMOD ${MOAD_DEB_DIR}/postinst PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
     WORLD_READ WORLD_EXECUTE)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA "${MOAD_DEB_DIR}/conffiles;${MOAD_DEB_DIR}/postinst")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
