// A gate's verdict: one named check of an operation, with what it found. The operation records
// each as it is reached (its result, its event stream) and the manifest keeps them
// (DESIGN.md, "Gates").
#ifndef FINALSNAP_GATE_H_
#define FINALSNAP_GATE_H_

#include <string>

namespace finalsnap {

struct GateVerdict {
  std::string gate;   // "durable", "readback", ... (DESIGN.md, "Gates")
  std::string phase;  // "preflight", "quiesce", "capture", "store", "destroy"
  bool passed = false;
  std::string evidence;  // what was checked and what was found, in one line
  std::string node;      // "host:port" for a per-node gate, else empty
  double at_ms = 0;      // when the verdict was reached, in ms since the operation began

  friend bool operator==(const GateVerdict&, const GateVerdict&) = default;
};

}  // namespace finalsnap

#endif  // FINALSNAP_GATE_H_
