// libFuzzer target: GgufFile::from_buffer on arbitrary bytes, then every metadata value and
// every tensor is touched: raw bytes read one by one, get_f32 for each tensor (unsupported
// types must throw atom::Error), and config_from_gguf. atom::Error is the only acceptable
// failure; anything else (crash, UB, other exception) is a bug.
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>

#include "atom/core/error.h"
#include "atom/io/gguf.h"
#include "atom/io/hf_config.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // config_from_gguf may warn; keep the fuzzer quiet
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<atom::io::GgufFile> f;
  try {
    f = atom::io::GgufFile::from_buffer(data, size, "fuzz.gguf");
  } catch (const atom::Error&) {
    return 0;
  }
  volatile uint64_t sink = 0;
  for (const auto& [key, value] : f->metadata()) {
    sink = sink + key.size() + value.index();
    try {
      sink = sink + f->get_int_or(key, 0);
    } catch (const atom::Error&) {
    }
  }
  for (const auto& ti : f->tensors()) {
    const auto bytes = f->tensor_bytes(ti.name);
    if (bytes.size() != ti.nbytes) __builtin_trap();
    uint64_t s = 0;
    for (uint8_t b : bytes) s += b;
    sink = sink + s;
    try {
      const atom::Tensor t = f->get_f32(ti.name);
      if (t.shape != ti.shape()) __builtin_trap();
      sink = sink + size_t(t.numel());
    } catch (const atom::Error&) {
    }
  }
  try {
    sink = sink + size_t(atom::io::config_from_gguf(*f).num_layers);
  } catch (const atom::Error&) {
  }
  return 0;
}
