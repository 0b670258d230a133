package limiter

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
)

func TestRedisErrorOnAcquireIsWrappedAndLeaksNothing(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		f := redistest.NewFaulty(b.Client, func(call int) redistest.Fault {
			if call == 1 {
				return redistest.FailBefore
			}
			return redistest.Pass
		})
		s, _ := New(f, "evalerr", 1, &Options{Prefix: b.Prefix})
		_, err := s.Acquire(t.Context())
		if !errors.Is(err, redistest.ErrInjected) || errors.Is(err, ErrTimeout) || errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want the wrapped Redis error only", err)
		}
		p, err := s.TryAcquire(t.Context())
		if err != nil {
			t.Fatalf("semaphore unusable after a Redis error: %v", err)
		}
		mustRelease(t, p)
	})
}

func TestLostAcquireReplyLeaksNoSlot(t *testing.T) {
	for _, mode := range []string{"acquire", "try"} {
		t.Run(mode, func(t *testing.T) {
			redistest.Each(t, func(t *testing.T, b redistest.Backend) {
				// The first script call runs on the server (and takes the
				// slot), then its reply is lost.
				f := redistest.NewFaulty(b.Client, func(call int) redistest.Fault {
					if call == 1 {
						return redistest.LoseReply
					}
					return redistest.Pass
				})
				s, _ := New(f, "lostreply", 1, &Options{Prefix: b.Prefix})
				var err error
				if mode == "acquire" {
					_, err = s.Acquire(t.Context())
				} else {
					_, err = s.TryAcquire(t.Context())
				}
				if !errors.Is(err, redistest.ErrInjected) {
					t.Fatalf("got %v, want the injected error", err)
				}
				if info := mustInfo(t, s); info.Held != 0 || info.Waiting != 0 {
					t.Fatalf("slot leaked after a lost reply: %+v", info)
				}
			})
		})
	}
}

func TestCancelDuringAcquireLeaksNoSlot(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "cancel", 2, nil)
		hold := mustAcquire(t, s)
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(t.Context(), time.Duration(i%8)*time.Millisecond)
				defer cancel()
				if p, err := s.Acquire(ctx); err == nil {
					_ = p.Release(context.Background())
				}
			})
		}
		wg.Wait()
		mustRelease(t, hold)
		if info := mustInfo(t, s); info.Held != 0 || info.Waiting != 0 {
			t.Fatalf("cancelled acquires left %+v", info)
		}
	})
}

func TestRedisServerRestartSurfacesErrorsThenRecovers(t *testing.T) {
	srv := redistest.StartServer(t)
	c := srv.Client(&redis.Options{MaxRetries: 1, DialTimeout: 200 * time.Millisecond})
	s, _ := New(c, "restart", 2, &Options{Lease: 2 * time.Second})
	p, err := s.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.TryAcquire(ctx); err == nil || errors.Is(err, ErrNoSlot) {
		t.Fatalf("TryAcquire with Redis down: %v, want a Redis error", err)
	}
	select {
	case <-p.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("holder not told its lease was lost while Redis was down")
	}
	srv.Start() // without persistence: the semaphore starts empty
	q, err := s.Acquire(t.Context(), WithTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if err := p.Release(t.Context()); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("release of the permit lost in the restart: %v", err)
	}
	info := mustInfo(t, s)
	if info.Held != 1 || info.Holders[0].Token != q.Token() {
		t.Fatalf("after restart: %+v", info)
	}
	mustRelease(t, q)
}

func TestSyncReplicasGivesBackUnreplicatedGrants(t *testing.T) {
	b := redistest.Real(t) // WAIT needs a real server; this one has no replica
	s := newSem(t, b, "wait", 2, &Options{SyncReplicas: 1, SyncTimeout: 50 * time.Millisecond})
	start := time.Now()
	_, err := s.Acquire(t.Context())
	if !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("Acquire: %v, want ErrNotReplicated", err)
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("returned after %v, before the sync timeout", el)
	}
	if _, err := s.TryAcquire(t.Context()); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("TryAcquire: %v, want ErrNotReplicated", err)
	}
	if info := mustInfo(t, s); info.Held != 0 {
		t.Fatalf("unreplicated grants still held: %+v", info)
	}
	if _, err := New(redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}), "x", 1, &Options{SyncReplicas: 1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("cluster client with SyncReplicas: %v", err)
	}
}

func TestAGrantWhoseReplyCameAfterItsLeaseIsNotUsed(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		const lease = 300 * time.Millisecond
		f := redistest.NewFaulty(b.Client, func(call int) redistest.Fault {
			if call == 1 {
				return redistest.SlowReply // the grant's reply comes after its lease ran out
			}
			return redistest.Pass
		})
		f.Delay = lease + 200*time.Millisecond
		s, _ := New(f, "slowreply", 1, &Options{Prefix: b.Prefix, Lease: lease})
		p, err := s.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		info := mustInfo(t, s)
		if info.Held != 1 || info.Holders[0].Token != p.Token() || info.Holders[0].Fence != p.Fence() || info.Holders[0].LeaseLeft < lease/2 {
			t.Fatalf("the returned permit is not the live holder: %+v", info)
		}
		mustRelease(t, p)

		f.SetPlan(func(call int) redistest.Fault {
			if call == 1 {
				return redistest.SlowReply
			}
			return redistest.Pass
		})
		if _, err := s.TryAcquire(t.Context()); !errors.Is(err, ErrNoSlot) {
			t.Fatalf("TryAcquire with a late reply: %v, want ErrNoSlot", err)
		}
		if info := mustInfo(t, s); info.Held != 0 {
			t.Fatalf("TryAcquire left %+v", info)
		}
	})
}

func TestFencesKeepRisingAcrossARestartThatLostTheData(t *testing.T) {
	srv := redistest.StartServer(t, "--save", "", "--appendonly", "no")
	c := srv.Client(nil)
	prefix := redistest.NewPrefix()
	s, err := New(c, "restart", 1, &Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for range 3 {
		p := mustAcquire(t, s)
		last = max(last, p.Fence())
		mustRelease(t, p)
	}
	srv.Restart() // nothing kept: the state starts afresh
	wait.Until(t, 5*time.Second, "Redis to answer again", func() bool { return c.Ping(t.Context()).Err() == nil })
	p := mustAcquire(t, s)
	if p.Fence() <= last {
		t.Fatalf("fence %d after the restart, %d before: a downstream system would refuse the new holder", p.Fence(), last)
	}
	mustRelease(t, p)
}
