// gru-lab's compiled GRU loops: the recurrence of keras.layers.GRU (reset_after=True, tanh, sigmoid) as
// TensorFlow CPU ops, float32. Built and loaded by gru_lab/rnn/compiled.py, which calls them and
// keeps the large products (input projections, dW, dU, the input gradient) in TensorFlow.
//
//   GruLabGruForward       projected (T, B, 3u) -> states (T, B, u) [+ z, r, n and h U_n + b_n per step]
//   GruLabGruTableForward  from token ids: step rows read from table = E @ W + b (V, 3u) [+ the saved values]
//   GruLabGruBackward      d states -> d projected (dz, dr, dn: also dU's and the bias's but for n), d(rn), d h0
//
// Memory: in training the gates z, r, n are written over the projection where TensorFlow hands its buffer
// over (nothing else reads it), and the backward op writes d projected over the gates and d(rn) over rn;
// d states may be the last state's gradient alone (B, u). So a train step holds the states, the gates and rn
// (5u floats a step and row) and no (T, B, 3u) array besides.
//
// Per step: one (rows, u) @ (u, 3u) product (Eigen) and vectorised gate math. The batch rows are split
// into blocks, one per intra-op thread, each running the whole sequence (rows never interact); a block
// skips the steps in which all of its rows are padding (loops.h, active_steps).
#include "loops.h"

using namespace tensorflow;
using namespace gru_lab;

REGISTER_OP("GruLabGruForward")
    .Input("projected: float")   // (T, B, 3u): x @ W + input bias, gates z, r, n
    .Input("h0: float")          // (B, u)
    .Input("recurrent_kernel: float")  // (u, 3u)
    .Input("recurrent_bias: float")    // (3u)
    .Input("mask: float")        // (T, B) or (0): 1 = a real step, 0 = padding (the state is kept)
    .Attr("save: bool")          // keep each step's z, r, n and h U_n + b_n for GruLabGruBackward
    .Attr("threads: int = 0")    // 0: TensorFlow's intra-op thread count
    .Output("states: float")     // (T, B, u)
    .Output("gates: float")      // (T, B, 3u): z, r, n, in the projection's buffer where free (or (0) without save)
    .Output("rn: float")         // (T, B, u): h U_n + b_n (or (0) without save)
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      TF_RETURN_IF_ERROR(sequence_shape(c));
      TF_RETURN_IF_ERROR(saved_shape(c, 1, 3));
      return saved_shape(c, 2, 1);
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
    .Attr("save: bool = false")   // training from the table: keep what GruLabGruBackward needs (keep_sequence too)
    .Attr("threads: int = 0")
    .Output("states: float")
    .Output("gates: float")       // (T, B, 3u) as GruLabGruForward's, or (0) without save
    .Output("rn: float")          // (T, B, u) as GruLabGruForward's, or (0) without save
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      TF_RETURN_IF_ERROR(table_states_shape(c));
      TF_RETURN_IF_ERROR(saved_shape(c, 1, 3, /*steps=*/1, /*h0=*/2));  // ids (T, B), h0
      return saved_shape(c, 2, 1, /*steps=*/1, /*h0=*/2);
    });

REGISTER_OP("GruLabGruBackward")
    .Input("d_states: float")    // (T, B, u), or (B, u): the gradient of the last state alone
    .Input("states: float")
    .Input("h0: float")
    .Input("gates: float")       // (T, B, 3u) from the forward op
    .Input("rn: float")          // (T, B, u) from the forward op
    .Input("recurrent_kernel: float")
    .Input("mask: float")
    .Attr("threads: int = 0")
    .Output("d_projected: float")  // (T, B, 3u): dz, dr, dn, in the gates' buffer where free
    .Output("d_rn: float")         // (T, B, u): d(rn) = dn r, in rn's buffer where free; dU's and b_n's n part
    .Output("d_h0: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle hs;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &hs));
      shape_inference::DimensionHandle three_u;
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(hs, 2), 3, &three_u));
      c->set_output(0, c->MakeShape({c->Dim(hs, 0), c->Dim(hs, 1), three_u}));
      c->set_output(1, hs);
      c->set_output(2, c->input(2));
      return absl::OkStatus();
    });

namespace {

// The forward recurrence for batch rows [b0, b1). rows(t, b0, nb) gives the (nb, 3u) input projections
// of step t (contiguous); states go to hs (T, B, u) when given, else only the last one to last (B, u);
// with gates (T, B, 3u) and rn (T, B, u) each step's z, r, n and rn are kept there (gates may be the
// projection's own buffer: a step's rows are read before they are written).
// Keras GRU, reset_after=True: z, r = sigmoid(x_zr + h U_zr + b_zr); rn = h U_n + b_n;
// n = tanh(x_n + r * rn); h' = z * h + (1 - z) * n; a masked step keeps h.
template <typename Rows>
void forward_block(int b0, int b1, int T, int B, int u, Rows& rows, const float* h0, const float* uk,
                   const float* br, const float* m, float* hs, float* last, float* gs, float* rns) {
  const int nb = b1 - b0, G = 3 * u;
  const Steps active = active_steps(m, T, B, b0, nb);
  RowMat g(nb, G), ping(hs ? 0 : nb, u), pong(hs ? 0 : nb, u);
  RowArr zr(nb, 2 * u), n(nb, u), hc(nb, u);
  RowBias brv(br, G);
  const float* hp = h0 + static_cast<size_t>(b0) * u;
  for (int t = 0; t < T; ++t) {
    float* hn_ptr = hs ? hs + (static_cast<size_t>(t) * B + b0) * u : (hp == ping.data() ? pong.data() : ping.data());
    if (t < active.first || t >= active.end) {  // every row of the block is padding here: the state stays
      if (hs) {
        std::copy(hp, hp + static_cast<size_t>(nb) * u, hn_ptr);
        hp = hn_ptr;
      }
      if (gs) {
        MapRA(gs + (static_cast<size_t>(t) * B + b0) * G, nb, G).setZero();
        MapRA(rns + (static_cast<size_t>(t) * B + b0) * u, nb, u).setZero();
      }
      continue;
    }
    CMapRM H(hp, nb, u);
    step_product(hp, nb, u, uk, G, g.data(), false);
    auto ga = g.array();
    ga.rowwise() += brv;
    CMapRA Pt(rows(t, b0, nb), nb, G);
    zr = (Pt.leftCols(2 * u) + ga.leftCols(2 * u)).logistic();
    n = (Pt.rightCols(u) + zr.rightCols(u) * ga.rightCols(u)).tanh();
    MapRA Hn(hn_ptr, nb, u);
    hc = n + zr.leftCols(u) * (H.array() - n);
    if (m) {
      ColMask mt(m + static_cast<size_t>(t) * B + b0, nb);
      Hn = H.array() + (hc - H.array()).colwise() * mt;
    } else {
      Hn = hc;
    }
    if (gs) {  // after every read of the step's projection, which gates may overwrite
      MapRA Gt(gs + (static_cast<size_t>(t) * B + b0) * G, nb, G);
      Gt.leftCols(2 * u) = zr;
      Gt.rightCols(u) = n;
      MapRA(rns + (static_cast<size_t>(t) * B + b0) * u, nb, u) = ga.rightCols(u);
    }
    hp = hn_ptr;
  }
  if (last) std::copy(hp, hp + static_cast<size_t>(nb) * u, last + static_cast<size_t>(b0) * u);
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
                absl::InvalidArgumentError("GruLabGruForward: wrong ranks"));
    const int T = P.dim_size(0), B = P.dim_size(1), G = P.dim_size(2), u = G / 3;
    const double work = static_cast<double>(T) * u * G;  // a batch row's multiply-adds (run_blocks)
    OP_REQUIRES(ctx, G == 3 * u && H0.dim_size(0) == B && H0.dim_size(1) == u && U.dim_size(0) == u &&
                U.dim_size(1) == G && BR.dim_size(0) == G && mask_fits(M, T, B),
                absl::InvalidArgumentError("GruLabGruForward: shapes do not agree"));
    Tensor* HS; OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({T, B, u}), &HS));
    Tensor* GS;
    if (save_) {
      OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 1, TensorShape({T, B, G}), &GS));
    } else {
      OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({0}), &GS));
    }
    Tensor* RN; OP_REQUIRES_OK(ctx, ctx->allocate_output(2, save_ ? TensorShape({T, B, u}) : TensorShape({0}), &RN));
    if (T == 0 || B == 0) return;
    const float* p = P.flat<float>().data(); const float* h0 = H0.flat<float>().data();
    const float* uk = U.flat<float>().data(); const float* br = BR.flat<float>().data();
    const float* m = mask_or_null(M);
    float* hs = HS->flat<float>().data();
    float* gs = save_ ? GS->flat<float>().data() : nullptr; float* rns = save_ ? RN->flat<float>().data() : nullptr;
    run_blocks(ctx, B, threads_, [=](int b0, int b1) {
      auto rows = [=](int t, int r0, int) { return p + (static_cast<size_t>(t) * B + r0) * G; };
      forward_block(b0, b1, T, B, u, rows, h0, uk, br, m, hs, nullptr, gs, rns);
    }, work);
  }

 private:
  bool save_; int threads_;
};

class GruTableForwardOp : public OpKernel {
 public:
  explicit GruTableForwardOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("keep_sequence", &keep_));
    OP_REQUIRES_OK(c, c->GetAttr("save", &save_));
    OP_REQUIRES_OK(c, c->GetAttr("threads", &threads_));
    OP_REQUIRES(c, keep_ || !save_, absl::InvalidArgumentError("GruLabGruTableForward: save needs keep_sequence"));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& TB = ctx->input(0); const Tensor& IDS = ctx->input(1); const Tensor& H0 = ctx->input(2);
    const Tensor& U = ctx->input(3); const Tensor& BR = ctx->input(4); const Tensor& M = ctx->input(5);
    OP_REQUIRES(ctx, TB.dims() == 2 && IDS.dims() == 2 && H0.dims() == 2 && U.dims() == 2 && BR.dims() == 1,
                absl::InvalidArgumentError("GruLabGruTableForward: wrong ranks"));
    const int V = TB.dim_size(0), G = TB.dim_size(1), u = G / 3, T = IDS.dim_size(0), B = IDS.dim_size(1);
    const double work = static_cast<double>(T) * u * G;  // a batch row's multiply-adds (run_blocks)
    OP_REQUIRES(ctx, G == 3 * u && H0.dim_size(0) == B && H0.dim_size(1) == u && U.dim_size(0) == u &&
                U.dim_size(1) == G && BR.dim_size(0) == G && mask_fits(M, T, B),
                absl::InvalidArgumentError("GruLabGruTableForward: shapes do not agree"));
    const int32_t* ids = IDS.flat<int32_t>().data();
    OP_REQUIRES_OK(ctx, check_ids(ids, static_cast<int64_t>(T) * B, V));
    Tensor* OUT;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, keep_ ? TensorShape({T, B, u}) : TensorShape({B, u}), &OUT));
    Tensor* GS; OP_REQUIRES_OK(ctx, ctx->allocate_output(1, save_ ? TensorShape({T, B, G}) : TensorShape({0}), &GS));
    Tensor* RN; OP_REQUIRES_OK(ctx, ctx->allocate_output(2, save_ ? TensorShape({T, B, u}) : TensorShape({0}), &RN));
    if (B == 0) return;
    const float* tb = TB.flat<float>().data(); const float* h0 = H0.flat<float>().data();
    const float* uk = U.flat<float>().data(); const float* br = BR.flat<float>().data();
    const float* m = mask_or_null(M);
    float* out = OUT->flat<float>().data();
    float* gs = save_ ? GS->flat<float>().data() : nullptr; float* rns = save_ ? RN->flat<float>().data() : nullptr;
    const bool keep = keep_;
    run_blocks(ctx, B, threads_, [=](int b0, int b1) {
      TableRows rows(tb, ids, B, G, b1 - b0);
      forward_block(b0, b1, T, B, u, rows, h0, uk, br, m, keep ? out : nullptr, keep ? nullptr : out, gs, rns);
    }, work);
  }

 private:
  bool keep_, save_; int threads_;
};

class GruBackwardOp : public OpKernel {
 public:
  explicit GruBackwardOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("threads", &threads_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& DH = ctx->input(0); const Tensor& HS = ctx->input(1); const Tensor& H0 = ctx->input(2);
    const Tensor& GS = ctx->input(3); const Tensor& RN = ctx->input(4); const Tensor& U = ctx->input(5);
    const Tensor& M = ctx->input(6);
    OP_REQUIRES(ctx, HS.dims() == 3 && last_state_only(DH, HS) >= 0 && H0.dims() == 2 && GS.dims() == 3 &&
                RN.shape() == HS.shape() && U.dims() == 2,
                absl::InvalidArgumentError("GruLabGruBackward: wrong ranks"));
    const int T = HS.dim_size(0), B = HS.dim_size(1), u = HS.dim_size(2), G = 3 * u;
    const double work = static_cast<double>(T) * u * G;  // a batch row's multiply-adds (run_blocks)
    const bool last_only = last_state_only(DH, HS) == 1;
    OP_REQUIRES(ctx, H0.dim_size(0) == B && H0.dim_size(1) == u && GS.dim_size(0) == T && GS.dim_size(1) == B &&
                GS.dim_size(2) == G && U.dim_size(0) == u && U.dim_size(1) == G && mask_fits(M, T, B),
                absl::InvalidArgumentError("GruLabGruBackward: shapes do not agree"));
    // Each step's gradients are written where its gates and rn were read, so their buffers serve for both.
    Tensor* DP; OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({3}, 0, TensorShape({T, B, G}), &DP));
    Tensor* DRN; OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({4}, 1, TensorShape({T, B, u}), &DRN));
    Tensor* DH0; OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({B, u}), &DH0));
    const float* dhs = DH.flat<float>().data(); const float* hs = HS.flat<float>().data();
    const float* h0 = H0.flat<float>().data(); const float* gs = GS.flat<float>().data();
    const float* rns = RN.flat<float>().data();
    const float* uk = U.flat<float>().data(); const float* m = mask_or_null(M);
    float* dp = DP->flat<float>().data(); float* drn = DRN->flat<float>().data(); float* dh0 = DH0->flat<float>().data();
    const RowMat ut = transposed_for_blocks(ctx, B, threads_, uk, u, G, work);
    const float* ut_data = ut.size() ? ut.data() : nullptr;
    run_blocks(ctx, B, threads_, [=](int b0, int b1) {
      const int nb = b1 - b0;
      const Steps active = active_steps(m, T, B, b0, nb);
      RowMat carry = RowMat::Zero(nb, u), next(nb, u), dr(nb, G);  // dr: the step's dz, dr, d(rn)
      RowArr dh(nb, u), dn(nb, u);
      for (int t = T - 1; t >= 0; --t) {
        const size_t row = static_cast<size_t>(t) * B + b0;
        MapRA Dp(dp + row * G, nb, G);
        MapRA Drn(drn + row * u, nb, u);
        if (const float* d = step_gradient(dhs, last_only, t, T, B, b0, u)) carry.array() += CMapRA(d, nb, u);
        if (t < active.first || t >= active.end) {  // all padding: the gradient passes straight through
          Dp.setZero();
          Drn.setZero();
          continue;
        }
        CMapRA Hp(t == 0 ? h0 + static_cast<size_t>(b0) * u : hs + (row - B) * u, nb, u);
        CMapRA Gt(gs + row * G, nb, G);
        auto z = Gt.leftCols(u); auto r = Gt.middleCols(u, u); auto n = Gt.rightCols(u);
        CMapRA rn(rns + row * u, nb, u);
        dh = carry.array();
        if (m) {
          ColMask mt(m + row, nb);
          next.array() = dh.colwise() * (1.0f - mt);
          dh.colwise() *= mt;
          next.array() += dh * z;
        } else {
          next.array() = dh * z;
        }
        dn = dh * (1.0f - z) * (1.0f - n * n);
        auto dra = dr.array();
        dra.leftCols(u) = dh * (Hp - n) * z * (1.0f - z);
        dra.middleCols(u, u) = dn * rn * r * (1.0f - r);
        dra.rightCols(u) = dn * r;
        // every read of the step's gates and rn is done: its gradients may now take their place
        Dp.leftCols(2 * u) = dra.leftCols(2 * u);
        Dp.rightCols(u) = dn;
        Drn = dra.rightCols(u);
        step_product_t(dr.data(), nb, G, uk, ut_data, u, next.data());
        carry.swap(next);
      }
      std::copy(carry.data(), carry.data() + static_cast<size_t>(nb) * u, dh0 + static_cast<size_t>(b0) * u);
    }, work);
  }

 private:
  int threads_;
};

}  // namespace

REGISTER_KERNEL_BUILDER(Name("GruLabGruForward").Device(DEVICE_CPU), GruForwardOp);
REGISTER_KERNEL_BUILDER(Name("GruLabGruBackward").Device(DEVICE_CPU), GruBackwardOp);
REGISTER_KERNEL_BUILDER(Name("GruLabGruTableForward").Device(DEVICE_CPU), GruTableForwardOp);
