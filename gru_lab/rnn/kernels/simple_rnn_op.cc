// gru-lab's compiled SimpleRNN loops: the recurrence of keras.layers.SimpleRNN (tanh) as TensorFlow CPU ops,
// float32. Built and loaded by gru_lab/rnn/compiled.py, which keeps the large products in TensorFlow.
//
//   GruLabRnnForward       projected (T, B, u) = x W + b -> states (T, B, u); h' = tanh(projected + h U)
//   GruLabRnnTableForward  inference from token ids: step rows read from table = E @ W + b (V, u)
//   GruLabRnnBackward      d states -> d projected (the pre-activation's gradient), d h0
//
// The backward op needs nothing but the states: where a step is real its state is tanh of its
// pre-activation, and where it is padding its gradient is zero. Threads and padding as in loops.h.
// Memory: the states are written over the projection where TensorFlow hands its buffer over (no other
// reader), and d projected over d states; d states may be the last state's gradient alone (B, u).
#include "loops.h"

using namespace tensorflow;
using namespace gru_lab;

REGISTER_OP("GruLabRnnForward")
    .Input("projected: float")   // (T, B, u): x @ W + b
    .Input("h0: float")          // (B, u)
    .Input("recurrent_kernel: float")  // (u, u)
    .Input("mask: float")        // (T, B) or (0): 1 = a real step, 0 = padding (the state is kept)
    .Attr("threads: int = 0")    // 0: TensorFlow's intra-op thread count
    .Output("states: float")     // (T, B, u)
    .SetShapeFn(sequence_shape);

REGISTER_OP("GruLabRnnTableForward")
    .Input("table: float")       // (V, u)
    .Input("ids: int32")         // (T, B)
    .Input("h0: float")
    .Input("recurrent_kernel: float")
    .Input("mask: float")
    .Attr("keep_sequence: bool")  // states (T, B, u), or only the last state (B, u)
    .Attr("threads: int = 0")
    .Output("states: float")
    .SetShapeFn(table_states_shape);

REGISTER_OP("GruLabRnnBackward")
    .Input("d_states: float")    // (T, B, u), or (B, u): the gradient of the last state alone
    .Input("states: float")      // (T, B, u)
    .Input("recurrent_kernel: float")
    .Input("mask: float")
    .Attr("threads: int = 0")
    .Output("d_projected: float")  // (T, B, u)
    .Output("d_h0: float")         // (B, u)
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle hs;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &hs));
      c->set_output(0, hs);  // (T, B, u) whichever d_states is given
      c->set_output(1, c->MakeShape({c->Dim(hs, 1), c->Dim(hs, 2)}));
      return absl::OkStatus();
    });

namespace {

template <typename Rows>
void forward_block(int b0, int b1, int T, int B, int u, Rows& rows, const float* h0, const float* uk,
                   const float* m, float* hs, float* last) {
  const int nb = b1 - b0;
  const Steps active = active_steps(m, T, B, b0, nb);
  RowMat a(nb, u), ping(hs ? 0 : nb, u), pong(hs ? 0 : nb, u);
  RowArr hc(nb, u);
  const float* hp = h0 + static_cast<size_t>(b0) * u;
  for (int t = 0; t < T; ++t) {
    float* hn_ptr = hs ? hs + (static_cast<size_t>(t) * B + b0) * u : (hp == ping.data() ? pong.data() : ping.data());
    if (t < active.first || t >= active.end) {  // every row of the block is padding here: the state stays
      if (hs) {
        std::copy(hp, hp + static_cast<size_t>(nb) * u, hn_ptr);
        hp = hn_ptr;
      }
      continue;
    }
    CMapRM H(hp, nb, u);
    step_product(hp, nb, u, uk, u, a.data(), false);
    CMapRA Pt(rows(t, b0, nb), nb, u);
    hc = (Pt + a.array()).tanh();
    MapRA Hn(hn_ptr, nb, u);
    if (m) {
      ColMask mt(m + static_cast<size_t>(t) * B + b0, nb);
      Hn = H.array() + (hc - H.array()).colwise() * mt;
    } else {
      Hn = hc;
    }
    hp = hn_ptr;
  }
  if (last) std::copy(hp, hp + static_cast<size_t>(nb) * u, last + static_cast<size_t>(b0) * u);
}

class RnnForwardOp : public OpKernel {
 public:
  explicit RnnForwardOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("threads", &threads_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& P = ctx->input(0); const Tensor& H0 = ctx->input(1);
    const Tensor& U = ctx->input(2); const Tensor& M = ctx->input(3);
    OP_REQUIRES(ctx, P.dims() == 3 && H0.dims() == 2 && U.dims() == 2,
                absl::InvalidArgumentError("GruLabRnnForward: wrong ranks"));
    const int T = P.dim_size(0), B = P.dim_size(1), u = P.dim_size(2);
    const double work = static_cast<double>(T) * u * u;  // a batch row's multiply-adds (run_blocks)
    OP_REQUIRES(ctx, H0.dim_size(0) == B && H0.dim_size(1) == u && U.dim_size(0) == u && U.dim_size(1) == u &&
                mask_fits(M, T, B),
                absl::InvalidArgumentError("GruLabRnnForward: shapes do not agree"));
    // Step t's state is written where its projection was read (forward_block reads the row first), so the
    // projection's buffer serves for the states whenever nothing else reads it.
    Tensor* HS; OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 0, TensorShape({T, B, u}), &HS));
    if (T == 0 || B == 0) return;
    const float* p = P.flat<float>().data(); const float* h0 = H0.flat<float>().data();
    const float* uk = U.flat<float>().data(); const float* m = mask_or_null(M);
    float* hs = HS->flat<float>().data();
    run_blocks(ctx, B, threads_, [=](int b0, int b1) {
      auto rows = [=](int t, int r0, int) { return p + (static_cast<size_t>(t) * B + r0) * u; };
      forward_block(b0, b1, T, B, u, rows, h0, uk, m, hs, nullptr);
    }, work);
  }

 private:
  int threads_;
};

class RnnTableForwardOp : public OpKernel {
 public:
  explicit RnnTableForwardOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("keep_sequence", &keep_));
    OP_REQUIRES_OK(c, c->GetAttr("threads", &threads_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& TB = ctx->input(0); const Tensor& IDS = ctx->input(1); const Tensor& H0 = ctx->input(2);
    const Tensor& U = ctx->input(3); const Tensor& M = ctx->input(4);
    OP_REQUIRES(ctx, TB.dims() == 2 && IDS.dims() == 2 && H0.dims() == 2 && U.dims() == 2,
                absl::InvalidArgumentError("GruLabRnnTableForward: wrong ranks"));
    const int V = TB.dim_size(0), u = TB.dim_size(1), T = IDS.dim_size(0), B = IDS.dim_size(1);
    const double work = static_cast<double>(T) * u * u;  // a batch row's multiply-adds (run_blocks)
    OP_REQUIRES(ctx, H0.dim_size(0) == B && H0.dim_size(1) == u && U.dim_size(0) == u && U.dim_size(1) == u &&
                mask_fits(M, T, B),
                absl::InvalidArgumentError("GruLabRnnTableForward: shapes do not agree"));
    const int32_t* ids = IDS.flat<int32_t>().data();
    OP_REQUIRES_OK(ctx, check_ids(ids, static_cast<int64_t>(T) * B, V));
    Tensor* OUT;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, keep_ ? TensorShape({T, B, u}) : TensorShape({B, u}), &OUT));
    if (B == 0) return;
    const float* tb = TB.flat<float>().data(); const float* h0 = H0.flat<float>().data();
    const float* uk = U.flat<float>().data(); const float* m = mask_or_null(M);
    float* out = OUT->flat<float>().data();
    if (T == 0) {  // no step: the state stays h0
      if (!keep_) std::copy(h0, h0 + static_cast<size_t>(B) * u, out);
      return;
    }
    const bool keep = keep_;
    run_blocks(ctx, B, threads_, [=](int b0, int b1) {
      TableRows rows(tb, ids, B, u, b1 - b0);
      forward_block(b0, b1, T, B, u, rows, h0, uk, m, keep ? out : nullptr, keep ? nullptr : out);
    }, work);
  }

 private:
  bool keep_; int threads_;
};

class RnnBackwardOp : public OpKernel {
 public:
  explicit RnnBackwardOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("threads", &threads_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& DH = ctx->input(0); const Tensor& HS = ctx->input(1);
    const Tensor& U = ctx->input(2); const Tensor& M = ctx->input(3);
    OP_REQUIRES(ctx, HS.dims() == 3 && U.dims() == 2 && last_state_only(DH, HS) >= 0,
                absl::InvalidArgumentError("GruLabRnnBackward: wrong ranks"));
    const int T = HS.dim_size(0), B = HS.dim_size(1), u = HS.dim_size(2);
    const double work = static_cast<double>(T) * u * u;  // a batch row's multiply-adds (run_blocks)
    const bool last_only = last_state_only(DH, HS) == 1;
    OP_REQUIRES(ctx, U.dim_size(0) == u && U.dim_size(1) == u && mask_fits(M, T, B),
                absl::InvalidArgumentError("GruLabRnnBackward: shapes do not agree"));
    // Step t's d projected is written where its d state was read: the gradient's buffer serves for both.
    Tensor* DP; OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 0, TensorShape({T, B, u}), &DP));
    Tensor* DH0; OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, u}), &DH0));
    const float* dhs = DH.flat<float>().data(); const float* hs = HS.flat<float>().data();
    const float* uk = U.flat<float>().data(); const float* m = mask_or_null(M);
    float* dp = DP->flat<float>().data(); float* dh0 = DH0->flat<float>().data();
    const RowMat ut = transposed_for_blocks(ctx, B, threads_, uk, u, u, work);
    const float* ut_data = ut.size() ? ut.data() : nullptr;
    run_blocks(ctx, B, threads_, [=](int b0, int b1) {
      const int nb = b1 - b0;
      const Steps active = active_steps(m, T, B, b0, nb);
      RowMat carry = RowMat::Zero(nb, u), next(nb, u);
      RowArr dh(nb, u);
      for (int t = T - 1; t >= 0; --t) {
        const size_t row = static_cast<size_t>(t) * B + b0;
        MapRM Dp(dp + row * u, nb, u);
        if (const float* d = step_gradient(dhs, last_only, t, T, B, b0, u)) carry.array() += CMapRA(d, nb, u);
        if (t < active.first || t >= active.end) {  // all padding: the gradient passes straight through
          Dp.setZero();
          continue;
        }
        CMapRA Ht(hs + row * u, nb, u);
        dh = carry.array();
        if (m) {
          ColMask mt(m + row, nb);
          next.array() = dh.colwise() * (1.0f - mt);
          dh.colwise() *= mt;
        } else {
          next.setZero();
        }
        Dp.array() = dh * (1.0f - Ht * Ht);
        step_product_t(Dp.data(), nb, u, uk, ut_data, u, next.data());
        carry.swap(next);
      }
      std::copy(carry.data(), carry.data() + static_cast<size_t>(nb) * u, dh0 + static_cast<size_t>(b0) * u);
    }, work);
  }

 private:
  int threads_;
};

}  // namespace

REGISTER_KERNEL_BUILDER(Name("GruLabRnnForward").Device(DEVICE_CPU), RnnForwardOp);
REGISTER_KERNEL_BUILDER(Name("GruLabRnnBackward").Device(DEVICE_CPU), RnnBackwardOp);
REGISTER_KERNEL_BUILDER(Name("GruLabRnnTableForward").Device(DEVICE_CPU), RnnTableForwardOp);
