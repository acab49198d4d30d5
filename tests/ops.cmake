# Operations: moad under systemd (socket activation, sd_notify, watchdog,
# reload under load, unit files; tests/integration/test_ops.py) and the
# installed tree (install-tree.sh: cmake --install into a scratch DESTDIR,
# then checks files, pkg-config, the installed config, and runs the
# installed moad + moactl).
moa_integration_test(ops)

add_test(NAME install-tree COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/install-tree.sh ${CMAKE_BINARY_DIR})
set_tests_properties(install-tree PROPERTIES LABELS integration TIMEOUT 300)

# The Debian package (packaging.cmake): built with CPack and checked.
add_test(NAME package-deb COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/package-deb.sh ${CMAKE_BINARY_DIR})
set_tests_properties(package-deb PROPERTIES LABELS integration TIMEOUT 300 SKIP_RETURN_CODE 77)
