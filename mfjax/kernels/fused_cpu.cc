// mfjax fused CPU kernel: the loss and gradient of one key-sorted minibatch in one pass.
//
// The same numbers as mfjax.core.blocked_value_and_grad / manual_grad (tested in
// tests/test_fused.py). Rows are sorted by key k (a user, say) and o is the other index.
// For each rating j with weight w_j and each member m (M members of width kk, D = M kk):
//
//   e_jm = mu_m + bk_km + bo_om + <K_k[m], O_o[m]> - r_j,   we_jm = w_j e_jm
//   dK_k[m] += we_jm O_o[m],   dO_o[m] += we_jm K_k[m],   dbk_km += we_jm,   dbo_om += we_jm
//   loss = 1/2 (sum w e^2 + sum_k c_k (reg |K_k|^2 + bias_reg |bk_k|^2) + same for o)
//
// with c the summed weights per row; the penalty's gradient reg c K is added per row.
// The key's row stays in registers/L1 for its whole segment; the other side's rows are
// read once per rating (prefetched a few ratings ahead) and accumulated in a private
// copy per thread, summed at the end in a fixed order (deterministic for a given
// thread count). Out-of-range indices return an error instead of reading out of bounds.
// XLA's own gather/scatter code moves the same rows 3-5 times per rating (profiled in
// benchmarks/RESULTS.md), which is why this exists.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

template <typename T>
struct Problem {
  const T *K, *O, *kb, *ob, *mu, *r, *w;
  const int32_t *keys, *others;
  int64_t nK, nO, R, D, M, kk;
  T reg, breg;
};

struct Partial {
  double sq = 0, pen = 0;
  int64_t bad = -1;  // first row with an out-of-range index or an unsorted key
};

// Rows [lo, hi) (whole key segments). Writes dK/dkb rows of its keys; accumulates the
// other side into acc (rows [dq, db_o, c_o], private to the thread) and dmu.
// DC, KC: compile-time row width and member width (0: use the runtime P.D / P.kk).
template <typename T, int DC, int KC>
void Segment(const Problem<T>& P, int64_t lo, int64_t hi, T* dK, T* dkb, const T* pk, T* acc,
             double* dmu, Partial* out) {
  const int64_t D = DC ? DC : P.D, kk = KC ? KC : P.kk, M = D / kk;
  const int64_t W = D + M, A = D + M + 1;  // packed row widths: [q, b_o] and [dq, db_o, c_o]
  constexpr int kAhead = 8;  // prefetch distance, in ratings
  // Scratch rows, and the sums kept in locals (not behind pointers that may alias the
  // tables) so the compiler keeps them in registers across the rating loop.
  std::vector<T> scratch(3 * D + 2 * M);
  T* __restrict gp = scratch.data();
  T* __restrict prod = gp + D;
  T* __restrict ee = prod + D;
  T* __restrict e = ee + D;
  T* __restrict gb = e + M;
  std::vector<double> mu_sum(M, 0.0);
  double* __restrict musum = mu_sum.data();
  double sq = 0;
  int64_t j = lo;
  // Rows of keys with no ratings in the batch get zero; each thread zeroes the keys
  // between the key before its first row and each of its own keys (no full memset).
  int64_t prev = lo > 0 ? P.keys[lo - 1] : -1;
  while (j < hi) {
    const int32_t u = P.keys[j];
    int64_t end = j;
    while (end < hi && P.keys[end] == u) ++end;
    if (u < 0 || u >= P.nK || u < prev) { out->bad = j; break; }
    if (u > prev + 1) {
      std::memset(dK + (prev + 1) * D, 0, sizeof(T) * (u - prev - 1) * D);
      std::memset(dkb + (prev + 1) * M, 0, sizeof(T) * (u - prev - 1) * M);
    }
    prev = u;
    const T* __restrict p = P.K + u * D;
    const T* bu = P.kb + u * M;
    for (int64_t d = 0; d < D; ++d) gp[d] = T(0);
    for (int64_t m = 0; m < M; ++m) gb[m] = T(0);
    T cnt = 0;
    for (; j < end; ++j) {
      if (j + kAhead < hi) {
        const int32_t ia = P.others[j + kAhead];
        if (ia >= 0 && ia < P.nO) {
          for (int64_t d = 0; d < W; d += 64 / sizeof(T)) __builtin_prefetch(pk + ia * W + d, 0);
          for (int64_t d = 0; d < A; d += 64 / sizeof(T)) __builtin_prefetch(acc + ia * A + d, 1);
        }
      }
      const T wj = P.w[j];
      if (wj == T(0)) continue;
      const int32_t i = P.others[j];
      if (i < 0 || i >= P.nO) { out->bad = j; break; }
      const T* __restrict q = pk + int64_t(i) * W;
      const T* bi = q + D;
      for (int64_t d = 0; d < D; ++d) prod[d] = p[d] * q[d];
      for (int64_t m = 0; m < M; ++m) {
        T s = P.mu[m] + bu[m] + bi[m] - P.r[j];
        for (int64_t t = 0; t < kk; ++t) s += prod[m * kk + t];
        const T we = wj * s;
        sq += double(we) * double(s);
        musum[m] += we;
        gb[m] += we;
        e[m] = we;
        for (int64_t t = 0; t < kk; ++t) ee[m * kk + t] = we;
      }
      T* __restrict dq = acc + int64_t(i) * A;
      for (int64_t d = 0; d < D; ++d) {
        gp[d] += ee[d] * q[d];
        dq[d] += ee[d] * p[d];
      }
      for (int64_t m = 0; m < M; ++m) dq[D + m] += e[m];
      dq[D + M] += wj;
      cnt += wj;
    }
    if (out->bad >= 0) break;
    T* dk = dK + int64_t(u) * D;
    double sp = 0, sb = 0;
    for (int64_t d = 0; d < D; ++d) {
      dk[d] = gp[d] + P.reg * cnt * p[d];
      sp += double(p[d]) * double(p[d]);
    }
    for (int64_t m = 0; m < M; ++m) {
      dkb[int64_t(u) * M + m] = gb[m] + P.breg * cnt * bu[m];
      sb += double(bu[m]) * double(bu[m]);
    }
    out->pen += double(cnt) * (double(P.reg) * sp + double(P.breg) * sb);
  }
  out->sq += sq;
  for (int64_t m = 0; m < M; ++m) dmu[m] += musum[m];
}

template <typename T>
void Dispatch(const Problem<T>& P, int64_t lo, int64_t hi, T* dK, T* dkb, const T* pk, T* acc,
              double* dmu, Partial* out) {
#define MF_CASE(DD, KK)                                                          \
  if (P.D == DD && P.kk == KK) {                                                 \
    Segment<T, DD, KK>(P, lo, hi, dK, dkb, pk, acc, dmu, out);               \
    return;                                                                      \
  }
  MF_CASE(64, 64) MF_CASE(64, 8) MF_CASE(128, 128) MF_CASE(128, 8) MF_CASE(32, 32) MF_CASE(32, 8)
  MF_CASE(16, 16) MF_CASE(16, 8) MF_CASE(8, 8) MF_CASE(256, 256) MF_CASE(256, 16)
#undef MF_CASE
  Segment<T, 0, 0>(P, lo, hi, dK, dkb, pk, acc, dmu, out);
}

template <ffi::DataType DT>
ffi::Error Impl(ffi::Buffer<DT> K, ffi::Buffer<DT> O, ffi::Buffer<DT> kb, ffi::Buffer<DT> ob,
                ffi::Buffer<DT> mu, ffi::Buffer<ffi::S32> keys, ffi::Buffer<ffi::S32> others,
                ffi::Buffer<DT> ratings, ffi::Buffer<DT> weights, double reg, double bias_reg,
                int64_t threads, ffi::ResultBuffer<DT> loss, ffi::ResultBuffer<DT> dK,
                ffi::ResultBuffer<DT> dO, ffi::ResultBuffer<DT> dkb, ffi::ResultBuffer<DT> dob,
                ffi::ResultBuffer<DT> dmu) {
  using T = ffi::NativeType<DT>;
  Problem<T> P;
  P.K = K.typed_data(); P.O = O.typed_data(); P.kb = kb.typed_data(); P.ob = ob.typed_data();
  P.mu = mu.typed_data(); P.r = ratings.typed_data(); P.w = weights.typed_data();
  P.keys = keys.typed_data(); P.others = others.typed_data();
  P.nK = K.dimensions()[0]; P.nO = O.dimensions()[0];
  P.R = keys.element_count();
  P.D = P.nK ? K.element_count() / P.nK : 0;
  P.M = mu.element_count();
  P.kk = P.M ? P.D / P.M : 0;
  P.reg = T(reg); P.breg = T(bias_reg);
  if (others.element_count() != P.R || ratings.element_count() != P.R ||
      weights.element_count() != P.R || P.M < 1 || P.kk < 1 || P.M * P.kk != P.D ||
      kb.element_count() != P.nK * P.M || ob.element_count() != P.nO * P.M ||
      O.element_count() != P.nO * P.D)
    return ffi::Error::InvalidArgument("mfjax_fused: inconsistent shapes (rank must be >= 1)");
  const int64_t nO = P.nO, D = P.D, M = P.M;
  T* dKp = dK->typed_data(); T* dkbp = dkb->typed_data();
  // Split the rows into nt chunks that end at key boundaries.
  int64_t nt = std::max<int64_t>(1, std::min<int64_t>(threads, P.R / 4096 + 1));
  std::vector<int64_t> cut(nt + 1, P.R);
  cut[0] = 0;
  for (int64_t t = 1; t < nt; ++t) {
    int64_t c = std::max(cut[t - 1], P.R * t / nt);
    while (c > 0 && c < P.R && P.keys[c] == P.keys[c - 1]) ++c;
    cut[t] = c;
  }
  // The other side's rows and biases packed into one row each, so a rating touches
  // fewer cache lines; every thread accumulates [dq, db_o, c_o] rows privately.
  T* dOp = dO->typed_data(); T* dobp = dob->typed_data();
  const int64_t W = D + M, A = D + M + 1;
  std::vector<T> pk;
  std::vector<std::vector<T>> pacc;
  std::vector<std::vector<double>> pmu;
  std::vector<Partial> part(nt);
  std::vector<std::thread> pool;
  try {  // allocations and thread starts may throw; no exception may cross the FFI boundary
    pk.resize(nO * W);
    for (int64_t i = 0; i < nO; ++i) {
      std::memcpy(&pk[i * W], P.O + i * D, sizeof(T) * D);
      std::memcpy(&pk[i * W + D], P.ob + i * M, sizeof(T) * M);
    }
    pacc.assign(nt, std::vector<T>(nO * A));
    pmu.assign(nt, std::vector<double>(M));
    auto work = [&](int64_t t) {
      Dispatch<T>(P, cut[t], cut[t + 1], dKp, dkbp, pk.data(), pacc[t].data(), pmu[t].data(),
                  &part[t]);
    };
    for (int64_t t = 1; t < nt; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
  } catch (const std::exception& e) {
    for (auto& th : pool)
      if (th.joinable()) th.join();
    return ffi::Error::Internal(std::string("mfjax_fused: ") + e.what());
  }
  for (int64_t t = 0; t < nt; ++t)
    if (part[t].bad >= 0)
      return ffi::Error::InvalidArgument(
          "mfjax_fused: a user or item index out of range (or keys not sorted) at minibatch row " +
          std::to_string(part[t].bad) + " (indices must be in [0, n_users) / [0, n_items))");
  {
    const int64_t last = P.R ? P.keys[P.R - 1] : -1;  // validated above
    if (last + 1 < P.nK) {
      std::memset(dKp + (last + 1) * D, 0, sizeof(T) * (P.nK - last - 1) * D);
      std::memset(dkbp + (last + 1) * M, 0, sizeof(T) * (P.nK - last - 1) * M);
    }
  }
  for (int64_t t = 1; t < nt; ++t) {
    const T* src = pacc[t].data();
    T* dst = pacc[0].data();
    for (int64_t x = 0; x < nO * A; ++x) dst[x] += src[x];
    for (int64_t m = 0; m < M; ++m) pmu[0][m] += pmu[t][m];
    part[0].sq += part[t].sq; part[0].pen += part[t].pen;
  }
  double pen = part[0].pen;
  const T* Op = P.O; const T* obp = P.ob;
  for (int64_t i = 0; i < nO; ++i) {
    const T* a = &pacc[0][i * A];
    const T c = a[D + M];
    double sp = 0, sb = 0;
    for (int64_t d = 0; d < D; ++d) {
      dOp[i * D + d] = a[d] + P.reg * c * Op[i * D + d];
      sp += double(Op[i * D + d]) * double(Op[i * D + d]);
    }
    for (int64_t m = 0; m < M; ++m) {
      dobp[i * M + m] = a[D + m] + P.breg * c * obp[i * M + m];
      sb += double(obp[i * M + m]) * double(obp[i * M + m]);
    }
    if (c != T(0)) pen += double(c) * (double(P.reg) * sp + double(P.breg) * sb);
  }
  T* dmup = dmu->typed_data();
  for (int64_t m = 0; m < M; ++m) dmup[m] = T(pmu[0][m]);
  loss->typed_data()[0] = T(0.5 * (part[0].sq + pen));
  return ffi::Error::Success();
}

}  // namespace

#define MF_BIND(DT)                                                              \
  ffi::Ffi::Bind()                                                               \
      .Arg<ffi::Buffer<DT>>().Arg<ffi::Buffer<DT>>().Arg<ffi::Buffer<DT>>()      \
      .Arg<ffi::Buffer<DT>>().Arg<ffi::Buffer<DT>>()                             \
      .Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<ffi::S32>>()                 \
      .Arg<ffi::Buffer<DT>>().Arg<ffi::Buffer<DT>>()                             \
      .Attr<double>("reg").Attr<double>("bias_reg").Attr<int64_t>("threads")     \
      .Ret<ffi::Buffer<DT>>().Ret<ffi::Buffer<DT>>().Ret<ffi::Buffer<DT>>()      \
      .Ret<ffi::Buffer<DT>>().Ret<ffi::Buffer<DT>>().Ret<ffi::Buffer<DT>>()

XLA_FFI_DEFINE_HANDLER_SYMBOL(MfjaxFusedF32, Impl<ffi::F32>, MF_BIND(ffi::F32));
XLA_FFI_DEFINE_HANDLER_SYMBOL(MfjaxFusedF64, Impl<ffi::F64>, MF_BIND(ffi::F64));
