package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/slotguard/slotguard/limiter"
)

// roleEnv marks the second process: the example re-executes itself with
// roleEnv=billing, and that process runs serve instead of the demo.
const roleEnv = "SLOTGUARD_EXAMPLE_ROLE"

// serve is the "billing" service. It takes slots of sem on command, one
// command a line on in, and reports on out, one event a line:
//
//	acquire LABEL HOLD  ->  granted LABEL FENCE, then HOLD later: released LABEL
//	hold LABEL          ->  holding LABEL FENCE, and never releases
//
// It prints "ready" first and returns when in ends.
func serve(ctx context.Context, sem *limiter.Semaphore, in io.Reader, out io.Writer) error {
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
	}
	say("ready")
	var wg sync.WaitGroup
	defer wg.Wait()
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "acquire":
			hold, err := time.ParseDuration(f[2])
			if err != nil {
				return err
			}
			wg.Go(func() {
				p, err := sem.Acquire(ctx, limiter.WithHolder(f[1]))
				if err != nil {
					say("error %s %v", f[1], err)
					return
				}
				say("granted %s %d", f[1], p.Fence())
				time.Sleep(hold)
				_ = p.Release(ctx)
				say("released %s", f[1])
			})
		case len(f) == 2 && f[0] == "hold":
			p, err := sem.Acquire(ctx, limiter.WithHolder(f[1]))
			if err != nil {
				return err
			}
			say("holding %s %d", f[1], p.Fence())
		default:
			return fmt.Errorf("unknown command %q", sc.Text())
		}
	}
	return sc.Err()
}
