// Command db-pool shares a budget of database connections between several
// services with the plain limiter API, and shows why permits carry fencing
// tokens. The database is simulated (fakeDB): it refuses connections above
// its maximum and rejects writes that carry a stale fencing token.
//
//	go run ./examples/db-pool
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/slotguard/slotguard/examples/internal/exampleredis"
	"github.com/slotguard/slotguard/limiter"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "db-pool:", err)
		os.Exit(1)
	}
}

type settings struct {
	budget, workers, queries int
	services                 []string
	queryTime, timeout       time.Duration
	lease                    time.Duration
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var s settings
	var services string
	fs := flag.NewFlagSet("db-pool", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&s.budget, "budget", 8, "connections the database allows: the semaphore's limit")
	fs.StringVar(&services, "services", "api,billing,reports", "comma-separated service names")
	fs.IntVar(&s.workers, "workers", 6, "concurrent workers per service")
	fs.IntVar(&s.queries, "queries", 20, "queries per worker")
	fs.DurationVar(&s.queryTime, "query-time", 5*time.Millisecond, "how long a query holds its connection")
	fs.DurationVar(&s.timeout, "timeout", 200*time.Millisecond, "acquire timeout of the call that finds the budget used up")
	fs.DurationVar(&s.lease, "lease", 600*time.Millisecond, "lease of the fencing demo's writer permits")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s.services = strings.Split(services, ",")
	if s.budget < 1 || s.workers < 1 || s.queries < 1 {
		return errors.New("--budget, --workers and --queries must be at least 1")
	}

	conn, err := exampleredis.Connect(getenv)
	if err != nil {
		return err
	}
	defer conn.Close()
	prefix := exampleredis.Unique("slotguard-example")
	defer func() { _ = exampleredis.DeletePrefix(conn.Client, prefix) }()
	fmt.Fprintln(stdout, "Redis:", conn.Where)

	db := newFakeDB(s.budget)
	if err := shareBudget(ctx, conn, prefix, db, s, stdout); err != nil {
		return err
	}
	return fencing(ctx, conn, prefix, db, s, stdout)
}

// shareBudget runs every service's workers against db, each query holding
// one slot of the "db-connections" semaphore while its connection is open.
// Then a migration takes the whole budget at once, and a service's Acquire
// with a timeout gives up.
func shareBudget(ctx context.Context, conn *exampleredis.Conn, prefix string, db *fakeDB, s settings, stdout io.Writer) error {
	fmt.Fprintf(stdout, "Part 1: %d services x %d workers share %d database connections (semaphore \"db-connections\", limit %d)\n",
		len(s.services), s.workers, s.budget, s.budget)

	// Each service is a separate process in production: its own Redis
	// client and its own Semaphore value, sharing the slots in Redis.
	sems := map[string]*limiter.Semaphore{}
	for _, name := range s.services {
		rdb, err := conn.NewClient()
		if err != nil {
			return err
		}
		defer rdb.Close()
		sem, err := limiter.New(rdb, "db-connections", s.budget, &limiter.Options{Prefix: prefix})
		if err != nil {
			return err
		}
		sems[name] = sem
	}

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		done    = map[string]*atomic.Int64{}
		maxWait atomic.Int64
	)
	for _, name := range s.services {
		done[name] = new(atomic.Int64)
		for w := range s.workers {
			wg.Go(func() {
				for range s.queries {
					if err := query(ctx, sems[name], db, fmt.Sprintf("%s/%d", name, w), s.queryTime, &maxWait); err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("%s: %w", name, err))
						mu.Unlock()
						return
					}
					done[name].Add(1)
				}
			})
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	var total int64
	var per []string
	for _, name := range s.services {
		total += done[name].Load()
		per = append(per, fmt.Sprintf("%s %d", name, done[name].Load()))
	}
	fmt.Fprintf(stdout, "  queries run:            %d (%s)\n", total, strings.Join(per, ", "))
	fmt.Fprintf(stdout, "  peak open connections:  %d (the database allows %d)\n", db.peak.Load(), s.budget)
	fmt.Fprintf(stdout, "  refused connections:    %d\n", db.refused.Load())
	fmt.Fprintf(stdout, "  longest wait for a slot: %v\n", time.Duration(maxWait.Load()).Round(time.Millisecond))

	// A migration needs every connection: WithWeight takes all the slots
	// in one grant, so that no service opens a connection meanwhile.
	first, last := s.services[0], s.services[len(s.services)-1]
	migration, err := sems[first].Acquire(ctx, limiter.WithWeight(s.budget), limiter.WithHolder(first+"/migration"))
	if err != nil {
		return fmt.Errorf("migration: %w", err)
	}
	fmt.Fprintf(stdout, "  %s/migration holds all %d slots (WithWeight(%d), fence %d)\n", first, s.budget, s.budget, migration.Fence())
	start := time.Now()
	p, err := sems[last].Acquire(ctx, limiter.WithTimeout(s.timeout), limiter.WithHolder(last+"/report"))
	waited := time.Since(start)
	if err == nil {
		_ = p.Release(ctx)
		return errors.New("an acquire succeeded while the migration held every slot")
	}
	if !errors.Is(err, limiter.ErrTimeout) {
		return fmt.Errorf("%s/report: %w", last, err)
	}
	fmt.Fprintf(stdout, "  %s/report: Acquire(WithTimeout(%v)) gave up after %v: %v\n", last, s.timeout, waited.Round(10*time.Millisecond), err)
	return migration.Release(ctx)
}

// query runs one query holding one slot, opened and closed within the
// permit, and records the longest wait.
func query(ctx context.Context, sem *limiter.Semaphore, db *fakeDB, who string, d time.Duration, maxWait *atomic.Int64) error {
	start := time.Now()
	p, err := sem.Acquire(ctx, limiter.WithTimeout(10*time.Second), limiter.WithHolder(who))
	if err != nil {
		return err
	}
	defer p.Release(context.WithoutCancel(ctx))
	w := int64(time.Since(start))
	for m := maxWait.Load(); w > m && !maxWait.CompareAndSwap(m, w); m = maxWait.Load() {
	}
	c, err := db.Connect()
	if err != nil {
		return err
	}
	defer c.Close()
	c.Query(d)
	return nil
}

// fencing shows a stale holder rejected: writer A loses its Redis connection
// while it holds the only slot of "ledger-writer", its lease runs out, B gets
// the slot with a greater fencing token and writes, and A's late write is
// rejected by the database.
func fencing(ctx context.Context, conn *exampleredis.Conn, prefix string, db *fakeDB, s settings, stdout io.Writer) error {
	fmt.Fprintf(stdout, "Part 2: fencing tokens (semaphore \"ledger-writer\", limit 1, lease %v)\n", s.lease)
	opts := &limiter.Options{Prefix: prefix, Lease: s.lease}

	rdbA, err := conn.NewClient()
	if err != nil {
		return err
	}
	defer rdbA.Close()
	semA, err := limiter.New(rdbA, "ledger-writer", 1, opts)
	if err != nil {
		return err
	}
	semB, err := limiter.New(conn.Client, "ledger-writer", 1, opts)
	if err != nil {
		return err
	}

	a, err := semA.Acquire(ctx, limiter.WithHolder("writer-A"))
	if err != nil {
		return fmt.Errorf("writer A: %w", err)
	}
	if err := db.Write("ledger", a.Fence(), "balance=100 by A"); err != nil {
		return fmt.Errorf("writer A's first write: %w", err)
	}
	fmt.Fprintf(stdout, "  writer A: holds the slot with fence %d; its write is accepted\n", a.Fence())

	// A network partition: A can no longer renew its lease, and A itself
	// stalls (think of a long GC pause) without looking at a.Lost().
	_ = rdbA.Close()
	cut := time.Now()
	fmt.Fprintln(stdout, "  writer A: loses its connection to Redis and stalls")

	b, err := semB.Acquire(ctx, limiter.WithTimeout(10*s.lease), limiter.WithHolder("writer-B"))
	if err != nil {
		return fmt.Errorf("writer B: %w", err)
	}
	defer b.Release(context.WithoutCancel(ctx))
	waited := time.Since(cut)
	if err := db.Write("ledger", b.Fence(), "balance=70 by B"); err != nil {
		return fmt.Errorf("writer B's write: %w", err)
	}
	fmt.Fprintf(stdout, "  writer B: gets the slot %v later, when A's lease ran out, with fence %d; its write is accepted\n",
		waited.Round(10*time.Millisecond), b.Fence())

	err = db.Write("ledger", a.Fence(), "balance=90 by A")
	if !errors.Is(err, errStaleFence) {
		return fmt.Errorf("writer A's late write was not rejected: %v", err)
	}
	fmt.Fprintf(stdout, "  writer A: wakes up and writes with fence %d: rejected: %v\n", a.Fence(), err)

	select {
	case <-a.Lost():
		fmt.Fprintln(stdout, "  writer A: its Permit.Lost() channel is closed, so a holder that checks it stops")
	case <-time.After(2 * s.lease):
		return errors.New("writer A's permit never reported its lease lost")
	}
	return nil
}
