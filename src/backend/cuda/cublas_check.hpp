// MEAP_CUBLAS_CHECK: wraps every cuBLAS / cuBLASLt call; a failure becomes meap::Error naming
// the call, the file and line, and cuBLAS's status name and description.
#pragma once

#include <cublasLt.h>

#include "meap/core/error.hpp"

#define MEAP_CUBLAS_CHECK(call)                                                            \
  do {                                                                                     \
    const cublasStatus_t meap_cublas_status_ = (call);                                     \
    if (meap_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                      \
      ::meap::fail("cuBLAS error in ", #call, " at ", __FILE__, ":", __LINE__, ": ",       \
                   cublasLtGetStatusName(meap_cublas_status_), " (",                      \
                   cublasLtGetStatusString(meap_cublas_status_), ")");                    \
  } while (0)
