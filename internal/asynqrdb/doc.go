// Package asynqrdb is everything slotguard knows of asynq's private Redis
// layout and message encoding, pinned to asynq v0.26 by contract_test.go,
// which fails when that layout changes.
//
// It parks a task that a worker holds: moves it from asynq's active list to
// its retry set under the same ID, with a last error that says why, without
// spending a retry ([Park]); gives it back to the worker that parked it
// ([Unpark]); and wakes it, at the head of its queue ([Wake]). A parked
// task is marked by a "slotguard" field in its hash.
//
// [Client] wraps the Redis client of an asynq server: it drops the
// processor's follow-up (its Retry or Archive script) for a task that its
// handler parked, and lets an idle processor wait for a woken task instead
// of sleeping through its task check interval.
package asynqrdb
