// Host side of TMA (the bulk tensor copy engine): tensor maps for 2D byte tensors, encoded with the driver's
// cuTensorMapEncodeTiled (reached through the runtime's entry-point query: no link to libcuda). The device
// side (the copies, the swizzled layouts) is in ptx.cuh. Header safe for nvcc and g++.
#pragma once
#include <cuda.h>

#include <cstdint>

namespace atom::cuda {

enum class TmaSwizzle { kNone, k64B, k128B };

// A tensor map over a row-major [rows, cols] tensor of bytes with `pitch` bytes between rows, copied in boxes of
// box_rows x box_cols (box_cols bytes: a multiple of 16, at most the swizzle span). Throws atom::Error when the
// driver rejects it (base not 16-byte aligned, pitch not a multiple of 16, box too large) or has no TMA.
// Written through `out` with a byte copy: an nvcc-compiled caller's CUtensorMap temporaries were seen not
// 64-byte aligned (a by-value return then faulted on the callee's aligned vector store, H200, 2026-12-03).
void tma_map_2d_u8(CUtensorMap* out, const void* base, uint64_t cols, uint64_t rows, uint64_t pitch,
                   uint32_t box_cols, uint32_t box_rows, TmaSwizzle swizzle);

}  // namespace atom::cuda
