// gru-lab's compiled LSTM loops: the recurrence of keras.layers.LSTM (tanh, sigmoid) as TensorFlow CPU ops,
// float32. Built and loaded by gru_lab/rnn/compiled.py, which calls them and keeps the large products
// (input projections with the bias, dW, dU, the input gradient) in TensorFlow.
//
//   GruLabLstmForward       projected (T, B, 4u) -> states h (T, B, u), last c [+ i, f, g, o and tanh c, c per step]
//   GruLabLstmTableForward  from token ids: step rows read from table = E @ W + b (V, 4u) [+ the saved values]
//   GruLabLstmBackward      d states, d last c -> d projected (the gates' pre-activations), d h0, d c0
//
// Keras LSTM, gate order i, f, g (Keras's "c"), o in the weights: a = x W + b + h U;
// i, f, o = sigmoid(a_i, a_f, a_o); g = tanh(a_g); c' = f c + i g; h' = o tanh(c'); a masked step keeps
// h and c. Per step: one (rows, u) @ (u, 4u) product (Eigen) and vectorised gate math; the batch rows are
// split into blocks as for the GRU ops (loops.h), and a block skips the steps in which all its rows are padding.
// Memory: in training the gates i, f, g, o are written over the projection where TensorFlow hands its buffer
// over (nothing else reads it), and the backward op writes d projected over the gates; d states may be the last
// state's gradient alone (B, u). So a train step holds the states, the gates, tanh c and c (7u a step and row).
#include "loops.h"

using namespace tensorflow;
using namespace gru_lab;

REGISTER_OP("GruLabLstmForward")
    .Input("projected: float")   // (T, B, 4u): x @ W + b, gates i, f, g, o
    .Input("h0: float")          // (B, u)
    .Input("c0: float")          // (B, u)
    .Input("recurrent_kernel: float")  // (u, 4u)
    .Input("mask: float")        // (T, B) or (0): 1 = a real step, 0 = padding (h and c are kept)
    .Attr("save: bool")          // keep each step's gates and c for GruLabLstmBackward
    .Attr("threads: int = 0")    // 0: TensorFlow's intra-op thread count
    .Output("states: float")     // (T, B, u): h
    .Output("last_c: float")     // (B, u)
    .Output("gates: float")      // (T, B, 4u): i, f, g, o, in the projection's buffer where free (or (0) without save)
    .Output("cells: float")      // (T, B, u): c (or (0) without save); the backward op takes tanh of it again
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      TF_RETURN_IF_ERROR(sequence_shape(c));
      c->set_output(1, c->input(1));  // the last c, shaped like h0
      TF_RETURN_IF_ERROR(saved_shape(c, 2, 4));
      return saved_shape(c, 3, 1);
    });

// Inference straight from token ids, as GruLabGruTableForward: no (T, B, 4u) projection is materialised.
REGISTER_OP("GruLabLstmTableForward")
    .Input("table: float")       // (V, 4u)
    .Input("ids: int32")         // (T, B)
    .Input("h0: float")
    .Input("c0: float")
    .Input("recurrent_kernel: float")
    .Input("mask: float")
    .Attr("keep_sequence: bool")  // states (T, B, u), or only the last h (B, u)
    .Attr("save: bool = false")   // training from the table: keep what GruLabLstmBackward needs (keep_sequence too)
    .Attr("threads: int = 0")
    .Output("states: float")
    .Output("last_c: float")
    .Output("gates: float")       // (T, B, 4u) as GruLabLstmForward's, or (0) without save
    .Output("cells: float")       // (T, B, u) as GruLabLstmForward's, or (0) without save
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      TF_RETURN_IF_ERROR(table_states_shape(c));
      c->set_output(1, c->input(2));  // the last c, shaped like h0
      TF_RETURN_IF_ERROR(saved_shape(c, 2, 4, /*steps=*/1, /*h0=*/2));  // ids (T, B), h0
      return saved_shape(c, 3, 1, /*steps=*/1, /*h0=*/2);
    });

REGISTER_OP("GruLabLstmBackward")
    .Input("d_states: float")    // (T, B, u), or (B, u): the gradient of the last state alone
    .Input("d_last_c: float")    // (B, u)
    .Input("c0: float")          // (B, u)
    .Input("gates: float")       // (T, B, 4u) from GruLabLstmForward
    .Input("cells: float")       // (T, B, u) from GruLabLstmForward
    .Input("recurrent_kernel: float")
    .Input("mask: float")
    .Attr("threads: int = 0")
    .Output("d_projected: float")  // (T, B, 4u): each gate's pre-activation's gradient, in the gates' buffer where free
    .Output("d_h0: float")
    .Output("d_c0: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle gates;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 3, &gates));
      c->set_output(0, gates);
      c->set_output(1, c->input(1));
      c->set_output(2, c->input(1));
      return absl::OkStatus();
    });

namespace {

// The forward recurrence for batch rows [b0, b1). rows(t, b0, nb) gives the (nb, 4u) input projections of
// step t (contiguous); states go to hs (T, B, u) when given, else only the last h to last_h (B, u); the
// last c always goes to last_c (B, u); gs (T, B, 4u) and cs (T, B, u), when given, keep what the backward op
// needs (gs may be the projection's own buffer: a step's rows are read before they are written).
template <typename Rows>
void forward_block(int b0, int b1, int T, int B, int u, Rows& rows, const float* h0, const float* c0,
                   const float* uk, const float* m, float* hs, float* last_h, float* last_c, float* gs, float* cs) {
  const int nb = b1 - b0, G = 4 * u;
  const Steps active = active_steps(m, T, B, b0, nb);
  RowMat a(nb, G), ping(hs ? 0 : nb, u), pong(hs ? 0 : nb, u);
  RowArr gates(nb, G), c = CMapRA(c0 + static_cast<size_t>(b0) * u, nb, u), cc(nb, u), tc(nb, u), hc(nb, u);
  const float* hp = h0 + static_cast<size_t>(b0) * u;
  for (int t = 0; t < T; ++t) {
    float* hn_ptr = hs ? hs + (static_cast<size_t>(t) * B + b0) * u : (hp == ping.data() ? pong.data() : ping.data());
    float* gt = gs ? gs + (static_cast<size_t>(t) * B + b0) * G : nullptr;
    float* ct = gs ? cs + (static_cast<size_t>(t) * B + b0) * u : nullptr;
    if (t < active.first || t >= active.end) {  // every row of the block is padding here: h and c stay
      if (hs) {
        std::copy(hp, hp + static_cast<size_t>(nb) * u, hn_ptr);
        hp = hn_ptr;
      }
      if (gt) {
        MapRA(gt, nb, G).setZero();
        MapRA(ct, nb, u) = c;  // the backward op reads the previous step's c from here
      }
      continue;
    }
    CMapRM H(hp, nb, u);
    step_product(hp, nb, u, uk, G, a.data(), false);
    CMapRA Pt(rows(t, b0, nb), nb, G);
    gates = a.array() + Pt;
    gates.leftCols(2 * u) = gates.leftCols(2 * u).logistic();
    gates.middleCols(2 * u, u) = gates.middleCols(2 * u, u).tanh();
    gates.rightCols(u) = gates.rightCols(u).logistic();
    auto i = gates.leftCols(u);
    auto f = gates.middleCols(u, u);
    auto g = gates.middleCols(2 * u, u);
    auto o = gates.rightCols(u);
    cc = f * c + i * g;
    tc = cc.tanh();
    hc = o * tc;
    MapRA Hn(hn_ptr, nb, u);
    if (m) {
      ColMask mt(m + static_cast<size_t>(t) * B + b0, nb);
      Hn = H.array() + (hc - H.array()).colwise() * mt;
      c += (cc - c).colwise() * mt;
    } else {
      Hn = hc;
      c = cc;
    }
    if (gt) {  // after every read of the step's projection, which gt may be
      MapRA(gt, nb, G) = gates;
      MapRA(ct, nb, u) = c;  // tanh c is not kept: the backward op takes it again (u less a step)
    }
    hp = hn_ptr;
  }
  if (last_h) std::copy(hp, hp + static_cast<size_t>(nb) * u, last_h + static_cast<size_t>(b0) * u);
  std::copy(c.data(), c.data() + static_cast<size_t>(nb) * u, last_c + static_cast<size_t>(b0) * u);
}

class LstmForwardOp : public OpKernel {
 public:
  explicit LstmForwardOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("save", &save_));
    OP_REQUIRES_OK(c, c->GetAttr("threads", &threads_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& P = ctx->input(0); const Tensor& H0 = ctx->input(1); const Tensor& C0 = ctx->input(2);
    const Tensor& U = ctx->input(3); const Tensor& M = ctx->input(4);
    OP_REQUIRES(ctx, P.dims() == 3 && H0.dims() == 2 && C0.dims() == 2 && U.dims() == 2,
                absl::InvalidArgumentError("GruLabLstmForward: wrong ranks"));
    const int T = P.dim_size(0), B = P.dim_size(1), G = P.dim_size(2), u = G / 4;
    const double work = static_cast<double>(T) * u * G;  // a batch row's multiply-adds (run_blocks)
    OP_REQUIRES(ctx, G == 4 * u && H0.dim_size(0) == B && H0.dim_size(1) == u && C0.shape() == H0.shape() &&
                U.dim_size(0) == u && U.dim_size(1) == G && mask_fits(M, T, B),
                absl::InvalidArgumentError("GruLabLstmForward: shapes do not agree"));
    Tensor* HS; OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({T, B, u}), &HS));
    Tensor* LC; OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, u}), &LC));
    Tensor* GS;
    if (save_) {
      OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 2, TensorShape({T, B, G}), &GS));
    } else {
      OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({0}), &GS));
    }
    Tensor* CS; OP_REQUIRES_OK(ctx, ctx->allocate_output(3, save_ ? TensorShape({T, B, u}) : TensorShape({0}), &CS));
    if (B == 0) return;
    const float* p = P.flat<float>().data(); const float* h0 = H0.flat<float>().data();
    const float* c0 = C0.flat<float>().data(); const float* uk = U.flat<float>().data();
    const float* m = mask_or_null(M);
    float* hs = HS->flat<float>().data(); float* lc = LC->flat<float>().data();
    float* gs = save_ ? GS->flat<float>().data() : nullptr; float* cs = save_ ? CS->flat<float>().data() : nullptr;
    run_blocks(ctx, B, threads_, [=](int b0, int b1) {
      auto rows = [=](int t, int r0, int) { return p + (static_cast<size_t>(t) * B + r0) * G; };
      forward_block(b0, b1, T, B, u, rows, h0, c0, uk, m, hs, nullptr, lc, gs, cs);
    }, work);
  }

 private:
  bool save_; int threads_;
};

class LstmTableForwardOp : public OpKernel {
 public:
  explicit LstmTableForwardOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("keep_sequence", &keep_));
    OP_REQUIRES_OK(c, c->GetAttr("save", &save_));
    OP_REQUIRES_OK(c, c->GetAttr("threads", &threads_));
    OP_REQUIRES(c, keep_ || !save_, absl::InvalidArgumentError("GruLabLstmTableForward: save needs keep_sequence"));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& TB = ctx->input(0); const Tensor& IDS = ctx->input(1); const Tensor& H0 = ctx->input(2);
    const Tensor& C0 = ctx->input(3); const Tensor& U = ctx->input(4); const Tensor& M = ctx->input(5);
    OP_REQUIRES(ctx, TB.dims() == 2 && IDS.dims() == 2 && H0.dims() == 2 && C0.dims() == 2 && U.dims() == 2,
                absl::InvalidArgumentError("GruLabLstmTableForward: wrong ranks"));
    const int V = TB.dim_size(0), G = TB.dim_size(1), u = G / 4, T = IDS.dim_size(0), B = IDS.dim_size(1);
    const double work = static_cast<double>(T) * u * G;  // a batch row's multiply-adds (run_blocks)
    OP_REQUIRES(ctx, G == 4 * u && H0.dim_size(0) == B && H0.dim_size(1) == u && C0.shape() == H0.shape() &&
                U.dim_size(0) == u && U.dim_size(1) == G && mask_fits(M, T, B),
                absl::InvalidArgumentError("GruLabLstmTableForward: shapes do not agree"));
    const int32_t* ids = IDS.flat<int32_t>().data();
    OP_REQUIRES_OK(ctx, check_ids(ids, static_cast<int64_t>(T) * B, V));
    Tensor* OUT;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, keep_ ? TensorShape({T, B, u}) : TensorShape({B, u}), &OUT));
    Tensor* LC; OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, u}), &LC));
    Tensor* GS; OP_REQUIRES_OK(ctx, ctx->allocate_output(2, save_ ? TensorShape({T, B, G}) : TensorShape({0}), &GS));
    Tensor* CS; OP_REQUIRES_OK(ctx, ctx->allocate_output(3, save_ ? TensorShape({T, B, u}) : TensorShape({0}), &CS));
    if (B == 0) return;
    const float* tb = TB.flat<float>().data(); const float* h0 = H0.flat<float>().data();
    const float* c0 = C0.flat<float>().data(); const float* uk = U.flat<float>().data();
    const float* m = mask_or_null(M);
    float* out = OUT->flat<float>().data(); float* lc = LC->flat<float>().data();
    float* gs = save_ ? GS->flat<float>().data() : nullptr; float* cs = save_ ? CS->flat<float>().data() : nullptr;
    const bool keep = keep_;
    run_blocks(ctx, B, threads_, [=](int b0, int b1) {
      TableRows rows(tb, ids, B, G, b1 - b0);
      forward_block(b0, b1, T, B, u, rows, h0, c0, uk, m, keep ? out : nullptr, keep ? nullptr : out, lc, gs, cs);
    }, work);
  }

 private:
  bool keep_, save_; int threads_;
};

class LstmBackwardOp : public OpKernel {
 public:
  explicit LstmBackwardOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("threads", &threads_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& DH = ctx->input(0); const Tensor& DC = ctx->input(1); const Tensor& C0 = ctx->input(2);
    const Tensor& GS = ctx->input(3); const Tensor& CS = ctx->input(4); const Tensor& U = ctx->input(5);
    const Tensor& M = ctx->input(6);
    OP_REQUIRES(ctx, (DH.dims() == 3 || DH.dims() == 2) && DC.dims() == 2 && C0.dims() == 2 && GS.dims() == 3 &&
                CS.dims() == 3 && U.dims() == 2,
                absl::InvalidArgumentError("GruLabLstmBackward: wrong ranks"));
    const int T = GS.dim_size(0), B = GS.dim_size(1), u = DC.dim_size(1), G = 4 * u;
    const double work = static_cast<double>(T) * u * G;  // a batch row's multiply-adds (run_blocks)
    const bool last_only = DH.dims() == 2;
    OP_REQUIRES(ctx, DC.dim_size(0) == B && C0.shape() == DC.shape() && GS.dim_size(2) == G &&
                (last_only ? DH.shape() == DC.shape() : DH.shape() == TensorShape({T, B, u})) &&
                CS.shape() == TensorShape({T, B, u}) && U.dim_size(0) == u && U.dim_size(1) == G &&
                mask_fits(M, T, B),
                absl::InvalidArgumentError("GruLabLstmBackward: shapes do not agree"));
    // Each step's d projected is written where its gates were read: their buffer serves for both.
    Tensor* DP; OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({3}, 0, TensorShape({T, B, G}), &DP));
    Tensor* DH0; OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, u}), &DH0));
    Tensor* DC0; OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({B, u}), &DC0));
    const float* dhs = DH.flat<float>().data(); const float* dcl = DC.flat<float>().data();
    const float* c0 = C0.flat<float>().data(); const float* gs = GS.flat<float>().data();
    const float* cs = CS.flat<float>().data();
    const float* uk = U.flat<float>().data(); const float* m = mask_or_null(M);
    float* dp = DP->flat<float>().data(); float* dh0 = DH0->flat<float>().data(); float* dc0 = DC0->flat<float>().data();
    const RowMat ut = transposed_for_blocks(ctx, B, threads_, uk, u, G, work);
    const float* ut_data = ut.size() ? ut.data() : nullptr;
    run_blocks(ctx, B, threads_, [=](int b0, int b1) {
      const int nb = b1 - b0;
      const Steps active = active_steps(m, T, B, b0, nb);
      RowMat carry_h = RowMat::Zero(nb, u), next_h(nb, u), dpl(nb, G);  // dpl: the step's d projected
      RowArr carry_c = CMapRA(dcl + static_cast<size_t>(b0) * u, nb, u), dh(nb, u), dc(nb, u), tc(nb, u);
      for (int t = T - 1; t >= 0; --t) {
        const size_t row = static_cast<size_t>(t) * B + b0;
        MapRM Dp(dp + row * G, nb, G);
        if (const float* d = step_gradient(dhs, last_only, t, T, B, b0, u)) carry_h.array() += CMapRA(d, nb, u);
        if (t < active.first || t >= active.end) {  // all padding: the gradients pass straight through
          Dp.setZero();
          continue;
        }
        CMapRA Gt(gs + row * G, nb, G);
        auto i = Gt.leftCols(u); auto f = Gt.middleCols(u, u); auto g = Gt.middleCols(2 * u, u);
        auto o = Gt.rightCols(u);
        // tanh of this step's c, taken again (the forward op keeps c only); a padded row's differs from the
        // forward's, but its dh and dc are zero here
        tc = CMapRA(cs + row * u, nb, u).tanh();
        // c of the previous step: c0, or the previous step's row of cells
        CMapRA Cp(t == 0 ? c0 + static_cast<size_t>(b0) * u : cs + (row - B) * u, nb, u);
        dh = carry_h.array();
        if (m) {
          ColMask mt(m + row, nb);
          next_h.array() = dh.colwise() * (1.0f - mt);
          dh.colwise() *= mt;
          dc = carry_c.colwise() * mt;
          carry_c.colwise() *= (1.0f - mt);  // what passes a padding step by, added to below
        } else {
          next_h.setZero();
          dc = carry_c;
          carry_c.setZero();
        }
        dc += dh * o * (1.0f - tc * tc);
        auto Dpa = dpl.array();
        Dpa.leftCols(u) = dc * g * i * (1.0f - i);
        Dpa.middleCols(u, u) = dc * Cp * f * (1.0f - f);
        Dpa.middleCols(2 * u, u) = dc * i * (1.0f - g * g);
        Dpa.rightCols(u) = dh * tc * o * (1.0f - o);
        carry_c += dc * f;
        Dp = dpl;  // every read of the step's gates is done: d projected may now take their place
        step_product_t(dpl.data(), nb, G, uk, ut_data, u, next_h.data());
        carry_h.swap(next_h);
      }
      std::copy(carry_h.data(), carry_h.data() + static_cast<size_t>(nb) * u, dh0 + static_cast<size_t>(b0) * u);
      std::copy(carry_c.data(), carry_c.data() + static_cast<size_t>(nb) * u, dc0 + static_cast<size_t>(b0) * u);
    }, work);
  }

 private:
  int threads_;
};

}  // namespace

REGISTER_KERNEL_BUILDER(Name("GruLabLstmForward").Device(DEVICE_CPU), LstmForwardOp);
REGISTER_KERNEL_BUILDER(Name("GruLabLstmBackward").Device(DEVICE_CPU), LstmBackwardOp);
REGISTER_KERNEL_BUILDER(Name("GruLabLstmTableForward").Device(DEVICE_CPU), LstmTableForwardOp);
