package deploytest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/fakeapi"
	"github.com/slotguard/slotguard/internal/wait"
)

// minimalACL is the ACL rule set slotguard needs with the default prefix,
// as written in docs/operations.md: asynq's keys and the commands its
// scripts and clients use, the limiter's keys, its scripts (which call
// TIME), its grant channel and the wake channel of parked tasks. WAIT is for sync_replicas, SCAN for
// limiter.List (enqueue limits), SELECT for a database other than 0.
const minimalACL = "resetkeys ~asynq:* ~slotguard:* resetchannels &asynq:cancel &slotguard:grants &slotguard:wake -@all " +
	"+ping +hello +auth +select +evalsha +eval +time +wait +scan +publish +subscribe +unsubscribe " +
	"+get +set +setex +incr +del +exists +expire +expireat +pexpire +persist +pttl " +
	"+hget +hmget +hset +hsetnx +hexists +hdel +hincrby +llen +lpush +rpush +lrange +lrem +rpoplpush " +
	"+sadd +srem +smembers +sismember " +
	"+zadd +zrem +zcard +zscore +zrange +zrevrange +zrangebyscore +zrangebylex +zremrangebyscore +zremrangebyrank"

// aclWorkload runs a guarded worker binary against the server at addr as
// user:pass, for tasks, some with no retries left and some over the wait
// cap, so that every code path runs; it returns once all ran.
func aclWorkload(t *testing.T, addr, user, pass string, admin *redis.Client) *fakeapi.API {
	t.Helper()
	api := &fakeapi.API{Delay: 20 * time.Millisecond}
	apiURL := api.Start(t)
	const queue, tasks = "acl", 30
	section := fmt.Sprintf("  url: redis://%s:%s@%s/0", user, pass, addr)
	cfg := aclWorkerConfig(section, queue, apiURL)
	startReadyWorker(t, cfg)
	enqueueMixed(t, admin, queue, tasks)
	wait.Until(t, 60*time.Second, "every task to run", func() bool {
		ok, _ := queueDone(admin, queue)
		return ok && api.Distinct() == tasks
	})
	return api
}

// aclWorkerConfig is the config of aclWorkload: limit 1, a wait cap of 1
// and short requeue delays.
func aclWorkerConfig(section, queue, url string) string {
	cfg := strings.Replace(apiWorkerConfig(section, queue, url), "      limit: 2\n", "      limit: 1\n", 1)
	cfg = strings.Replace(cfg, "  task_check_interval: 50ms\n", "  task_check_interval: 50ms\n  delayed_task_check_interval: 100ms\n", 1)
	return strings.Replace(cfg, "limits:\n", "limits:\n  requeue_min_delay: 50ms\n  requeue_max_delay: 100ms\n", 1)
}

// enqueueMixed enqueues tasks calls, every other one with no retries.
func enqueueMixed(t *testing.T, admin redis.UniversalClient, queue string, tasks int) {
	t.Helper()
	c := asynq.NewClientFromRedisClient(admin)
	for i := range tasks {
		opts := []asynq.Option{asynq.Queue(queue)}
		if i%2 == 0 {
			opts = append(opts, asynq.MaxRetry(0))
		}
		if _, err := c.Enqueue(asynq.NewTask("api:call", []byte(fmt.Sprintf(`{"n":"%d"}`, i))), opts...); err != nil {
			t.Fatal(err)
		}
	}
}

func commandStats(t *testing.T, c *redis.Client) []string {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, line := range strings.Split(info, "\n") {
		if name, ok := strings.CutPrefix(line, "cmdstat_"); ok {
			cmds = append(cmds, name[:strings.IndexByte(name, ':')])
		}
	}
	sort.Strings(cmds)
	return cmds
}

func TestACLMinimalUserRunsTheWorker(t *testing.T) {
	srv := startRedis(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.addr()})
	defer admin.Close()
	mustDo(t, admin, "CONFIG", "RESETSTAT")
	args := append([]any{"ACL", "SETUSER", "slotguard", "on", ">s3cret"}, toAny(strings.Fields(minimalACL))...)
	mustDo(t, admin, args...)
	api := aclWorkload(t, srv.addr(), "slotguard", "s3cret", admin)
	if p := api.Peak(); p > 1 {
		t.Fatalf("%d calls at once; limit 1", p)
	}
	denied, _ := admin.Do(context.Background(), "ACL", "LOG").Slice()
	if len(denied) > 0 {
		t.Fatalf("the minimal user was denied something: %v", denied)
	}
	t.Logf("commands seen: %v", commandStats(t, admin))
}

// TestACLWithoutTheLimiterKeysFailsClearly runs the worker as a user that
// lacks ~slotguard:*: tasks do not run, and the log names the refusal.
func TestACLWithoutTheLimiterKeysFailsClearly(t *testing.T) {
	srv := startRedis(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.addr()})
	defer admin.Close()
	rules := strings.Replace(minimalACL, " ~slotguard:*", "", 1)
	mustDo(t, admin, append([]any{"ACL", "SETUSER", "nolimiter", "on", ">pw"}, toAny(strings.Fields(rules))...)...)
	api := &fakeapi.API{}
	apiURL := api.Start(t)
	w := startReadyWorker(t, aclWorkerConfig(fmt.Sprintf("  url: redis://nolimiter:pw@%s/0", srv.addr()), "acl", apiURL))
	enqueueMixed(t, admin, "acl", 4)
	// The worker's log says only reason=redis_error (see the report); the
	// server's ACL LOG names the refused key and user.
	wait.Until(t, 20*time.Second, "requeues for a Redis error in the log", func() bool {
		return strings.Contains(w.Logs(), "reason=redis_error")
	})
	var entry string
	wait.Until(t, 10*time.Second, "an ACL LOG entry for the limiter's keys", func() bool {
		log, _ := admin.Do(context.Background(), "ACL", "LOG").Slice()
		for _, e := range log {
			if s := fmt.Sprint(e); strings.Contains(s, "nolimiter") && strings.Contains(s, "slotguard:") {
				entry = s
				return true
			}
		}
		return false
	})
	if n := api.Distinct(); n != 0 {
		t.Fatalf("%d tasks ran without their slot", n)
	}
	ok, archived := queueDone(admin, "acl")
	if ok {
		t.Fatal("every task left the queue")
	}
	if archived != 0 {
		t.Fatalf("%d tasks archived: a task handed back for a Redis error spends no retry", archived)
	}
	t.Logf("ACL LOG: %s", entry)
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
