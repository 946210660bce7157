#pragma once

// Crash points for recovery tests. Builds configured with
// -DSTRATA_FAULT_INJECTION=ON (the test build) compile them in; every other
// build compiles them to nothing.
//
// At run time, STRATA_CRASH_AT=<name>:<n> makes the process kill itself with
// SIGKILL the n-th time it passes point <name>, so that a test can stop a
// store exactly between two steps of the commit protocol.
// STRATA_STOP_AT=<name>:<n> makes it stop itself with SIGSTOP instead: a
// process that hangs there until the test sends SIGCONT.
//
// Throw points make the actor passing them fail with an exception, as a bug
// would: a test arms one with `fault::arm_throw(name, n)` (or
// STRATA_THROW_AT=<name>:<n> in a child process) and the next n passes throw.

#ifdef STRATA_FAULT_INJECTION

namespace strata::fault {

/// Kills (STRATA_CRASH_AT) or stops (STRATA_STOP_AT) the process if the
/// variable names this point and its count is reached.
void point(const char* name);

/// Arms crash point `name` for its `n`-th pass from now, as STRATA_CRASH_AT
/// would: for a process that forks and arms itself before it starts threads.
void arm_crash(const char* name, long n);

/// Throws std::runtime_error if `name` is armed and has passes left.
void throw_point(const char* name);

/// True if `name` is armed and has passes left (a fail point: the code
/// passing it fails the way it would on an I/O error).
bool fires(const char* name);
/// Makes the next `n` passes of throw or fail point `name` throw or fail (0
/// disarms).
void arm_throw(const char* name, long n);

/// Arms `name` for `n` passes while it lives, then disarms it, also when a
/// test fails half-way.
class scoped_arm {
public:
  scoped_arm(const char* name, long n) : name_(name) {
    arm_throw(name, n);
  }
  ~scoped_arm() {
    arm_throw(name_, 0);
  }
  scoped_arm(const scoped_arm&) = delete;
  scoped_arm& operator=(const scoped_arm&) = delete;

private:
  const char* name_;
};

} // namespace strata::fault

#define STRATA_FAULT_POINT(name) ::strata::fault::point(name)
#define STRATA_THROW_POINT(name) ::strata::fault::throw_point(name)
#define STRATA_FAIL_POINT(name) ::strata::fault::fires(name)

#else

#define STRATA_FAULT_POINT(name) ((void) 0)
#define STRATA_THROW_POINT(name) ((void) 0)
#define STRATA_FAIL_POINT(name) false

#endif
