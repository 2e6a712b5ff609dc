// mfjax explicit ALS and Gibbs CPU kernels: one exact half-step, or one Gibbs half-sweep
// (every row of one side), rows over threads.
//
// The same numbers as mfjax.solvers.als.sweep.als_half_step and the rows of
// mfjax.solvers.gibbs.sampler.sample_side (tested in tests/test_als_kernel.py and
// tests/test_gibbs_kernel.py). The input is one side's sorted, block-padded view of
// SideLayout (keys sorted, others, ratings, weights; padding has weight 0). For each row u
// in [0, n) with z_i = [q_i; 1], t = r - mu - b_i and D = k + 1:
//
//   G_u = sum w z z^T,  h_u = sum w t z,  c_u = sum w,  s_u = sum w t^2
//   ALS:   (G_u + c_u diag(reg..reg, bias_reg)) x_u = h_u        (Cholesky in double)
//          rows with c_u <= 0 get x_u = 0;
//   Gibbs: M_u = Lambda + tau G_u = L_u L_u^T,
//          x_u = M_u^-1 (Lambda mu_prior + tau h_u) + L_u^-T eps_u   (eps_u given, [D]).
//
// x_u = [p_u; b_u]. Both return
//   sse   = sum_u (s_u - 2 x_u^T h_u + x_u^T G_u x_u)  (= sum w (r - r_hat)^2)
// and ALS also
//   resid = sum_u (h_u[D-1] - G_u[D-1, :] x_u)         (= sum w (r - r_hat) at the new rows)
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
#include <type_traits>
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

// Row u's statistics: A (lower triangle of G_u, row-major [D, D]), h_u, c_u = sum w and
// s_u = sum w t^2. False (with *bad filled) when an other-side index is out of range.
// Lanes: the Gram sums of ratings [s, e) taken kLanes ratings at a time, one rating per SIMD
// lane (acc[pair][lane] += w z_d z_j: element-wise, so the compiler vectorizes it without
// reordering any sum), the lanes added at the end. For a compile-time rank K <= 32: at
// k = 10 a half-step took 2.1 ms on one thread with the scalar triangle (ML-100K users).
constexpr int kLanes = 8;

template <typename T, int K>
inline void GramLanes(const Problem<T>& P, int64_t s, int64_t e, double* __restrict A,
                      double* __restrict h, double* c_out, double* sq_out) {
  constexpr int D = K + 1, W = kLanes, NT = D * (D + 1) / 2;
  alignas(64) double acc[NT][W];
  alignas(64) double hl[D][W];
  alignas(64) double zl[D][W];
  alignas(64) double wl[W], tl[W], cl[W], sl[W];
  std::memset(acc, 0, sizeof(acc));
  std::memset(hl, 0, sizeof(hl));
  std::memset(cl, 0, sizeof(cl));
  std::memset(sl, 0, sizeof(sl));
  for (int64_t p0 = s; p0 < e; p0 += W) {
    for (int l = 0; l < W; ++l) {
      const int64_t p = p0 + l;
      const double w = p < e ? double(P.weights[p]) : 0.0;
      if (w == 0) {  // padding, zero weights and the tail add exactly nothing
        wl[l] = tl[l] = 0;
        for (int d = 0; d < D; ++d) zl[d][l] = 0;
        continue;
      }
      const int64_t o = P.others[p];
      const T* __restrict q = P.other + o * K;
      wl[l] = w;
      tl[l] = double(P.ratings[p]) - P.mu - double(P.other_bias[o]);
      for (int d = 0; d < K; ++d) zl[d][l] = double(q[d]);
      zl[K][l] = 1.0;
    }
    for (int l = 0; l < W; ++l) {
      cl[l] += wl[l];
      sl[l] += wl[l] * tl[l] * tl[l];
    }
    int idx = 0;
    for (int d = 0; d < D; ++d) {
      alignas(64) double wz[W];
      for (int l = 0; l < W; ++l) {
        wz[l] = wl[l] * zl[d][l];
        hl[d][l] += wz[l] * tl[l];
      }
      for (int j = 0; j <= d; ++j, ++idx)
        for (int l = 0; l < W; ++l) acc[idx][l] += wz[l] * zl[j][l];
    }
  }
  auto sum = [](const double* x) {
    double r = 0;
    for (int l = 0; l < W; ++l) r += x[l];
    return r;
  };
  int idx = 0;
  for (int d = 0; d < D; ++d) {
    h[d] = sum(hl[d]);
    for (int j = 0; j <= d; ++j, ++idx) A[d * D + j] = sum(acc[idx]);
  }
  *c_out = sum(cl);
  *sq_out = sum(sl);
}

template <typename T, int KC>
inline bool RowStats(const Problem<T>& P, int64_t u, double* __restrict A, double* __restrict h,
                     double* __restrict z, double* c_out, double* sq_out, Bad* bad) {
  const int64_t k = KC ? KC : P.k;
  const int64_t D = k + 1;
  const int64_t s = P.start[u], e = P.start[u + 1];
  for (int64_t p = s; p < e; ++p) {
    const int32_t o = P.others[p];
    if (o < 0 || o >= P.n_other) {
      bad->row = u; bad->pos = p; bad->col = o;
      return false;
    }
  }
  if constexpr (KC > 0 && KC <= 32) {
    GramLanes<T, KC>(P, s, e, A, h, c_out, sq_out);
    return true;
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
    for (int64_t d = 0; d < D; ++d) h[d] += wt * z[d];
    for (int64_t d = 0; d < D; ++d) {
      const double wz = w * z[d];
      double* __restrict Ad = A + d * D;
      for (int64_t j = 0; j <= d; ++j) Ad[j] += wz * z[j];
    }
  }
  *c_out = c;
  *sq_out = sq;
  return true;
}

// Writes y (rounded to T) as x_u = [p_u; b_u], reads the rounded values back into y, and
// returns s_u - 2 y^T h + y^T G y (= sum w (r - r_hat)^2 at the new row; G from A's lower
// triangle).
template <typename T>
inline double StoreRow(int64_t u, int64_t k, const double* __restrict A, const double* __restrict h,
                       double sq, double* __restrict y, T* x, T* bias) {
  const int64_t D = k + 1;
  T* xu = x + u * k;
  for (int64_t i = 0; i < k; ++i) xu[i] = T(y[i]);
  bias[u] = T(y[k]);
  for (int64_t i = 0; i < k; ++i) y[i] = double(xu[i]);
  y[k] = double(bias[u]);
  // x^T G x = sum_i x_i (G_ii x_i + 2 sum_{j<i} G_ij x_j)
  double xh = 0, xGx = 0;
  for (int64_t i = 0; i < D; ++i) {
    const double* __restrict Ai = A + i * D;
    double r = 0;
    for (int64_t j = 0; j < i; ++j) r += Ai[j] * y[j];
    xGx += y[i] * (2 * r + Ai[i] * y[i]);
    xh += y[i] * h[i];
  }
  return sq - 2 * xh + xGx;
}

template <typename T, int KC>
void Rows(const Problem<T>& P, int64_t lo, int64_t hi, T* x, T* bias, double* res, double* sse,
          Bad* bad) {
  const int64_t k = KC ? KC : P.k;
  const int64_t D = k + 1;
  std::vector<double> Abuf(D * D), hbuf(D), zbuf(D), ybuf(D), Lbuf(D * D);
  double* __restrict A = Abuf.data();
  double* __restrict h = hbuf.data();
  double* __restrict y = ybuf.data();
  double* __restrict L = Lbuf.data();
  for (int64_t u = lo; u < hi; ++u) {
    double c, sq;
    if (!RowStats<T, KC>(P, u, A, h, zbuf.data(), &c, &sq, bad)) return;
    if (!(c > 0)) {
      std::memset(x + u * k, 0, sizeof(T) * k);
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
    sse[u] = StoreRow<T>(u, k, A, h, sq, y, x, bias);
    // resid: h[k] - G[k, :] x (row k of the lower triangle is the full last row).
    double gx = 0;
    for (int64_t j = 0; j < D; ++j) gx += A[k * D + j] * y[j];
    res[u] = h[k] - gx;
  }
}

// Gibbs: the row's conditional N(m_u, M_u^-1), M_u = Lambda + tau G_u, m_u = M_u^-1 (Lambda mu +
// tau h_u), drawn as m_u + L_u^-T eps_u (M_u = L_u L_u^T); rows without ratings draw from the
// prior. prec: Lambda [D, D] (row-major, symmetric); prior_rhs: Lambda mu [D], or one per row
// [n, D] (rhs_stride D: a prior mean per row, e.g. a feature prior); eps: [n, D].
template <typename T>
struct Prior {
  const T *prec, *prior_rhs, *eps;
  double tau;
  int64_t rhs_stride;
};

template <typename T, int KC>
void GibbsRows(const Problem<T>& P, const Prior<T>& G, int64_t lo, int64_t hi, T* x, T* bias,
               double* sse, Bad* bad) {
  const int64_t k = KC ? KC : P.k;
  const int64_t D = k + 1;
  std::vector<double> Abuf(D * D), hbuf(D), zbuf(D), ybuf(D), Lbuf(D * D);
  double* __restrict A = Abuf.data();
  double* __restrict h = hbuf.data();
  double* __restrict y = ybuf.data();
  double* __restrict v = zbuf.data();
  double* __restrict L = Lbuf.data();
  for (int64_t u = lo; u < hi; ++u) {
    double c, sq;
    if (!RowStats<T, KC>(P, u, A, h, v, &c, &sq, bad)) return;
    for (int64_t i = 0; i < D; ++i)
      for (int64_t j = 0; j <= i; ++j) L[i * D + j] = double(G.prec[i * D + j]) + G.tau * A[i * D + j];
    mfjax::CholeskyFactor(L, D, y);
    const T* __restrict pr = G.prior_rhs + u * G.rhs_stride;
    for (int64_t i = 0; i < D; ++i) y[i] = double(pr[i]) + G.tau * h[i];
    mfjax::CholeskySolve(L, D, y);  // y = m_u
    const T* __restrict e = G.eps + u * D;
    for (int64_t i = D - 1; i >= 0; --i) {  // L^T v = eps: row i of L is column i of L^T
      double r = double(e[i]);
      for (int64_t j = i + 1; j < D; ++j) r -= L[j * D + i] * v[j];
      v[i] = r / L[i * D + i];
    }
    for (int64_t i = 0; i < D; ++i) y[i] += v[i];
    sse[u] = StoreRow<T>(u, k, A, h, sq, y, x, bias);
  }
}

// Calls Body::template Run<KC> with the rank as a compile-time constant where it is common.
template <typename F>
void ByRank(int64_t k, F&& f) {
#define MF_CASE(KK)                          \
  if (k == KK) {                             \
    f(std::integral_constant<int, KK>());    \
    return;                                  \
  }
  MF_CASE(8) MF_CASE(10) MF_CASE(12) MF_CASE(16) MF_CASE(20) MF_CASE(32) MF_CASE(64)
#undef MF_CASE
  f(std::integral_constant<int, 0>());
}

// Fills P from the buffers (checking their shapes) and runs rows(lo, hi, res, sse, bad) on
// threads over rows cut at equal cost; res/sse get per-row sums added in row order.
template <ffi::DataType DT, typename Rows_>
ffi::Error RunRows(const char* name, Problem<ffi::NativeType<DT>>& P, ffi::Buffer<ffi::S32> keys,
                   ffi::Buffer<ffi::S32> others, ffi::Buffer<DT> ratings, ffi::Buffer<DT> weights,
                   ffi::Buffer<DT> other, ffi::Buffer<DT> other_bias, int64_t n, int64_t threads,
                   double* res_sum, double* sse_sum, Rows_ rows) {
  const std::string who(name);
  if (other.dimensions().size() != 2)
    return ffi::Error::InvalidArgument(who + ": inconsistent shapes");
  P.n_other = other.dimensions()[0];
  P.k = other.dimensions()[1];
  P.n = n;
  const int64_t nnz = keys.element_count();
  if (P.k < 1 || others.element_count() != nnz || ratings.element_count() != nnz ||
      weights.element_count() != nnz || other_bias.element_count() != P.n_other)
    return ffi::Error::InvalidArgument(who + ": inconsistent shapes (rank must be >= 1)");
  P.others = others.typed_data();
  P.ratings = ratings.typed_data();
  P.weights = weights.typed_data();
  P.other = other.typed_data();
  P.other_bias = other_bias.typed_data();
  const int32_t* kp = keys.typed_data();
  try {
    // Row starts from the sorted keys (checked: non-decreasing, in [0, n)).
    std::vector<int64_t> start(n + 1, nnz);
    int64_t row = 0;
    start[0] = 0;
    for (int64_t p = 0; p < nnz; ++p) {
      const int64_t key = kp[p];
      if (key < 0 || key >= n || key < row - 1)
        return ffi::Error::InvalidArgument(
            who + ": row index " + std::to_string(key) + " at position " + std::to_string(p) +
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
    Parallel(nt, [&](int64_t t) { rows(cut[t], cut[t + 1], res.data(), sq.data(), &bad[t]); });
    for (int64_t t = 0; t < nt; ++t)
      if (bad[t].row >= 0)
        return ffi::Error::InvalidArgument(
            who + ": row " + std::to_string(bad[t].row) + " has the out-of-range index " +
            std::to_string(bad[t].col) + " at position " + std::to_string(bad[t].pos) +
            " (indices of the other side must be in [0, " + std::to_string(P.n_other) + "))");
    double sr = 0, ss = 0;
    for (int64_t u = 0; u < n; ++u) { sr += res[u]; ss += sq[u]; }
    *res_sum = sr;
    *sse_sum = ss;
  } catch (const std::exception& e) {
    return ffi::Error::Internal(who + ": " + e.what());
  }
  return ffi::Error::Success();
}

template <ffi::DataType DT>
ffi::Error Impl(ffi::Buffer<ffi::S32> keys, ffi::Buffer<ffi::S32> others, ffi::Buffer<DT> ratings,
                ffi::Buffer<DT> weights, ffi::Buffer<DT> other, ffi::Buffer<DT> other_bias,
                ffi::Buffer<DT> hp, int64_t threads, ffi::ResultBuffer<DT> x,
                ffi::ResultBuffer<DT> bias, ffi::ResultBuffer<DT> resid,
                ffi::ResultBuffer<DT> sse) {
  using T = ffi::NativeType<DT>;
  if (x->dimensions().size() != 2 || hp.element_count() != 3 || other.dimensions().size() != 2 ||
      x->dimensions()[1] != other.dimensions()[1] ||
      bias->element_count() != x->dimensions()[0])
    return ffi::Error::InvalidArgument("mfjax_als: inconsistent shapes");
  Problem<T> P;
  P.mu = double(hp.typed_data()[0]);
  P.reg = double(hp.typed_data()[1]);
  P.bias_reg = double(hp.typed_data()[2]);
  T* xp = x->typed_data();
  T* bp = bias->typed_data();
  double sr = 0, ss = 0;
  ffi::Error err = RunRows<DT>(
      "mfjax_als", P, keys, others, ratings, weights, other, other_bias, x->dimensions()[0],
      threads, &sr, &ss, [&](int64_t lo, int64_t hi, double* res, double* sq, Bad* bad) {
        ByRank(P.k, [&](auto kc) { Rows<T, decltype(kc)::value>(P, lo, hi, xp, bp, res, sq, bad); });
      });
  if (err.failure()) return err;
  resid->typed_data()[0] = T(sr);
  sse->typed_data()[0] = T(ss);
  return ffi::Error::Success();
}

// hp = (mu, tau); prec [D, D]; prior_rhs [D] or [n, D]; eps [n, D]; x [n, k], bias [n], sse [].
template <ffi::DataType DT>
ffi::Error GibbsImpl(ffi::Buffer<ffi::S32> keys, ffi::Buffer<ffi::S32> others,
                     ffi::Buffer<DT> ratings, ffi::Buffer<DT> weights, ffi::Buffer<DT> other,
                     ffi::Buffer<DT> other_bias, ffi::Buffer<DT> hp, ffi::Buffer<DT> prec,
                     ffi::Buffer<DT> prior_rhs, ffi::Buffer<DT> eps, int64_t threads,
                     ffi::ResultBuffer<DT> x, ffi::ResultBuffer<DT> bias,
                     ffi::ResultBuffer<DT> sse) {
  using T = ffi::NativeType<DT>;
  if (x->dimensions().size() != 2 || hp.element_count() != 2 || other.dimensions().size() != 2)
    return ffi::Error::InvalidArgument("mfjax_gibbs: inconsistent shapes");
  const int64_t n = x->dimensions()[0], k = x->dimensions()[1], D = k + 1;
  if (other.dimensions()[1] != k || bias->element_count() != n ||
      prec.element_count() != D * D ||
      (prior_rhs.element_count() != D && prior_rhs.element_count() != n * D) ||
      eps.element_count() != n * D)
    return ffi::Error::InvalidArgument("mfjax_gibbs: inconsistent shapes");
  Problem<T> P;
  P.mu = double(hp.typed_data()[0]);
  P.reg = P.bias_reg = 0;
  const int64_t stride = prior_rhs.element_count() == n * D ? D : 0;
  Prior<T> G{prec.typed_data(), prior_rhs.typed_data(), eps.typed_data(),
             double(hp.typed_data()[1]), stride};
  T* xp = x->typed_data();
  T* bp = bias->typed_data();
  double sr = 0, ss = 0;
  ffi::Error err = RunRows<DT>(
      "mfjax_gibbs", P, keys, others, ratings, weights, other, other_bias, n, threads, &sr, &ss,
      [&](int64_t lo, int64_t hi, double*, double* sq, Bad* bad) {
        ByRank(P.k, [&](auto kc) { GibbsRows<T, decltype(kc)::value>(P, G, lo, hi, xp, bp, sq, bad); });
      });
  if (err.failure()) return err;
  sse->typed_data()[0] = T(ss);
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

#define MF_BIND_GIBBS(DT)                                                                  \
  ffi::Ffi::Bind()                                                                         \
      .Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<DT>>()    \
      .Arg<ffi::Buffer<DT>>().Arg<ffi::Buffer<DT>>().Arg<ffi::Buffer<DT>>()                \
      .Arg<ffi::Buffer<DT>>().Arg<ffi::Buffer<DT>>().Arg<ffi::Buffer<DT>>()                \
      .Arg<ffi::Buffer<DT>>().Attr<int64_t>("threads")                                     \
      .Ret<ffi::Buffer<DT>>().Ret<ffi::Buffer<DT>>().Ret<ffi::Buffer<DT>>()

XLA_FFI_DEFINE_HANDLER_SYMBOL(MfjaxAlsF32, Impl<ffi::F32>, MF_BIND(ffi::F32));
XLA_FFI_DEFINE_HANDLER_SYMBOL(MfjaxAlsF64, Impl<ffi::F64>, MF_BIND(ffi::F64));
XLA_FFI_DEFINE_HANDLER_SYMBOL(MfjaxGibbsF32, GibbsImpl<ffi::F32>, MF_BIND_GIBBS(ffi::F32));
XLA_FFI_DEFINE_HANDLER_SYMBOL(MfjaxGibbsF64, GibbsImpl<ffi::F64>, MF_BIND_GIBBS(ffi::F64));
