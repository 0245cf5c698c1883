# Finds cuDNN from a CUDNN_ROOT hint (cmake variable or environment), else the CUDA toolkit
# folder, else the system paths. Defines the imported target CUDNN::cudnn. A PyTorch install's
# copy (site-packages/nvidia/cudnn, as CUDNN_ROOT) ships only the versioned libcudnn.so.9.
set(_cudnn_hints ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_LIBRARY_ROOT} ${CUDAToolkit_TARGET_DIR})
find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${_cudnn_hints} PATH_SUFFIXES include)
find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 HINTS ${_cudnn_hints} PATH_SUFFIXES lib64 lib lib/x64)
if(NOT CUDNN_INCLUDE_DIR OR NOT CUDNN_LIBRARY)
  message(FATAL_ERROR "sieve: cuDNN not found; set CUDNN_ROOT to the folder holding include/cudnn.h "
                      "and lib/libcudnn.so, or configure the CPU-only preset")
endif()
if(NOT sieve_FIND_QUIETLY)
  message(STATUS "sieve: cuDNN ${CUDNN_LIBRARY}")
endif()
if(NOT TARGET CUDNN::cudnn)  # also read by an installed package's sieveConfig.cmake
  add_library(CUDNN::cudnn UNKNOWN IMPORTED)
  set_target_properties(CUDNN::cudnn PROPERTIES IMPORTED_LOCATION ${CUDNN_LIBRARY}
                        INTERFACE_INCLUDE_DIRECTORIES ${CUDNN_INCLUDE_DIR})
endif()
