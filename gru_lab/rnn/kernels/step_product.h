// The recurrent product of one step of gru-lab's compiled loops, out (nb, n) = [out +] h (nb, k) @ w (k, n),
// all row-major and contiguous. A block of a few rows (a small batch split between the threads) multiplies
// w in place, tile by tile in registers: Eigen's GEMM copies the whole of w into its packed layout on every
// call, once per step, which costs more than the product itself for a few rows (docs/benchmarks.md, "The
// step's product at a small batch"). Many rows, or a wide w read many times: Eigen's GEMM, whose packing then pays.
#ifndef GRU_LAB_STEP_PRODUCT_H_
#define GRU_LAB_STEP_PRODUCT_H_

#include <cstddef>
#include <type_traits>

#include "Eigen/Core"

namespace gru_lab {

#if defined(__AVX512F__)
#define GRU_LAB_LANES 16
#define GRU_LAB_TILE_ROWS 8  // 8 rows x 2 vectors: 16 of the 32 vector registers hold the tile
#elif defined(__AVX__)
#define GRU_LAB_LANES 8
#define GRU_LAB_TILE_ROWS 4  // 4 x 2 of the 16 vector registers
#else
#define GRU_LAB_LANES 4
#define GRU_LAB_TILE_ROWS 4
#endif

constexpr int kLanes = GRU_LAB_LANES;
constexpr int kTileRows = GRU_LAB_TILE_ROWS;

// Vectors of 16, 8 and 4 floats (the compiler maps each to the widest registers the build's ISA has), and their
// unaligned twins for loads and stores (as immintrin.h's __m512_u): the rows need no alignment.
typedef float Lanes16 __attribute__((vector_size(64)));
typedef float Lanes8 __attribute__((vector_size(32)));
typedef float Lanes4 __attribute__((vector_size(16)));
typedef float Lanes16u __attribute__((vector_size(64), aligned(4)));
typedef float Lanes8u __attribute__((vector_size(32), aligned(4)));
typedef float Lanes4u __attribute__((vector_size(16), aligned(4)));

template <typename V>
inline V load_lanes(const float* p) {
  if constexpr (sizeof(V) == 64) {
    return *reinterpret_cast<const Lanes16u*>(p);
  } else if constexpr (sizeof(V) == 32) {
    return *reinterpret_cast<const Lanes8u*>(p);
  } else {
    return *reinterpret_cast<const Lanes4u*>(p);
  }
}

template <typename V>
inline void store_lanes(float* p, V v) {
  if constexpr (sizeof(V) == 64) {
    *reinterpret_cast<Lanes16u*>(p) = v;
  } else if constexpr (sizeof(V) == 32) {
    *reinterpret_cast<Lanes8u*>(p) = v;
  } else {
    *reinterpret_cast<Lanes4u*>(p) = v;
  }
}

// Columns [j, j + W L) of rows [0, R) (L floats a vector V): the tile stays in registers over the whole depth k,
// and row p of w is read once for all R rows.
template <typename V, int R, int W>
inline void product_tile(const float* h, int k, const float* w, int n, float* out, int j, bool accumulate) {
  constexpr int L = sizeof(V) / sizeof(float);
  V c[R][W];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < W; ++v) {
      c[r][v] = accumulate ? load_lanes<V>(out + static_cast<size_t>(r) * n + j + v * L) : V{};
    }
  }
  for (int p = 0; p < k; ++p) {
    const float* wp = w + static_cast<size_t>(p) * n + j;
    V b[W];
#pragma GCC unroll 8
    for (int v = 0; v < W; ++v) b[v] = load_lanes<V>(wp + v * L);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const float a = h[static_cast<size_t>(r) * k + p];
#pragma GCC unroll 8
      for (int v = 0; v < W; ++v) c[r][v] += a * b[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < W; ++v) store_lanes<V>(out + static_cast<size_t>(r) * n + j + v * L, c[r][v]);
  }
}

// R rows, all n columns: wide tiles (enough independent sums in flight for a few rows), then one vector, then
// narrower vectors and the last columns one by one.
template <int R>
inline void product_rows(const float* h, int k, const float* w, int n, float* out, bool accumulate) {
  using V = std::conditional_t<kLanes == 16, Lanes16, std::conditional_t<kLanes == 8, Lanes8, Lanes4>>;
  constexpr int kWide = R == 1 ? 8 : R <= 3 ? 4 : 2;
  int j = 0;
  for (; j + kWide * kLanes <= n; j += kWide * kLanes) product_tile<V, R, kWide>(h, k, w, n, out, j, accumulate);
  for (; j + kLanes <= n; j += kLanes) product_tile<V, R, 1>(h, k, w, n, out, j, accumulate);
  if constexpr (kLanes > 8) {
    for (; j + 8 <= n; j += 8) product_tile<Lanes8, R, 1>(h, k, w, n, out, j, accumulate);
  }
  if constexpr (kLanes > 4) {
    for (; j + 4 <= n; j += 4) product_tile<Lanes4, R, 1>(h, k, w, n, out, j, accumulate);
  }
  for (; j < n; ++j) {
    for (int r = 0; r < R; ++r) {
      float s = accumulate ? out[static_cast<size_t>(r) * n + j] : 0.0f;
      for (int p = 0; p < k; ++p) s += h[static_cast<size_t>(r) * k + p] * w[static_cast<size_t>(p) * n + j];
      out[static_cast<size_t>(r) * n + j] = s;
    }
  }
}

inline void small_product(const float* h, int nb, int k, const float* w, int n, float* out, bool accumulate) {
  int r = 0;
  for (; r + kTileRows <= nb; r += kTileRows) {
    product_rows<kTileRows>(h + static_cast<size_t>(r) * k, k, w, n, out + static_cast<size_t>(r) * n, accumulate);
  }
  const float* hr = h + static_cast<size_t>(r) * k;
  float* o = out + static_cast<size_t>(r) * n;
  switch (nb - r) {
    case 1: product_rows<1>(hr, k, w, n, o, accumulate); break;
    case 2: product_rows<2>(hr, k, w, n, o, accumulate); break;
    case 3: product_rows<3>(hr, k, w, n, o, accumulate); break;
#if GRU_LAB_TILE_ROWS > 4
    case 4: product_rows<4>(hr, k, w, n, o, accumulate); break;
    case 5: product_rows<5>(hr, k, w, n, o, accumulate); break;
    case 6: product_rows<6>(hr, k, w, n, o, accumulate); break;
    case 7: product_rows<7>(hr, k, w, n, o, accumulate); break;
#endif
    default: break;
  }
}

// Whether the in-place product is the faster for nb rows of a (k, n) right side. It reads the whole right side
// once per kTileRows rows (a pass), where Eigen's GEMM copies it once and then reads its copy block by block.
// Measured against Eigen's GEMM (docs/benchmarks.md, "The step's product at a small batch"): faster in one pass
// at every width (1.3-2.6x), in two while the right side is at most 1 MiB, in four while it is at most 256 KiB;
// a single row is Eigen's matrix-vector product, as fast.
inline bool small_product_pays(int nb, int k, int n) {
  const long floats = static_cast<long>(k) * n;
  const int passes = (nb + kTileRows - 1) / kTileRows;
  return nb >= 2 && (passes == 1 || (passes <= 2 && floats <= (256L << 10)) || (passes <= 4 && floats <= (64L << 10)));
}

// out (nb, n) = [out +] h (nb, k) @ w (k, n).
inline void step_product(const float* h, int nb, int k, const float* w, int n, float* out, bool accumulate) {
  if (small_product_pays(nb, k, n)) {
    small_product(h, nb, k, w, n, out, accumulate);
    return;
  }
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const Mat> H(h, nb, k), Wm(w, k, n);
  Eigen::Map<Mat> O(out, nb, n);
  if (accumulate) {
    O.noalias() += H * Wm;
  } else {
    O.noalias() = H * Wm;
  }
}

}  // namespace gru_lab

#endif  // GRU_LAB_STEP_PRODUCT_H_
