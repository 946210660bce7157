#pragma once

#include <string>
#include <string_view>
#include <type_traits>

#include <google/protobuf/message.h>

#include "strata/serialization.hpp"

/// @file
/// Protobuf messages as stored values: `protobuf_serializer<Msg>()` for a typed
/// client of a generated message type. Include it only where the application
/// links libprotobuf.
///
/// A value names its message type, so queries and indexes read its fields by
/// name in any process that knows the type: one that links the generated
/// code, or a shard node started with `--protobuf-descriptors FILE`.

namespace strata {

/// Writes and reads `Msg` as protobuf wire bytes (value encoding protobuf).
/// Reading a value of another message type is SERIALIZATION_FAILED.
template <class Msg>
serializer<Msg> protobuf_serializer() {
  static_assert(std::is_base_of_v<google::protobuf::Message, Msg>,
                "protobuf_serializer needs a generated protobuf message type");
  serializer<Msg> s;
  s.encoding = value_encoding::protobuf;
  s.serialize = [](const Msg& x) {
    std::string wire;
    if (!x.SerializeToString(&wire))
      throw codec_error{"protobuf message " + Msg::descriptor()->full_name()
                        + " does not serialize (required fields missing?)"};
    return join_protobuf(Msg::descriptor()->full_name(), wire);
  };
  s.deserialize = [](std::string_view payload) {
    std::string_view type;
    std::string_view wire;
    split_protobuf(payload, type, wire);
    if (type != Msg::descriptor()->full_name())
      throw codec_error{"stored value is a protobuf " + std::string{type} + ", not a "
                        + Msg::descriptor()->full_name()};
    Msg x;
    if (!x.ParseFromArray(wire.data(), static_cast<int>(wire.size())))
      throw codec_error{"stored value is not a valid " + Msg::descriptor()->full_name()};
    return x;
  };
  return s;
}

} // namespace strata
