package deploytest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/tally"
	"github.com/slotguard/slotguard/internal/wait"
	"github.com/slotguard/slotguard/limiter"
	"github.com/slotguard/slotguard/worker"
)

// served counts a handler's concurrent runs and every task it completed.
type served struct {
	tally.Served
	inflight, peak atomic.Int64
}

func newServed() *served { return &served{} }

func (s *served) handler(d time.Duration) asynq.HandlerFunc {
	return func(ctx context.Context, t *asynq.Task) error {
		now := s.inflight.Add(1)
		tally.RaiseMax(&s.peak, now)
		time.Sleep(d)
		s.inflight.Add(-1)
		s.Add(string(t.Payload()))
		return nil
	}
}

// queueDone reports whether queue has no pending, active, scheduled or retry
// task, and returns its archived count.
func queueDone(rdb redis.UniversalClient, queue string) (bool, int) {
	q, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(queue)
	if err != nil {
		return false, 0
	}
	return q.Pending+q.Active+q.Scheduled+q.Retry == 0, q.Archived
}

// guardServers starts n guarded asynq servers on rdb, stopped when the test
// ends.
func guardServers(t *testing.T, rdb redis.UniversalClient, cfg worker.Config, queue string, n int, h asynq.Handler) *worker.Guard {
	t.Helper()
	g, err := worker.New(rdb, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		srv := g.NewServer(asynq.Config{
			Concurrency: 8, Queues: map[string]int{queue: 1}, ShutdownTimeout: 5 * time.Second,
			DelayedTaskCheckInterval: 200 * time.Millisecond, TaskCheckInterval: 50 * time.Millisecond,
			LogLevel: asynq.FatalLevel, // the outage makes asynq log every failed call
		})
		if err := srv.Start(g.Middleware(h)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
	}
	return g
}

func enqueueN(t *testing.T, rdb redis.UniversalClient, queue, typ string, n int) {
	t.Helper()
	c := asynq.NewClientFromRedisClient(rdb)
	for i := range n {
		if _, err := c.Enqueue(asynq.NewTask(typ, []byte(fmt.Sprint(i))), asynq.Queue(queue)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSentinelFailoverWorkersFollowAndLoseNoTask(t *testing.T) {
	const queue, tasks, limit = "failover", 300, 3
	s := startSentinels(t)
	rdb := s.client(t)
	enqueueN(t, rdb, queue, "api:call", tasks)
	// The enqueues are acknowledged by the replica: the fault under test is
	// the failover, not the loss of the enqueues themselves.
	master := redis.NewClient(&redis.Options{Addr: s.master.addr()})
	defer master.Close()
	if n, err := master.Do(context.Background(), "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d, %v", n, err)
	}

	api := newServed()
	cfg := worker.Config{Lease: 5 * time.Second,
		Rules: []worker.Rule{{Name: "api", TaskTypes: []string{"api:*"}, Limit: limit}}}
	guardServers(t, rdb, cfg, queue, 2, api.handler(20*time.Millisecond))

	wait.Until(t, 30*time.Second, "a third of the tasks to run", func() bool { return api.Distinct() >= tasks/3 })
	before := api.Distinct()
	killed := time.Now()
	s.master.kill()
	promoted := s.waitPromoted(t, killed)
	wait.Until(t, 20*time.Second, "tasks to run on the new master", func() bool { return api.Distinct() > before+limit })
	resumed := time.Since(killed)
	// A completion the old master acknowledged but never replicated leaves
	// its task active on the new master until asynq's recoverer takes it
	// back: its lease (30 s) plus up to one recoverer interval (1 min).
	deadline := time.Now().Add(150 * time.Second)
	for {
		ok, _ := queueDone(rdb, queue)
		if ok && api.Distinct() == tasks {
			break
		}
		if time.Now().After(deadline) {
			ins := asynq.NewInspectorFromRedisClient(rdb)
			q, err := ins.GetQueueInfo(queue)
			active, _ := ins.ListActiveTasks(queue)
			for _, a := range active {
				h, _ := rdb.HGetAll(context.Background(), "asynq:{"+queue+"}:t:"+a.ID).Result()
				lease, _ := rdb.ZScore(context.Background(), "asynq:{"+queue+"}:lease", a.ID).Result()
				t.Logf("still active: %+v; lease %v (now %d); hash fields %v", a, lease, time.Now().Unix(), keysOf(h))
			}
			t.Fatalf("not every task completed: %d of %d ran; queue %+v, %v", api.Distinct(), tasks, q, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	recovered := time.Since(killed)
	if _, archived := queueDone(rdb, queue); archived != 0 {
		t.Fatalf("%d tasks archived", archived)
	}
	if p := api.peak.Load(); p > limit {
		t.Fatalf("the handler ran %d at once; limit %d", p, limit)
	}
	sem, _ := limiter.New(rdb, "api", limit, nil)
	wait.Until(t, 10*time.Second, "no slot to stay held", func() bool {
		info, err := sem.Info(context.Background())
		return err == nil && info.Held == 0
	})
	t.Logf("sentinel failover (master SIGKILLed once after %d of %d tasks): promoted after %v, tasks running again after %v, all done %v after; "+
		"%d tasks run, 0 lost, 0 archived, peak %d of limit %d, %d duplicates, 0 slots leaked",
		before, tasks, promoted.Round(time.Millisecond), resumed.Round(time.Millisecond), recovered.Round(time.Millisecond), tasks, api.peak.Load(), limit, api.Duplicates())
}

func keysOf(h map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		if k != "msg" {
			out[k] = v
		}
	}
	return out
}
