# Operations: moad under systemd (socket activation, sd_notify, watchdog,
# reload under load, unit files; tests/integration/test_ops.py) and the
# installed tree (install-tree.sh: cmake --install into a scratch DESTDIR,
# then checks files, pkg-config, the installed config, and runs the
# installed moad + moactl).
moa_integration_test(ops)

add_test(NAME install-tree COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/install-tree.sh ${CMAKE_BINARY_DIR})
set_tests_properties(install-tree PROPERTIES LABELS integration TIMEOUT 300)
