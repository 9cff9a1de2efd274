// The Atom checkpoint (docs/checkpoint-format.md): a directory with
//   model.safetensors   packed tensors + `__metadata__` {"format": "atom", "format_version": "1",
//                       "atom_config": <JSON: model config, quant config, report, source>}
//   atom_config.json    the same JSON, pretty-printed (what humans and format detection read)
//   tokenizer.*         the source model's tokenizer (tokenizer.json [+ tokenizer_config.json],
//                       or tokenizer.gguf holding every tokenizer.* key of a GGUF source)
// Saving, loading and saving again gives a bit-identical model.safetensors.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "atom/model/llama.h"
#include "atom/quant/pipeline.h"

namespace atom::quant {

nlohmann::json model_config_to_json(const ModelConfig& c);
ModelConfig model_config_from_json(const nlohmann::json& j);  // throws atom::Error naming a field

// `source_model` is where the fp model came from: its tokenizer is copied into `dir`.
void save_checkpoint(const std::string& dir, const LlamaModel& model, const QuantConfig& cfg,
                     const QuantizeReport& report, const std::string& source_model);

struct LoadedCheckpoint {
  std::unique_ptr<LlamaModel> model;  // quantized linears + the KV-cache format installed
  QuantConfig config;
  nlohmann::json metadata;            // the whole atom_config JSON
};
LoadedCheckpoint load_checkpoint(const std::string& dir);

}  // namespace atom::quant
