// Package handlers holds cmd/worker's built-in task handlers: http calls a
// third-party API with the payload, command runs a program with the payload
// on stdin, and sleep waits (for demos and tests).
//
// A handler returns nil on success, an error wrapping [asynq.SkipRetry] for a
// failure that a retry cannot fix, a [*BusyError] when the remote side asked
// to be called later (the worker requeues such a task without spending a
// retry), and any other error for a failure that asynq retries.
package handlers
