# shmq-ctl: manage queues from the shell. Public API only: links the
# shared library target and nothing private.
include(GNUInstallDirs)
file(GLOB SHMQ_CTL_SOURCES CONFIGURE_DEPENDS
  ${CMAKE_CURRENT_SOURCE_DIR}/ctl/*.c)
file(GLOB SHMQ_TOOLS_COMMON_SOURCES CONFIGURE_DEPENDS
  ${CMAKE_CURRENT_SOURCE_DIR}/common/*.c)

add_executable(shmq-ctl ${SHMQ_CTL_SOURCES} ${SHMQ_TOOLS_COMMON_SOURCES})
target_include_directories(shmq-ctl PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/common)
target_compile_definitions(shmq-ctl PRIVATE _GNU_SOURCE)
target_link_libraries(shmq-ctl PRIVATE shmq)
# Relocatable: the installed program finds the library beside its bin/.
set_target_properties(shmq-ctl PROPERTIES
  INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")

install(TARGETS shmq-ctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/docs/man/shmq-ctl.1
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
# The daemon's page is kept with the tools' pages (docs/man/) and
# installed when the daemon is.
if(SHMQ_BUILD_DAEMON)
  install(FILES ${PROJECT_SOURCE_DIR}/docs/man/shmqd.8
    DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
endif()
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/completion/shmq-ctl.bash
  DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
  RENAME shmq-ctl)
