// mfjax explicit ALS CPU kernel: one exact half-step (every row of one side), rows over threads.
//
// The same numbers as mfjax.als.als_half_step (tested in tests/test_als_kernel.py). The input
// is one side's sorted, block-padded view of mfjax.als.SideLayout (keys sorted, others,
// ratings, weights; padding has weight 0). For each row u in [0, n) with z_i = [q_i; 1],
// t = r - mu - b_i and D = k + 1:
//
//   G_u = sum w z z^T,  h_u = sum w t z,  c_u = sum w,  s_u = sum w t^2
//   (G_u + c_u diag(reg..reg, bias_reg)) x_u = h_u        (Cholesky in double)
//
// x_u = [p_u; b_u]; rows with c_u <= 0 get x_u = 0. It also returns
//   resid = sum_u (h_u[D-1] - G_u[D-1, :] x_u)         (= sum w (r - r_hat) at the new rows)
//   sse   = sum_u (s_u - 2 x_u^T h_u + x_u^T G_u x_u)  (= sum w (r - r_hat)^2)
// with x rounded to T first (what the caller gets back), per-row sums added in row order,
// so the results do not depend on the thread count. Keys must be non-decreasing in [0, n)
// and other indices in [0, n_other): anything else is an error naming the row (or the
// position, for keys); nothing is clamped.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"
#include "common.h"

namespace ffi = xla::ffi;
using mfjax::Bad;
using mfjax::Parallel;

namespace {

template <typename T>
struct Problem {
  const int64_t* start;  // [n + 1] row starts in the sorted arrays
  const int32_t* others;
  const T *ratings, *weights, *other, *other_bias;
  int64_t n, n_other, k;
  double mu, reg, bias_reg;
};

template <typename T, int KC>
void Rows(const Problem<T>& P, int64_t lo, int64_t hi, T* x, T* bias, double* res, double* sse,
          Bad* bad) {
  const int64_t k = KC ? KC : P.k;
  const int64_t D = k + 1;
  std::vector<double> Abuf(D * D), hbuf(D), zbuf(D), ybuf(D), Lbuf(D * D);
  double* __restrict A = Abuf.data();
  double* __restrict h = hbuf.data();
  double* __restrict z = zbuf.data();
  double* __restrict y = ybuf.data();
  double* __restrict L = Lbuf.data();
  for (int64_t u = lo; u < hi; ++u) {
    const int64_t s = P.start[u], e = P.start[u + 1];
    for (int64_t p = s; p < e; ++p) {
      const int32_t o = P.others[p];
      if (o < 0 || o >= P.n_other) {
        bad->row = u; bad->pos = p; bad->col = o;
        return;
      }
    }
    std::memset(A, 0, sizeof(double) * D * D);
    std::memset(h, 0, sizeof(double) * D);
    double c = 0, sq = 0;
    for (int64_t p = s; p < e; ++p) {
      const double w = double(P.weights[p]);
      if (w == 0) continue;  // padding (and zero weights) add exactly nothing
      const int64_t o = P.others[p];
      const T* __restrict q = P.other + o * k;
      const double t = double(P.ratings[p]) - P.mu - double(P.other_bias[o]);
      for (int64_t d = 0; d < k; ++d) z[d] = double(q[d]);
      z[k] = 1.0;
      const double wt = w * t;
      c += w;
      sq += wt * t;
      for (int64_t d = 0; d < D; ++d) {
        const double wz = w * z[d];
        h[d] += wt * z[d];
        double* __restrict Ad = A + d * D;
        for (int64_t j = 0; j <= d; ++j) Ad[j] += wz * z[j];
      }
    }
    T* xu = x + u * k;
    if (!(c > 0)) {
      std::memset(xu, 0, sizeof(T) * k);
      bias[u] = T(0);
      res[u] = h[k];
      sse[u] = sq;
      continue;
    }
    // M = G + c Lambda (lower, row-major), Cholesky M = L L^T, right-looking.
    for (int64_t i = 0; i < D; ++i) {
      for (int64_t j = 0; j <= i; ++j) L[i * D + j] = A[i * D + j];
      L[i * D + i] += c * (i < k ? P.reg : P.bias_reg);
    }
    mfjax::CholeskyFactor(L, D, y);
    for (int64_t i = 0; i < D; ++i) y[i] = h[i];
    mfjax::CholeskySolve(L, D, y);
    for (int64_t i = 0; i < k; ++i) xu[i] = T(y[i]);
    bias[u] = T(y[k]);
    for (int64_t i = 0; i < k; ++i) y[i] = double(xu[i]);
    y[k] = double(bias[u]);
    // resid: h[k] - G[k, :] x (row k of the lower triangle is the full last row).
    double gx = 0;
    for (int64_t j = 0; j < D; ++j) gx += A[k * D + j] * y[j];
    // x^T G x = sum_i x_i (G_ii x_i + 2 sum_{j<i} G_ij x_j)
    double xh = 0, xGx = 0;
    for (int64_t i = 0; i < D; ++i) {
      const double* __restrict Ai = A + i * D;
      double r = 0;
      for (int64_t j = 0; j < i; ++j) r += Ai[j] * y[j];
      xGx += y[i] * (2 * r + Ai[i] * y[i]);
      xh += y[i] * h[i];
    }
    res[u] = h[k] - gx;
    sse[u] = sq - 2 * xh + xGx;
  }
}

template <typename T>
void Dispatch(const Problem<T>& P, int64_t lo, int64_t hi, T* x, T* bias, double* res,
              double* sse, Bad* bad) {
#define MF_CASE(KK)                                    \
  if (P.k == KK) {                                     \
    Rows<T, KK>(P, lo, hi, x, bias, res, sse, bad);    \
    return;                                            \
  }
  MF_CASE(8) MF_CASE(10) MF_CASE(16) MF_CASE(20) MF_CASE(32) MF_CASE(64)
#undef MF_CASE
  Rows<T, 0>(P, lo, hi, x, bias, res, sse, bad);
}

template <ffi::DataType DT>
ffi::Error Impl(ffi::Buffer<ffi::S32> keys, ffi::Buffer<ffi::S32> others, ffi::Buffer<DT> ratings,
                ffi::Buffer<DT> weights, ffi::Buffer<DT> other, ffi::Buffer<DT> other_bias,
                ffi::Buffer<DT> hp, int64_t threads, ffi::ResultBuffer<DT> x,
                ffi::ResultBuffer<DT> bias, ffi::ResultBuffer<DT> resid,
                ffi::ResultBuffer<DT> sse) {
  using T = ffi::NativeType<DT>;
  if (other.dimensions().size() != 2 || x->dimensions().size() != 2 || hp.element_count() != 3)
    return ffi::Error::InvalidArgument("mfjax_als: inconsistent shapes");
  Problem<T> P;
  P.n_other = other.dimensions()[0];
  P.k = other.dimensions()[1];
  P.n = x->dimensions()[0];
  const int64_t nnz = keys.element_count();
  if (P.k < 1 || x->dimensions()[1] != P.k || bias->element_count() != P.n ||
      others.element_count() != nnz || ratings.element_count() != nnz ||
      weights.element_count() != nnz || other_bias.element_count() != P.n_other)
    return ffi::Error::InvalidArgument("mfjax_als: inconsistent shapes (rank must be >= 1)");
  P.others = others.typed_data();
  P.ratings = ratings.typed_data();
  P.weights = weights.typed_data();
  P.other = other.typed_data();
  P.other_bias = other_bias.typed_data();
  P.mu = double(hp.typed_data()[0]);
  P.reg = double(hp.typed_data()[1]);
  P.bias_reg = double(hp.typed_data()[2]);
  const int32_t* kp = keys.typed_data();
  const int64_t n = P.n;
  try {
    // Row starts from the sorted keys (checked: non-decreasing, in [0, n)).
    std::vector<int64_t> start(n + 1, nnz);
    int64_t row = 0;
    start[0] = 0;
    for (int64_t p = 0; p < nnz; ++p) {
      const int64_t key = kp[p];
      if (key < 0 || key >= n || key < row - 1)
        return ffi::Error::InvalidArgument(
            "mfjax_als: row index " + std::to_string(key) + " at position " + std::to_string(p) +
            " is out of range [0, " + std::to_string(n) + ") or out of order (keys must be sorted)");
      while (row <= key) start[row++] = p;
    }
    while (row <= n) start[row++] = nnz;
    P.start = start.data();
    const int64_t nt = std::max<int64_t>(1, std::min<int64_t>(threads, n / 16 + 1));
    // Rows over threads, cut at equal cost (ratings + a Cholesky's worth per row).
    const double row_cost = double(P.k + 1) / 4.0 + 2.0;
    const double total = double(nnz) + row_cost * double(n);
    const std::vector<int64_t> cut =
        mfjax::CutRows(n, nt, row_cost, total, [&](int64_t u) { return start[u]; });
    std::vector<double> res(n, 0.0), sq(n, 0.0);
    std::vector<Bad> bad(nt);
    T* xp = x->typed_data();
    T* bp = bias->typed_data();
    Parallel(nt, [&](int64_t t) {
      Dispatch<T>(P, cut[t], cut[t + 1], xp, bp, res.data(), sq.data(), &bad[t]);
    });
    for (int64_t t = 0; t < nt; ++t)
      if (bad[t].row >= 0)
        return ffi::Error::InvalidArgument(
            "mfjax_als: row " + std::to_string(bad[t].row) + " has the out-of-range index " +
            std::to_string(bad[t].col) + " at position " + std::to_string(bad[t].pos) +
            " (indices of the other side must be in [0, " + std::to_string(P.n_other) + "))");
    double sr = 0, ss = 0;
    for (int64_t u = 0; u < n; ++u) { sr += res[u]; ss += sq[u]; }
    resid->typed_data()[0] = T(sr);
    sse->typed_data()[0] = T(ss);
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string("mfjax_als: ") + e.what());
  }
  return ffi::Error::Success();
}

}  // namespace

#define MF_BIND(DT)                                                                        \
  ffi::Ffi::Bind()                                                                         \
      .Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<DT>>()    \
      .Arg<ffi::Buffer<DT>>().Arg<ffi::Buffer<DT>>().Arg<ffi::Buffer<DT>>()                \
      .Arg<ffi::Buffer<DT>>().Attr<int64_t>("threads")                                     \
      .Ret<ffi::Buffer<DT>>().Ret<ffi::Buffer<DT>>().Ret<ffi::Buffer<DT>>()                \
      .Ret<ffi::Buffer<DT>>()

XLA_FFI_DEFINE_HANDLER_SYMBOL(MfjaxAlsF32, Impl<ffi::F32>, MF_BIND(ffi::F32));
XLA_FFI_DEFINE_HANDLER_SYMBOL(MfjaxAlsF64, Impl<ffi::F64>, MF_BIND(ffi::F64));
