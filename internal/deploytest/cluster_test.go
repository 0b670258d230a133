package deploytest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/wait"
	"github.com/slotguard/slotguard/limiter"
	"github.com/slotguard/slotguard/worker"
)

// startCluster starts three masters, joins them with redis-cli --cluster
// create, waits for cluster_state:ok everywhere and returns a cluster
// client, closed when the test ends.
func startCluster(t *testing.T) *redis.ClusterClient {
	t.Helper()
	var addrs []string
	for range 3 {
		port := clusterPort(t)
		n := startRedisOn(t, port, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000")
		addrs = append(addrs, n.addr())
	}
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		wait.Until(t, 30*time.Second, "cluster_state:ok on "+a, func() bool {
			info, _ := c.ClusterInfo(context.Background()).Result()
			return strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3")
		})
		c.Close()
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: 32})
	t.Cleanup(func() { _ = cc.Close() })
	wait.Until(t, 10*time.Second, "the client to see all slots", func() bool {
		return cc.ForEachShard(context.Background(), func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		}) == nil
	})
	return cc
}

// semaphoreSlots groups every key under prefix by the semaphore's hash tag
// and returns each group's slots, from CLUSTER KEYSLOT.
func semaphoreSlots(t *testing.T, cc *redis.ClusterClient, prefix string) map[string][]int64 {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var keys []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]int64{}
	for _, k := range keys {
		i := strings.IndexByte(k, '{')
		j := strings.IndexByte(k[i+1:], '}')
		if i < 0 || j < 0 {
			t.Fatalf("key %q has no hash tag", k)
		}
		tag := k[i+1 : i+1+j]
		slot, err := cc.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[tag] = append(out[tag], slot)
	}
	return out
}

func TestClusterLimiterBehaviours(t *testing.T) {
	cc := startCluster(t)
	ctx := t.Context()
	const prefix = "sgc"
	opts := &limiter.Options{Prefix: prefix, Lease: 3 * time.Second}
	names := []string{"api", "db", "{braces}", "star*", "a/b", "ünï{}%7B", "x}{y"}

	t.Run("acquire, release, info", func(t *testing.T) {
		for _, name := range names {
			sem, err := limiter.New(cc, name, 2, opts)
			if err != nil {
				t.Fatal(err)
			}
			p1, err := sem.Acquire(ctx, limiter.WithHolder("holder of "+name))
			if err != nil {
				t.Fatalf("%q: %v", name, err)
			}
			p2, err := sem.TryAcquire(ctx)
			if err != nil {
				t.Fatalf("%q: %v", name, err)
			}
			if _, err := sem.TryAcquire(ctx); !errors.Is(err, limiter.ErrNoSlot) {
				t.Fatalf("%q: third TryAcquire: %v, want ErrNoSlot", name, err)
			}
			info, err := sem.Info(ctx)
			if err != nil || info.Held != 2 || info.Limit != 2 || len(info.Holders) != 2 {
				t.Fatalf("%q: info %+v, %v", name, info, err)
			}
			if !slices.ContainsFunc(info.Holders, func(h limiter.Holder) bool { return h.Label == "holder of "+name }) {
				t.Fatalf("%q: holder label missing from %+v", name, info.Holders)
			}
			if err := errors.Join(p1.Release(ctx), p2.Release(ctx)); err != nil {
				t.Fatal(err)
			}
			if info, _ := sem.Info(ctx); info.Held != 0 {
				t.Fatalf("%q: %d held after release", name, info.Held)
			}
		}
	})

	t.Run("FIFO hand-off", func(t *testing.T) {
		sem, _ := limiter.New(cc, "fifo", 1, opts)
		first, err := sem.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		order := make(chan int, 3)
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() {
				p, err := sem.Acquire(ctx, limiter.WithTimeout(20*time.Second))
				if err != nil {
					t.Error(err)
					return
				}
				order <- i
				time.Sleep(20 * time.Millisecond)
				_ = p.Release(ctx)
			})
			wait.Until(t, 5*time.Second, "the waiter to queue", func() bool {
				info, _ := sem.Info(ctx)
				return info.Waiting == i+1
			})
		}
		_ = first.Release(ctx)
		wg.Wait()
		close(order)
		var got []int
		for i := range order {
			got = append(got, i)
		}
		if !slices.Equal(got, []int{0, 1, 2}) {
			t.Fatalf("grant order %v, want arrival order [0 1 2]", got)
		}
	})

	t.Run("a dead holder's slot comes back after its lease", func(t *testing.T) {
		other := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cc.Options().Addrs})
		short := &limiter.Options{Prefix: prefix, Lease: 500 * time.Millisecond}
		dead, _ := limiter.New(other, "lease", 1, short)
		if _, err := dead.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
		other.Close() // its renewals now fail: the holder is as good as dead
		sem, _ := limiter.New(cc, "lease", 1, short)
		start := time.Now()
		p, err := sem.Acquire(ctx, limiter.WithTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Release(ctx)
		if waited := time.Since(start); waited > 5*time.Second {
			t.Fatalf("the slot came back after %v; lease 500ms", waited)
		}
	})

	t.Run("SetLimit and List", func(t *testing.T) {
		sem, _ := limiter.New(cc, "api", 2, opts)
		if err := sem.SetLimit(ctx, 3); err != nil {
			t.Fatal(err)
		}
		var ps []*limiter.Permit
		for range 3 {
			p, err := sem.TryAcquire(ctx)
			if err != nil {
				t.Fatalf("after SetLimit(3): %v", err)
			}
			ps = append(ps, p)
		}
		for _, p := range ps {
			_ = p.Release(ctx)
		}
		got, err := limiter.List(ctx, cc, prefix)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range append(names, "fifo", "lease") {
			if !slices.Contains(got, n) {
				t.Fatalf("List = %q, missing %q", got, n)
			}
		}
	})

	t.Run("SyncReplicas is refused on a cluster", func(t *testing.T) {
		if _, err := limiter.New(cc, "api", 1, &limiter.Options{SyncReplicas: 1}); !errors.Is(err, limiter.ErrInvalid) {
			t.Fatalf("New with SyncReplicas on a cluster client: %v, want ErrInvalid", err)
		}
	})

	t.Run("every semaphore's keys share one slot", func(t *testing.T) {
		groups := semaphoreSlots(t, cc, prefix)
		if len(groups) < len(names) {
			t.Fatalf("found %d semaphores' keys, want at least %d: %v", len(groups), len(names), groups)
		}
		spread := map[int64]bool{}
		for tag, slots := range groups {
			for _, s := range slots {
				if s != slots[0] {
					t.Fatalf("semaphore {%s}: keys in slots %v", tag, slots)
				}
			}
			spread[slots[0]] = true
		}
		if len(spread) < 2 {
			t.Fatalf("all semaphores in one slot %v: the tags do not spread them", spread)
		}
	})
}

func TestClusterWorkerEndToEnd(t *testing.T) {
	cc := startCluster(t)
	const tasks, limit = 200, 3
	queues := []string{"c1", "c2"} // two queues, two hash slots
	api := newServed()
	var warnings asynqtest.Log
	var parked, woken atomic.Int64
	// A short park_after: tasks are parked, and both taken back by the
	// goroutine that parked them and woken for another worker.
	cfg := worker.Config{ParkAfter: 20 * time.Millisecond, Prefix: "sgc",
		Rules: []worker.Rule{{Name: "api", TaskTypes: []string{"api:*"}, Limit: limit}}}
	g, err := worker.New(cc, cfg, &worker.Options{OnEvent: func(e worker.Event) {
		switch e.Kind {
		case worker.EventParked:
			parked.Add(1)
		case worker.EventWoken:
			woken.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		srv := g.NewServer(asynq.Config{
			Concurrency: 10, Queues: map[string]int{queues[0]: 1, queues[1]: 1}, ShutdownTimeout: 5 * time.Second,
			DelayedTaskCheckInterval: 100 * time.Millisecond, TaskCheckInterval: 50 * time.Millisecond,
			LogLevel: asynq.WarnLevel, Logger: &warnings,
		})
		if err := srv.Start(g.Middleware(api.handler(30 * time.Millisecond))); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
	}
	c := asynq.NewClientFromRedisClient(cc)
	for i := range tasks {
		// Half have no retries: asynq would archive them if it saw their
		// handler's parked error.
		opts := []asynq.Option{asynq.Queue(queues[i%2])}
		if i%4 < 2 {
			opts = append(opts, asynq.MaxRetry(0))
		}
		if _, err := c.Enqueue(asynq.NewTask("api:call", []byte(strconv.Itoa(i))), opts...); err != nil {
			t.Fatal(err)
		}
	}
	wait.Until(t, 90*time.Second, "every task to complete", func() bool {
		for _, q := range queues {
			if ok, _ := queueDone(cc, q); !ok {
				return false
			}
		}
		return api.Distinct() == tasks
	})
	for _, q := range queues {
		if _, archived := queueDone(cc, q); archived != 0 {
			t.Fatalf("%d tasks archived in %s", archived, q)
		}
	}
	if p := api.peak.Load(); p > limit {
		t.Fatalf("%d ran at once; limit %d", p, limit)
	}
	if parked.Load() == 0 || woken.Load() == 0 {
		t.Fatalf("%d tasks parked, %d woken: the test did not cover parking", parked.Load(), woken.Load())
	}
	if w := warnings.String(); w != "" {
		t.Fatalf("asynq warned:\n%s", w)
	}
	sem, _ := limiter.New(cc, "api", limit, &limiter.Options{Prefix: "sgc"})
	if info, err := sem.Info(t.Context()); err != nil || info.Held != 0 {
		t.Fatalf("after the run: %+v, %v", info, err)
	}
	t.Log(fmt.Sprintf("cluster: %d tasks over 2 queues in 2 slots, peak %d of %d, %d parks, %d wakes, %d duplicates, 0 archived",
		tasks, api.peak.Load(), limit, parked.Load(), woken.Load(), api.Duplicates()))
}
