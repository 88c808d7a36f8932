# shmq-bench: measures shmq against POSIX mq, pipes, Unix sockets, DPDK
# rte_ring (when libdpdk is found) and two hardware references.
#
# This file has two uses:
#  - included from tools/CMakeLists.txt (SHMQ_BUILD_BENCH): builds
#    shmq-bench against the public library target only, adds the `bench`
#    target (the full run, results in <build>/bench) and, with
#    SHMQ_BUILD_TESTS, the `bench_smoke` test;
#  - run as a script (cmake -P) by bench_smoke: runs `shmq-bench --quick`
#    and checks that every transport and workload ran and that the JSON
#    and CSV it wrote parse. It checks no timing.

if(CMAKE_SCRIPT_MODE_FILE)
  # ---- bench_smoke: cmake -DBENCH=exe -DOUT=dir -DDPDK=ON|OFF -DPLOTS=ON|OFF -P
  cmake_minimum_required(VERSION 3.20)
  file(REMOVE_RECURSE "${OUT}")
  set(args --quick --json --outdir "${OUT}")
  if(NOT PLOTS)
    list(APPEND args --no-plots)
  endif()
  execute_process(COMMAND "${BENCH}" ${args}
    OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc
    TIMEOUT 280)
  message(STATUS "shmq-bench --quick:\n${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "shmq-bench exited with '${rc}'")
  endif()
  string(JSON nres ERROR_VARIABLE jerr LENGTH "${out}" results)
  if(jerr)
    message(FATAL_ERROR "JSON output does not parse: ${jerr}\n${out}")
  endif()
  set(transports shmq shmq-sleep mq pipe unix spinring ownring cacheline)
  if(DPDK)
    list(APPEND transports dpdk)
  endif()
  set(workloads tput rtt mpmc scale-pc scale-size scale-queues)
  set(ran_t "")
  set(ran_w "")
  math(EXPR last "${nres} - 1")
  foreach(i RANGE ${last})
    string(JSON t GET "${out}" results ${i} transport)
    string(JSON w GET "${out}" results ${i} workload)
    string(JSON st GET "${out}" results ${i} status)
    string(JSON reps GET "${out}" results ${i} reps)
    if(st STREQUAL "error")
      string(JSON note GET "${out}" results ${i} note)
      message(FATAL_ERROR "${w} ${t}: ${note}")
    endif()
    if(st STREQUAL "ok")
      if(reps LESS 1)
        message(FATAL_ERROR "${w} ${t}: ok without a repetition")
      endif()
      string(JSON msgs GET "${out}" results ${i} per_rep 0 messages)
      string(JSON stalled GET "${out}" results ${i} per_rep 0 stalled)
      if(msgs LESS 1 AND NOT stalled)
        message(FATAL_ERROR "${w} ${t}: no message moved")
      endif()
      list(APPEND ran_t ${t})
      list(APPEND ran_w ${w})
    endif()
  endforeach()
  foreach(t IN LISTS transports)
    if(NOT t IN_LIST ran_t)
      message(FATAL_ERROR "transport ${t} did not run")
    endif()
  endforeach()
  foreach(w IN LISTS workloads)
    if(NOT w IN_LIST ran_w)
      message(FATAL_ERROR "workload ${w} did not run")
    endif()
  endforeach()
  string(JSON ntargets LENGTH "${out}" targets)
  if(ntargets LESS 1)
    message(FATAL_ERROR "no performance target reported")
  endif()
  string(JSON nbounds ERROR_VARIABLE jerr LENGTH "${out}" bounds)
  if(jerr OR nbounds LESS 1)
    message(FATAL_ERROR "no ownership bound reported: ${jerr}")
  endif()
  # The files of --outdir: the same JSON, a CSV row per result, the series.
  file(READ "${OUT}/bench.json" fjson)
  string(JSON fres ERROR_VARIABLE jerr LENGTH "${fjson}" results)
  if(jerr OR NOT fres EQUAL nres)
    message(FATAL_ERROR "bench.json: ${jerr} (${fres} results, want ${nres})")
  endif()
  file(STRINGS "${OUT}/bench.csv" csv)
  list(LENGTH csv ncsv)
  math(EXPR want "${nres} + 1")
  list(GET csv 0 header)
  if(NOT ncsv EQUAL want OR NOT header MATCHES "^workload,case,transport,")
    message(FATAL_ERROR "bench.csv: ${ncsv} lines, want ${want}")
  endif()
  foreach(line IN LISTS csv)
    string(REGEX MATCHALL "," commas "${line}")
    list(LENGTH commas nc)
    if(NOT nc EQUAL 22)
      message(FATAL_ERROR "bench.csv: bad line: ${line}")
    endif()
  endforeach()
  foreach(s scale-pc scale-size scale-size-bytes scale-queues)
    if(NOT EXISTS "${OUT}/${s}.csv")
      message(FATAL_ERROR "${s}.csv missing")
    endif()
    if(PLOTS AND NOT EXISTS "${OUT}/${s}.png")
      message(FATAL_ERROR "${s}.png missing")
    endif()
  endforeach()
  message(STATUS "bench_smoke: ${nres} results, every transport and workload ran")
  return()
endif()

# ---- the program ---------------------------------------------------------------
add_executable(shmq-bench
  bench/bench.c
  bench/run.c
  bench/report.c
  bench/t_shmq.c
  bench/t_posixmq.c
  bench/fdpair.c
  bench/t_pipe.c
  bench/t_unix.c
  bench/t_raw.c)
target_compile_definitions(shmq-bench PRIVATE _GNU_SOURCE)
# Public API only: the shared library and its installed headers.
target_link_libraries(shmq-bench PRIVATE shmq rt m)

# DPDK's rte_ring, when Debian's dpdk-dev (libdpdk.pc) is there. Only the
# ring and the EAL library it refers to are linked; DPDK's compile flags
# (-include rte_config.h, -march=...) apply to t_dpdk.c alone.
pkg_check_modules(DPDK QUIET libdpdk)
set(SHMQ_BENCH_DPDK OFF)
if(DPDK_FOUND)
  find_library(SHMQ_RTE_RING rte_ring HINTS ${DPDK_LIBRARY_DIRS})
  find_library(SHMQ_RTE_EAL rte_eal HINTS ${DPDK_LIBRARY_DIRS})
  if(SHMQ_RTE_RING AND SHMQ_RTE_EAL)
    set(SHMQ_BENCH_DPDK ON)
    add_library(shmq_bench_dpdk OBJECT bench/t_dpdk.c)
    target_include_directories(shmq_bench_dpdk SYSTEM PRIVATE ${DPDK_INCLUDE_DIRS})
    target_compile_options(shmq_bench_dpdk PRIVATE ${DPDK_CFLAGS_OTHER})
    target_compile_definitions(shmq_bench_dpdk PRIVATE _GNU_SOURCE)
    target_sources(shmq-bench PRIVATE $<TARGET_OBJECTS:shmq_bench_dpdk>)
    target_compile_definitions(shmq-bench PRIVATE SHMQ_BENCH_DPDK)
    target_link_libraries(shmq-bench PRIVATE ${SHMQ_RTE_RING} ${SHMQ_RTE_EAL})
  endif()
endif()
message(STATUS "shmq-bench: DPDK rte_ring peer ${SHMQ_BENCH_DPDK}")

install(TARGETS shmq-bench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# `make bench`: the full run (several minutes); table, JSON, CSV and plots
# in <build>/bench.
add_custom_target(bench
  COMMAND shmq-bench --outdir ${CMAKE_BINARY_DIR}/bench
  DEPENDS shmq-bench
  USES_TERMINAL
  COMMENT "shmq-bench: full run, results in ${CMAKE_BINARY_DIR}/bench")

if(SHMQ_BUILD_TESTS)
  # tools/ is added before the top level enables testing; without this
  # the test would not be written into tools/CTestTestfile.cmake.
  enable_testing()
  find_program(SHMQ_GNUPLOT gnuplot)
  set(plots OFF)
  if(SHMQ_GNUPLOT)
    set(plots ON)
  endif()
  add_test(NAME bench_smoke
    COMMAND ${CMAKE_COMMAND}
      -DBENCH=$<TARGET_FILE:shmq-bench>
      -DOUT=${CMAKE_CURRENT_BINARY_DIR}/bench-smoke
      -DDPDK=${SHMQ_BENCH_DPDK}
      -DPLOTS=${plots}
      -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(bench_smoke PROPERTIES TIMEOUT 300 LABELS "tools;bench")
endif()
