// The small text helpers every part of finalsnap shares, one copy of each: ASCII case folding
// and comparison (ids, header names, config keys), blank values, fixed-width hex (CRC-64s).
// ASCII only, whatever the locale: these compare protocol text, not prose.
#ifndef FINALSNAP_TEXT_H_
#define FINALSNAP_TEXT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace finalsnap {

char AsciiLower(char c);
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
std::string Lower(std::string_view s);
std::string Upper(std::string_view s);

// A value that names nothing: empty or ASCII whitespace only. Both front ends refuse such a
// value for every parameter or option given (InvalidParameterValue): giving one means "I want
// this", so `FinalSnapshotIdentifier=` must never read as "no final snapshot".
bool IsBlank(std::string_view value);

// 16 lower-case hex digits, zero-padded: how CRC-64s are written in manifests and output.
std::string Hex64(uint64_t value);
// Redis Cluster slot ranges (inclusive) as "0-5460,10923-16383", a single slot as "5": the form
// of the manifest, of NodeGroup Slots and of CLUSTER NODES.
std::string SlotRangesText(const std::vector<std::pair<int, int>>& ranges);
// XML 1.0 text: escapes & < > " ', replaces characters XML cannot carry (controls, invalid
// UTF-8) with U+FFFD. For the API's answers and the S3 requests' bodies.
std::string XmlEscape(std::string_view text);
// The pieces of `s` between each `sep`, empty ones included: "a,,b" -> {"a", "", "b"}; "" -> {""}.
std::vector<std::string_view> SplitView(std::string_view s, char sep);

}  // namespace finalsnap

#endif  // FINALSNAP_TEXT_H_
