// Protobuf values as documents: the message type named in the value is looked
// up among the types compiled into the process, then among those loaded from
// descriptor sets, and its fields are read through reflection.

#include <fstream>
#include <limits>
#include <memory>
#include <shared_mutex>
#include <sstream>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>

#include "strata/serialization.hpp"

namespace strata {

namespace {

namespace pb = google::protobuf;

/// Types loaded from descriptor sets, with the factory for their messages.
struct loaded_types {
  std::shared_mutex mtx;
  pb::DescriptorPool pool;
  pb::DynamicMessageFactory factory{&pool};
};

loaded_types& loaded() {
  static loaded_types instance;
  return instance;
}

document to_doc(const pb::Message& m, size_t depth);

document scalar(const pb::Message& m, const pb::Reflection& r, const pb::FieldDescriptor* f,
                int i, size_t depth) {
  using F = pb::FieldDescriptor;
  auto rep = f->is_repeated();
  switch (f->cpp_type()) {
    case F::CPPTYPE_INT32:
      return document::integer(rep ? r.GetRepeatedInt32(m, f, i) : r.GetInt32(m, f));
    case F::CPPTYPE_INT64:
      return document::integer(rep ? r.GetRepeatedInt64(m, f, i) : r.GetInt64(m, f));
    case F::CPPTYPE_UINT32:
      return document::integer(rep ? r.GetRepeatedUInt32(m, f, i) : r.GetUInt32(m, f));
    case F::CPPTYPE_UINT64: {
      auto x = rep ? r.GetRepeatedUInt64(m, f, i) : r.GetUInt64(m, f);
      if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return document::real(static_cast<double>(x));
      return document::integer(static_cast<int64_t>(x));
    }
    case F::CPPTYPE_DOUBLE:
      return document::real(rep ? r.GetRepeatedDouble(m, f, i) : r.GetDouble(m, f));
    case F::CPPTYPE_FLOAT:
      return document::real(rep ? r.GetRepeatedFloat(m, f, i) : r.GetFloat(m, f));
    case F::CPPTYPE_BOOL:
      return document::boolean(rep ? r.GetRepeatedBool(m, f, i) : r.GetBool(m, f));
    case F::CPPTYPE_ENUM: {
      auto x = rep ? r.GetRepeatedEnumValue(m, f, i) : r.GetEnumValue(m, f);
      if (auto v = f->enum_type()->FindValueByNumber(x))
        return document::string(v->name());
      return document::integer(x);
    }
    case F::CPPTYPE_STRING: {
      auto x = rep ? r.GetRepeatedString(m, f, i) : r.GetString(m, f);
      if (f->type() == F::TYPE_BYTES)
        return document::bytes(document::bytes_type(x.begin(), x.end()));
      return document::string(std::move(x));
    }
    case F::CPPTYPE_MESSAGE:
      return to_doc(rep ? r.GetRepeatedMessage(m, f, i) : r.GetMessage(m, f), depth + 1);
  }
  return document{};
}

document to_doc(const pb::Message& m, size_t depth) {
  if (depth > max_nesting_depth)
    throw codec_error{"protobuf message nests deeper than "
                      + std::to_string(max_nesting_depth) + " levels"};
  auto& r = *m.GetReflection();
  auto* d = m.GetDescriptor();
  auto out = document::object();
  for (int k = 0; k < d->field_count(); ++k) {
    auto* f = d->field(k);
    if (f->is_map()) {
      // A map with string keys reads as an object, so "labels.env" reaches
      // a value; other keys as an array of {key, value}.
      auto n = r.FieldSize(m, f);
      auto* key = f->message_type()->map_key();
      auto* val = f->message_type()->map_value();
      if (key->cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING) {
        auto obj = document::object();
        for (int i = 0; i < n; ++i) {
          auto& entry = r.GetRepeatedMessage(m, f, i);
          auto& er = *entry.GetReflection();
          obj.set(er.GetString(entry, key), scalar(entry, er, val, 0, depth + 1));
        }
        out.set(f->name(), std::move(obj));
        continue;
      }
    }
    if (f->is_repeated()) {
      document::array_type xs;
      for (int i = 0, n = r.FieldSize(m, f); i < n; ++i)
        xs.push_back(scalar(m, r, f, i, depth));
      out.set(f->name(), document::array(std::move(xs)));
    } else if (!f->has_presence() || r.HasField(m, f)) {
      // Like protobuf's JSON with defaults printed: a field without
      // presence always has a value (zero if unset), so queries see it.
      out.set(f->name(), scalar(m, r, f, 0, depth));
    }
  }
  return out;
}

} // namespace

document protobuf_document(std::string_view payload) {
  std::string_view type;
  std::string_view message;
  split_protobuf(payload, type, message);
  std::string name{type};
  auto parse = [&](const pb::Message* prototype) {
    std::unique_ptr<pb::Message> m{prototype->New()};
    if (!m->ParseFromArray(message.data(), static_cast<int>(message.size())))
      throw codec_error{"protobuf payload is not a valid " + name + " message"};
    return to_doc(*m, 0);
  };
  if (auto* d = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(name))
    return parse(pb::MessageFactory::generated_factory()->GetPrototype(d));
  auto& types = loaded();
  std::shared_lock<std::shared_mutex> guard{types.mtx};
  if (auto* d = types.pool.FindMessageTypeByName(name))
    return parse(types.factory.GetPrototype(d));
  throw codec_error{"protobuf message type " + name
                    + " is not known here (not compiled in, nor in a loaded descriptor set)"};
}

void load_protobuf_descriptors(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    throw codec_error{"cannot read protobuf descriptor set " + path};
  std::ostringstream text;
  text << in.rdbuf();
  pb::FileDescriptorSet set;
  if (!set.ParseFromString(text.str()))
    throw codec_error{path + " is not a protobuf FileDescriptorSet "
                      + "(protoc --include_imports --descriptor_set_out=FILE)"};
  auto& types = loaded();
  std::unique_lock<std::shared_mutex> guard{types.mtx};
  for (auto& file : set.file()) {
    if (types.pool.FindFileByName(file.name()) != nullptr)
      continue;
    if (types.pool.BuildFile(file) == nullptr)
      throw codec_error{path + ": " + file.name()
                        + " does not build (are its imports in the set? use --include_imports)"};
  }
}

} // namespace strata
