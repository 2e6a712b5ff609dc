// Shared by mfjax's C++ CPU kernels (included from ials_cpu.cc and als_cpu.cc; the
// kernel cache key covers this file, mfjax.kernels.key).
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace mfjax {

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
