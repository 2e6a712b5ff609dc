// mfjax iALS CPU kernel: one exact ALS half-step (every row of one side), rows over threads.
//
// The same numbers as mfjax.implicit_steps.half_step_exact (tested in
// tests/test_implicit_kernel.py). For each row u < n_rows of this side's CSR view
// (indptr, cols, vals), with Q = other [n_pad_other, k] and c = 1 + alpha v:
//
//   A_obs = sum_{i in I_u} c q_i q_i^T,   b = sum c q_i,   lam_u = reg (|I_u| + a0 n_other)^nu
//   (a0 G + A_obs + lam_u I) x_u = b      (G = Q^T Q, Cholesky in double)
//
// and x_u = 0 for rows with no interactions and rows >= n_rows. It also returns
//   value   = sum_u [sum c - 2 x^T b + x^T A_obs x] + a0 sum_u x^T G x + penalty
//   penalty = sum_u lam_u |x_u|^2
// i.e. this side's observed part at x, the all-pairs term a0 <X^T X, G> and the penalty.
//
// A_obs is accumulated (lower triangle, in T) four interactions at a time, so each
// load/store of A carries four FMAs. G is summed over fixed row blocks and the per-row
// sums are added in row order, so the results do not depend on the thread count.
// Indices are checked: a column outside [0, n_other) or a decreasing indptr is an error
// naming the row; nothing is clamped.
//
// The CG handlers (MfjaxIalsCg*) instead take a warm start x0 and run `cg_steps`
// conjugate-gradient iterations per row on the same system, with the recurrences of
// mfjax.implicit_als.cg_rows (arithmetic in T), matvec
//   M v = a0 G v + lam_u v + sum_{i in I_u} c q_i (q_i^T v)      (no k x k matrix per row),
// and return value/penalty at the result as above, the observed part summed directly,
// sum c (1 - q_i^T x)^2 (skipped, 0, when the attribute `observed` is 0: a sweep needs
// only the item side's penalty).
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
  const T* other;
  const int32_t *indptr, *cols;
  const T* vals;
  int64_t n_pad, n_other_pad, nnz, k, n_rows, n_other;
  double alpha, a0, reg, nu;
};

// L = lower(a0 G + lam I + sum_{p in [s, e)} c_p q_p q_p^T), y = sum c_p q_p, all in double.
template <typename T>
void GramDouble(const Problem<T>& P, const double* G2, int64_t s, int64_t e, double lam,
                int64_t k, double* __restrict L, double* __restrict y) {
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j <= i; ++j) L[i * k + j] = G2[i * k + j];
    L[i * k + i] += lam;
    y[i] = 0;
  }
  for (int64_t p = s; p < e; ++p) {
    const double c = 1.0 + P.alpha * double(P.vals[p]);
    const T* __restrict q = P.other + int64_t(P.cols[p]) * k;
    for (int64_t i = 0; i < k; ++i) {
      const double ci = c * double(q[i]);
      y[i] += ci;
      double* __restrict Li = L + i * k;
      for (int64_t j = 0; j <= i; ++j) Li[j] += ci * double(q[j]);
    }
  }
}

// Rows [lo, hi). G2: a0 G [k, k] (double, full). Writes x rows and per-row sums.
template <typename T, int KC>
void Rows(const Problem<T>& P, const double* G2, int64_t lo, int64_t hi, T* x, double* obs,
          double* pen, double* tr, Bad* bad) {
  const int64_t k = KC ? KC : P.k;
  constexpr int64_t V = 32 / sizeof(T);  // one AVX2 vector: round row lengths up to it
  std::vector<T> Abuf(k * k), bbuf(k);
  std::vector<double> Lbuf(k * k), ybuf(k), wbuf(k);
  double* __restrict w = wbuf.data();
  T* __restrict A = Abuf.data();
  T* __restrict bt = bbuf.data();
  double* __restrict L = Lbuf.data();
  double* __restrict y = ybuf.data();
  const T alpha = T(P.alpha);
  for (int64_t u = lo; u < hi; ++u) {
    T* xu = x + u * k;
    obs[u] = pen[u] = tr[u] = 0;
    const int64_t s = P.indptr[u], e = P.indptr[u + 1];
    if (e == s) {
      std::memset(xu, 0, sizeof(T) * k);
      continue;
    }
    std::memset(A, 0, sizeof(T) * k * k);
    std::memset(bt, 0, sizeof(T) * k);
    double csum = 0;
    for (int64_t p = s; p < e; ++p) {
      const int32_t c = P.cols[p];
      if (c < 0 || c >= P.n_other) {
        bad->row = u; bad->pos = p; bad->col = c;
        return;
      }
    }
    int64_t p = s;
    for (; p + 4 <= e; p += 4) {
      const T c0 = T(1) + alpha * P.vals[p], c1 = T(1) + alpha * P.vals[p + 1];
      const T c2 = T(1) + alpha * P.vals[p + 2], c3 = T(1) + alpha * P.vals[p + 3];
      csum += double(c0) + double(c1) + double(c2) + double(c3);
      const T* __restrict q0 = P.other + int64_t(P.cols[p]) * k;
      const T* __restrict q1 = P.other + int64_t(P.cols[p + 1]) * k;
      const T* __restrict q2 = P.other + int64_t(P.cols[p + 2]) * k;
      const T* __restrict q3 = P.other + int64_t(P.cols[p + 3]) * k;
      for (int64_t d = 0; d < k; ++d) {
        const T a0 = c0 * q0[d], a1 = c1 * q1[d], a2 = c2 * q2[d], a3 = c3 * q3[d];
        bt[d] += (a0 + a1) + (a2 + a3);
        T* __restrict Ad = A + d * k;
        const int64_t end = std::min<int64_t>(k, (d + V) / V * V);  // lower part, padded
        for (int64_t j = 0; j < end; ++j) Ad[j] += a0 * q0[j] + a1 * q1[j] + a2 * q2[j] + a3 * q3[j];
      }
    }
    for (; p < e; ++p) {
      const T c0 = T(1) + alpha * P.vals[p];
      csum += double(c0);
      const T* __restrict q0 = P.other + int64_t(P.cols[p]) * k;
      for (int64_t d = 0; d < k; ++d) {
        const T a0 = c0 * q0[d];
        bt[d] += a0;
        T* __restrict Ad = A + d * k;
        const int64_t end = std::min<int64_t>(k, (d + V) / V * V);
        for (int64_t j = 0; j < end; ++j) Ad[j] += a0 * q0[j];
      }
    }
    // M = a0 G + A_obs + lam I, Cholesky M = L L^T (lower, row-major, in double).
    const double lam = P.reg * std::pow(double(e - s) + P.a0 * double(P.n_other), P.nu);
    for (int64_t i = 0; i < k; ++i) {
      double* Li = L + i * k;
      const double* Gi = G2 + i * k;
      const T* Ai = A + i * k;
      for (int64_t j = 0; j <= i; ++j) Li[j] = Gi[j] + double(Ai[j]);
      Li[i] += lam;
    }
    for (int64_t i = 0; i < k; ++i) y[i] = double(bt[i]);
    // In float, A_obs's rounding (~64 eps max|A|) can swamp M's smallest eigenvalues
    // (c q q^T terms of 1e8 against lam 0.1 when alpha * value is large): a row whose
    // pivots fall near it is rebuilt and solved in double. A row that fails again is
    // singular (e.g. reg = 0): its non-finite x reaches the caller, which raises.
    if (!mfjax::CholeskySolveChecked(L, k, y, w, sizeof(T) < 8 ? 64 * 1.1920929e-7 : 0.0)) {
      GramDouble(P, G2, s, e, lam, k, L, y);
      mfjax::CholeskySolveChecked(L, k, y, w, 0.0);
    }
    // Per-row sums at x rounded to T (what the caller gets back).
    double xb = 0, xx = 0, xAx = 0, xGx = 0;
    for (int64_t i = 0; i < k; ++i) xu[i] = T(y[i]);
    for (int64_t i = 0; i < k; ++i) y[i] = double(xu[i]);
    // xAx = sum_i x_i (A_ii x_i + 2 sum_{j<i} A_ij x_j); G2 is full, so xGx = x^T (G2 x).
    std::fill(Lbuf.begin(), Lbuf.begin() + 2 * k, 0.0);  // L is free now: two k-vectors
    double* __restrict va = L;
    double* __restrict vg = L + k;
    for (int64_t i = 0; i < k; ++i) {
      const double xi = y[i];
      xb += xi * double(bt[i]);
      xx += xi * xi;
      const T* __restrict Ai = A + i * k;
      const double* __restrict Gi = G2 + i * k;
      for (int64_t j = 0; j < i; ++j) va[j] += double(Ai[j]) * xi;
      va[i] += 0.5 * double(Ai[i]) * xi;
      for (int64_t j = 0; j < k; ++j) vg[j] += Gi[j] * xi;
    }
    for (int64_t i = 0; i < k; ++i) {
      xAx += 2 * va[i] * y[i];
      xGx += vg[i] * y[i];
    }
    obs[u] = csum - 2 * xb + xAx;
    pen[u] = lam * xx;
    tr[u] = xGx;
  }
}

template <typename T>
void Dispatch(const Problem<T>& P, const double* G2, int64_t lo, int64_t hi, T* x, double* obs,
              double* pen, double* tr, Bad* bad) {
#define MF_CASE(KK)                                       \
  if (P.k == KK) {                                        \
    Rows<T, KK>(P, G2, lo, hi, x, obs, pen, tr, bad);     \
    return;                                               \
  }
  MF_CASE(8) MF_CASE(16) MF_CASE(32) MF_CASE(64) MF_CASE(128)
#undef MF_CASE
  Rows<T, 0>(P, G2, lo, hi, x, obs, pen, tr, bad);
}

// sum_j a[j] b[j] in eight independent lanes (a plain reduction loop would stay scalar).
template <typename T>
inline T Dot(const T* __restrict a, const T* __restrict b, int64_t k) {
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= k; j += 8)
    for (int l = 0; l < 8; ++l) acc[l] += a[j + l] * b[j + l];
  T s = 0;
  for (; j < k; ++j) s += a[j] * b[j];
  return s + (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
}

// out += sum_{q in [s, e)} c_q (ONE - y_q^T v) y_q with ONE = 1, or c_q (y_q^T v) y_q with
// ONE = 0 (then the sign is +). Four interactions at a time: four dot products, then
// one pass over out for all four (a quarter of out's loads and stores).
template <typename T, int KC, bool ONE>
inline void Accumulate(const Problem<T>& P, int64_t s, int64_t e, const T* __restrict v,
                       T* __restrict out) {
  const int64_t k = KC ? KC : P.k;
  const T alpha = T(P.alpha);
  auto f = [&](int64_t q, T dot) {
    const T c = T(1) + alpha * P.vals[q];
    return ONE ? c * (T(1) - dot) : c * dot;
  };
  int64_t q = s;
  for (; q + 4 <= e; q += 4) {
    const T* __restrict y0 = P.other + int64_t(P.cols[q]) * k;
    const T* __restrict y1 = P.other + int64_t(P.cols[q + 1]) * k;
    const T* __restrict y2 = P.other + int64_t(P.cols[q + 2]) * k;
    const T* __restrict y3 = P.other + int64_t(P.cols[q + 3]) * k;
    const T t0 = Dot(y0, v, k), t1 = Dot(y1, v, k), t2 = Dot(y2, v, k), t3 = Dot(y3, v, k);
    const T f0 = f(q, t0), f1 = f(q + 1, t1), f2 = f(q + 2, t2), f3 = f(q + 3, t3);
    for (int64_t j = 0; j < k; ++j) out[j] += (f0 * y0[j] + f1 * y1[j]) + (f2 * y2[j] + f3 * y3[j]);
  }
  for (; q < e; ++q) {
    const T* __restrict y = P.other + int64_t(P.cols[q]) * k;
    const T f0 = f(q, Dot(y, v, k));
    for (int64_t j = 0; j < k; ++j) out[j] += f0 * y[j];
  }
}

// CG rows [lo, hi): G: a0 G [k, k] in T (full); G2: the same in double (for x^T G x).
// With `observed` false the observed part of the value is skipped (obs = 0).
template <typename T, int KC>
void RowsCG(const Problem<T>& P, const T* G, const double* G2, const T* x0, int64_t steps,
            bool observed, int64_t lo, int64_t hi, T* x, double* obs, double* pen, double* tr,
            Bad* bad) {
  const int64_t k = KC ? KC : P.k;
  std::vector<T> buf(3 * k);
  T* __restrict r = buf.data();
  T* __restrict p = r + k;
  T* __restrict Ap = p + k;
  const T alpha = T(P.alpha);
  for (int64_t u = lo; u < hi; ++u) {
    T* __restrict xu = x + u * k;
    obs[u] = pen[u] = tr[u] = 0;
    const int64_t s = P.indptr[u], e = P.indptr[u + 1];
    if (e == s) {
      std::memset(xu, 0, sizeof(T) * k);
      continue;
    }
    for (int64_t q = s; q < e; ++q) {
      const int32_t c = P.cols[q];
      if (c < 0 || c >= P.n_other) {
        bad->row = u; bad->pos = q; bad->col = c;
        return;
      }
    }
    const T lam = T(P.reg * std::pow(double(e - s) + P.a0 * double(P.n_other), P.nu));
    // out = (a0 G + lam I) v, as axpys over G's rows (G symmetric).
    auto dense = [&](const T* __restrict v, T* __restrict out) {
      for (int64_t i = 0; i < k; ++i) out[i] = lam * v[i];
      for (int64_t j = 0; j < k; ++j) {
        const T vj = v[j];
        const T* __restrict Gj = G + j * k;
        for (int64_t i = 0; i < k; ++i) out[i] += vj * Gj[i];
      }
    };
    std::memcpy(xu, x0 + u * k, sizeof(T) * k);
    // r = b - M x0 = sum c (1 - q^T x0) q - (a0 G + lam I) x0: one pass over the interactions.
    dense(xu, Ap);
    for (int64_t d = 0; d < k; ++d) r[d] = -Ap[d];
    Accumulate<T, KC, true>(P, s, e, xu, r);
    for (int64_t d = 0; d < k; ++d) p[d] = r[d];
    T rs = Dot(r, r, k);
    for (int64_t it = 0; it < steps; ++it) {
      dense(p, Ap);
      Accumulate<T, KC, false>(P, s, e, p, Ap);
      const T pAp = Dot(p, Ap, k);
      const T a = pAp > 0 ? rs / pAp : T(0);
      for (int64_t d = 0; d < k; ++d) {
        xu[d] += a * p[d];
        r[d] -= a * Ap[d];
      }
      const T rs_new = Dot(r, r, k);
      const T beta = rs > 0 ? rs_new / rs : T(0);
      for (int64_t d = 0; d < k; ++d) p[d] = r[d] + beta * p[d];
      rs = rs_new;
    }
    double o = 0, xx = 0, xGx = 0;
    for (int64_t q = s; observed && q < e; ++q) {
      const T* __restrict y = P.other + int64_t(P.cols[q]) * k;
      const double err = 1.0 - double(Dot(y, xu, k));
      o += double(T(1) + alpha * P.vals[q]) * err * err;
    }
    for (int64_t i = 0; i < k; ++i) {
      const double xi = double(xu[i]);
      xx += xi * xi;
      double gi = 0;
      const double* __restrict Gi = G2 + i * k;
      for (int64_t j = 0; j < k; ++j) gi += Gi[j] * double(xu[j]);
      xGx += xi * gi;
    }
    obs[u] = o;
    pen[u] = double(lam) * xx;
    tr[u] = xGx;
  }
}

template <typename T>
void DispatchCG(const Problem<T>& P, const T* G, const double* G2, const T* x0, int64_t steps,
                bool observed, int64_t lo, int64_t hi, T* x, double* obs, double* pen, double* tr,
                Bad* bad) {
#define MF_CASE(KK)                                                             \
  if (P.k == KK) {                                                              \
    RowsCG<T, KK>(P, G, G2, x0, steps, observed, lo, hi, x, obs, pen, tr, bad); \
    return;                                                                     \
  }
  MF_CASE(8) MF_CASE(16) MF_CASE(32) MF_CASE(64) MF_CASE(128)
#undef MF_CASE
  RowsCG<T, 0>(P, G, G2, x0, steps, observed, lo, hi, x, obs, pen, tr, bad);
}

// The exact half-step (x0 == nullptr) or `steps` CG iterations from x0.
template <ffi::DataType DT>
ffi::Error Run(ffi::Buffer<DT> other, ffi::Buffer<ffi::S32> indptr, ffi::Buffer<ffi::S32> cols,
               ffi::Buffer<DT> vals, ffi::Buffer<ffi::S32> sizes, ffi::Buffer<DT> hp,
               const ffi::NativeType<DT>* x0, int64_t steps, bool observed, int64_t threads,
               ffi::ResultBuffer<DT> x, ffi::ResultBuffer<DT> value,
               ffi::ResultBuffer<DT> penalty) {
  using T = ffi::NativeType<DT>;
  Problem<T> P;
  if (other.dimensions().size() != 2 || sizes.element_count() != 2 || hp.element_count() != 4 ||
      x->dimensions().size() != 2)
    return ffi::Error::InvalidArgument("mfjax_ials: inconsistent shapes");
  P.other = other.typed_data();
  P.indptr = indptr.typed_data();
  P.cols = cols.typed_data();
  P.vals = vals.typed_data();
  P.n_other_pad = other.dimensions()[0];
  P.k = other.dimensions()[1];
  P.n_pad = indptr.element_count() - 1;
  P.nnz = cols.element_count();
  P.n_rows = sizes.typed_data()[0];
  P.n_other = sizes.typed_data()[1];
  const T* h = hp.typed_data();
  P.alpha = double(h[0]); P.a0 = double(h[1]); P.reg = double(h[2]); P.nu = double(h[3]);
  const int64_t k = P.k, n = P.n_pad;
  if (P.n_pad < 0 || vals.element_count() != P.nnz || x->dimensions()[0] != n ||
      x->dimensions()[1] != k || k < 1)
    return ffi::Error::InvalidArgument("mfjax_ials: inconsistent shapes (rank must be >= 1)");
  if (P.n_rows < 0 || P.n_rows > n || P.n_other < 0 || P.n_other > P.n_other_pad)
    return ffi::Error::InvalidArgument(
        "mfjax_ials: row counts n_rows=" + std::to_string(P.n_rows) + ", n_other=" +
        std::to_string(P.n_other) + " do not fit the arrays (" + std::to_string(n) + " rows, " +
        std::to_string(P.n_other_pad) + " other rows)");
  // indptr: 0 <= indptr[0] <= ... <= indptr[n_rows] <= nnz (rows past n_rows are not read).
  for (int64_t u = 0; u <= P.n_rows; ++u) {
    const int64_t a = P.indptr[u];
    if (a < 0 || a > P.nnz || (u > 0 && a < P.indptr[u - 1]))
      return ffi::Error::InvalidArgument(
          "mfjax_ials: indptr is not a non-decreasing list of positions in [0, " +
          std::to_string(P.nnz) + "] at row " + std::to_string(u > 0 ? u - 1 : 0));
  }
  T* xp = x->typed_data();
  const int64_t nt = std::max<int64_t>(1, std::min<int64_t>(threads, P.n_rows / 16 + 1));
  try {
    // a0 G = a0 Q^T Q over the other side's rows, in NB fixed blocks (thread-count free).
    const int64_t no = P.n_other_pad;
    const int64_t NB = std::max<int64_t>(1, std::min<int64_t>(32, no / 64));
    std::vector<std::vector<double>> gpart(NB, std::vector<double>(k * k, 0.0));
    Parallel(std::min(nt, NB), [&](int64_t t) {
      std::vector<double> row(k);
      for (int64_t blk = t; blk < NB; blk += std::min(nt, NB)) {
        double* g = gpart[blk].data();
        for (int64_t r = no * blk / NB; r < no * (blk + 1) / NB; ++r) {
          const T* q = P.other + r * k;
          for (int64_t i = 0; i < k; ++i) row[i] = double(q[i]);
          for (int64_t i = 0; i < k; ++i) {
            const double qi = row[i];
            double* gi = g + i * k;
            for (int64_t j = 0; j <= i; ++j) gi[j] += qi * row[j];
          }
        }
      }
    });
    std::vector<double> G2(k * k);
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j <= i; ++j) {
        double s = 0;
        for (int64_t b = 0; b < NB; ++b) s += gpart[b][i * k + j];
        G2[i * k + j] = G2[j * k + i] = P.a0 * s;
      }
    // Rows over threads, cut at equal cost (interactions + a Cholesky's worth per row).
    std::vector<double> obs(n, 0.0), pen(n, 0.0), tr(n, 0.0);
    // (a CG step per row: one a0 G matvec of k^2 and two k-vector passes per interaction)
    const double row_cost = x0 == nullptr ? double(k) / 6.0 + 2.0
                                          : double(k) * double(steps + 1) / (2.0 * double(steps + 3)) + 2.0;
    const double total = double(P.indptr[P.n_rows] - P.indptr[0]) + row_cost * double(P.n_rows);
    const std::vector<int64_t> cut = mfjax::CutRows(
        P.n_rows, nt, row_cost, total, [&](int64_t u) { return P.indptr[u] - P.indptr[0]; });
    std::vector<Bad> bad(nt);
    if (x0 == nullptr) {
      Parallel(nt, [&](int64_t t) {
        Dispatch<T>(P, G2.data(), cut[t], cut[t + 1], xp, obs.data(), pen.data(), tr.data(),
                    &bad[t]);
      });
    } else {
      std::vector<T> G(G2.begin(), G2.end());
      Parallel(nt, [&](int64_t t) {
        DispatchCG<T>(P, G.data(), G2.data(), x0, steps, observed, cut[t], cut[t + 1], xp,
                      obs.data(), pen.data(), tr.data(), &bad[t]);
      });
    }
    for (int64_t t = 0; t < nt; ++t)
      if (bad[t].row >= 0)
        return ffi::Error::InvalidArgument(
            "mfjax_ials: row " + std::to_string(bad[t].row) + " has the out-of-range index " +
            std::to_string(bad[t].col) + " at position " + std::to_string(bad[t].pos) +
            " (indices of the other side must be in [0, " + std::to_string(P.n_other) + "))");
    if (P.n_rows < n) std::memset(xp + P.n_rows * k, 0, sizeof(T) * (n - P.n_rows) * k);
    double so = 0, sp = 0, st = 0;
    for (int64_t u = 0; u < P.n_rows; ++u) { so += obs[u]; sp += pen[u]; st += tr[u]; }
    value->typed_data()[0] = T(so + st + sp);
    penalty->typed_data()[0] = T(sp);
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string("mfjax_ials: ") + e.what());
  }
  return ffi::Error::Success();
}

template <ffi::DataType DT>
ffi::Error Impl(ffi::Buffer<DT> other, ffi::Buffer<ffi::S32> indptr, ffi::Buffer<ffi::S32> cols,
                ffi::Buffer<DT> vals, ffi::Buffer<ffi::S32> sizes, ffi::Buffer<DT> hp,
                int64_t threads, ffi::ResultBuffer<DT> x, ffi::ResultBuffer<DT> value,
                ffi::ResultBuffer<DT> penalty) {
  return Run<DT>(other, indptr, cols, vals, sizes, hp, nullptr, 0, true, threads, x, value,
                 penalty);
}

template <ffi::DataType DT>
ffi::Error ImplCG(ffi::Buffer<DT> other, ffi::Buffer<ffi::S32> indptr, ffi::Buffer<ffi::S32> cols,
                  ffi::Buffer<DT> vals, ffi::Buffer<ffi::S32> sizes, ffi::Buffer<DT> hp,
                  ffi::Buffer<DT> x0, int64_t threads, int64_t cg_steps, int64_t observed,
                  ffi::ResultBuffer<DT> x, ffi::ResultBuffer<DT> value,
                  ffi::ResultBuffer<DT> penalty) {
  if (x0.dimensions().size() != 2 || x->dimensions().size() != 2 ||
      x0.dimensions()[0] != x->dimensions()[0] || x0.dimensions()[1] != x->dimensions()[1])
    return ffi::Error::InvalidArgument("mfjax_ials: the warm start x0 must have the shape of x");
  if (cg_steps < 0) return ffi::Error::InvalidArgument("mfjax_ials: cg_steps must be >= 0");
  return Run<DT>(other, indptr, cols, vals, sizes, hp, x0.typed_data(), cg_steps, observed != 0,
                 threads, x, value, penalty);
}

}  // namespace

#define MF_BIND(DT)                                                                  \
  ffi::Ffi::Bind()                                                                   \
      .Arg<ffi::Buffer<DT>>().Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<ffi::S32>>() \
      .Arg<ffi::Buffer<DT>>().Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<DT>>()      \
      .Attr<int64_t>("threads")                                                      \
      .Ret<ffi::Buffer<DT>>().Ret<ffi::Buffer<DT>>().Ret<ffi::Buffer<DT>>()

XLA_FFI_DEFINE_HANDLER_SYMBOL(MfjaxIalsF32, Impl<ffi::F32>, MF_BIND(ffi::F32));
XLA_FFI_DEFINE_HANDLER_SYMBOL(MfjaxIalsF64, Impl<ffi::F64>, MF_BIND(ffi::F64));

#define MF_BIND_CG(DT)                                                               \
  ffi::Ffi::Bind()                                                                   \
      .Arg<ffi::Buffer<DT>>().Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<ffi::S32>>() \
      .Arg<ffi::Buffer<DT>>().Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<DT>>()      \
      .Arg<ffi::Buffer<DT>>()                                                        \
      .Attr<int64_t>("threads").Attr<int64_t>("cg_steps").Attr<int64_t>("observed")  \
      .Ret<ffi::Buffer<DT>>().Ret<ffi::Buffer<DT>>().Ret<ffi::Buffer<DT>>()

XLA_FFI_DEFINE_HANDLER_SYMBOL(MfjaxIalsCgF32, ImplCG<ffi::F32>, MF_BIND_CG(ffi::F32));
XLA_FFI_DEFINE_HANDLER_SYMBOL(MfjaxIalsCgF64, ImplCG<ffi::F64>, MF_BIND_CG(ffi::F64));
