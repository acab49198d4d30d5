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
# The daemon is compiled with the configure-time absolute paths
# (build-config.h): choose the prefix when configuring
# (-DCMAKE_INSTALL_PREFIX=/usr). Every destination inside that prefix is
# installed relative to it, so `cmake --install --prefix P` (a staging
# prefix) puts those files under P; a directory configured outside the
# prefix (/etc/moad for prefix /usr) stays where it was configured
# (docs/operations.md, "Installing").

# moa_install_destination(VAR ABSDIR): VAR = ABSDIR relative to the
# install prefix when it lies inside it, else ABSDIR.
function(moa_install_destination var dir)
  file(RELATIVE_PATH rel ${CMAKE_INSTALL_PREFIX} ${dir})
  if(rel MATCHES "^\\.\\." OR IS_ABSOLUTE "${rel}")
    set(${var} ${dir} PARENT_SCOPE)
  else()
    set(${var} ${rel} PARENT_SCOPE)
  endif()
endfunction()
moa_install_destination(MOA_CONF_DEST ${MOAD_CONF_DIR})
moa_install_destination(MOA_DATA_DEST ${MOAD_DATA_DIR})

add_subdirectory(${CMAKE_CURRENT_LIST_DIR}/systemd ${CMAKE_BINARY_DIR}/systemd)

install(FILES ${CMAKE_CURRENT_LIST_DIR}/etc/moad.yaml DESTINATION ${MOA_CONF_DEST})

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
  install(FILES ${CMAKE_BINARY_DIR}/install/agents.d/${agent_name} DESTINATION ${MOA_CONF_DEST}/agents.d)
endforeach()

install(DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/agents.d/knowledge/ DESTINATION ${MOA_DATA_DEST}/knowledge)
install(DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/agents.d/examples/ DESTINATION ${MOA_DATA_DEST}/examples)
