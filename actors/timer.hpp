#pragma once

#include "strata/timer.hpp"
