// gguf_dump: exposes what Atom's GGUF reader sees, for tools/reference/check_gguf.py to compare
// against the independent `gguf` Python package.
//   gguf_dump MODEL.gguf info                      -> JSON: version, metadata, tensor infos, config
//   gguf_dump MODEL.gguf dump NAME OUT [NAME OUT]  -> each tensor dequantized to raw fp32 (LE)
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "atom/core/error.h"
#include "atom/io/gguf.h"
#include "atom/io/hf_config.h"

namespace {

using json = nlohmann::json;
using atom::io::GgufArray;
using atom::io::GgufValue;

json to_json(const GgufValue& v) {
  return std::visit(
      [](const auto& x) -> json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, GgufArray>)
          return std::visit([](const auto& a) { return json(a); }, x);
        else
          return json(x);
      },
      v);
}

int info(const atom::io::GgufFile& f) {
  json out;
  out["version"] = f.version();
  json& md = out["metadata"] = json::object();
  for (const auto& [k, v] : f.metadata()) md[k] = to_json(v);
  json& ts = out["tensors"] = json::array();
  for (const auto& t : f.tensors())
    ts.push_back({{"name", t.name},
                  {"type", t.type},
                  {"type_name", atom::io::ggml_type_name(t.type)},
                  {"dims", t.dims},
                  {"offset", t.offset},
                  {"nbytes", t.nbytes}});
  const atom::ModelConfig c = atom::io::config_from_gguf(f);
  out["config"] = {{"num_layers", c.num_layers},
                   {"hidden_size", c.hidden_size},
                   {"intermediate_size", c.intermediate_size},
                   {"num_heads", c.num_heads},
                   {"num_kv_heads", c.num_kv_heads},
                   {"head_dim", c.head_dim},
                   {"vocab_size", c.vocab_size},
                   {"max_position_embeddings", c.max_position_embeddings},
                   {"rms_norm_eps", c.rms_norm_eps},
                   {"rope_theta", c.rope_theta},
                   {"tie_word_embeddings", c.tie_word_embeddings},
                   {"bos_token_id", c.bos_token_id},
                   {"eos_token_id", c.eos_token_id}};
  // Invalid UTF-8 in token strings is replaced rather than aborting the dump.
  std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  return 0;
}

int dump(const atom::io::GgufFile& f, int argc, char** argv) {
  for (int i = 3; i + 1 < argc; i += 2) {
    const atom::Tensor t = f.get_f32(argv[i]);
    std::ofstream out(argv[i + 1], std::ios::binary);
    out.write(reinterpret_cast<const char*>(t.data), std::streamsize(t.nbytes()));
    if (!out) {
      std::cerr << "gguf_dump: cannot write " << argv[i + 1] << "\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || (std::string(argv[2]) == "dump" && argc % 2 == 0)) {
    std::cerr << "usage: gguf_dump MODEL.gguf info | dump NAME OUT [NAME OUT ...]\n";
    return 2;
  }
  try {
    atom::io::GgufFile f(argv[1]);
    const std::string cmd = argv[2];
    if (cmd == "info") return info(f);
    if (cmd == "dump") return dump(f, argc, argv);
    std::cerr << "gguf_dump: unknown command '" << cmd << "'\n";
    return 2;
  } catch (const atom::Error& e) {
    std::cerr << "gguf_dump: " << e.what() << "\n";
    return 1;
  }
}
