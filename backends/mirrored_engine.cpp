#include "backends/mirrored_engine.hpp"

#include <algorithm>

namespace strata {

mirrored_engine::mirrored_engine(engine_options opts, std::string name, uint64_t max_bytes)
  : opts_(std::move(opts)), name_(std::move(name)), max_bytes_(max_bytes) {
}

mirrored_engine::~mirrored_engine() = default;

uint64_t mirrored_engine::capacity() const {
  return std::min(opts_.map_size, max_bytes_);
}

std::unique_ptr<memory_engine>
mirrored_engine::filled(std::array<std::vector<operation>, keyspace_count> sets,
                        const std::string& where) const {
  engine_options mo;
  mo.dir = opts_.dir;
  mo.engine = engine_kind::memory;
  mo.map_size = capacity();
  auto mem = std::make_unique<memory_engine>(mo);
  engine_batch batch;
  for (size_t s = 0; s < keyspace_count; ++s)
    if (!sets[s].empty())
      batch.parts.push_back({static_cast<keyspace>(s), &sets[s]});
  if (!batch.parts.empty()) {
    auto res = mem->apply({batch}, false);
    if (res.code != errc::none)
      throw storage_error{res.code, where + ": " + res.message};
  }
  return mem;
}

apply_result mirrored_engine::apply(const std::vector<engine_batch>& group, bool sync) {
  if (!broken_.empty()) {
    apply_result out;
    out.code = errc::transaction_aborted;
    out.message = broken_;
    return out;
  }
  if (group.empty())
    return mem_->apply(group, sync);
  auto home = persist(group, sync);
  if (home.code != errc::none)
    return home;
  auto res = mem_->apply(group, sync);
  if (res.code != errc::none) {
    // Home, not here: a reopen loads it.
    broken_ = res.message + "; the " + name_ + " engine must be reopened";
    res.logged = true;
  }
  return res;
}

engine_info mirrored_engine::info() const {
  auto result = mem_->info();
  result.map_size = capacity();
  return result;
}

} // namespace strata
