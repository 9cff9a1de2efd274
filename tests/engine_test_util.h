// Shared by the engine and server tests: a tiny random Llama and a byte-level tokenizer built
// in the test (no model file needed), and engines over them.
#pragma once
#include <memory>

#include "atom/engine/cpu_executor.h"
#include "atom/engine/engine.h"
#include "atom/model/loader.h"
#include "atom/tokenizer/tokenizer.h"
#include "test_tokenizer_util.h"

namespace atom::test {

// 256 byte tokens, a few merges (so text is not one token per byte) and ChatML specials.
inline std::shared_ptr<const Tokenizer> tiny_tokenizer() {
  static std::shared_ptr<const Tokenizer> tok = [] {
    json j = byte_level_json({{"t", "h"}, {"th", "e"}, {"Ġ", "a"}, {"e", "r"}},
                             {"<|endoftext|>", "<|im_start|>", "<|im_end|>"});
    return std::shared_ptr<const Tokenizer>(parse_tokenizer_json(j.dump(), "", "tiny tokenizer.json"));
  }();
  return tok;
}

inline ModelConfig tiny_engine_config(int vocab) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 512;
  c.tie_word_embeddings = true;
  return c;
}

inline std::shared_ptr<const LlamaModel> tiny_model(uint64_t seed) {
  return make_random_llama(tiny_engine_config(tiny_tokenizer()->vocab_size()), seed);
}

struct EngineSetup {
  int64_t page_size = 4, num_pages = 256;
  int64_t max_num_seqs = 4, max_num_batched_tokens = 32, max_queue = 64;
  bool autostart = true;
  int tp = 1;  // tensor-parallel ranks of the CPU executor
};

inline std::unique_ptr<engine::Engine> make_tiny_engine(std::shared_ptr<const LlamaModel> model,
                                                        const EngineSetup& s = {}) {
  engine::EngineOptions o;
  o.scheduler.max_num_seqs = s.max_num_seqs;
  o.scheduler.max_num_batched_tokens = s.max_num_batched_tokens;
  o.max_queue = s.max_queue;
  o.autostart = s.autostart;
  return std::make_unique<engine::Engine>(
      std::make_unique<engine::CpuExecutor>(std::move(model), s.page_size, s.num_pages, s.tp), tiny_tokenizer(), o);
}

// Random prompt of printable ASCII byte tokens.
inline std::vector<int32_t> random_prompt(std::mt19937_64& rng, size_t n) {
  std::vector<int32_t> p(n);
  for (auto& t : p) t = int32_t(32 + rng() % 95);
  return p;
}

}  // namespace atom::test
