// The step's product of the compiled loops (gru_lab/rnn/kernels/step_product.h) against Eigen's GEMM, one thread,
// over the shapes of the loops: h (rows, u) @ U (u, gates u) forward, d (rows, gates u) @ U^T backward.
// Build and run from the repository root (the second build caps the ISA at AVX2, as GRU_LAB_ISA=avx2 does):
//   TFI=$(.venv/bin/python -c "import tensorflow as tf; print(tf.sysconfig.get_include())")
//   g++ -O3 -march=native -mno-avx512fp16 -I$TFI -Igru_lab/rnn/kernels tools/probes/step_product.cc -o /tmp/sp && /tmp/sp
//   g++ -O3 -march=x86-64-v3 -mtune=native -I$TFI -Igru_lab/rnn/kernels tools/probes/step_product.cc -o /tmp/sp2 && /tmp/sp2
// Columns: the path step_product takes (S: in place, E: Eigen), then microseconds a product and Eigen's time over
// the in-place one's, with the largest difference between the two results.
#include <chrono>
#include <cstdio>

#include "Eigen/Core"
#include "step_product.h"

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class F>
double micros(F f) {
  f();
  int n = 0;
  double elapsed;
  const auto t0 = std::chrono::steady_clock::now();
  do {
    for (int i = 0; i < 10; ++i) f();
    n += 10;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (elapsed < 0.2);
  return elapsed / n * 1e6;
}

int main() {
  const int shapes[][2] = {{32, 96}, {32, 128}, {128, 384}, {128, 512}, {512, 512}, {512, 1536}, {512, 2048},
                           {50, 150}};
  for (const auto& s : shapes) {
    const int k = s[0], n = s[1];
    const RowMat U = RowMat::Random(k, n), UT = U.transpose();
    for (int rows : {1, 8, 16, 32, 64}) {
      const RowMat H = RowMat::Random(rows, k), D = RowMat::Random(rows, n);
      RowMat C1(rows, n), C2(rows, n), E1 = RowMat::Zero(rows, k), E2 = RowMat::Zero(rows, k);
      const double fe = micros([&] { C1.noalias() = H * U; });
      const double fs = micros([&] { gru_lab::small_product(H.data(), rows, k, U.data(), n, C2.data(), false); });
      const double be = micros([&] { E1.noalias() += D * U.transpose(); });
      const double bs = micros([&] { gru_lab::small_product(D.data(), rows, n, UT.data(), k, E2.data(), true); });
      std::printf("%s k %4d n %4d rows %3d  forward eigen %8.1f us in place %8.1f us (%.2fx) diff %.1e | "
                  "backward eigen %8.1f in place %8.1f (%.2fx)\n",
                  gru_lab::small_product_pays(rows, k, n) ? "S" : "E", k, n, rows, fe, fs, fe / fs,
                  (C1 - C2).cwiseAbs().maxCoeff(), be, bs, be / bs);
    }
  }
}
