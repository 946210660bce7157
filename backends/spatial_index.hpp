#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/engine.hpp"
#include "backends/query.hpp"
#include "backends/text_index.hpp"

/// @file
/// The entries of spatial indexes and searching them. A spatial index holds
/// 2-D points `[x, y]` with both coordinates in [-180, 180] (longitude and
/// latitude fit, as in MongoDB's 2d index). Each point is quantized to 32
/// bits per axis and the bits interleaved into a Z-order (Morton) code, so
/// that points near each other mostly lie near each other in key order:
///
///     CODE (u64 BE) KEY LEN  ->  x, y (two doubles)
///
/// A box becomes at most 16 code ranges (quadtree cells inside it, or on
/// its edge, which are then filtered by the stored coordinates, so no
/// document is read to decide); a radius is its bounding box filtered by
/// distance; the k nearest come from a radius grown until it holds k.

namespace strata::spatial_index {

constexpr double min_coord = -180;
constexpr double max_coord = 180;

struct point {
  double x = 0;
  double y = 0;
};

/// The entry of the point at `path` in `doc` (none without one). INVALID_VALUE
/// (storage_error) for a point outside the bounds.
std::vector<text_index::entry> entries(const std::string& prefix, const field_path& path,
                                       std::string_view suffix, const document& doc,
                                       const std::string& index_name);

/// A document the search found: its entry suffix (KEY LEN), point and
/// distance from the search's center (0 for a box).
struct hit {
  std::string suffix;
  point at;
  double distance = 0;
};

/// The points in the box [lo, hi] (edges included). `examined` counts the
/// entries read.
std::vector<hit> within_box(const engine_snapshot& snap, const std::string& prefix, point lo,
                            point hi, uint64_t& examined);

/// The points at most `radius` from `center`, with their distances.
std::vector<hit> within_radius(const engine_snapshot& snap, const std::string& prefix,
                               point center, double radius, uint64_t& examined);

} // namespace strata::spatial_index
