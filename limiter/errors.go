package limiter

import "errors"

var (
	// ErrTimeout is returned by [Semaphore.Acquire] when no slot was granted
	// within the acquire timeout. When ctx's deadline passed as well, the error
	// also matches [context.DeadlineExceeded].
	ErrTimeout = errors.New("limiter: acquire timed out")

	// ErrNoSlot is returned by [Semaphore.TryAcquire] when no slot is free or
	// other callers are already queued for one.
	ErrNoSlot = errors.New("limiter: no slot free")

	// ErrLeaseLost is returned by [Permit.Release] when the permit's lease had
	// expired before it was released: another holder may have used the slot.
	ErrLeaseLost = errors.New("limiter: lease lost")

	// ErrWeightAboveLimit is returned by Acquire and TryAcquire when the
	// requested weight is larger than the semaphore's whole limit, so it could
	// never be granted. A waiter queued before the limit was lowered below its
	// weight gets it too.
	ErrWeightAboveLimit = errors.New("limiter: weight above limit")

	// ErrInvalid is wrapped by every validation error. A call that returns it
	// has written nothing to Redis.
	ErrInvalid = errors.New("limiter: invalid argument")
)
