# install.cmake — the install rules that complete the installed tree:
# configuration (etc/moad.yaml, agents.d/*.yaml), the sample knowledge, and
# the systemd units + sysusers.d file (whose rules live in
# systemd/CMakeLists.txt; they are only activated here). Binaries, plugins,
# the plugin header and .pc, and the man pages are installed by their own
# directories. tests/install-tree.sh checks the result.
#
# Layout (FHS): configuration in MOAD_CONF_DIR (/etc/moad for prefix /usr),
# the read-only sample knowledge in MOAD_DATA_DIR/knowledge
# (/usr/share/moad/knowledge). In the source tree an agent file says
# `knowledge: [knowledge/<name>]`, relative to agents.d/; the installed agent
# files carry the absolute MOAD_DATA_DIR path instead (rewritten below, and
# likewise `examples_file: examples/<name>.txt`), so
# /etc holds only configuration and the data stays under /usr/share.
#
# All destinations are the configure-time absolute paths the daemon is
# compiled with (build-config.h): choose the prefix when configuring
# (-DCMAKE_INSTALL_PREFIX=/usr); `cmake --install --prefix` cannot move them.

add_subdirectory(${CMAKE_CURRENT_LIST_DIR}/systemd ${CMAKE_BINARY_DIR}/systemd)

install(FILES ${CMAKE_CURRENT_LIST_DIR}/etc/moad.yaml DESTINATION ${MOAD_CONF_DIR})

file(GLOB MOAD_SHIPPED_AGENTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/agents.d/*.yaml)
foreach(agent_file ${MOAD_SHIPPED_AGENTS})
  get_filename_component(agent_name ${agent_file} NAME)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${agent_file})
  file(READ ${agent_file} agent_text)
  # "  - knowledge/x" and "[knowledge/x" (block and flow lists).
  string(REGEX REPLACE "(\n[ \t]*-[ \t]+|\\[[ \t]*)knowledge/" "\\1${MOAD_DATA_DIR}/knowledge/" agent_text
         "${agent_text}")
  # The router's example questions live beside the knowledge.
  string(REGEX REPLACE "(\nexamples_file:[ \t]*)examples/" "\\1${MOAD_DATA_DIR}/examples/" agent_text
         "${agent_text}")
  # The copy is replaced only when its text changed (configure_file COPYONLY).
  file(WRITE ${CMAKE_BINARY_DIR}/install/agents.d/${agent_name}.in "${agent_text}")
  configure_file(${CMAKE_BINARY_DIR}/install/agents.d/${agent_name}.in
                 ${CMAKE_BINARY_DIR}/install/agents.d/${agent_name} COPYONLY)
  install(FILES ${CMAKE_BINARY_DIR}/install/agents.d/${agent_name} DESTINATION ${MOAD_CONF_DIR}/agents.d)
endforeach()

install(DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/agents.d/knowledge/ DESTINATION ${MOAD_DATA_DIR}/knowledge)
install(DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/agents.d/examples/ DESTINATION ${MOAD_DATA_DIR}/examples)
