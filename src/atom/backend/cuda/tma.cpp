// Tensor maps for TMA (tma.h).
#include "atom/backend/cuda/tma.h"

#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <cstring>
#include <string>

#include "atom/backend/cuda/cuda_check.h"
#include "atom/core/error.h"

namespace atom::cuda {
namespace {

PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
    ATOM_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q));
    if (q != cudaDriverEntryPointSuccess || !p)
      throw Error("TMA: the CUDA driver has no cuTensorMapEncodeTiled (driver older than CUDA 12.0)");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return fn;
}

}  // namespace

void tma_map_2d_u8(CUtensorMap* out, const void* base, uint64_t cols, uint64_t rows, uint64_t pitch,
                   uint32_t box_cols, uint32_t box_rows, TmaSwizzle swizzle) {
  static_assert(sizeof(CUtensorMap) == 128);
  alignas(64) CUtensorMap map{};
  const cuuint64_t dims[2] = {cols, rows};
  const cuuint64_t strides[1] = {pitch};
  const cuuint32_t box[2] = {box_cols, box_rows};
  const cuuint32_t elem_strides[2] = {1, 1};
  const CUtensorMapSwizzle sw = swizzle == TmaSwizzle::k64B    ? CU_TENSOR_MAP_SWIZZLE_64B
                                : swizzle == TmaSwizzle::k128B ? CU_TENSOR_MAP_SWIZZLE_128B
                                                               : CU_TENSOR_MAP_SWIZZLE_NONE;
  const CUresult r = encode_fn()(&map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<void*>(base), dims, strides, box,
                                 elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, sw, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                 CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    throw Error("TMA: cuTensorMapEncodeTiled failed (CUresult " + std::to_string(int(r)) + ") for a [" +
                std::to_string(rows) + ", " + std::to_string(cols) + "] byte tensor, pitch " + std::to_string(pitch) +
                ", box " + std::to_string(box_rows) + " x " + std::to_string(box_cols));
  std::memcpy(static_cast<void*>(out), &map, sizeof map);
}

}  // namespace atom::cuda
