// Package limiter is a distributed, lease-based, fair counting semaphore
// kept in Redis.
//
// A [Semaphore] caps how many holders, in any number of processes and
// machines, hold its slots at once. It improves on a counter in one key in
// five ways:
//
//   - Leases. Every permit has a lease measured with Redis server time
//     (TIME inside Lua). A [Permit] renews its lease while it is held; a
//     holder that dies gives its slot back at most one lease later.
//   - Fencing tokens. Every grant carries a number strictly greater than
//     any issued before for that semaphore ([Permit.Fence]).
//   - FIFO fairness. Waiters are served in arrival order across processes,
//     and a large waiter at the head is never overtaken by small ones.
//   - Waking without polling. Grants are made by the script that frees the
//     slot and published on one Pub/Sub channel that each process
//     subscribes to once; polling remains only as a safety net.
//   - Runtime limits. The limit lives in Redis; [Semaphore.SetLimit]
//     changes it for every process at once.
//
// Every key of one semaphore shares a hash tag, so it works on Redis
// Cluster as well as on a single server, a Sentinel failover client and
// miniredis.
//
// Timeouts: go-redis honours a context's deadline on the socket only when
// the client's ContextTimeoutEnabled option is set. Without it, an acquire
// timeout cannot cut short a call to a stalled server, which then waits for
// the client's ReadTimeout (3 s by default). Set it for clients you give to
// this package.
package limiter
