// Host side of the GPU W8A8 linear: stacking layers that share an input, upload.
#include "atom/backend/cuda/w8a8_gemm.h"
#include "atom/core/error.h"
#include "atom/quant/w8a8_linear.h"

namespace atom::cuda {

void upload_w8a8_weights(const std::vector<const quant::W8A8Weights*>& parts, GpuW8A8Weights& out, cudaStream_t s) {
  ATOM_CHECK(!parts.empty(), "W8A8 upload: no layers");
  const quant::W8A8Weights& first = *parts[0];
  std::vector<int8_t> w;
  std::vector<float> scale;
  for (const quant::W8A8Weights* p : parts) {
    ATOM_CHECK(p->in_features == first.in_features, "W8A8 upload: stacked layers have K {} and {}", p->in_features,
               first.in_features);
    ATOM_CHECK(p->smooth == first.smooth, "W8A8 upload: layers sharing an input must share the smoothing vector");
    w.insert(w.end(), p->w_int8.begin(), p->w_int8.end());
    scale.insert(scale.end(), p->w_scale.begin(), p->w_scale.end());
  }
  out.k = first.in_features;
  out.n = int64_t(scale.size());
  ATOM_CHECK(out.k % 4 == 0 && out.n % 4 == 0, "W8A8 on the GPU needs K and N multiples of 4 (cuBLASLt INT8), got {}x{}",
             out.n, out.k);
  out.w.upload(w, s);
  out.scale.upload(scale, s);
  if (!first.smooth.empty()) out.smooth.upload(first.smooth, s);
  else out.smooth.reset();
  ATOM_CUDA_CHECK(cudaStreamSynchronize(s));  // the host vectors are temporaries
}

}  // namespace atom::cuda
