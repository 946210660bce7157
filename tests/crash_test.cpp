// Crash recovery of transactions: a child process running a durable store
// with concurrent bank transfers is killed with SIGKILL, at random moments
// and (in builds with fault points) at each step of the commit protocol.
// After every restart: no transaction stays in doubt, the bank's invariant
// holds, and every acknowledged transfer is there.

#include <catch2/catch.hpp>

#include <csignal>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/data_dir.hpp"
#include "backends/shard_core.hpp"
#include "strata/client.hpp"
#include "strata/envelope.hpp"
#include "strata/events.hpp"
#include "tests/bank.hpp"
#include "tests/child.hpp"
#include "tests/fixture.hpp"
#include "tests/process.hpp"

using namespace strata;
using namespace strata::test;

namespace {

/// The "ok" lines of a child's output: its acknowledged transfers.
std::set<std::string> acked(const std::string& out, int* failures = nullptr) {
  std::set<std::string> result;
  std::istringstream in{out};
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("ok ", 0) == 0)
      result.insert(line.substr(3));
    else if (line.rfind("failed ", 0) == 0 && failures)
      ++*failures;
  }
  return result;
}

store_options bank_options(const std::string& dir) {
  store_options o;
  o.data_dir = dir;
  o.shards = 4;
  o.map_size = 64 << 20;
  o.log_level = "error";
  return o;
}

/// Transactions in doubt on the shards of `dir` (a closed store).
size_t in_doubt(const std::string& dir) {
  size_t n = 0;
  for (uint32_t i = 0; i < 4; ++i) {
    shard_core_options so;
    so.dir = shard_dir(dir, i);
    so.shard = i;
    so.shard_count = 4;
    so.store_id = "strata";
    so.map_size = 64 << 20;
    shard_core s{so};
    n += s.in_doubt().size();
  }
  return n;
}

/// Restarts the store in this process (recovery runs while it opens) and
/// checks it against the acknowledged transfers.
void check_recovered(const std::string& dir, const std::set<std::string>& ok) {
  {
    fixture f;
    f.open(bank_options(dir));
    blocking_store<int64_t> db{f.sys(), f.store};
    auto s = bank::read_all(db);
    CHECK(bank::check(s) == "");
    size_t missing = 0;
    for (auto& k : ok)
      missing += s.markers.count(k) == 0;
    CHECK(missing == 0);
  }
  // Closed: no shard holds a transaction in doubt.
  CHECK(in_doubt(dir) == 0);
}

/// Starts `program` ARGS from bin_dir() with its output in `out` (and its
/// errors appended to `err`); its pid.
pid_t start_child(const std::string& program, const std::vector<std::string>& args,
                  const std::string& out, const std::string& err) {
  int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  std::vector<std::string> argv{bin_dir() + "/" + program};
  argv.insert(argv.end(), args.begin(), args.end());
  auto pid = strata::test::detail::spawn(argv, out_fd, err_fd);
  ::close(out_fd);
  ::close(err_fd);
  return pid;
}

void create_bank(const std::string& dir) {
  fixture f;
  f.open(bank_options(dir));
  blocking_store<int64_t> db{f.sys(), f.store};
  REQUIRE(!bank::open_accounts(db));
}

} // namespace

TEST_CASE("killed at random moments, the store recovers every acknowledged transfer") {
  temp_dir dir;
  auto data = dir / "data";
  create_bank(data);
  std::mt19937 rng{11};
  size_t total_acked = 0;
  for (int round = 0; round < 4; ++round) {
    INFO("round " << round);
    auto out_path = dir / ("out" + std::to_string(round));
    auto pid = start_child("bank_child", {data, "8", "100000"}, out_path, dir / "err");
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 700));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    int failures = 0;
    auto ok = acked(slurp(out_path), &failures);
    CHECK(failures == 0);
    total_acked += ok.size();
    check_recovered(data, ok);
  }
  CHECK(total_acked > 0);
}

TEST_CASE("killed between commit and delivery: resuming delivers every acknowledged change "
          "exactly once") {
  temp_dir dir;
  auto data = dir / "data";
  std::mt19937 rng{23};
  std::string token; // where the store's log ends before the first round
  {
    fixture f;
    f.open(strata::test::child_store(data));
    auto now = observer<std::string>{f.sys(), f.store}.changes("");
    REQUIRE(now);
    token = now->second;
  }
  std::set<std::string> acked;
  std::map<std::string, int> delivered; // key -> times
  // The commits handled so far: the next round resumes after them.
  auto advance = [](resume_token& t, uint32_t shard, uint64_t seq) {
    if (shard < t.positions.size())
      t.positions[shard] = std::max(t.positions[shard], seq);
  };
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    auto out_path = dir / ("events" + std::to_string(round));
    std::vector<std::string> args{data, std::to_string(round), token};
    auto pid = start_child("events_child", args, out_path, dir / "err");
    std::this_thread::sleep_for(std::chrono::milliseconds(400 + rng() % 800));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    std::istringstream lines{slurp(out_path)};
    std::optional<resume_token> pos = resume_token::parse(token);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words{line};
      std::string what, key;
      words >> what;
      if (what == "ack") {
        words >> key;
        acked.insert(key);
      } else if (what == "got") {
        uint32_t shard = 0;
        uint64_t seq = 0;
        if (!(words >> key >> shard >> seq))
          continue; // cut by the kill: not handled
        ++delivered[key];
        REQUIRE(pos);
        advance(*pos, shard, seq);
      } else {
        INFO(line);
        CHECK(what.empty());
      }
    }
    REQUIRE(pos);
    token = pos->to_string();
  }
  // The rest, from the last position, in this process.
  fixture f;
  f.open(strata::test::child_store(data));
  observer<std::string> events{f.sys(), f.store};
  std::mutex mtx;
  watch_options o;
  o.from = token;
  auto sub = events.watch(o, [&](const typed_change<std::string>& c) {
    std::lock_guard<std::mutex> guard{mtx};
    ++delivered[c.key];
  });
  REQUIRE(sub);
  auto all_in = [&] {
    std::lock_guard<std::mutex> guard{mtx};
    for (auto& k : acked)
      if (delivered.count(k) == 0)
        return false;
    return true;
  };
  for (int i = 0; i < 2000 && !all_in(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  sub->stop();
  CHECK(acked.size() > 0);
  std::lock_guard<std::mutex> guard{mtx};
  for (auto& k : acked) {
    INFO(k);
    CHECK(delivered.count(k) == 1);
  }
  for (auto& [k, n] : delivered) {
    INFO(k);
    CHECK(n == 1); // never twice, whatever the kills interrupted
  }
}

TEST_CASE("killed at random moments: a unique index and the data still agree") {
  temp_dir dir;
  auto data = dir / "data";
  std::mt19937 rng{5};
  std::map<std::string, std::string> state; // acknowledged: key -> email ("" none)
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    auto out_path = dir / ("unique" + std::to_string(round));
    auto pid = start_child("unique_child", {data, "6", "100000"}, out_path, dir / "err");
    for (int i = 0; i < 1000 && slurp(out_path).find("ready") == std::string::npos; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + rng() % 600));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    // Per client, the write in flight at the kill (its key may hold either).
    std::map<std::string, std::string> pending;
    std::istringstream in{slurp(out_path)};
    std::string line;
    int failures = 0;
    size_t acked = 0;
    while (std::getline(in, line)) {
      std::istringstream words{line};
      std::string what, key, email;
      words >> what >> key;
      auto client = key.substr(0, key.find('-'));
      if (what == "try") {
        pending[client] = key;
      } else if (what == "ok") { // "ok set KEY EMAIL" or "ok del KEY"
        std::string written;
        words >> written >> email;
        state[written] = key == "set" ? email : std::string{};
        pending.erase(written.substr(0, written.find('-')));
        ++acked;
      } else if (what == "dup") {
        pending.erase(client);
      } else if (what == "failed") {
        ++failures;
      }
    }
    CHECK(failures == 0);
    CHECK(acked > 0);
    fixture f;
    f.open(bank_options(data));
    scan_request all;
    all.limit = 10000;
    auto page = f.ask<scan_page>(f.store, atom::scan_v, all);
    REQUIRE(page);
    std::map<std::string, std::string> stored;
    std::map<std::string, std::string> holder;
    for (auto& e : page->entries) {
      auto d = decode_doc(e.value.data(), e.value.size());
      auto email = d.get("email")->as_string();
      stored[e.key] = email;
      CHECK(holder.emplace(email, e.key).second); // never two holders
    }
    std::set<std::string> in_flight;
    for (auto& [client, key] : pending)
      in_flight.insert(key);
    for (auto& [key, email] : state)
      if (in_flight.count(key) == 0) {
        INFO(key);
        CHECK((stored.count(key) ? stored[key] : std::string{}) == email);
      }
    for (auto& key : in_flight)
      state[key] = stored.count(key) ? stored[key] : std::string{};
    // The claims are exactly the data: a held value is refused naming its
    // holder, a free one is taken.
    for (int i = 0; i < 40; ++i) {
      auto email = "e" + std::to_string(i);
      auto d = document::object();
      d.set("email", document::string(email));
      auto err = f.ask_void(f.store, atom::set_v, std::string{"probe"}, encode_doc(d));
      if (holder.count(email)) {
        REQUIRE(err);
        CHECK(code_of(err) == errc::duplicate_key);
        CHECK_THAT(render(err), Catch::Contains("'" + holder[email] + "' holds"));
      } else {
        CHECK_FALSE(err);
        REQUIRE(f.ask<bool>(f.store, atom::del_v, std::string{"probe"}));
      }
    }
  }
}

#ifdef STRATA_FAULT_INJECTION

TEST_CASE("killed at each step of two-phase commit, the store recovers") {
  auto row = GENERATE(table<std::string, int>({
    {"shard.before_prepare", 3},
    {"shard.before_prepare", 40},
    {"shard.after_prepare", 3},
    {"shard.after_prepare", 40},
    {"coordinator.after_decision", 2},
    {"coordinator.after_decision", 30},
    {"coordinator.during_apply", 2},
    {"coordinator.during_apply", 30},
    {"shard.after_outcome", 3},
    {"shard.after_outcome", 40},
  }));
  auto point = std::get<0>(row);
  auto hit = std::get<1>(row);
  INFO(point << " #" << hit);
  temp_dir dir;
  auto data = dir / "data";
  create_bank(data);
  auto spec = point + ":" + std::to_string(hit);
  ::setenv("STRATA_CRASH_AT", spec.c_str(), 1);
  auto r = run("bank_child", {data, "8", "400"}, dir.path());
  ::unsetenv("STRATA_CRASH_AT");
  CHECK(r.code == 128 + SIGKILL); // the fault point fired
  int failures = 0;
  auto ok = acked(r.out, &failures);
  CHECK(failures == 0);
  // Killed between a durable prepare and its outcome, shards hold
  // transactions in doubt: recovery must settle them.
  auto doubt = in_doubt(data);
  if (point == "shard.after_prepare" || point == "coordinator.after_decision")
    CHECK(doubt > 0);
  check_recovered(data, ok);
  // And the store goes on working after recovery.
  auto again = run("bank_child", {data, "2", "20"}, dir.path());
  CHECK(again.code == 0);
  check_recovered(data, acked(again.out));
}

#endif
