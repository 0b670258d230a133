package main

import (
	"context"
	"fmt"
	"io"

	"github.com/slotguard/slotguard/internal/redisconn"
)

// localRedis gives a worker with no Redis configured the Redis where
// cmd/enqueue's default finds its tasks: the one that answers at addr, or
// else an embedded one (see [redisconn.StartLocal]). It prints a banner to w
// that says which, and returns its URL and a function that stops the
// embedded one. It fails only when the embedded Redis cannot start.
func localRedis(ctx context.Context, addr string, w io.Writer) (url string, stop func(), err error) {
	l, err := redisconn.StartLocal(ctx, addr)
	if err != nil {
		return "", nil, err
	}
	switch {
	case l.Embedded == nil:
		fmt.Fprintf(w, existingBanner, addr)
		return l.URL, func() {}, nil
	case l.Taken:
		fmt.Fprintf(w, embeddedBanner, l.Embedded.Addr(), fmt.Sprintf(takenNote, addr, l.Embedded.Port()))
	default:
		fmt.Fprintf(w, embeddedBanner, l.Embedded.Addr(), fmt.Sprintf(freeNote, addr))
	}
	return l.URL, l.Embedded.Close, nil
}

const existingBanner = `
==========================================================================
 slotguard: no Redis configured, and a Redis answers at %s,
 the default address of cmd/enqueue and asynq, so this worker USES IT
 (database 0). Set --redis-url or REDIS_URL to use another one.
==========================================================================

`

const embeddedBanner = `
==========================================================================
 slotguard: no Redis configured, so this worker started an EMBEDDED,
 IN-MEMORY Redis (miniredis) at %s.
 It is for trying things out, NOT for production: tasks and limits are
 lost when this worker stops. Set --redis-url or REDIS_URL for a real one.
%s==========================================================================

`

const freeNote = ` cmd/enqueue finds it at its default address, %s.
`

const takenNote = ` Something that does not answer as a Redis (one that wants a password?)
 holds %s, so enqueue tasks with:
   go run ./cmd/enqueue --redis-url redis://127.0.0.1:%s ...
`
