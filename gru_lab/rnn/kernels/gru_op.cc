// gru-lab's compiled GRU loops: the recurrence of keras.layers.GRU (reset_after=True, tanh, sigmoid) as
// TensorFlow CPU ops, float32. Built and loaded by gru_lab/rnn/compiled.py, which calls them and
// keeps the large products (input projections, dW, dU, the input gradient) in TensorFlow.
//
//   GruLabGruForward       projected (T, B, 3u) -> states (T, B, u) [+ z, r, n, h U_n + b_n per step]
//   GruLabGruTableForward  inference from token ids: step rows read from table = E @ W + b (V, 3u)
//   GruLabGruBackward      d states -> d projected, per-step gate gradients for dU and the bias, d h0
//
// Per step: one (rows, u) @ (u, 3u) product (Eigen) and vectorised gate math. The batch rows are split
// into blocks, one per intra-op thread, each running the whole sequence (rows never interact).
#include <vector>
#include <cmath>
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/blocking_counter.h"
#include "Eigen/Core"

using namespace tensorflow;
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapRM = Eigen::Map<RowMat>;
using CMapRM = Eigen::Map<const RowMat>;
using RowArr = Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapRA = Eigen::Map<RowArr>;
using CMapRA = Eigen::Map<const RowArr>;

REGISTER_OP("GruLabGruForward")
    .Input("projected: float")   // (T, B, 3u): x @ W + input bias, gates z, r, n
    .Input("h0: float")          // (B, u)
    .Input("recurrent_kernel: float")  // (u, 3u)
    .Input("recurrent_bias: float")    // (3u)
    .Input("mask: float")        // (T, B) or (0): 1 = a real step, 0 = padding (the state is kept)
    .Attr("save: bool")          // keep each step's z, r, n and h U_n + b_n for GruLabGruBackward
    .Attr("threads: int = 0")    // 0: TensorFlow's intra-op thread count
    .Output("states: float")     // (T, B, u)
    .Output("saved: float")      // (T, B, 4u): z, r, n, rn  (or (0) without save)
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle p, h0;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &p));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &h0));
      auto u = c->Dim(h0, 1);
      c->set_output(0, c->MakeShape({c->Dim(p, 0), c->Dim(p, 1), u}));
      bool save;
      TF_RETURN_IF_ERROR(c->GetAttr("save", &save));
      shape_inference::DimensionHandle four_u;
      TF_RETURN_IF_ERROR(c->Multiply(u, 4, &four_u));
      c->set_output(1, save ? c->MakeShape({c->Dim(p, 0), c->Dim(p, 1), four_u}) : c->MakeShape({0}));
      return OkStatus();
    });

// Inference straight from token ids: step t of row b reads row ids[t, b] of table = E @ W + input bias,
// so no (T, B, 3u) projection is ever materialised (at an evaluation batch of 1024 and T = 200 that
// array alone would be 315 MB).
REGISTER_OP("GruLabGruTableForward")
    .Input("table: float")       // (V, 3u)
    .Input("ids: int32")         // (T, B)
    .Input("h0: float")
    .Input("recurrent_kernel: float")
    .Input("recurrent_bias: float")
    .Input("mask: float")
    .Attr("keep_sequence: bool")  // states (T, B, u), or only the last state (B, u)
    .Attr("threads: int = 0")
    .Output("states: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle ids, h0;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &ids));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &h0));
      bool keep;
      TF_RETURN_IF_ERROR(c->GetAttr("keep_sequence", &keep));
      c->set_output(0, keep ? c->MakeShape({c->Dim(ids, 0), c->Dim(ids, 1), c->Dim(h0, 1)}) : h0);
      return OkStatus();
    });

REGISTER_OP("GruLabGruBackward")
    .Input("d_states: float")    // (T, B, u)
    .Input("states: float")
    .Input("h0: float")
    .Input("saved: float")
    .Input("recurrent_kernel: float")
    .Input("mask: float")
    .Attr("threads: int = 0")
    .Output("d_projected: float")  // (T, B, 3u)
    .Output("d_recurrent: float")  // (T, B, 3u): dz, dr, d(rn)
    .Output("d_h0: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle hs;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &hs));
      shape_inference::DimensionHandle three_u;
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(hs, 2), 3, &three_u));
      auto g = c->MakeShape({c->Dim(hs, 0), c->Dim(hs, 1), three_u});
      c->set_output(0, g);
      c->set_output(1, g);
      c->set_output(2, c->input(2));
      return OkStatus();
    });

// Splits the batch rows into one block per intra-op thread (at least 8 rows a block) and runs the whole
// sequence of each block on its own thread: rows never interact, so the threads meet once per call.
// The blocks go to TensorFlow's own intra-op pool, whose threads are the ones the cores are kept for.
template <typename F>
static void run_blocks(OpKernelContext* ctx, int batch, int want, F fn) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  int threads = want > 0 ? want : workers->num_threads;
  int blocks = std::max(1, std::min(threads, batch / 8));
  if (blocks == 1) { fn(0, batch); return; }
  int per = (batch + blocks - 1) / blocks;
  blocks = (batch + per - 1) / per;
  // Every block goes to the pool and this (inter-op) thread sleeps: measured faster than running block 0
  // here (9.7-11.4 vs 11.4-11.7 ms for 200 steps at batch 64 forward), since the cores then run exactly the
  // pool's threads. Called from a pool thread itself, block 0 runs inline so the pool can never deadlock.
  const int first = workers->workers->CurrentThreadId() >= 0 ? 1 : 0;
  BlockingCounter done(blocks - first);
  for (int k = first; k < blocks; ++k) {
    int b0 = k * per, b1 = std::min(batch, b0 + per);
    workers->workers->Schedule([=, &done] { fn(b0, b1); done.DecrementCount(); });
  }
  if (first) fn(0, per);
  done.Wait();
}

// The forward recurrence for batch rows [b0, b1). rows(t, b0, nb) gives the (nb, 3u) input projections
// of step t (contiguous); states go to hs (T, B, u) when keep, else only the last one to last (B, u).
// Keras GRU, reset_after=True: z, r = sigmoid(x_zr + h U_zr + b_zr); rn = h U_n + b_n;
// n = tanh(x_n + r * rn); h' = z * h + (1 - z) * n; a masked step keeps h.
template <typename Rows>
static void forward_block(int b0, int b1, int T, int B, int u, Rows rows, const float* h0, const float* uk,
                          const float* br, const float* m, float* hs, float* last, float* s) {
  const int nb = b1 - b0, G = 3 * u;
  CMapRM Uk(uk, u, G);
  RowMat g(nb, G), ping(hs ? 0 : nb, u), pong(hs ? 0 : nb, u);
  RowArr zr(nb, 2 * u), n(nb, u), hc(nb, u);
  Eigen::Map<const Eigen::Array<float, 1, Eigen::Dynamic>> brv(br, G);
  const float* hp = h0 + (size_t)b0 * u;
  for (int t = 0; t < T; ++t) {
    float* hn_ptr = hs ? hs + ((size_t)t * B + b0) * u : (t % 2 ? pong.data() : ping.data());
    CMapRM H(hp, nb, u);
    g.noalias() = H * Uk;
    auto ga = g.array();
    ga.rowwise() += brv;
    CMapRA Pt(rows(t, b0, nb), nb, G);
    zr = (Pt.leftCols(2 * u) + ga.leftCols(2 * u)).logistic();
    n = (Pt.rightCols(u) + zr.rightCols(u) * ga.rightCols(u)).tanh();
    MapRA Hn(hn_ptr, nb, u);
    hc = n + zr.leftCols(u) * (H.array() - n);
    if (m) {
      Eigen::Map<const Eigen::Array<float, Eigen::Dynamic, 1>> mt(m + (size_t)t * B + b0, nb);
      Hn = H.array() + (hc - H.array()).colwise() * mt;
    } else {
      Hn = hc;
    }
    if (s) {
      MapRA St(s + ((size_t)t * B + b0) * 4 * u, nb, 4 * u);
      St.leftCols(2 * u) = zr;
      St.middleCols(2 * u, u) = n;
      St.rightCols(u) = ga.rightCols(u);
    }
    hp = hn_ptr;
  }
  if (last) std::copy(hp, hp + (size_t)nb * u, last + (size_t)b0 * u);
}

class GruForwardOp : public OpKernel {
 public:
  explicit GruForwardOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("save", &save_));
    OP_REQUIRES_OK(c, c->GetAttr("threads", &threads_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& P = ctx->input(0); const Tensor& H0 = ctx->input(1);
    const Tensor& U = ctx->input(2); const Tensor& BR = ctx->input(3); const Tensor& M = ctx->input(4);
    OP_REQUIRES(ctx, P.dims() == 3 && H0.dims() == 2 && U.dims() == 2 && BR.dims() == 1,
                errors::InvalidArgument("GruLabGruForward: wrong ranks"));
    const int T = P.dim_size(0), B = P.dim_size(1), G = P.dim_size(2), u = G / 3;
    OP_REQUIRES(ctx, G == 3 * u && H0.dim_size(0) == B && H0.dim_size(1) == u && U.dim_size(0) == u &&
                U.dim_size(1) == G && BR.dim_size(0) == G && (M.NumElements() == 0 || M.NumElements() == (int64_t)T * B),
                errors::InvalidArgument("GruLabGruForward: shapes do not agree"));
    Tensor* HS; OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({T, B, u}), &HS));
    Tensor* S; OP_REQUIRES_OK(ctx, ctx->allocate_output(1, save_ ? TensorShape({T, B, 4 * u}) : TensorShape({0}), &S));
    if (T == 0 || B == 0) return;
    const float* p = P.flat<float>().data(); const float* h0 = H0.flat<float>().data();
    const float* uk = U.flat<float>().data(); const float* br = BR.flat<float>().data();
    const float* m = M.NumElements() ? M.flat<float>().data() : nullptr;
    float* hs = HS->flat<float>().data(); float* s = save_ ? S->flat<float>().data() : nullptr;
    auto rows = [=](int t, int b0, int) { return p + ((size_t)t * B + b0) * G; };
    run_blocks(ctx, B, threads_, [=](int b0, int b1) {
      forward_block(b0, b1, T, B, u, rows, h0, uk, br, m, hs, nullptr, s);
    });
  }
 private:
  bool save_; int threads_;
};

class GruTableForwardOp : public OpKernel {
 public:
  explicit GruTableForwardOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("keep_sequence", &keep_));
    OP_REQUIRES_OK(c, c->GetAttr("threads", &threads_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& TB = ctx->input(0); const Tensor& IDS = ctx->input(1); const Tensor& H0 = ctx->input(2);
    const Tensor& U = ctx->input(3); const Tensor& BR = ctx->input(4); const Tensor& M = ctx->input(5);
    OP_REQUIRES(ctx, TB.dims() == 2 && IDS.dims() == 2 && H0.dims() == 2 && U.dims() == 2 && BR.dims() == 1,
                errors::InvalidArgument("GruLabGruTableForward: wrong ranks"));
    const int V = TB.dim_size(0), G = TB.dim_size(1), u = G / 3, T = IDS.dim_size(0), B = IDS.dim_size(1);
    OP_REQUIRES(ctx, G == 3 * u && H0.dim_size(0) == B && H0.dim_size(1) == u && U.dim_size(0) == u &&
                U.dim_size(1) == G && BR.dim_size(0) == G && (M.NumElements() == 0 || M.NumElements() == (int64_t)T * B),
                errors::InvalidArgument("GruLabGruTableForward: shapes do not agree"));
    const int32_t* ids = IDS.flat<int32_t>().data();
    for (int64_t i = 0, n = (int64_t)T * B; i < n; ++i) {
      OP_REQUIRES(ctx, ids[i] >= 0 && ids[i] < V,
                  errors::InvalidArgument("token id ", ids[i], " is outside the vocabulary [0, ", V, ")"));
    }
    Tensor* OUT;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, keep_ ? TensorShape({T, B, u}) : TensorShape({B, u}), &OUT));
    if (B == 0) return;
    const float* tb = TB.flat<float>().data(); const float* h0 = H0.flat<float>().data();
    const float* uk = U.flat<float>().data(); const float* br = BR.flat<float>().data();
    const float* m = M.NumElements() ? M.flat<float>().data() : nullptr;
    float* out = OUT->flat<float>().data();
    if (T == 0) {  // no step: the state stays h0
      if (!keep_) std::copy(h0, h0 + (size_t)B * u, out);
      return;
    }
    const bool keep = keep_;
    run_blocks(ctx, B, threads_, [=](int b0, int b1) {
      RowMat buffer(b1 - b0, G);  // this block's rows of the step, gathered from the table
      auto rows = [&](int t, int r0, int nb) {
        for (int i = 0; i < nb; ++i) {
          const float* src = tb + (size_t)ids[(size_t)t * B + r0 + i] * G;
          std::copy(src, src + G, buffer.data() + (size_t)i * G);
        }
        return (const float*)buffer.data();
      };
      forward_block(b0, b1, T, B, u, rows, h0, uk, br, m, keep ? out : nullptr, keep ? nullptr : out, nullptr);
    });
  }
 private:
  bool keep_; int threads_;
};

class GruBackwardOp : public OpKernel {
 public:
  explicit GruBackwardOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("threads", &threads_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& DH = ctx->input(0); const Tensor& HS = ctx->input(1); const Tensor& H0 = ctx->input(2);
    const Tensor& S = ctx->input(3); const Tensor& U = ctx->input(4); const Tensor& M = ctx->input(5);
    OP_REQUIRES(ctx, HS.dims() == 3 && DH.shape() == HS.shape() && H0.dims() == 2 && S.dims() == 3 && U.dims() == 2,
                errors::InvalidArgument("GruLabGruBackward: wrong ranks"));
    const int T = HS.dim_size(0), B = HS.dim_size(1), u = HS.dim_size(2), G = 3 * u;
    OP_REQUIRES(ctx, H0.dim_size(0) == B && H0.dim_size(1) == u && S.dim_size(0) == T && S.dim_size(1) == B &&
                S.dim_size(2) == 4 * u && U.dim_size(0) == u && U.dim_size(1) == G &&
                (M.NumElements() == 0 || M.NumElements() == (int64_t)T * B),
                errors::InvalidArgument("GruLabGruBackward: shapes do not agree"));
    const bool has_mask = M.NumElements() > 0;
    Tensor* DP; OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({T, B, G}), &DP));
    Tensor* DR; OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({T, B, G}), &DR));
    Tensor* DH0; OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({B, u}), &DH0));
    const float* dhs = DH.flat<float>().data(); const float* hs = HS.flat<float>().data();
    const float* h0 = H0.flat<float>().data(); const float* s = S.flat<float>().data();
    const float* uk = U.flat<float>().data(); const float* m = has_mask ? M.flat<float>().data() : nullptr;
    float* dp = DP->flat<float>().data(); float* dr = DR->flat<float>().data(); float* dh0 = DH0->flat<float>().data();
    run_blocks(ctx, B, threads_, [=](int b0, int b1) {
      const int nb = b1 - b0;
      CMapRM Uk(uk, u, G);
      RowMat carry = RowMat::Zero(nb, u), next(nb, u);
      RowArr dh(nb, u), dn(nb, u);
      for (int t = T - 1; t >= 0; --t) {
        const size_t row = (size_t)t * B + b0;
        CMapRA Hp(t == 0 ? h0 + (size_t)b0 * u : hs + (row - B) * u, nb, u);
        CMapRA St(s + row * 4 * u, nb, 4 * u);
        CMapRA Dho(dhs + row * u, nb, u);
        MapRA Dp(dp + row * G, nb, G);
        MapRM Dr(dr + row * G, nb, G);
        auto z = St.leftCols(u); auto r = St.middleCols(u, u); auto n = St.middleCols(2 * u, u); auto rn = St.rightCols(u);
        dh = Dho + carry.array();
        if (m) {
          Eigen::Map<const Eigen::Array<float, Eigen::Dynamic, 1>> mt(m + row, nb);
          next.array() = dh.colwise() * (1.0f - mt);
          dh.colwise() *= mt;
          next.array() += dh * z;
        } else {
          next.array() = dh * z;
        }
        dn = dh * (1.0f - z) * (1.0f - n * n);
        Dp.leftCols(u) = dh * (Hp - n) * z * (1.0f - z);
        Dp.middleCols(u, u) = dn * rn * r * (1.0f - r);
        Dp.rightCols(u) = dn;
        auto Dra = Dr.array();
        Dra.leftCols(2 * u) = Dp.leftCols(2 * u);
        Dra.rightCols(u) = dn * r;
        next.noalias() += Dr * Uk.transpose();
        carry.swap(next);
      }
      std::copy(carry.data(), carry.data() + (size_t)nb * u, dh0 + (size_t)b0 * u);
    });
  }
 private:
  int threads_;
};

REGISTER_KERNEL_BUILDER(Name("GruLabGruForward").Device(DEVICE_CPU), GruForwardOp);
REGISTER_KERNEL_BUILDER(Name("GruLabGruBackward").Device(DEVICE_CPU), GruBackwardOp);
REGISTER_KERNEL_BUILDER(Name("GruLabGruTableForward").Device(DEVICE_CPU), GruTableForwardOp);
