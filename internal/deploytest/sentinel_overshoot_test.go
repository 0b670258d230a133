package deploytest

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/tally"
	"github.com/slotguard/slotguard/internal/wait"
	"github.com/slotguard/slotguard/limiter"
)

// overshoot is what one failover run measured.
type overshoot struct {
	limit          int
	peakAll        int64 // holders running at once, counting those that ignore Lost
	peakBelieving  int64 // holders running at once that had not seen Lost
	windowGrants   int64 // grants made while the replica was cut off
	lostPermits    int64 // permits found lost (Lost closed or Release said ErrLeaseLost)
	notReplicated  int64 // acquires refused with ErrNotReplicated
	acquired       int64
	promoted       time.Duration // from the SIGKILL to the sentinels naming the replica
	resumed        time.Duration // from the SIGKILL to grants again, after a replica rejoined
	latP50, latP99 time.Duration // uncontended Acquire, before the fault
}

// TestSentinelFailoverOvershoot measures how far a failover that loses
// acknowledged writes lets the limit be exceeded, without and with
// SyncReplicas. The fault: the replica is cut off from its master (REPLICAOF
// to a closed port) for one second while clients keep taking slots, then the
// master is SIGKILLed and the sentinels promote the replica, which never saw
// that second's grants. Holders hold for 0.3 to 3 s, longer than the
// failover takes, with a 2 s lease.
func TestSentinelFailoverOvershoot(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the failover overshoot measurement")
	}
	for _, tc := range []struct {
		name string
		sync int
	}{{"async", 0}, {"sync_replicas=1", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			r := runOvershoot(t, tc.sync)
			t.Logf("%s: limit %d, %d acquired; grants in the cut-off second %d; permits lost %d; refused as not replicated %d; "+
				"overshoot %d for holders that stop on Lost, %d for holders that ignore it; promoted after %v, granting again after %v; "+
				"uncontended Acquire p50 %v p99 %v",
				tc.name, r.limit, r.acquired, r.windowGrants, r.lostPermits, r.notReplicated,
				max(0, r.peakBelieving-int64(r.limit)), max(0, r.peakAll-int64(r.limit)), r.promoted.Round(time.Millisecond), r.resumed.Round(time.Millisecond),
				r.latP50.Round(10*time.Microsecond), r.latP99.Round(10*time.Microsecond))
			if tc.sync == 0 {
				if r.windowGrants == 0 {
					t.Fatal("no grant was made while the replica was cut off: the fault injected nothing")
				}
				return
			}
			if r.windowGrants != 0 {
				t.Fatalf("%d grants were confirmed while no replica could acknowledge them", r.windowGrants)
			}
			if r.notReplicated == 0 {
				t.Fatal("no acquire was refused while the replica was cut off")
			}
		})
	}
}

func runOvershoot(t *testing.T, syncReplicas int) overshoot {
	const limit, clients = 3, 6
	s := startSentinels(t)
	rdb := s.client(t)
	opts := &limiter.Options{Lease: 2 * time.Second, SyncReplicas: syncReplicas, SyncTimeout: 100 * time.Millisecond}
	r := overshoot{limit: limit}

	// Uncontended acquire latency, the cost of the option.
	lat, _ := limiter.New(rdb, "latency", 1, opts)
	var ds []time.Duration
	for range 200 {
		start := time.Now()
		p, err := lat.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, time.Since(start))
		_ = p.Release(t.Context())
	}
	slices.Sort(ds)
	r.latP50, r.latP99 = ds[len(ds)/2], ds[len(ds)*99/100]

	sem, err := limiter.New(rdb, "api", limit, opts)
	if err != nil {
		t.Fatal(err)
	}
	var (
		all, believing, peakAll, peakBelieving atomic.Int64
		window                                 atomic.Bool // the replica is cut off
		stop                                   = make(chan struct{})
		wg                                     sync.WaitGroup
	)
	raise := func(peak *atomic.Int64, now int64) {
		tally.RaiseMax(peak, now)
	}
	for range clients {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				p, err := sem.Acquire(context.Background(), limiter.WithTimeout(3*time.Second))
				switch {
				case errors.Is(err, limiter.ErrNotReplicated):
					atomic.AddInt64(&r.notReplicated, 1)
					fallthrough
				case err != nil:
					time.Sleep(10 * time.Millisecond)
					continue
				}
				atomic.AddInt64(&r.acquired, 1)
				if window.Load() {
					atomic.AddInt64(&r.windowGrants, 1)
				}
				raise(&peakAll, all.Add(1))
				raise(&peakBelieving, believing.Add(1))
				hold := time.NewTimer(300*time.Millisecond + rand.N(2700*time.Millisecond))
				lost := false
				select {
				case <-hold.C:
				case <-p.Lost():
					lost = true
					believing.Add(-1)
					<-hold.C // a holder that ignores Lost runs on
				}
				all.Add(-1)
				if !lost {
					believing.Add(-1)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err = p.Release(ctx)
				cancel()
				if lost || errors.Is(err, limiter.ErrLeaseLost) {
					atomic.AddInt64(&r.lostPermits, 1)
				}
			}
		})
	}

	time.Sleep(time.Second) // steady state
	replica := redis.NewClient(&redis.Options{Addr: s.replica.addr()})
	defer replica.Close()
	window.Store(true)
	mustDo(t, replica, "REPLICAOF", "127.0.0.1", strconv.Itoa(redistest.FreePort(t)))
	// At least a second, and until two grants were made that the replica
	// never sees (or, with SyncReplicas, two were refused), for at most 4 s.
	cut := time.Now()
	seen := func() int64 {
		if syncReplicas > 0 {
			return atomic.LoadInt64(&r.notReplicated)
		}
		return atomic.LoadInt64(&r.windowGrants)
	}
	for time.Since(cut) < time.Second || seen() < 2 && time.Since(cut) < 4*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	killed := time.Now()
	s.master.kill()
	window.Store(false)
	r.promoted = s.waitPromoted(t, killed)
	// The old master comes back as a replica of the new one, as an operator
	// (or the sentinels, after a while) would make it: with SyncReplicas the
	// new master grants nothing until a replica acknowledges.
	acquiredAt := atomic.LoadInt64(&r.acquired)
	startRedisOn(t, s.master.port, "--replicaof", "127.0.0.1", strconv.Itoa(s.replica.port))
	wait.Until(t, 20*time.Second, "slots to be granted by the new master", func() bool {
		return atomic.LoadInt64(&r.acquired) > acquiredAt+limit
	})
	r.resumed = time.Since(killed)
	time.Sleep(3 * time.Second) // past one lease, so stale holders are found out
	close(stop)
	wg.Wait()
	r.peakAll, r.peakBelieving = peakAll.Load(), peakBelieving.Load()
	wait.Until(t, 10*time.Second, "every slot to be free on the new master", func() bool {
		info, err := sem.Info(context.Background())
		return err == nil && info.Held == 0
	})
	return r
}
