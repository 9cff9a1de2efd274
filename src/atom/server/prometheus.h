// /metrics: the engine's statistics in the Prometheus text exposition format (version 0.0.4).
#pragma once
#include <string>

#include "atom/engine/engine.h"

namespace atom::server {

std::string render_prometheus(const engine::EngineStats& stats, const std::string& model_name);

}  // namespace atom::server
