# shmq-stats: counters of an instance's queues, read-only. Public API
# only: links the shared library target and nothing private.
include(GNUInstallDirs)
file(GLOB SHMQ_STATS_SOURCES CONFIGURE_DEPENDS
  ${CMAKE_CURRENT_SOURCE_DIR}/stats/*.c)
file(GLOB SHMQ_TOOLS_COMMON_SOURCES CONFIGURE_DEPENDS
  ${CMAKE_CURRENT_SOURCE_DIR}/common/*.c)

add_executable(shmq-stats ${SHMQ_STATS_SOURCES} ${SHMQ_TOOLS_COMMON_SOURCES})
target_include_directories(shmq-stats PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/common)
target_compile_definitions(shmq-stats PRIVATE _GNU_SOURCE)
target_link_libraries(shmq-stats PRIVATE shmq)
# Relocatable: the installed program finds the library beside its bin/.
set_target_properties(shmq-stats PROPERTIES
  INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")

install(TARGETS shmq-stats RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/docs/man/shmq-stats.1
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
