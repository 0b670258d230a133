package faulttest

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/fakeapi"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
)

// TestWorkerChaos is issue 8's fault test 1: three worker processes share a
// limit of 5 while, for 20 s, a random one is SIGKILLed about every second
// and started again. Every task completes at least once, none is archived,
// the API never sees more than 5 calls at once, and no slot is held one
// lease after the end.
//
// Tasks active in a killed worker come back through asynq's recoverer, which
// this test cannot speed up: asynq v0.26 leases a task for 30 s
// (rdb.LeaseDuration), recovers it once its lease expired 30 s ago, runs the
// recoverer when a server starts and then every minute (both fixed), and
// retries it after asynq.DefaultRetryDelayFunc (15-45 s for a first retry).
// So the last tasks finish 1-3 minutes after the chaos.
func TestWorkerChaos(t *testing.T) {
	t.Parallel()
	const (
		tasks, limit, workers = 1000, 5, 3
		chaos                 = 20 * time.Second
		lease                 = 2 * time.Second
	)
	srv := redistest.StartServer(t)
	rdb := srv.Client(nil)
	api := &fakeapi.API{Delay: 100 * time.Millisecond} // 1,000 tasks at 5 at once: 20 s, the length of the chaos
	url := api.Start(t)
	cfg := writeConfig(t, workerConfig(srv.Addr(), url, limit, 10, lease))

	procs := make([]*proc, workers)
	for i := range procs {
		procs[i] = startWorker(t, cfg)
	}
	enqueue(t, rdb, "", tasks)

	start := time.Now()
	kills := 0
	for time.Since(start) < chaos {
		time.Sleep(time.Duration(800+rand.IntN(400)) * time.Millisecond)
		i := rand.IntN(workers)
		procs[i].kill()
		kills++
		procs[i] = startWorker(t, cfg)
	}
	doneAtChaosEnd, _ := api.Count("")
	chaosEnd := time.Now()
	t.Logf("chaos: %d SIGKILLs and restarts in %v; %d of %d tasks done by then",
		kills, chaosEnd.Sub(start).Round(time.Millisecond), doneAtChaosEnd, tasks)

	wait.Until(t, 210*time.Second, "every task to complete after the chaos", func() bool {
		n, _ := api.Count("")
		return n == tasks && drained(rdb)
	})
	end := time.Now()
	distinct, dups := api.Count("")
	if n := archived(t, rdb); n != 0 {
		t.Fatalf("%d tasks archived", n)
	}
	if p := api.Peak(); p > limit {
		t.Fatalf("the API saw %d concurrent calls; limit %d; %s", p, limit, api.PeakReport())
	}
	assertNoSlotHeldAfter(t, rdb, lease)
	for i, p := range procs {
		if !p.alive() {
			t.Fatalf("worker %d exited on its own:\n%s", i, tail(p.logs(), 2000))
		}
	}
	q, _ := queueState(rdb)
	leaseLost := 0
	for _, p := range procs {
		leaseLost += strings.Count(p.logs(), "slot lease lost")
	}
	t.Logf("FIGURES chaos: kills=%d tasks=%d completed=%d lost=%d archived=0 api_peak=%d limit=%d overshoot=%d leaked=0 duplicates=%d api_requests=%d asynq_failed_today=%d lease_lost_in_survivors=%d tail_after_chaos=%v total=%v",
		kills, tasks, distinct, tasks-distinct, api.Peak(), limit, max(0, int(api.Peak())-limit), dups,
		api.Requests(), q.Failed, leaseLost, end.Sub(chaosEnd).Round(time.Second), end.Sub(start).Round(time.Second))
}
