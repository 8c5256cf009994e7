// What gru-lab's compiled loops (gru_op.cc, lstm_op.cc, simple_rnn_op.cc) share: Eigen types over raw
// float buffers, the split of the batch rows between the intra-op threads, the token-id check and the
// gather of a step's rows from a token table. Built with them by gru_lab/rnn/compiled.py.
#ifndef GRU_LAB_LOOPS_H_
#define GRU_LAB_LOOPS_H_

#include <algorithm>
#include <cstdint>

#include "Eigen/Core"
#include "step_product.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/blocking_counter.h"

namespace gru_lab {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapRM = Eigen::Map<RowMat>;
using CMapRM = Eigen::Map<const RowMat>;
using RowArr = Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapRA = Eigen::Map<RowArr>;
using CMapRA = Eigen::Map<const RowArr>;
using ColMask = Eigen::Map<const Eigen::Array<float, Eigen::Dynamic, 1>>;  // one step's mask, one entry a row
using RowBias = Eigen::Map<const Eigen::Array<float, 1, Eigen::Dynamic>>;

// A block's least work, in multiply-adds of the step products over the call (steps x rows x u x gates u), where
// the op's `threads` attribute is left at 0: below it, handing a block to another thread costs more than the
// block's share of the work (tools/probes/loop_threads.py; docs/benchmarks.md, "The step's product at a small
// batch"), and the whole batch runs on one thread.
constexpr double kMinBlockWork = 4e6;

// The rows of run_blocks' first block (the others have as many, the last maybe fewer). work_per_row: a batch
// row's multiply-adds over the call (0: unknown, the split by threads alone).
inline int rows_per_block(tensorflow::OpKernelContext* ctx, int batch, int want, double work_per_row = 0) {
  const int threads = want > 0 ? want : ctx->device()->tensorflow_cpu_worker_threads()->num_threads;
  int blocks = std::max(1, std::min(threads, batch / 8));
  if (want <= 0 && work_per_row > 0) {
    blocks = std::max(1, std::min(blocks, static_cast<int>(batch * work_per_row / kMinBlockWork)));
  }
  return (batch + blocks - 1) / blocks;
}

// Splits the batch rows into one block per intra-op thread (at least 8 rows a block) and runs the whole
// sequence of each block on its own thread: rows never interact, so the threads meet once per call.
// The blocks go to TensorFlow's own intra-op pool, whose threads are the ones the cores are kept for.
template <typename F>
void run_blocks(tensorflow::OpKernelContext* ctx, int batch, int want, F fn, double work_per_row = 0) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  const int per = std::max(1, rows_per_block(ctx, batch, want, work_per_row));
  const int blocks = (batch + per - 1) / per;
  if (blocks <= 1) {
    fn(0, batch);
    return;
  }
  // Every block goes to the pool and this (inter-op) thread sleeps: measured faster than running block 0
  // here (docs/benchmarks.md, third round), since the cores then run exactly the pool's threads. Called
  // from a pool thread itself, block 0 runs inline so the pool can never deadlock.
  const int first = workers->workers->CurrentThreadId() >= 0 ? 1 : 0;
  tensorflow::BlockingCounter done(blocks - first);
  for (int k = first; k < blocks; ++k) {
    int b0 = k * per, b1 = std::min(batch, b0 + per);
    workers->workers->Schedule([=, &done] {
      fn(b0, b1);
      done.DecrementCount();
    });
  }
  if (first) fn(0, per);
  done.Wait();
}

// The recurrent kernel (u, g) transposed (g, u), row-major, for the backward ops' products d @ U^T where the
// blocks are small enough for step_product's in-place product (which reads its right side row by row); else
// empty, and step_product_t multiplies by Eigen's transposed view.
inline RowMat transposed_for_blocks(tensorflow::OpKernelContext* ctx, int batch, int want, const float* uk, int u,
                                    int g, double work_per_row) {
  if (!small_product_pays(rows_per_block(ctx, batch, want, work_per_row), g, u)) return RowMat();
  return CMapRM(uk, u, g).transpose();
}

// out (nb, u) += d (nb, g) @ uk^T, uk (u, g); ut: transposed_for_blocks' copy, or nullptr.
inline void step_product_t(const float* d, int nb, int g, const float* uk, const float* ut, int u, float* out) {
  if (ut != nullptr && small_product_pays(nb, g, u)) {
    small_product(d, nb, g, ut, u, out, true);
    return;
  }
  Eigen::Map<RowMat>(out, nb, u).noalias() += CMapRM(d, nb, g) * CMapRM(uk, u, g).transpose();
}

// A token id outside [0, V) is an error, never a read past the table.
inline absl::Status check_ids(const int32_t* ids, int64_t n, int vocabulary) {
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= vocabulary) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", ids[i], " is outside the vocabulary [0, ",
                                                     vocabulary, ")"));
    }
  }
  return absl::OkStatus();
}

// Step t's input rows of batch rows [r0, r0 + nb), gathered from a token table (V, G) into a block's own
// buffer: the table op never materialises the (T, B, G) projection.
class TableRows {
 public:
  TableRows(const float* table, const int32_t* ids, int batch, int width, int rows)
      : table_(table), ids_(ids), batch_(batch), width_(width), buffer_(rows, width) {}
  const float* operator()(int t, int r0, int nb) {
    for (int i = 0; i < nb; ++i) {
      const float* src = table_ + static_cast<size_t>(ids_[static_cast<size_t>(t) * batch_ + r0 + i]) * width_;
      std::copy(src, src + width_, buffer_.data() + static_cast<size_t>(i) * width_);
    }
    return buffer_.data();
  }

 private:
  const float* table_;
  const int32_t* ids_;
  int batch_, width_;
  RowMat buffer_;
};

// The "mask" input of every op: (T, B), or an empty tensor for none.
inline const float* mask_or_null(const tensorflow::Tensor& m) {
  return m.NumElements() ? m.flat<float>().data() : nullptr;
}

// The steps [first, end) in which at least one of rows [b0, b0 + nb) is real: outside them every row of the
// block keeps its state, so the loops skip them (a block of right-padded rows stops at its longest
// sequence, one of left-padded rows starts at it). Without a mask: every step.
struct Steps {
  int first, end;
};

inline Steps active_steps(const float* m, int steps, int batch, int b0, int nb) {
  if (!m) return {0, steps};
  auto any = [&](int t) {
    const float* row = m + static_cast<size_t>(t) * batch + b0;
    return std::any_of(row, row + nb, [](float v) { return v != 0.0f; });
  };
  int first = 0, end = steps;
  while (first < steps && !any(first)) ++first;
  while (end > first && !any(end - 1)) --end;
  return {first, end};
}

// Output 0 of a forward op: the states (T, B, u), from projected (input 0, (T, B, gates u)) and h0 (input 1).
inline absl::Status sequence_shape(tensorflow::shape_inference::InferenceContext* c) {
  tensorflow::shape_inference::ShapeHandle p, h0;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &p));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &h0));
  c->set_output(0, c->MakeShape({c->Dim(p, 0), c->Dim(p, 1), c->Dim(h0, 1)}));
  return absl::OkStatus();
}

// The output of a forward op (or of a table op in training) that saves per-step values for its backward op:
// (T, B, per_unit u) with save, else an empty tensor. T and B are the first two dimensions of input `steps`
// (the projection (T, B, gates u), or a table op's ids (T, B)); u is the second of input `h0`.
inline absl::Status saved_shape(tensorflow::shape_inference::InferenceContext* c, int output, int per_unit,
                                int steps = 0, int h0 = 1) {
  bool save;
  TF_RETURN_IF_ERROR(c->GetAttr("save", &save));
  tensorflow::shape_inference::DimensionHandle width;
  TF_RETURN_IF_ERROR(c->Multiply(c->Dim(c->input(h0), 1), per_unit, &width));
  auto p = c->input(steps);
  c->set_output(output, save ? c->MakeShape({c->Dim(p, 0), c->Dim(p, 1), width}) : c->MakeShape({0}));
  return absl::OkStatus();
}

// Output 0 of a table op: the states (T, B, u) with keep_sequence, else the last state, shaped like h0;
// from ids (input 1, (T, B)) and h0 (input 2).
inline absl::Status table_states_shape(tensorflow::shape_inference::InferenceContext* c) {
  tensorflow::shape_inference::ShapeHandle ids, h0;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &ids));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &h0));
  bool keep;
  TF_RETURN_IF_ERROR(c->GetAttr("keep_sequence", &keep));
  c->set_output(0, keep ? c->MakeShape({c->Dim(ids, 0), c->Dim(ids, 1), c->Dim(h0, 1)}) : h0);
  return absl::OkStatus();
}

// The "d_states" input of every backward op: the gradient of every state (T, B, u), like the states, or of the
// last state alone (B, u), what a layer that returns only its last output receives (no (T, B, u) of zeros is
// then made). 0: every state's, 1: the last state's alone, -1: neither shape.
inline int last_state_only(const tensorflow::Tensor& d, const tensorflow::Tensor& states) {
  if (d.shape() == states.shape()) return 0;
  if (states.dims() == 3 && d.dims() == 2 && d.dim_size(0) == states.dim_size(1) &&
      d.dim_size(1) == states.dim_size(2)) return 1;
  return -1;
}

// Step t's rows [b0, b0 + nb) of d_states (width u), or nullptr where that gradient is zero (the last state's
// alone, at any step but the last).
inline const float* step_gradient(const float* d, bool last_only, int t, int steps, int batch, int b0, int u) {
  if (!last_only) return d + (static_cast<size_t>(t) * batch + b0) * u;
  return t == steps - 1 ? d + static_cast<size_t>(b0) * u : nullptr;
}

inline bool mask_fits(const tensorflow::Tensor& m, int steps, int batch) {
  return m.NumElements() == 0 || m.NumElements() == static_cast<int64_t>(steps) * batch;
}

}  // namespace gru_lab

#endif  // GRU_LAB_LOOPS_H_
