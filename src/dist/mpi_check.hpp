// MEAP_MPI_CHECK: wraps every MPI call (communicators run with MPI_ERRORS_RETURN); a failure
// becomes meap::Error naming the call and MPI's own message.
#pragma once

#include <mpi.h>

#include "meap/core/error.hpp"

#define MEAP_MPI_CHECK(call)                                                   \
  do {                                                                         \
    const int meap_mpi_rc_ = (call);                                           \
    if (meap_mpi_rc_ != MPI_SUCCESS) {                                         \
      char meap_mpi_msg_[MPI_MAX_ERROR_STRING];                                \
      int meap_mpi_len_ = 0;                                                   \
      MPI_Error_string(meap_mpi_rc_, meap_mpi_msg_, &meap_mpi_len_);           \
      ::meap::fail("MPI error in ", #call, ": ", meap_mpi_msg_);               \
    }                                                                          \
  } while (0)
