package worker

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/asynqrdb"
	"github.com/slotguard/slotguard/limiter"
)

// wake is the guard's [limiter.Options.OnReservation]: the slot of a parked
// task was granted and reserved for it, and this process must wake the
// task: put it back at the head of its queue, so that the next free worker
// runs it (and redeems the slot). A task that is gone gives its slot back.
// A Redis error leaves the grant to another process's poll, which takes it
// on when this one's claim runs out.
func (g *Guard) wake(r limiter.Reservation) {
	task, parked, ok := decodeParked(r.Payload)
	if !ok {
		return // not a task's ticket
	}
	rule, _, _ := strings.Cut(r.Semaphore, "/")
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	res, err := asynqrdb.Wake(ctx, g.rdb, asynqrdb.Task{Queue: task.Queue, ID: task.ID}, g.wakes.channel)
	if err != nil {
		g.emit(Event{Kind: EventRedisError, Rule: rule, Semaphore: r.Semaphore, Task: task, Err: err})
		return
	}
	sem := g.semaphoreNamed(r.Semaphore)
	if res == asynqrdb.Woken {
		g.wakes.local(task.Queue)
		g.emit(Event{Kind: EventWoken, Rule: rule, Semaphore: r.Semaphore, Task: task, Waited: time.Since(parked)})
	}
	// A rejected ticket has left the queue: the woken task asks again. A
	// task that is gone cannot redeem its slot.
	if (r.Rejected() || res == asynqrdb.Gone) && sem != nil {
		_ = sem.CancelTicket(ctx, ticketKey(task))
	}
}

// watchTickets has the semaphore of every unpartitioned rule poll for the
// tickets of tasks parked before this process started: when every worker
// that knew of them is gone, the grants a dead holder's lease frees are
// then made here, and the tasks woken, rather than after park_recheck.
// (A partitioned rule's parked tasks wait for park_recheck then.)
func (g *Guard) watchTickets() {
	for _, r := range g.rules {
		if r.PartitionBy == "" {
			g.semaphore(need{rule: r, sem: r.Name}).WatchTickets()
		}
	}
}

// wakes tells idle workers of this process that a task was woken in one of
// their queues: at once for wakes made here, and through a Pub/Sub channel
// for wakes made by other processes.
type wakes struct {
	rdb     redis.UniversalClient
	channel string

	mu      sync.Mutex
	active  time.Time // the last park or wake seen: wakes may follow
	waiters map[*idleWaiter]struct{}
	users   int // servers running
	ps      *redis.PubSub
}

// idleWaiter is one idle processor waiting for a woken task.
type idleWaiter struct {
	queues []string
	ch     chan string
}

// expectWakes is how long after a park or a wake idle processors wait for
// woken tasks before they sleep as asynq would.
const expectWakes = 5 * time.Minute

func newWakes(rdb redis.UniversalClient, channel string) *wakes {
	return &wakes{rdb: rdb, channel: channel, waiters: map[*idleWaiter]struct{}{}}
}

// parked notes that a task was parked: wakes will follow.
func (w *wakes) parked() {
	w.mu.Lock()
	w.active = time.Now()
	w.mu.Unlock()
}

// local tells this process's idle processors of a task woken in queue.
func (w *wakes) local(queue string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.active = time.Now()
	for iw := range w.waiters {
		if slices.Contains(iw.queues, queue) {
			select {
			case iw.ch <- queue:
			default:
			}
		}
	}
}

// start subscribes to the channel while at least one server runs.
func (w *wakes) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.users++
	if w.ps != nil {
		return
	}
	w.ps = w.rdb.Subscribe(context.Background(), w.channel)
	go w.listen(w.ps)
}

// stop ends the subscription when the last server stops.
func (w *wakes) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.users--; w.users > 0 || w.ps == nil {
		return
	}
	_ = w.ps.Close()
	w.ps = nil
}

func (w *wakes) listen(ps *redis.PubSub) {
	for msg := range ps.Channel() {
		w.local(msg.Payload)
	}
}

// wait is an idle processor's wait (see [asynqrdb.Wrap]): while a park or
// a wake happened lately, it returns the queue in which a task is woken as
// soon as one is, or all of queues every d (tasks enqueued by clients send
// no news), so that the processor never sleeps through a wake. It returns
// nil, and the processor sleeps as asynq would, when none happened lately
// or ctx ended.
func (w *wakes) wait(ctx context.Context, queues []string, d time.Duration) []string {
	iw := &idleWaiter{queues: queues, ch: make(chan string, 1)}
	w.mu.Lock()
	if time.Since(w.active) > expectWakes {
		w.mu.Unlock()
		return nil
	}
	w.waiters[iw] = struct{}{}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.waiters, iw)
		w.mu.Unlock()
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case q := <-iw.ch:
		return []string{q}
	case <-timer.C:
		return queues
	case <-ctx.Done():
		return nil
	}
}
