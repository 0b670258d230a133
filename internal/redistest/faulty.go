package redistest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrInjected is the error a [Faulty] client returns for an injected fault.
var ErrInjected = errors.New("redistest: injected fault")

// Faulty is a real client whose script calls can be made to fail. It embeds
// the real client, so everything else is real; only EvalSha and Eval are
// intercepted.
type Faulty struct {
	*redis.Client

	// Delay is how long a SlowReply fault holds a reply back.
	Delay time.Duration

	// Only, when set, picks the script calls the plan is asked about (by
	// their arguments); the others pass and are not counted. Set it before
	// the client is used.
	Only func(args []any) bool

	// Decide, when set, chooses each script call's fault from its
	// arguments instead of the plan (and Only). Set it before the client
	// is used.
	Decide func(args []any) Fault

	// Holding, when set, is called each time a SlowReply fault starts
	// holding a reply back: the script has run on the server.
	Holding func()

	mu    sync.Mutex
	plan  func(call int) Fault
	call  int
	carry map[string]Fault // faults of EvalSha calls that NOSCRIPT sent on to Eval, by their arguments
}

// Fault says what one script call does.
type Fault int

const (
	// Pass runs the script normally.
	Pass Fault = iota
	// FailBefore returns ErrInjected without running the script.
	FailBefore
	// LoseReply runs the script on the server, then returns ErrInjected as
	// if the reply had been lost.
	LoseReply
	// SlowReply runs the script, then holds its reply back for the Faulty's
	// Delay, as a slow or stalled network would.
	SlowReply
)

// NewFaulty wraps c. plan is asked about each script call, numbered from 1;
// nil passes every call.
func NewFaulty(c *redis.Client, plan func(call int) Fault) *Faulty {
	return &Faulty{Client: c, plan: plan}
}

// SetPlan replaces the fault plan and restarts the call count.
func (f *Faulty) SetPlan(plan func(call int) Fault) {
	f.mu.Lock()
	f.plan, f.call = plan, 0
	f.mu.Unlock()
}

func (f *Faulty) next(args []any) Fault {
	f.mu.Lock()
	if fault, ok := f.carry[fmt.Sprint(args...)]; ok {
		delete(f.carry, fmt.Sprint(args...))
		f.mu.Unlock()
		return fault
	}
	f.mu.Unlock()
	if f.Decide != nil {
		return f.Decide(args)
	}
	if f.Only != nil && !f.Only(args) {
		return Pass
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call++
	if f.plan == nil {
		return Pass
	}
	return f.plan(f.call)
}

func (f *Faulty) inject(cmd *redis.Cmd, fault Fault) *redis.Cmd {
	switch fault {
	case Pass:
		return cmd
	case SlowReply:
		if f.Holding != nil {
			f.Holding()
		}
		time.Sleep(f.Delay)
		return cmd
	}
	out := redis.NewCmd(context.Background())
	out.SetErr(ErrInjected)
	return out
}

// EvalSha runs or fails the script as the plan says.
func (f *Faulty) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	fault := f.next(args)
	if fault == FailBefore {
		return f.inject(nil, fault)
	}
	cmd := f.Client.EvalSha(ctx, sha, keys, args...)
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		f.mu.Lock()
		if f.carry == nil {
			f.carry = map[string]Fault{}
		}
		f.carry[fmt.Sprint(args...)] = fault
		f.mu.Unlock()
		return cmd
	}
	return f.inject(cmd, fault)
}

// Eval runs or fails the script as the plan says.
func (f *Faulty) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	fault := f.next(args)
	if fault == FailBefore {
		return f.inject(nil, fault)
	}
	return f.inject(f.Client.Eval(ctx, script, keys, args...), fault)
}
