# The installed package (cmake --install build/release --prefix PREFIX):
#   PREFIX/include/sieve/...            the public headers, included as "engine/tensor.h", ...
#   PREFIX/lib/libsieve.so              every layer linked whole into one shared library
#   PREFIX/lib/libsieve_<layer>.a       the same layers as static libraries
#   PREFIX/lib/cmake/sieve/             sieveConfig.cmake for find_package(sieve)
#   PREFIX/bin/sieve                    the command line
# find_package(sieve) gives sieve::sieve, the shared library: its CUDA, BLAS, oneDNN and image
# libraries are private, a program links sieve::sieve alone. The static per-layer targets
# sieve::engine, sieve::datasets, ..., sieve::studies carry their link dependencies along (a
# static library cannot hide them). Link one or the other, not both. Either way the
# SIEVE_WITH_CUDA value the package was built with reaches the program's compile line.
include(CMakePackageConfigHelpers)

set(SIEVE_LAYERS sieve_engine sieve_datasets sieve_layers sieve_models sieve_training sieve_attacks
    sieve_defense sieve_selection sieve_studies)

add_library(sieve_shared SHARED ${PROJECT_SOURCE_DIR}/cmake/library.cpp)
# Every object of every layer (the defense and model registries included), then the layers again as
# ordinary libraries for their own dependencies. ($<LINK_LIBRARY:WHOLE_ARCHIVE> refuses layers
# that also reach the link through each other.)
set(SIEVE_LAYER_FILES)
foreach(layer ${SIEVE_LAYERS})
  list(APPEND SIEVE_LAYER_FILES $<TARGET_FILE:${layer}>)
endforeach()
target_link_libraries(sieve_shared PRIVATE -Wl,--whole-archive ${SIEVE_LAYER_FILES} -Wl,--no-whole-archive
                      sieve_studies)
target_compile_definitions(sieve_shared PRIVATE SIEVE_VERSION="${PROJECT_VERSION}"
                           INTERFACE SIEVE_WITH_CUDA=$<BOOL:${SIEVE_WITH_CUDA}>)  # as sieve_engine
target_include_directories(sieve_shared INTERFACE $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
                                                  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/sieve>)
target_link_libraries(sieve_shared INTERFACE nlohmann_json::nlohmann_json)  # the headers use it
target_compile_features(sieve_shared INTERFACE cxx_std_20)
# The libraries it needs outside the system folders (CUDA, OpenBLAS's OpenMP build) stay findable.
set_target_properties(sieve_shared PROPERTIES OUTPUT_NAME sieve EXPORT_NAME sieve VERSION ${PROJECT_VERSION}
                      SOVERSION ${PROJECT_VERSION_MAJOR} INSTALL_RPATH_USE_LINK_PATH ON)
set_target_properties(sieve PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)

foreach(layer ${SIEVE_LAYERS})
  string(REPLACE "sieve_" "" short ${layer})
  set_target_properties(${layer} PROPERTIES EXPORT_NAME ${short})
endforeach()
set_target_properties(sieve_openblas PROPERTIES EXPORT_NAME openblas)
set_target_properties(sieve_dnnl PROPERTIES EXPORT_NAME dnnl)
set_target_properties(sieve_turbojpeg PROPERTIES EXPORT_NAME turbojpeg)
set_target_properties(sieve_cuda PROPERTIES EXPORT_NAME cuda)

install(TARGETS sieve_shared ${SIEVE_LAYERS} sieve_openblas sieve_dnnl sieve_turbojpeg sieve_cuda EXPORT sieveTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS sieve RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# Public headers; the CUDA and CPU kernel headers are the engine's own.
install(DIRECTORY engine datasets layers models training attacks defense selection studies
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/sieve FILES_MATCHING PATTERN "*.h"
        PATTERN "engine/cuda" EXCLUDE PATTERN "engine/cpu" EXCLUDE)

set(SIEVE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/sieve)
install(EXPORT sieveTargets NAMESPACE sieve:: DESTINATION ${SIEVE_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/sieveConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/sieveConfig.cmake INSTALL_DESTINATION ${SIEVE_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/sieveConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/sieveConfig.cmake ${PROJECT_BINARY_DIR}/sieveConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/FindCUDNN.cmake DESTINATION ${SIEVE_CMAKE_DIR})
