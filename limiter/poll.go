package limiter

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// ticketPollInterval is how often a value that handles tickets polls a
// semaphore whose queue holds tickets, when no event is due sooner.
const ticketPollInterval = time.Second

// ticketWatch is what this value knows of a semaphore's tickets from its
// last reply: whether some are queued or granted and not redeemed, and
// when a poll is next due for them.
type ticketWatch struct {
	active bool
	next   time.Duration
}

// noteTickets records what a reply to a call sent at sent said of the
// semaphore's tickets: how many are queued, and the ms until the earliest
// ticket grant may be taken on (negative: none). A value that handles
// tickets polls while either is there. A reply that shows none is ignored
// when its call was sent before this value last queued a ticket: Redis may
// have run it before the ticket was queued.
func (s *Semaphore) noteTickets(sent time.Time, queued, claim int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if queued == 0 && claim < 0 && sent.Before(s.ticketQueued) {
		return
	}
	s.tickets = ticketWatch{active: queued > 0 || claim >= 0, next: ms(claim)}
}

// queuedTicket notes that this value has just queued a ticket: it polls
// for it.
func (s *Semaphore) queuedTicket(hint time.Duration) {
	s.mu.Lock()
	s.ticketQueued = time.Now()
	s.tickets = ticketWatch{active: true, next: -time.Millisecond}
	s.mu.Unlock()
	s.startPolling(hint)
}

// watchTickets records what a reply said of the semaphore's tickets (see
// noteTickets) and, when this value handles tickets and some are there,
// makes sure it polls: the process that queued them may have died, and
// their grants (a lease that runs out, a reservation nobody takes up) then
// need another process's poll.
func (s *Semaphore) watchTickets(sent time.Time, queued, claim int64) {
	s.noteTickets(sent, queued, claim)
	if s.opts.OnReservation != nil && (queued > 0 || claim >= 0) {
		s.startPolling(-1)
	}
}

// WatchTickets makes this value poll the semaphore, beginning at once, for
// as long as tickets are queued or reserved in it, as it does by itself
// after it queued a ticket or saw one in a release's reply. A process that
// starts after others queued tickets calls it, so that grants to them (a
// dead holder's lease that ran out, a reservation that nobody took up) are
// made and handed to its [Options.OnReservation] even when it calls Redis
// for the semaphore for nothing else. It does nothing without
// OnReservation, and costs one Redis call when no ticket is there.
func (s *Semaphore) WatchTickets() {
	if s.opts.OnReservation == nil {
		return
	}
	s.noteTickets(time.Now(), 0, 0) // as if a claim were due now: poll at once
	s.startPolling(-1)
}

// poke asks the poller for an early poll.
func (s *Semaphore) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Semaphore) isPolling() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polling
}

// startPolling starts the safety-net poller unless it is running. hint is
// the time until the earliest lease expires (negative for none): a poll
// then hands that slot on.
func (s *Semaphore) startPolling(hint time.Duration) {
	s.mu.Lock()
	start := !s.polling
	s.polling = true
	s.mu.Unlock()
	if start {
		go s.pollLoop(hint)
	}
}

// pollLoop runs while this semaphore value has live waiters queued, catches
// tickets, or handles tickets that the semaphore holds. Each round is one
// Redis call whose cost does not grow with the number of waiters: it
// heartbeats this value's process (which keeps all its live waiters
// queued), reaps expired leases, hands free slots on, prunes processes that
// stopped heartbeating, returns the notices of this value's waiters (a
// grant whose Pub/Sub message was lost, a rejection, a drop), and takes on
// ticket grants that their owner did not act on in time. It polls every
// SleepDelay while live waiters are queued (the smallest asked for), and
// also right when the earliest lease is due to expire, so an expired lease
// is handed on at once rather than a poll interval later; for tickets alone
// it polls when an event is due, at least every ticketPollInterval.
func (s *Semaphore) pollLoop(hint time.Duration) {
	timer := time.NewTimer(s.nextPoll(hint))
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-s.kick:
		}
		if !s.stillPolling() {
			return
		}
		hint = s.poll()
		timer.Reset(s.nextPoll(hint))
	}
}

// liveWaiting reports whether a live waiter of this value is queued.
func (s *Semaphore) liveWaiting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.waiters {
		if w.isQueued() {
			return true
		}
	}
	return false
}

// stillPolling reports whether there is a reason to poll, marking the
// poller stopped when there is none.
func (s *Semaphore) stillPolling() bool {
	live := s.liveWaiting()
	s.mu.Lock()
	defer s.mu.Unlock()
	if live || (s.opts.OnReservation != nil && s.tickets.active) {
		return true
	}
	s.polling = false
	return false
}

func (s *Semaphore) nextPoll(hint time.Duration) time.Duration {
	live := s.liveWaiting()
	s.mu.Lock()
	d := ticketPollInterval
	if live {
		d = s.opts.SleepDelay
		for _, w := range s.waiters {
			d = min(d, w.cfg.sleepDelay)
		}
	}
	if s.tickets.active && s.tickets.next >= 0 && s.tickets.next < d {
		// Jitter spreads the processes that would all take the grant on.
		d = s.tickets.next + time.Duration(rand.N(int64(10*time.Millisecond)))
	}
	s.mu.Unlock()
	if hint >= 0 && hint+time.Millisecond < d {
		d = hint + time.Millisecond
	}
	return d
}

// poll runs one safety-net round and returns the time until the earliest
// lease expires (negative for none, or on error).
func (s *Semaphore) poll() time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.WaiterTTL)
	defer cancel()
	live := s.liveWaiting()
	heartbeat := "0"
	if live {
		heartbeat = "1"
	}
	sent := time.Now()
	res, err := scriptPoll.Run(ctx, s.rdb, s.keys.keys, s.args(s.opts.WaiterTTL.Milliseconds(), heartbeat)...).Slice()
	var head []int64
	var notices []any
	var grants []delivery
	if err == nil {
		head, notices, grants, err = parsePoll(res)
	}
	s.mu.Lock()
	ws := make([]*waiter, 0, len(s.waiters))
	for _, w := range s.waiters {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	for _, w := range ws {
		w.setErr(err)
	}
	if err != nil {
		return -1
	}
	fence, born, expiry, claim, queuedTickets := head[0], head[1], head[2], head[3], head[4]
	if live {
		s.noteBeat(sent, fence)
	}
	s.noteBorn(born)
	s.noteTickets(sent, queuedTickets, claim)
	for i := 0; i+3 < len(notices); i += 4 {
		token, _ := notices[i].(string)
		kind, _ := notices[i+3].(string)
		s.takeNotice(ctx, token, kind, grant{fence: asInt(notices[i+1]), lease: ms(asInt(notices[i+2]))})
	}
	s.deliver(grants)
	return ms(expiry)
}

// parsePoll splits poll.lua's reply into its six leading integers, this
// value's notices (token, fence, lease, kind quadruples) and the grants.
func parsePoll(res []any) (head []int64, notices []any, grants []delivery, err error) {
	if len(res) < 6 {
		return nil, nil, nil, fmt.Errorf("limiter: unexpected poll reply of %d items", len(res))
	}
	n := int(asInt(res[5]))
	end := 6 + 4*n
	if end > len(res) || (len(res)-end)%5 != 0 {
		return nil, nil, nil, fmt.Errorf("limiter: unexpected poll reply of %d items with %d notices", len(res), n)
	}
	head = make([]int64, 6)
	for i := range head {
		head[i] = asInt(res[i])
	}
	return head, res[6:end], parseGrants(res[end:]), nil
}

// takeNotice acts on a notice of one of this value's tokens: a grant not
// taken up or a rejection goes to its waiter, a drop makes it ask again. A
// notice for an Acquire that has given up, and whose own attempt to leave
// failed, is cleared (a grant is given on); a grant to a held permit is
// already taken care of.
func (s *Semaphore) takeNotice(ctx context.Context, token, kind string, g grant) {
	s.mu.Lock()
	w, p := s.waiters[token], s.permits[token]
	s.mu.Unlock()
	switch {
	case w != nil && kind == "D":
		w.askAgain()
	case w != nil:
		offer(w.ch, g)
	case p == nil:
		s.abandon(ctx, token)
	}
}
