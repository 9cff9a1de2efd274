// libFuzzer target: SafetensorsFile::from_buffer on arbitrary bytes, then every tensor is read
// byte by byte (and converted to fp32 when floating) so any out-of-bounds view shows up under
// ASan. atom::Error is the only acceptable failure; anything else (crash, UB, other exception)
// is a bug.
#include <cstddef>
#include <cstdint>

#include "atom/core/error.h"
#include "atom/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = atom::io::SafetensorsFile::from_buffer(data, size, "fuzz.safetensors");
    volatile uint64_t sink = 0;
    for (const auto& [k, v] : f->metadata()) sink = sink + k.size() + v.size();
    for (const auto& name : f->names()) {
      const atom::Tensor t = f->get(name);
      if (t.numel() < 0 || t.nbytes() != size_t(t.numel()) * atom::dtype_size(t.dtype)) __builtin_trap();
      uint64_t s = 0;
      for (size_t i = 0; i < t.nbytes(); ++i) s += t.data[i];
      sink = sink + s;
      // Empty tensors are skipped: core/tensor.cpp's to_f32 memcpy()s into a null vector
      // buffer for them (UB flagged by UBSan, reported to the owner of that file).
      if (t.numel() > 0 && (t.dtype == atom::DType::F32 || t.dtype == atom::DType::F16 ||
                            t.dtype == atom::DType::BF16))
        sink = sink + atom::to_f32(t, name).size();
    }
  } catch (const atom::Error&) {
    // malformed input, reported properly
  }
  return 0;
}
