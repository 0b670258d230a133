// Package worker guards asynq task handlers with slotguard semaphores, so
// that a limit holds across every worker process, and sends tasks that could
// not get a slot back to their queue without counting them as failures.
//
// A [Config] (usually the `limits:` section of a YAML file, see
// [ParseConfig]) lists [Rule]s. Each rule selects tasks by type pattern
// ("email:*"), by queue, or both, and may be partitioned by a field of the
// task's JSON payload, so that each tenant gets its own slots. [New] makes a
// [Guard] from it; [Guard.Middleware] is an asynq middleware:
//
//	guard, err := worker.New(rdb, cfg, nil)
//	srv := guard.NewServer(asynq.Config{Concurrency: 20})
//	mux := asynq.NewServeMux()
//	mux.Use(guard.Middleware)
//
// For each task, the middleware:
//   - finds the semaphores the task needs, in memory; a task that matches no
//     rule runs at once, with no Redis round trip;
//   - waits for a slot of each, in one order for every process (sorted by
//     semaphore name), up to the acquire timeout, woken by Pub/Sub;
//   - runs the handler with the slots held and their leases renewed, with
//     the fencing tokens in its context ([FenceFromContext]), cancelling the
//     handler's context if a lease is lost;
//   - gives every slot back when the handler returns or panics.
//
// A task that got no slot in time, found its rule's wait cap
// ([Rule.MaxWaiting]) full, or was waiting when [Server.Shutdown] began, is
// requeued: the middleware returns a [*RequeueError] after choosing a delay
// by exponential backoff on the task's own requeue count. A requeue never
// archives the task, never spends one of its retries and is not counted in
// asynq's failure stats; see [RequeueError] for the two ways it is carried
// out, and docs/worker.md for why, and for the delays measured.
//
// The asynq hooks that make this work are installed by [Guard.NewServer] or
// [Guard.ServerConfig], composed with the config's own IsFailure,
// RetryDelayFunc and ErrorHandler. Without them the middleware still never
// archives a task, but every requeue gives the task a new ID.
//
// Observability is an [Event] callback ([Options.OnEvent]): acquired (with
// the time waited), requeued, lease lost and released.
package worker
