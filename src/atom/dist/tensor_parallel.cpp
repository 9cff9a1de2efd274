#include "atom/dist/tensor_parallel.h"

#include <cstring>

#include "atom/core/error.h"
#include "atom/model/segmented_linear.h"
#include "atom/quant/atom_linear.h"
#include "atom/quant/int4.h"
#include "atom/quant/pipeline.h"
#include "atom/quant/w8a8_linear.h"

namespace atom::dist {
namespace {

using quant::AtomLinear;
using quant::AtomWeights;
using quant::W8A8Linear;
using quant::W8A8Weights;

// Rows [r0, r0 + nr) of a row-major matrix with `row` elements per row.
template <typename T>
std::vector<T> rows_of(const std::vector<T>& v, int64_t row, int64_t r0, int64_t nr) {
  if (v.empty()) return {};
  return std::vector<T>(v.begin() + long(r0 * row), v.begin() + long((r0 + nr) * row));
}

std::unique_ptr<Linear> clone_linear(const Linear& lin) {
  if (auto* d = dynamic_cast<const DenseLinear*>(&lin))
    return std::make_unique<DenseLinear>(d->in_features(), d->out_features(), d->weight());
  if (auto* a = dynamic_cast<const AtomLinear*>(&lin)) return std::make_unique<AtomLinear>(a->weights());
  if (auto* w = dynamic_cast<const W8A8Linear*>(&lin)) return std::make_unique<W8A8Linear>(w->weights());
  fail("tensor parallel: cannot copy a linear of kind '{}'", lin.kind());
}

// Column-parallel: output rows [r0, r0 + nr).
std::unique_ptr<Linear> slice_rows(const Linear& lin, int64_t r0, int64_t nr) {
  const int64_t K = lin.in_features();
  if (auto* d = dynamic_cast<const DenseLinear*>(&lin))
    return std::make_unique<DenseLinear>(K, nr, rows_of(d->weight(), K, r0, nr));
  if (auto* a = dynamic_cast<const AtomLinear*>(&lin)) {
    const AtomWeights& w = a->weights();
    const quant::AtomLayout lay = w.layout();
    AtomWeights s = w;
    s.out_features = nr;
    s.w_int4 = rows_of(w.w_int4, quant::int4_bytes(lay.k_normal), r0, nr);
    s.w_scale = rows_of(w.w_scale, lay.n_groups, r0, nr);
    s.w_outlier = rows_of(w.w_outlier, lay.n_outlier, r0, nr);
    s.w_outlier_scale = rows_of(w.w_outlier_scale, 1, r0, nr);
    s.w_outlier_fp16 = rows_of(w.w_outlier_fp16, lay.n_outlier, r0, nr);
    return std::make_unique<AtomLinear>(std::move(s));
  }
  if (auto* q = dynamic_cast<const W8A8Linear*>(&lin)) {
    W8A8Weights s = q->weights();
    s.out_features = nr;
    s.w_int8 = rows_of(q->weights().w_int8, K, r0, nr);
    s.w_scale = rows_of(q->weights().w_scale, 1, r0, nr);
    return std::make_unique<W8A8Linear>(std::move(s));
  }
  fail("tensor parallel: cannot split the rows of a linear of kind '{}'", lin.kind());
}

// Row-parallel: input columns [c0, c0 + nc). Dense weights slice anywhere; quantized ones only along
// the K-segments they were quantized in.
std::unique_ptr<Linear> slice_cols(const Linear& lin, int64_t c0, int64_t nc, const char* what) {
  const int64_t K = lin.in_features(), N = lin.out_features();
  if (c0 == 0 && nc == K) return clone_linear(lin);
  if (auto* d = dynamic_cast<const DenseLinear*>(&lin)) {
    std::vector<float> w(size_t(N * nc));
    for (int64_t i = 0; i < N; ++i)
      std::memcpy(&w[size_t(i * nc)], &d->weight()[size_t(i * K + c0)], size_t(nc) * sizeof(float));
    return std::make_unique<DenseLinear>(nc, N, std::move(w));
  }
  auto* sl = dynamic_cast<const SegmentedLinear*>(&lin);
  ATOM_CHECK(sl, "tensor parallel: {} is a quantized '{}' layer in one piece; quantize with --tp-segments "
                 "a multiple of the TP size so each rank gets its own reorder, outliers and groups",
             what, lin.kind());
  std::vector<std::unique_ptr<Linear>> mine;
  for (int j = 0; j < sl->num_segments(); ++j) {
    const int64_t off = sl->segment_offset(j), ks = sl->segment(j).in_features();
    if (off >= c0 && off + ks <= c0 + nc) mine.push_back(clone_linear(sl->segment(j)));
    else
      ATOM_CHECK(off + ks <= c0 || off >= c0 + nc, "tensor parallel: {} has {} segments, which do not split "
                 "evenly over this TP size", what, sl->num_segments());
  }
  if (mine.size() == 1) return std::move(mine[0]);
  return std::make_unique<SegmentedLinear>(std::move(mine));
}

}  // namespace

void check_tp(const ModelConfig& c, int tp) {
  ATOM_CHECK(tp >= 1 && tp <= 64, "tensor parallel: size must be in 1..64, got {}", tp);
  ATOM_CHECK(c.num_heads % tp == 0 && c.num_kv_heads % tp == 0,
             "tensor parallel: {} ranks must divide the query heads ({}) and kv heads ({})", tp, c.num_heads,
             c.num_kv_heads);
  ATOM_CHECK(c.intermediate_size % tp == 0, "tensor parallel: {} ranks must divide the FFN size {}", tp,
             c.intermediate_size);
}

ModelConfig shard_config(const ModelConfig& full, int tp) {
  check_tp(full, tp);
  ModelConfig c = full;
  c.num_heads /= tp;
  c.num_kv_heads /= tp;
  c.intermediate_size /= tp;
  // head_dim stays: it was explicit or hidden/heads of the full model.
  if (c.head_dim == 0) c.head_dim = full.hidden_size / full.num_heads;
  return c;
}

std::unique_ptr<LlamaModel> shard_model(const LlamaModel& full, int tp, int rank) {
  ATOM_CHECK(rank >= 0 && rank < tp, "tensor parallel: rank {} out of {}", rank, tp);
  ATOM_CHECK(!full.kv_store_hook || full.kv_bits != 16,
             "tensor parallel: the model has a custom KV hook, which cannot be split over ranks");
  const ModelConfig& c = full.cfg;
  auto m = std::make_unique<LlamaModel>();
  m->cfg = shard_config(c, tp);
  const int64_t hd = m->cfg.head_dim, q_rows = int64_t(m->cfg.num_heads) * hd,
                kv_rows = int64_t(m->cfg.num_kv_heads) * hd, f = m->cfg.intermediate_size;
  m->embed = full.embed;
  m->final_norm = full.final_norm;
  if (full.lm_head) m->lm_head = clone_linear(*full.lm_head);
  m->rope_inv_freq = full.rope_inv_freq;
  m->source = full.source;
  m->weights_note = full.weights_note;
  m->layers.resize(full.layers.size());
  for (size_t l = 0; l < full.layers.size(); ++l) {
    const LlamaLayer& F = full.layers[l];
    LlamaLayer& L = m->layers[l];
    L.attn_norm = F.attn_norm;
    L.ffn_norm = F.ffn_norm;
    L.linear[int(LinearSlot::Q)] = slice_rows(F.at(LinearSlot::Q), rank * q_rows, q_rows);
    L.linear[int(LinearSlot::K)] = slice_rows(F.at(LinearSlot::K), rank * kv_rows, kv_rows);
    L.linear[int(LinearSlot::V)] = slice_rows(F.at(LinearSlot::V), rank * kv_rows, kv_rows);
    L.linear[int(LinearSlot::O)] = slice_cols(F.at(LinearSlot::O), rank * q_rows, q_rows, "o_proj");
    L.linear[int(LinearSlot::Gate)] = slice_rows(F.at(LinearSlot::Gate), rank * f, f);
    L.linear[int(LinearSlot::Up)] = slice_rows(F.at(LinearSlot::Up), rank * f, f);
    L.linear[int(LinearSlot::Down)] = slice_cols(F.at(LinearSlot::Down), rank * f, f, "down_proj");
  }
  // The KV format is per (token, head): each rank applies it to its own heads.
  quant::QuantConfig kv;
  kv.kv_bits = full.kv_bits;
  kv.kv_pre_rope = full.kv_hook_pre_rope;
  quant::apply_kv_format(*m, kv);
  return m;
}

TensorParallelModel::TensorParallelModel(const LlamaModel& full, int tp) : full_cfg_(full.cfg), group_(tp) {
  check_tp(full.cfg, tp);
  for (int r = 0; r < tp; ++r) {
    shards_.push_back(shard_model(full, tp, r));
    Communicator* comm = &group_.rank(r);
    shards_.back()->reduce_partial = [comm](float* y, int64_t count) { comm->all_reduce_sum(y, count); };
  }
}

std::vector<KVCache> TensorParallelModel::make_caches(int64_t capacity) const {
  std::vector<KVCache> caches;
  for (const auto& s : shards_) caches.emplace_back(s->cfg, capacity);
  return caches;
}

void TensorParallelModel::forward(const int32_t* tokens, int64_t n, std::vector<KVCache>& caches,
                                  float* hidden_out) {
  ATOM_CHECK(int(caches.size()) == tp(), "tensor parallel: {} caches for {} ranks", caches.size(), tp());
  std::vector<std::vector<float>> scratch(static_cast<size_t>(tp()));
  group_.run([&](int r) {
    float* out = hidden_out;
    if (r > 0) {
      scratch[size_t(r)].resize(size_t(n * full_cfg_.hidden_size));
      out = scratch[size_t(r)].data();
    }
    shards_[size_t(r)]->forward(tokens, n, caches[size_t(r)], out);
  });
}

}  // namespace atom::dist
