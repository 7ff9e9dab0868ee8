// Something that follows a file while another thread writes it: the capture pipeline tells it
// how far the file is written, and the snapshot store's StreamingReadback reads each stretch
// back from the device as it goes. This small interface is all the two stages share, so that
// capture/ and store/ never include each other (the operation wires one to the other).
#ifndef FINALSNAP_WRITE_FOLLOWER_H_
#define FINALSNAP_WRITE_FOLLOWER_H_

#include <cstdint>
#include <functional>

namespace finalsnap {

class WriteFollower {
 public:
  virtual ~WriteFollower() = default;
  // Bytes [0, end) of the file have been written (write(2) returned). Called after every write,
  // from the writing thread; must be cheap.
  virtual void Written(uint64_t end) = 0;
  // The file is complete and `size` bytes long.
  virtual void Close(uint64_t size) = 0;
  // The writer failed or was stopped: the follower stops too, without finishing.
  virtual void Abort() = 0;
  // `fn` runs once, on any thread, when the follower has finished (after Close or Abort, or at
  // its own first error). Set before Close.
  virtual void OnDone(std::function<void()> fn) = 0;
};

}  // namespace finalsnap

#endif  // FINALSNAP_WRITE_FOLLOWER_H_
