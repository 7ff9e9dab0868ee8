// target-claimed (preflight): one operation per target, fleet-wide. Two finalsnap processes, on
// one host or two, with one storage or two, must never operate on the same node at once: each
// names its command connection to every member `finalsnap:<operation id>` (CLIENT SETNAME), and
// then looks at every member's CLIENT LIST for a client of another name starting `finalsnap:`.
// The claim lives as long as the connection: it goes when the operation ends or its process
// dies, and a re-opened connection carries it again (NodeClient::set_name).
//
// Why two operations can never both pass. Each sets its name on every member before it looks
// at any, and one server runs its commands one at a time. Say A and B both passed, and N is a
// member they share. A's CLIENT LIST on N did not show B, so B's CLIENT SETNAME on N ran after
// it; and A's CLIENT LIST on N ran after A's own CLIENT SETNAME on N. So on N: A names itself,
// then A looks, then B names itself, then B looks, and B's look shows A's name (A's connection
// is still open: A is still operating). B refuses: a contradiction. When both name themselves
// before either looks, both see the other and both refuse; a retry then finds the target free.
//
// Runs after the permissions gate (which checked CLIENT SETNAME and CLIENT LIST) and before
// anything changes on a node: the pause and CONFIG SET come in quiesce. A dry run only looks.
#include <random>

#include "finalsnap/text.h"
#include "operation.h"

namespace finalsnap::ops {

using detail::NoPermText;

namespace {

constexpr std::string_view kClaimPrefix = "finalsnap:";

// Named, and by value: GCC 12 mishandles temporaries passed to a coroutine inside co_await.
Task<CommandOutcome> Send(NodeClient* client, std::vector<std::string> argv) {
  CommandOutcome r = co_await client->Command(std::move(argv));
  co_return r;
}

}  // namespace

Task<Verdict> Operation::ClaimTarget() {
  if (claim_name_.empty()) {
    std::random_device device;
    claim_name_ = std::string(kClaimPrefix) +
                  Hex64((static_cast<uint64_t>(device()) << 32) ^ static_cast<uint64_t>(device()));
  }
  const std::string user = target_.settings().username;
  std::vector<GroupNode*> members;
  for (const auto& n : topology_.nodes) members.push_back(n.get());

  // 1. Name every member first, all at once.
  if (!options_.dry_run) {
    std::vector<Task<CommandOutcome>> naming;
    for (GroupNode* n : members) {
      naming.push_back(Send(n->client.get(), detail::Argv("CLIENT", "SETNAME", claim_name_)));
    }
    detail::WhenAll<CommandOutcome> named_all(std::move(naming));
    std::vector<CommandOutcome> named = co_await named_all;
    for (size_t i = 0; i < members.size(); ++i) {
      const std::string where = members[i]->address.ToString();
      if (named[i].denied()) {
        co_return RefuseGate(
            "permissions", target_.StateFault(),
            NoPermText(user, detail::Argv("CLIENT", "SETNAME"), where, named[i].reply.str) +
                ", needed to claim the node; nothing was changed on any node",
            "", where);
      }
      if (!named[i].ok()) {
        co_return Refuse(target_.StateFault(),
                         "could not claim " + where + " (CLIENT SETNAME): " + named[i].Error(), "",
                         where);
      }
      members[i]->client->set_name(claim_name_);
    }
  }

  // 2. Then look at every member for another operation's claim.
  std::vector<Task<CommandOutcome>> listing;
  for (GroupNode* n : members) {
    listing.push_back(Send(n->client.get(), n->facts.AtLeast(5, 0)
                                                ? detail::Argv("CLIENT", "LIST", "TYPE", "normal")
                                                : detail::Argv("CLIENT", "LIST")));
  }
  detail::WhenAll<CommandOutcome> listed_all(std::move(listing));
  std::vector<CommandOutcome> listed = co_await listed_all;
  std::vector<std::string> others;
  for (size_t i = 0; i < members.size(); ++i) {
    const std::string where = members[i]->address.ToString();
    if (listed[i].denied()) {
      co_return RefuseGate(
          "permissions", target_.StateFault(),
          NoPermText(user, detail::Argv("CLIENT", "LIST"), where, listed[i].reply.str) +
              ", needed to see whether another operation claimed the node; "
              "nothing was changed on any node",
          "", where);
    }
    if (!listed[i].ok()) {
      co_return Refuse(
          target_.StateFault(),
          "could not read the clients of " + where + " (CLIENT LIST): " + listed[i].Error(), "",
          where);
    }
    for (const auto& client : detail::ParseClientList(listed[i].reply.str)) {
      auto name = client.find("name");
      if (name == client.end() || name->second.rfind(kClaimPrefix, 0) != 0 ||
          name->second == claim_name_) {
        continue;
      }
      auto addr = client.find("addr");
      others.push_back(name->second + " (client " +
                       (addr == client.end() ? std::string("?") : addr->second) + ") holds " +
                       where);
    }
  }
  if (!others.empty()) {
    std::string list;
    for (const std::string& o : others) list += (list.empty() ? "" : "; ") + o;
    co_return Refuse(target_.StateFault(),
                     target_.Noun() + " is the target of another finalsnap operation: " + list +
                         "; one operation per target at a time, nothing was changed on any node",
                     list);
  }
  Pass(options_.dry_run
           ? "no other finalsnap operation claims any of " + std::to_string(members.size()) +
                 " node(s) (CLIENT LIST; a dry run claims nothing)"
           : "claimed as " + claim_name_ + " on " + std::to_string(members.size()) +
                 " node(s) (CLIENT SETNAME), none claimed by another operation (CLIENT LIST)");
  co_return std::nullopt;
}

}  // namespace finalsnap::ops
