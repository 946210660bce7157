#pragma once

// Crash points for recovery tests. Builds configured with
// -DSTRATA_FAULT_INJECTION=ON (the test build) compile them in; every other
// build compiles them to nothing.
//
// At run time, STRATA_CRASH_AT=<name>:<n> makes the process kill itself with
// SIGKILL the n-th time it passes point <name>, so that a test can stop a
// store exactly between two steps of the commit protocol.

#ifdef STRATA_FAULT_INJECTION

namespace strata::fault {

/// Kills the process if STRATA_CRASH_AT names this point and its count is
/// reached.
void point(const char* name);

} // namespace strata::fault

#define STRATA_FAULT_POINT(name) ::strata::fault::point(name)

#else

#define STRATA_FAULT_POINT(name) ((void) 0)

#endif
