package worker

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
)

func init() { childModes["server"] = childServer }

// enterScript counts a running handler in KEYS[1] and keeps the highest
// count in KEYS[2]: a counter outside the guard.
var enterScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
return n`)

// childServer is one worker process: an asynq server with Concurrency 20
// and a guard with limit 4, until its stdin closes.
func childServer() error {
	db, _ := strconv.Atoi(os.Getenv(asynqtest.DBEnv))
	prefix, queue := os.Getenv("SG_PREFIX"), os.Getenv("SG_QUEUE")
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr(), DB: db, PoolSize: 64})
	defer rdb.Close()
	g, err := New(rdb, Config{Prefix: prefix, AcquireTimeout: 30 * time.Second,
		Rules: []Rule{{Name: "api", TaskTypes: []string{"api:call"}, Limit: 4}}}, nil)
	if err != nil {
		return err
	}
	srv := g.NewServer(asynq.Config{Concurrency: 20, Queues: map[string]int{queue: 1},
		TaskCheckInterval: 50 * time.Millisecond, DelayedTaskCheckInterval: 100 * time.Millisecond,
		Logger: quietLogger{}, LogLevel: asynq.ErrorLevel})
	cur, peak, done := prefix+":running", prefix+":peak", prefix+":done"
	h := asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		if err := enterScript.Run(ctx, rdb, []string{cur, peak}).Err(); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
		rdb.Decr(ctx, cur)
		rdb.Incr(ctx, done)
		return nil
	})
	if err := srv.Start(g.Middleware(h)); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	srv.Shutdown()
	return nil
}

func TestGlobalLimitAcrossProcesses(t *testing.T) {
	b := setup(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const procs, tasks = 3, 150
	var stdins []io.WriteCloser
	var cmds []*exec.Cmd
	for range procs {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), childEnv+"=server", asynqtest.DBEnv+"="+strconv.Itoa(asynqtest.DB(t)),
			"SG_PREFIX="+b.prefix, "SG_QUEUE="+b.queue)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stdins, cmds = append(stdins, in), append(cmds, cmd)
	}
	t.Cleanup(func() {
		for _, in := range stdins {
			in.Close()
		}
		for _, c := range cmds {
			done := make(chan error, 1)
			go func() { done <- c.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("worker process: %v", err)
				}
			case <-time.After(30 * time.Second):
				_ = c.Process.Kill()
				t.Errorf("worker process %d did not shut down", c.Process.Pid)
			}
		}
	})
	for range tasks {
		b.enqueue(t, "api:call", nil)
	}
	ctx := context.Background()
	wait.Until(t, 60*time.Second, fmt.Sprintf("%d tasks done", tasks), func() bool {
		n, _ := b.rdb.Get(ctx, b.prefix+":done").Int()
		return n == tasks
	})
	peak, _ := b.rdb.Get(ctx, b.prefix+":peak").Int()
	t.Logf("%d tasks over %d processes; peak concurrency %d (limit 4)", tasks, procs, peak)
	if peak > 4 || peak < 2 {
		t.Errorf("peak concurrency %d; want at most 4, and more than 1", peak)
	}
}
