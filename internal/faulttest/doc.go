// Package faulttest holds slotguard's fault tests (issue 8): cmd/worker
// processes SIGKILLed at random, Redis killed and restarted with and without
// persistence, and Redis reached through a proxy that adds latency, stalls
// and cuts connections. Each test spawns its own redis-server and runs the
// worker binary, built in TestMain, as subprocesses. It has no non-test code;
// docs/reliability.md records the figures.
package faulttest
