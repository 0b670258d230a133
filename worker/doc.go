// Package worker guards asynq task handlers with slotguard semaphores, so
// that a limit holds across every worker process, and parks the tasks that
// must wait for a slot in Redis instead of in a worker goroutine.
//
// A [Config] (usually the `limits:` section of a YAML file, see
// [ParseConfig]) lists [Rule]s. Each rule selects tasks by type pattern
// ("email:*"), by queue, or both, and may be partitioned by a field of the
// task's JSON payload, so that each tenant gets its own slots. [New] makes a
// [Guard] from it; [Guard.Middleware] is an asynq middleware, and
// [Guard.NewServer] an asynq server that lets it park tasks:
//
//	guard, err := worker.New(rdb, cfg, nil)
//	srv := guard.NewServer(asynq.Config{Concurrency: 20})
//	mux := asynq.NewServeMux()
//	mux.Use(guard.Middleware)
//
// For each task, the middleware:
//   - finds the semaphores the task needs, in memory; a task that matches no
//     rule runs at once, with no Redis round trip;
//   - takes a slot of each, in one order for every process (sorted by
//     semaphore name), or queues a ticket for it in the semaphore's FIFO
//     queue and parks the task: it goes to asynq's retry set under its own
//     ID, holding no goroutine (after [Config.ParkAfter]), spending no retry
//     and counting as no failure, until its slot is granted; the slot is
//     then reserved for it, and the task is put back at the head of its
//     queue, where the next free worker redeems the slot and runs it;
//   - runs the handler with the slots held and their leases renewed, with
//     the fencing tokens in its context ([FenceFromContext]), cancelling the
//     handler's context if a lease is lost;
//   - gives every slot back when the handler returns or panics.
//
// A handler that returns [RequeueAfter] has its task parked until the delay
// has passed, the same way. A worker that dies loses no parked task; see
// docs/worker.md for the design and what a crash at each step leaves.
//
// Observability is an [Event] callback ([Options.OnEvent]): acquired,
// parked, woken, requeued, lease lost, released and Redis errors.
package worker
