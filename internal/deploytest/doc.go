// Package deploytest holds slotguard's deployment tests: Redis Sentinel
// failover, Redis Cluster, TLS, ACLs and the worker binary's handling of
// secrets. Each test spawns its own redis-server processes on free loopback
// ports and kills them when it ends; none touches the shared Redis. They skip
// with a reason where redis-server is not installed, and fail instead under
// SLOTGUARD_REQUIRE_REDIS=1. See docs/reliability.md for the figures.
package deploytest
