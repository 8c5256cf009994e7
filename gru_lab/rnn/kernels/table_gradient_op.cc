// The gradient of a token table read by the table ops in training: row v of d_table is the sum of the
// gradients of every step that read row v, d_table[v] = sum over (t, b) with ids[t, b] = v of d_rows[t, b].
// What tf.math.unsorted_segment_sum computes, on all intra-op threads: each thread owns a range of table rows
// and adds, in (t, b) order, the steps that read them, so a row's sum never depends on the thread count
// (bit-for-bit repeatable) and no two threads write one row. Built with the loops by gru_lab/rnn/compiled.py.
#include "loops.h"

using namespace tensorflow;
using namespace gru_lab;

REGISTER_OP("GruLabTableGradient")
    .Input("d_rows: float")      // (T, B, G): the gradient of each step's row
    .Input("ids: int32")         // (T, B): the table row each step read
    .Input("rows: int32")        // scalar: the table's row count
    .Attr("threads: int = 0")    // 0: TensorFlow's intra-op thread count
    .Output("d_table: float")    // (rows, G)
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle d;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &d));
      shape_inference::DimensionHandle rows;
      TF_RETURN_IF_ERROR(c->MakeDimForScalarInput(2, &rows));
      c->set_output(0, c->MakeShape({rows, c->Dim(d, 2)}));
      return absl::OkStatus();
    });

namespace {

class TableGradientOp : public OpKernel {
 public:
  explicit TableGradientOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("threads", &threads_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& D = ctx->input(0); const Tensor& IDS = ctx->input(1); const Tensor& R = ctx->input(2);
    OP_REQUIRES(ctx, D.dims() == 3 && IDS.dims() == 2 && R.dims() == 0,
                absl::InvalidArgumentError("GruLabTableGradient: wrong ranks"));
    const int64_t n = IDS.NumElements(), G = D.dim_size(2);
    const int rows = R.scalar<int32_t>()();
    OP_REQUIRES(ctx, rows >= 0 && D.dim_size(0) == IDS.dim_size(0) && D.dim_size(1) == IDS.dim_size(1),
                absl::InvalidArgumentError("GruLabTableGradient: shapes do not agree"));
    const int32_t* ids = IDS.flat<int32_t>().data();
    OP_REQUIRES_OK(ctx, check_ids(ids, n, rows));
    Tensor* OUT; OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({rows, G}), &OUT));
    const float* d = D.flat<float>().data();
    float* out = OUT->flat<float>().data();
    run_blocks(ctx, rows, threads_, [=](int r0, int r1) {
      std::fill(out + static_cast<size_t>(r0) * G, out + static_cast<size_t>(r1) * G, 0.0f);
      for (int64_t i = 0; i < n; ++i) {
        const int v = ids[i];
        if (v < r0 || v >= r1) continue;
        float* dst = out + static_cast<size_t>(v) * G;
        const float* src = d + static_cast<size_t>(i) * G;
        for (int64_t j = 0; j < G; ++j) dst[j] += src[j];
      }
    });
  }

 private:
  int threads_;
};

}  // namespace

REGISTER_KERNEL_BUILDER(Name("GruLabTableGradient").Device(DEVICE_CPU), TableGradientOp);
