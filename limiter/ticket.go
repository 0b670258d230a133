package limiter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrStillQueued is returned by [Ticket.Wait] when its catch window ended
// without a grant: the ticket stays queued, and its grant will go to
// [Options.OnReservation].
var ErrStillQueued = errors.New("limiter: ticket still queued")

// A Ticket is a place in a semaphore's queue that no process keeps alive:
// unlike a live waiter of [Semaphore.Acquire], it stays queued when the
// process that took it stops, until it is granted or cancelled. Its key
// (chosen by the caller, such as a task's queue and ID) names it in every
// process. A grant to a ticket is a reservation: the slot is held for it
// for [Options.TicketLease], and handed to the process that catches the
// ticket ([Ticket.Wait]) or, when none does, to [Options.OnReservation]
// in the process whose Redis call made the grant (or, if that one does not
// act on it in time, in the next one that polls). Calling
// [Semaphore.AcquireTicket] again with the key redeems the reservation: it
// returns a [Permit] with a full lease.
type Ticket struct {
	sem     *Semaphore
	token   string
	cfg     acquireConfig
	payload string
	catch   time.Duration
	ch      chan grant
	rejoin  chan struct{}

	mu       sync.Mutex
	sent     time.Time // when the call that caught it was sent
	fence    int64     // the last fence issued when that call ran
	detached bool      // Wait has returned: grants go to OnReservation
}

// Reservation is a slot granted to a ticket, or a ticket's rejection, as
// handed to [Options.OnReservation].
type Reservation struct {
	Semaphore string        // the semaphore's name
	Payload   string        // the ticket's payload, as given to AcquireTicket
	Fence     int64         // the grant's fencing token; 0 for a rejection
	Lease     time.Duration // how long the slot stays reserved, as of the reply
}

// Rejected reports whether the ticket was rejected rather than granted:
// the limit was lowered below its weight. It has left the queue;
// [Semaphore.CancelTicket] clears what is left of it, and AcquireTicket
// then returns [ErrWeightAboveLimit].
func (r Reservation) Rejected() bool { return r.Fence == 0 }

// catchMargin is how long after its catch window a ticket's grants still
// come to the process that caught it: Redis counts the window from a
// moment after the call was sent, and a grant's message may be late.
const catchMargin = time.Second

// AcquireTicket takes a slot now if one is free and nobody is queued, or
// queues a ticket named key (see [Ticket]) that carries payload. If a
// ticket named key exists already, it is not queued again: when it holds
// a reservation, AcquireTicket redeems it; when it is queued, it keeps its
// place. When catch is above 0, this process catches the ticket for that
// long: a grant in that time goes to [Ticket.Wait], not to OnReservation.
//
// It returns a permit (and a nil ticket) when it took or redeemed a slot,
// and a ticket (and a nil permit) when the ticket is queued. It returns
// [ErrWeightAboveLimit] when the weight can never fit (and for a ticket
// that was rejected), and a wrapped Redis error when Redis failed: the
// ticket may then be queued or not, and calling AcquireTicket again with
// the same key is safe.
func (s *Semaphore) AcquireTicket(ctx context.Context, key, payload string, catch time.Duration, opts ...AcquireOption) (*Permit, *Ticket, error) {
	cfg, err := s.acquireConfig(opts)
	if err != nil {
		return nil, nil, s.wrap("acquire-ticket", err)
	}
	t := &Ticket{sem: s, token: ticketToken(key, cfg.weight), cfg: cfg, payload: payload, catch: max(catch, 0),
		ch: make(chan grant, 1), rejoin: make(chan struct{}, 1)}
	if t.catch > 0 {
		s.catchTicket(t)
	}
	p, err := t.ask(ctx)
	if p != nil || err != nil || t.catch == 0 {
		s.uncatch(t)
	}
	if p != nil || err != nil {
		return p, nil, err
	}
	if t.catch > 0 {
		time.AfterFunc(t.catch, t.detach) // in case Wait is never called
	}
	return nil, t, nil
}

// ask makes t's queueing call. It returns a permit when t got a slot, and
// neither a permit nor an error when t is queued. A slot whose reply came
// so late that its lease may have run out is renewed before it is handed
// out, and asked for again when it had.
func (t *Ticket) ask(ctx context.Context) (*Permit, error) {
	for {
		p, err := t.askOnce(ctx)
		if !errors.Is(err, errExpired) {
			return p, err
		}
		if ctx.Err() != nil {
			return nil, t.sem.wrap("acquire-ticket", ctx.Err())
		}
	}
}

func (t *Ticket) askOnce(ctx context.Context) (*Permit, error) {
	s := t.sem
	sent := time.Now()
	r, err := s.callAcquire(ctx, t.token, t.cfg, acquireCall{mode: modeTicket, hint: true, catch: t.catch, payload: t.payload})
	if err != nil {
		return nil, s.wrap("acquire-ticket", err)
	}
	s.deliver(r.grants)
	switch r.status {
	case statusRejected:
		return nil, s.wrap("acquire-ticket", fmt.Errorf("%w: weight %d, limit %d", ErrWeightAboveLimit, t.cfg.weight, r.limit))
	case statusGranted:
		return s.hand(ctx, "acquire-ticket", t.token, t.cfg, r.fence, sent, r.lease, r.taken)
	}
	t.mu.Lock()
	t.sent, t.fence = sent, r.fence
	t.mu.Unlock()
	s.noteBorn(r.born)
	if s.opts.OnReservation != nil {
		s.queuedTicket(r.hint)
	}
	return nil, nil
}

// Wait waits, until the ticket's catch window ends, for its grant. It
// returns a permit when the grant came in time, [ErrStillQueued] when the
// window ended first (the ticket stays queued; its grant goes to
// [Options.OnReservation]), ctx.Err() when ctx ended first (likewise), and
// [ErrWeightAboveLimit] when the ticket was rejected (it has left the
// queue). A ticket taken with no catch window returns ErrStillQueued at
// once.
func (t *Ticket) Wait(ctx context.Context) (*Permit, error) {
	s := t.sem
	t.mu.Lock()
	end := t.sent.Add(t.catch)
	t.mu.Unlock()
	timer := time.NewTimer(time.Until(end))
	defer timer.Stop()
	for {
		select {
		case g := <-t.ch:
			if g.fence == 0 {
				t.detach()
				_ = s.CancelTicket(context.WithoutCancel(ctx), "", withToken(t.token))
				return nil, s.wrap("acquire-ticket", fmt.Errorf("%w: weight %d", ErrWeightAboveLimit, t.cfg.weight))
			}
			p, err := t.take(ctx, g)
			if errors.Is(err, errExpired) {
				continue
			}
			t.detach()
			return p, err
		case <-t.rejoin:
			p, err := t.ask(ctx)
			if p != nil || err != nil {
				t.detach()
				return p, err
			}
		case <-timer.C:
			t.detach()
			return nil, ErrStillQueued
		case <-ctx.Done():
			t.detach()
			return nil, ctx.Err()
		}
	}
}

// take turns a grant that reached a caught ticket into a permit. The grant
// was made after the call that caught the ticket (its fence is greater),
// so its reservation lasts at least TicketLease past that call's send
// time; while at least half of that is left, the permit is handed over now
// and redeemed (renewed to a full lease) in the background before that
// half has passed, else first.
func (t *Ticket) take(ctx context.Context, g grant) (*Permit, error) {
	s := t.sem
	t.mu.Lock()
	sent, fence := t.sent, t.fence
	t.mu.Unlock()
	if g.fence > fence && time.Until(sent.Add(s.opts.TicketLease)) > s.opts.TicketLease/2 {
		return s.confirm(ctx, "acquire-ticket", s.newPermit(t.token, t.cfg, g.fence, sent, s.opts.TicketLease, false))
	}
	return s.hand(ctx, "acquire-ticket", t.token, t.cfg, g.fence, time.Time{}, g.lease, false)
}

func (t *Ticket) askAgain() {
	select {
	case t.rejoin <- struct{}{}:
	default:
	}
}

// detach ends t's catch: from now on its grants go to OnReservation, and
// after the margin to whoever makes them.
func (t *Ticket) detach() {
	t.mu.Lock()
	already := t.detached
	t.detached = true
	t.mu.Unlock()
	if !already {
		time.AfterFunc(catchMargin, func() { t.sem.uncatch(t) })
	}
}

// catchTicket routes t's grants to t, from replies and from Pub/Sub.
func (s *Semaphore) catchTicket(t *Ticket) {
	s.mu.Lock()
	s.catching[t.token] = t
	s.mu.Unlock()
	s.hub.register(t.token, func(g grant) { s.ticketGrant(t.token, t.payload, g, false) })
}

func (s *Semaphore) uncatch(t *Ticket) {
	s.mu.Lock()
	if s.catching[t.token] == t {
		delete(s.catching, t.token)
		s.mu.Unlock()
		s.hub.unregister(t.token)
		return
	}
	s.mu.Unlock()
}

// ticketGrant hands a grant to a ticket to the Wait that catches it, or,
// when none does any more, to OnReservation: on the calling goroutine when
// sync, else on its own.
func (s *Semaphore) ticketGrant(token, payload string, g grant, sync bool) {
	s.mu.Lock()
	t := s.catching[token]
	s.mu.Unlock()
	if t != nil {
		t.mu.Lock()
		detached := t.detached
		t.mu.Unlock()
		if !detached {
			offer(t.ch, g)
			return
		}
		payload = t.payload
	}
	if s.opts.OnReservation == nil {
		return
	}
	r := Reservation{Semaphore: s.name, Payload: payload, Fence: g.fence, Lease: g.lease}
	if sync {
		s.opts.OnReservation(r)
	} else {
		go s.opts.OnReservation(r)
	}
}

// CancelTicket takes the ticket named key out of the queue, gives back the
// slot it holds as a reservation or a redeemed permit, or clears its
// rejection; opts must give the weight it was taken with. A ticket that
// does not exist is not an error. It returns a wrapped Redis error when
// Redis failed.
func (s *Semaphore) CancelTicket(ctx context.Context, key string, opts ...AcquireOption) error {
	cfg, err := s.acquireConfig(opts)
	if err != nil {
		return s.wrap("cancel-ticket", err)
	}
	token := cfg.token
	if token == "" {
		token = ticketToken(key, cfg.weight)
	}
	_, _, err = s.callRelease(ctx, token, false)
	return s.wrap("cancel-ticket", err)
}

// withToken names a ticket by its token rather than its key.
func withToken(token string) AcquireOption { return func(c *acquireConfig) { c.token = token } }

// ticketToken is the token of the ticket named key: '@', a hash of the key
// (so that any key is safe in Redis and in Pub/Sub messages), a dot and the
// weight.
func ticketToken(key string, weight int) string {
	sum := sha256.Sum256([]byte(key))
	return "@" + hex.EncodeToString(sum[:16]) + "." + strconv.Itoa(weight)
}

func isTicketToken(token string) bool { return strings.HasPrefix(token, "@") }
