package asynqrdb

import (
	"bytes"
	"cmp"
	"context"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Client is the Redis client of one asynq server, wrapped so that a handler
// can park its task, and an idle processor can wait for woken tasks. It
// passes every call through to the client it wraps, except:
//   - the processor's follow-up for a task whose handler parked it (see
//     [Client.DropFollowUp]): asynq would retry or archive the task after
//     the handler returned, and it must stay parked. The call is answered
//     "OK" without reaching Redis.
//   - the recoverer's Retry or Archive of a guarded task whose worker died
//     (asynq's lease on it expired) before the task's handler started: the
//     task goes back to the head of its queue instead, under its ID, with
//     no retry spent (see [MarkStarted]).
//   - a dequeue that finds every queue of the server empty, when idle is
//     set: it waits for idle to name queues that may have a task (one in
//     which a task was woken, or all of them after a while), and tries
//     them, instead of letting the processor sleep through its task check
//     interval, for as long as idle keeps naming queues, up to
//     [Hooks.IdleFor].
type Client struct {
	redis.UniversalClient
	queues int
	hooks  Hooks

	mu    sync.Mutex
	drops map[string]drop // by task ID
	empty int             // dequeue calls in a row that found nothing
}

// drop recognises the follow-up of one parked task.
type drop struct {
	queue string
	mark  []byte // text of the error the handler returned
	at    time.Time
}

// dropTTL bounds how long a drop waits for its follow-up: asynq sends it
// right after the handler returns, or not at all (its lease expired).
const dropTTL = time.Minute

// Hooks tell a [Client] about the server it serves. Each may be nil.
type Hooks struct {
	// Idle is called when a dequeue round found every queue empty, and
	// again while the queues it names are empty: it blocks until some
	// queues may have a task and returns them, or returns nil when the
	// processor should sleep as usual (it must return soon after the
	// server begins to stop, since asynq's Stop waits for the dequeue).
	Idle func(ctx context.Context) []string
	// Guarded tells the tasks whose handler waits for slots before it
	// starts: only those are put back by the recoverer's path.
	Guarded func(taskType, queue string, payload []byte) bool
	// IdleFor bounds how long one dequeue waits on Idle (default 10 s).
	IdleFor time.Duration
	// IsFailure is the server's asynq.Config.IsFailure (nil: every error
	// is one). asynq's Retry counts a retry for a failure, which the
	// recoverer's path must undo to read the run the task was in.
	IsFailure func(error) bool
}

// Wrap returns rdb wrapped for an asynq server that takes tasks from
// queues queues.
func Wrap(rdb redis.UniversalClient, queues int, hooks Hooks) *Client {
	return &Client{UniversalClient: rdb, queues: max(queues, 1), hooks: hooks, drops: map[string]drop{}}
}

// DropFollowUp makes c drop the processor's follow-up for t: the next
// Retry or Archive call for t whose new message holds mark, the text of
// the error the handler returns. Call it before the handler returns.
func (c *Client) DropFollowUp(t Task, mark string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for id, d := range c.drops {
		if now.Sub(d.at) > dropTTL {
			delete(c.drops, id)
		}
	}
	c.drops[t.ID] = drop{queue: t.Queue, mark: []byte(mark), at: now}
}

// KeepFollowUp undoes DropFollowUp: the handler runs t after all.
func (c *Client) KeepFollowUp(t Task) {
	c.mu.Lock()
	delete(c.drops, t.ID)
	c.mu.Unlock()
}

// EvalSha runs a script by its SHA, or answers for it (see [Client]).
func (c *Client) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	if cmd := c.dropped(ctx, keys, args); cmd != nil {
		return cmd
	}
	if cmd := c.recovered(ctx, keys, args); cmd != nil {
		return cmd
	}
	run := func(keys []string, args []any) *redis.Cmd { return c.UniversalClient.EvalSha(ctx, sha, keys, args...) }
	return c.dequeue(ctx, keys, args, run)
}

// Eval runs a script, or answers for it (see [Client]).
func (c *Client) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	if cmd := c.dropped(ctx, keys, args); cmd != nil {
		return cmd
	}
	if cmd := c.recovered(ctx, keys, args); cmd != nil {
		return cmd
	}
	run := func(keys []string, args []any) *redis.Cmd { return c.UniversalClient.Eval(ctx, script, keys, args...) }
	return c.dequeue(ctx, keys, args, run)
}

// dropped answers the follow-up of a parked task, or returns nil. asynq
// v0.26's Retry and Archive scripts take the task ID and its new encoded
// message as their first two arguments, and the queue's active list among
// their keys.
func (c *Client) dropped(ctx context.Context, keys []string, args []any) *redis.Cmd {
	if len(args) < 2 {
		return nil
	}
	id, ok := args[0].(string)
	if !ok {
		return nil
	}
	var msg []byte
	switch m := args[1].(type) {
	case []byte:
		msg = m
	case string:
		msg = []byte(m)
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.drops[id]
	if !ok || !containsKey(keys, ActiveKey(d.queue)) || !bytes.Contains(msg, d.mark) {
		return nil
	}
	delete(c.drops, id)
	cmd := redis.NewCmd(ctx)
	cmd.SetVal("OK")
	return cmd
}

// recovered answers the recoverer's Retry or Archive of a guarded task
// whose handler had not started, having put the task back at the head of
// its queue, and of a guarded task whose lease is no longer expired, doing
// nothing: the recoverer listed it before a worker took it again (another
// recoverer put it back), and asynq's Retry would take it from under that
// worker. It returns nil for every other call, which then runs.
func (c *Client) recovered(ctx context.Context, keys []string, args []any) *redis.Cmd {
	if c.hooks.Guarded == nil || len(args) < 2 {
		return nil
	}
	id, ok := args[0].(string)
	encoded, isBytes := args[1].([]byte)
	if !ok || !isBytes {
		return nil
	}
	m, err := decodeMessage(encoded)
	if err != nil || m.ErrorMsg != asynq.ErrLeaseExpired.Error() || m.ID != id || !containsKey(keys, ActiveKey(m.Queue)) || !c.hooks.Guarded(m.Type, m.Queue, m.Payload) {
		return nil
	}
	run := m.Retried // the retry count of the run the dead worker held
	if containsKey(keys, RetryKey(m.Queue)) && (c.hooks.IsFailure == nil || c.hooks.IsFailure(asynq.ErrLeaseExpired)) {
		run-- // asynq's Retry counted one more
	}
	now := time.Now()
	n, err := recoverScript.Run(ctx, c.UniversalClient, []string{TaskKey(m.Queue, id), ActiveKey(m.Queue), LeaseKey(m.Queue), PendingKey(m.Queue)},
		id, run, now.UnixNano(), now.Unix()).Int64()
	if err != nil || n == 0 {
		return nil // started, or Redis failed: asynq decides
	}
	cmd := redis.NewCmd(ctx)
	cmd.SetVal("OK")
	return cmd
}

func containsKey(keys []string, key string) bool {
	for _, k := range keys {
		if k == key {
			return true
		}
	}
	return false
}

// dequeue runs a script through run; when it is asynq's dequeue and the
// round of dequeues found every queue empty, it waits for idle and tries
// the queues idle names, until one has a task or idle names none.
func (c *Client) dequeue(ctx context.Context, keys []string, args []any, run func([]string, []any) *redis.Cmd) *redis.Cmd {
	cmd := run(keys, args)
	if !isDequeue(keys) || len(args) != 2 {
		return cmd
	}
	if cmd.Err() != redis.Nil {
		c.setEmpty(0)
		return cmd
	}
	if c.hooks.Idle == nil || c.addEmpty()%c.queues != 0 {
		return cmd
	}
	// The processor computed the lease of the task it dequeues (args[0],
	// now + 30 s) before this call, and keeps a lease of its own from that
	// time: a task taken after 30 s would be leased in the past, and the
	// processor would not run it. So the wait ends well before.
	until := time.Now().Add(cmp.Or(c.hooks.IdleFor, defaultIdleFor))
	for time.Now().Before(until) {
		queues := c.hooks.Idle(ctx)
		if queues == nil {
			return cmd
		}
		for _, queue := range queues {
			next := run([]string{PendingKey(queue), PausedKey(queue), ActiveKey(queue), LeaseKey(queue)},
				[]any{args[0], TaskKeyPrefix(queue)})
			if next.Err() != redis.Nil {
				c.setEmpty(0)
				return next
			}
		}
	}
	return cmd
}

// defaultIdleFor is how long a dequeue waits for woken tasks at most: a
// third of asynq v0.26's task lease (rdb.LeaseDuration), which leaves
// the processor's heartbeater several beats to extend it.
const defaultIdleFor = 10 * time.Second

func (c *Client) setEmpty(n int) {
	c.mu.Lock()
	c.empty = n
	c.mu.Unlock()
}

func (c *Client) addEmpty() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.empty++
	return c.empty
}

// isDequeue reports whether keys are those of asynq v0.26's dequeue script:
// a queue's pending list, paused key, active list and lease set.
func isDequeue(keys []string) bool {
	if len(keys) != 4 {
		return false
	}
	queue, ok := strings.CutSuffix(keys[0], "}:pending")
	if !ok || !strings.HasPrefix(queue, "asynq:{") {
		return false
	}
	q := queue[len("asynq:{"):]
	return keys[1] == PausedKey(q) && keys[2] == ActiveKey(q) && keys[3] == LeaseKey(q)
}
