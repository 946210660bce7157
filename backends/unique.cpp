#include "backends/unique.hpp"

#include <algorithm>
#include <set>

#include "backends/query_exec.hpp"

namespace strata::unique {

std::string planned_marker(uint64_t n) {
  std::string key{"\0p", 2};
  for (int i = 7; i >= 0; --i)
    key.push_back(static_cast<char>((n >> (i * 8)) & 0xff));
  return key;
}

bool is_planned_marker(std::string_view key) {
  return key.size() == 10 && key[0] == '\0' && key[1] == 'p';
}

std::vector<std::string> keys_written(const std::vector<operation>& ops) {
  std::set<std::string> keys;
  for (auto& op : ops)
    if (op.kind != op_kind::clear)
      keys.insert(op.key);
  return {keys.begin(), keys.end()};
}

std::string duplicate_message(const claim_change& c, const std::string& holder) {
  return "unique index " + c.index + ": document '" + c.owner + "' has the value " + c.shown
         + ", which document '" + holder + "' holds";
}

namespace {

/// A document's claims in every constraint; none if it is not a document.
std::vector<claim_change> claims_of(const std::vector<unique_constraint>& cs,
                                    const std::string& key,
                                    const std::optional<std::string>& value) {
  std::vector<claim_change> result;
  document doc;
  if (!value || !stored_document(*value, doc))
    return result;
  for (auto& c : cs)
    for (auto& claim : unique_claims(c, key, doc))
      result.push_back({std::move(claim.key), key, c.spec.name, std::move(claim.shown)});
  return result;
}

bool holds(const std::vector<claim_change>& xs, const std::string& claim) {
  return std::any_of(xs.begin(), xs.end(), [&](auto& x) { return x.claim == claim; });
}

} // namespace

claim_plan plan(const std::vector<unique_constraint>& constraints,
                const std::vector<operation>& ops,
                const std::map<std::string, std::optional<std::string>>& before) {
  claim_plan result;
  // Each key's value after the write; a clear forgets what came before.
  std::map<std::string, std::optional<std::string>> after;
  for (auto& op : ops) {
    if (op.kind == op_kind::clear) {
      result.cleared = true;
      after.clear();
    } else if (op.kind == op_kind::set) {
      after[op.key] = std::string{reinterpret_cast<const char*>(op.value.data()),
                                  op.value.size()};
    } else {
      after[op.key] = std::nullopt;
    }
  }
  // Who holds each value after the write, among its documents.
  std::map<std::string, const claim_change*> held;
  std::vector<std::vector<claim_change>> now;
  now.reserve(after.size());
  for (auto& [key, value] : after) {
    now.push_back(claims_of(constraints, key, value));
    for (auto& c : now.back()) {
      auto [i, fresh] = held.emplace(c.claim, &c);
      if (!fresh)
        throw storage_error{errc::duplicate_key, duplicate_message(c, i->second->owner)};
    }
  }
  size_t n = 0;
  for (auto& [key, value] : after) {
    auto& is = now[n++];
    std::vector<claim_change> was;
    if (!result.cleared) {
      auto b = before.find(key);
      if (b != before.end())
        was = claims_of(constraints, key, b->second);
    }
    for (auto& c : is)
      if (!holds(was, c.claim))
        result.take.push_back(c);
    for (auto& c : was)
      if (!holds(is, c.claim))
        result.give_up.push_back(std::move(c));
  }
  // A key deleted by a clear and not written after it gives up nothing: the
  // clear removes every claim.
  return result;
}

} // namespace strata::unique
