#pragma once

// Everything a CAF application needs to embed or reach a strata store.
#include "strata/actors.hpp"
#include "strata/client.hpp"
#include "strata/codec.hpp"
#include "strata/document.hpp"
#include "strata/envelope.hpp"
#include "strata/error.hpp"
#include "strata/events.hpp"
#include "strata/fwd.hpp"
#include "strata/messages/announce.hpp"
#include "strata/messages/atoms.hpp"
#include "strata/messages/wire.hpp"
#include "strata/options.hpp"
#include "strata/routing.hpp"
#include "strata/store.hpp"
#include "strata/system.hpp"
