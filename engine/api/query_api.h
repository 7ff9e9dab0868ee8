// The AWS Query protocol as the aws CLI and the SDKs speak it to ElastiCache: request parameters
// in, XML documents out. No I/O and no knowledge of the actions themselves (api_service.h has
// those, and the ParamRule table that ActionArgs reads an action's parameters by); this is the
// wire format.
//
//   Request:  POST / with a form-encoded body (Content-Type application/x-www-form-urlencoded),
//             or GET /?Action=...&... (the documentation's example URL), or both: parameters
//             from the query string and the body are merged, and a name given twice is refused.
//             "Action" names the action and "Version" must be 2015-02-02. Lists are flattened
//             (Tags.Tag.1.Key); booleans are "true"/"false"; timestamps are ISO 8601.
//   Response: <DeleteCacheClusterResponse xmlns="http://elasticache.amazonaws.com/doc/2015-02-02/">
//               <DeleteCacheClusterResult><CacheCluster>...</CacheCluster></DeleteCacheClusterResult>
//               <ResponseMetadata><RequestId>...</RequestId></ResponseMetadata>
//             </DeleteCacheClusterResponse>
//   Error:    <ErrorResponse
//   xmlns="..."><Error><Type>Sender</Type><Code>CacheClusterNotFound</Code>
//             <Message>...</Message></Error><RequestId>...</RequestId></ErrorResponse>
//             with the HTTP status of the fault (finalsnap/elasticache.h, LookupFault).
//
// Results are built as ordered JSON values holding ElastiCache shapes (finalsnap/elasticache.h)
// and rendered to XML here. A list is written as its member name repeated inside the list's own
// element, the member name being the model's `locationName` (<Snapshots><Snapshot>...),
// because that is what botocore's query parser reads.
#ifndef FINALSNAP_ENGINE_QUERY_API_H_
#define FINALSNAP_ENGINE_QUERY_API_H_

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "finalsnap/elasticache.h"
#include "finalsnap/status.h"
#include "finalsnap/text.h"  // XmlEscape

namespace finalsnap::detail {

inline constexpr std::string_view kApiVersion = "2015-02-02";
inline constexpr std::string_view kXmlNamespace =
    "http://elasticache.amazonaws.com/doc/2015-02-02/";

// A refusal, with the wire code (the model's error code), status and type from LookupFault.
struct ApiError {
  std::string code;
  int http_status = 400;
  bool sender = true;
  std::string message;

  // The fault by code or shape name (LookupFault) with this message.
  static ApiError Of(std::string_view fault, std::string message);
};

// The parameters of one request, by name (case-sensitive, as AWS treats them).
class QueryParams {
 public:
  // Adds the pairs of a form-encoded string ("a=1&b=x+y%21"; '+' is a space). Fails on a bad
  // escape or a name given twice (in this string or an earlier one).
  Expected<void, ApiError> AddForm(std::string_view form);

  bool Has(std::string_view name) const { return values_.find(name) != values_.end(); }
  std::optional<std::string> Get(std::string_view name) const;
  // Reads a parameter, marking it as understood. Required ones fail with MissingParameter;
  // malformed values with InvalidParameterValue naming the parameter. An empty or blank value
  // (IsBlank) is refused for every parameter an action reads, by Required here and for the
  // others by RejectUnknown, which every action calls before it acts.
  Expected<std::string, ApiError> Required(std::string_view name);
  std::optional<std::string> Optional(std::string_view name);
  Expected<std::optional<bool>, ApiError> OptionalBool(std::string_view name);
  Expected<std::optional<int>, ApiError> OptionalInt(std::string_view name, int min, int max);
  Expected<std::optional<std::chrono::system_clock::time_point>, ApiError> OptionalTime(
      std::string_view name);
  // Marks names as understood without reading them (the protocol's own: Action, Version, the
  // signature parameters).
  void Accept(std::string_view name) {
    understood_.insert(std::string(name));
    protocol_.insert(std::string(name));
  }

  // The first parameter nobody read or accepted, as InvalidParameterValue ("Unknown parameter
  // FinalSnapshotIdentifer"): a typo must never silently drop a setting (a delete without the
  // final snapshot that was meant). Then the first parameter read with a blank value, also
  // InvalidParameterValue: an empty FinalSnapshotIdentifier, CacheClusterId or Marker names
  // nothing, and must not be taken as "none" or "all".
  Expected<void, ApiError> RejectUnknown() const;

  const std::map<std::string, std::string, std::less<>>& values() const { return values_; }

 private:
  std::map<std::string, std::string, std::less<>> values_;
  std::set<std::string, std::less<>> understood_;
  std::set<std::string, std::less<>> protocol_;  // Accept()ed: checked by the protocol itself
};

// Marks the Query protocol's own parameters (Action, Version, X-Amz-*, SignatureVersion,
// SignatureMethod, Timestamp) as understood.
void AcceptProtocolParams(QueryParams& params);

// One parameter an action takes, as a row of the action table (api_service.cc).
struct ParamRule {
  enum class Kind {
    kString,
    kBool,  // "true" / "false"
    kInt,   // from min to max
    kTime,  // ISO 8601
    // A model parameter finalsnap does not implement: giving it is refused with `refusal`
    // rather than with "Unknown parameter". A name ending in '.' covers every parameter of
    // that prefix (the members of a flattened list: "Tags." for Tags.Tag.1.Key).
    kUnsupported,
  };
  std::string_view name;
  Kind kind = Kind::kString;
  bool required = false;  // kString only: MissingParameter when absent
  int min = 0;            // kInt
  int max = 0;
  std::string_view refusal = {};  // kUnsupported
};

// An action's parameters, read by its rules: typed, checked, every other parameter refused.
class ActionArgs {
 public:
  using Value = std::variant<std::string, bool, int, std::chrono::system_clock::time_point>;

  // Reads `rules` in order (QueryParams::Required, Optional, OptionalBool, ...), then
  // RejectUnknown: the first error found is returned, in that order.
  static Expected<ActionArgs, ApiError> Read(QueryParams& params, std::span<const ParamRule> rules);

  // The value of a parameter that was given, as its rule's type: kString std::string, kBool
  // bool, kInt int, kTime time_point. Asking for another type is a bug in the action table and
  // throws (std::bad_variant_access; the service answers InternalFailure).
  template <typename T>
  std::optional<T> Get(std::string_view name) const {
    auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return std::get<T>(it->second);
  }
  // A required parameter's value.
  const std::string& Required(std::string_view name) const {
    return std::get<std::string>(values_.at(std::string(name)));
  }

 private:
  std::map<std::string, Value, std::less<>> values_;
};

// The success document for `action` holding `result` (an object of the output shape's members).
std::string RenderResponse(std::string_view action, const ModelJson& result,
                           std::string_view request_id);
// The error document.
std::string RenderError(const ApiError& error, std::string_view request_id);

// "2015-02-02T19:23:17.000Z".
std::string IsoTimestamp(std::chrono::system_clock::time_point time);
// ISO 8601 as botocore sends timestamps ("2015-02-02T19:23:17Z", "...17.123456Z", "+00:00"
// offsets, or a date alone); nullopt otherwise.
std::optional<std::chrono::system_clock::time_point> ParseIsoTimestamp(std::string_view text);

// A random request id in the form AWS uses (8-4-4-4-12 lower-case hex).
std::string NewRequestId();

// One page of `items` (already sorted by `key`): the items whose key is >= `marker` (all when
// empty), at most `max_records`, and the marker of the next page (the key of the first item
// left out), empty on the last page.
template <typename T, typename KeyFn>
std::pair<std::vector<T>, std::string> Page(const std::vector<T>& items, KeyFn key,
                                            const std::string& marker, size_t max_records) {
  std::vector<T> page;
  std::string next;
  for (const T& item : items) {
    const std::string k = key(item);
    if (!marker.empty() && k < marker) continue;
    if (page.size() == max_records) {
      next = k;
      break;
    }
    page.push_back(item);
  }
  return {std::move(page), std::move(next)};
}

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_QUERY_API_H_
