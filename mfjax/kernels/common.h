// Shared by mfjax's C++ CPU kernels (included from ials_cpu.cc and als_cpu.cc; the
// kernel cache key covers this file, mfjax.kernels.key): the thread pool, the split of
// rows over threads, the first bad index a thread met, and the dense Cholesky solve.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace mfjax {

// The first out-of-range index a thread met: its row, position and value (row -1: none).
struct Bad {
  int64_t row = -1, pos = -1, col = 0;
};

// Cut rows [0, n) into nt contiguous ranges [cut[t], cut[t + 1]) of about equal cost,
// row u costing its entries plus row_cost; offset(u) is the number of entries before
// row u (offset(0) = 0), total the entries plus row_cost * n.
template <typename Offset>
std::vector<int64_t> CutRows(int64_t n, int64_t nt, double row_cost, double total, Offset offset) {
  std::vector<int64_t> cut(nt + 1, n);
  cut[0] = 0;
  int64_t u = 0;
  for (int64_t t = 1; t < nt; ++t) {
    const double want = total * double(t) / double(nt);
    while (u < n && double(offset(u)) + row_cost * double(u) < want) ++u;
    cut[t] = u;
  }
  return cut;
}

// In place: the lower triangle of L [D, D] (row-major, in double) becomes its Cholesky
// factor, L L^T = the input. Right-looking, so the inner loops are contiguous axpys that
// vectorize (a dot-product form is a reduction the compiler may not reorder, i.e. scalar).
// A diagonal that is not positive gives NaN, as potrf's failure does. y: D doubles of
// scratch.
inline void CholeskyFactor(double* __restrict L, int64_t D, double* __restrict y) {
  for (int64_t j = 0; j < D; ++j) {
    const double dj = std::sqrt(L[j * D + j]);  // NaN when not positive definite, as potrf
    L[j * D + j] = dj;
    const double inv = 1.0 / dj;
    for (int64_t i = j + 1; i < D; ++i) y[i] = (L[i * D + j] *= inv);  // column j, packed
    for (int64_t i = j + 1; i < D; ++i) {
      double* __restrict Li = L + i * D;
      const double f = y[i];
      for (int64_t m = j + 1; m <= i; ++m) Li[m] -= f * y[m];
    }
  }
}

// In place: y [D] becomes x with L L^T x = y (L from CholeskyFactor).
inline void CholeskySolve(const double* __restrict L, int64_t D, double* __restrict y) {
  for (int64_t i = 0; i < D; ++i) {  // L z = y, column-oriented (z kept in y)
    const double zi = (y[i] /= L[i * D + i]);
    for (int64_t m = i + 1; m < D; ++m) y[m] -= L[m * D + i] * zi;
  }
  for (int64_t i = D - 1; i >= 0; --i) {  // L^T x = z: row i of L is column i of L^T
    const double xi = (y[i] /= L[i * D + i]);
    const double* __restrict Li = L + i * D;
    for (int64_t m = 0; m < i; ++m) y[m] -= Li[m] * xi;
  }
}

// Factors M (lower triangle in L) and solves M x = y in place (b in y, x out); w [D] is
// scratch. False when a pivot falls below tol * max diag(M) (M is not reliably positive
// definite at the precision it was summed in) or x is not finite.
inline bool CholeskySolveChecked(double* __restrict L, int64_t D, double* __restrict y,
                                 double* __restrict w, double tol) {
  double top = 0;
  for (int64_t j = 0; j < D; ++j) top = std::max(top, L[j * D + j]);
  CholeskyFactor(L, D, w);
  bool ok = true;
  for (int64_t j = 0; j < D; ++j) {
    const double d = L[j * D + j];
    ok = ok && d * d > tol * top;  // false for a NaN pivot too
  }
  CholeskySolve(L, D, y);
  for (int64_t i = 0; i < D; ++i) ok = ok && std::isfinite(y[i]);
  return ok;
}

// Runs f(t) for t in [0, nt) on nt threads (t = 0 on the caller's); joins all.
template <typename F>
void Parallel(int64_t nt, F f) {
  // An exception in any thread (e.g. bad_alloc) is rethrown here after every thread has
  // joined: never std::terminate from a worker or from an unjoined std::thread.
  std::vector<std::exception_ptr> errors(std::max<int64_t>(nt, 1));
  auto run = [&](int64_t t) {
    try {
      f(t);
    } catch (...) {
      errors[t] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  try {
    for (int64_t t = 1; t < nt; ++t) pool.emplace_back(run, t);
  } catch (...) {
    for (auto& th : pool) th.join();
    throw;
  }
  run(0);
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace mfjax
