// Command microservices shows two OS processes, two "services", sharing one
// slotguard semaphore through Redis: waiters of both are served in arrival
// order, and when one process is killed while it holds the slot, the other
// gets the slot about one lease later.
//
// The example starts the embedded Redis (or uses REDIS_URL), then runs
// itself a second time as the "billing" service and drives it through its
// stdin; the first process is the "orders" service.
//
//	go run ./examples/microservices
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slotguard/slotguard/examples/internal/exampleredis"
	"github.com/slotguard/slotguard/limiter"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "microservices:", err)
		os.Exit(1)
	}
}

const semName = "shared-api"

type settings struct {
	rounds  int
	lease   time.Duration
	hold    time.Duration
	prefix  string
	timeout time.Duration
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var s settings
	fs := flag.NewFlagSet("microservices", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&s.rounds, "rounds", 3, "waiters each service queues in the FIFO demo")
	fs.DurationVar(&s.lease, "lease", time.Second, "the semaphore's lease: how long a crashed holder keeps its slot at most")
	fs.DurationVar(&s.hold, "hold", 50*time.Millisecond, "how long each waiter holds the slot once granted")
	fs.DurationVar(&s.timeout, "timeout", 30*time.Second, "give up on any step after this long")
	fs.StringVar(&s.prefix, "prefix", "", "key prefix (the first process picks one and passes it on)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if s.rounds < 1 {
		return errors.New("--rounds must be at least 1")
	}

	conn, err := exampleredis.Connect(getenv)
	if err != nil {
		return err
	}
	defer conn.Close()

	if getenv(roleEnv) != "" {
		sem, err := limiter.New(conn.Client, semName, 1, &limiter.Options{Prefix: s.prefix, Lease: s.lease})
		if err != nil {
			return err
		}
		return serve(ctx, sem, os.Stdin, stdout)
	}

	s.prefix = exampleredis.Unique("slotguard-example")
	defer func() { _ = exampleredis.DeletePrefix(conn.Client, s.prefix) }()
	sem, err := limiter.New(conn.Client, semName, 1, &limiter.Options{Prefix: s.prefix, Lease: s.lease})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Redis:", conn.Where)

	billing, err := startBilling(ctx, conn.URL, s, stderr)
	if err != nil {
		return err
	}
	defer billing.stop()
	fmt.Fprintf(stdout, "two processes share semaphore %q (limit 1, lease %v): orders (pid %d) and billing (pid %d)\n",
		semName, s.lease, os.Getpid(), billing.cmd.Process.Pid)

	if err := fifo(ctx, sem, billing, s, stdout); err != nil {
		return err
	}
	return crash(ctx, sem, billing, s, stdout)
}

// grant is one granted waiter, from either process.
type grant struct {
	label string
	fence int64
}

// fifo queues waiters alternately from both processes while orders holds
// the slot, then lets go, and prints the order of the grants.
func fifo(ctx context.Context, sem *limiter.Semaphore, billing *child, s settings, stdout io.Writer) error {
	gate, err := sem.Acquire(ctx, limiter.WithHolder("orders-gate"))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "FIFO: orders holds the slot while both services queue waiters, alternately:")

	var (
		mu     sync.Mutex
		grants []grant
		wg     sync.WaitGroup
		errs   = make(chan error, s.rounds)
	)
	var arrival []string
	for i := range 2 * s.rounds {
		label := fmt.Sprintf("orders-%d", i/2+1)
		if i%2 == 1 {
			label = fmt.Sprintf("billing-%d", i/2+1)
			if err := billing.send("acquire %s %v", label, s.hold); err != nil {
				return err
			}
		} else {
			wg.Go(func() {
				p, err := sem.Acquire(ctx, limiter.WithHolder(label))
				if err != nil {
					errs <- fmt.Errorf("%s: %w", label, err)
					return
				}
				mu.Lock()
				grants = append(grants, grant{label, p.Fence()})
				mu.Unlock()
				time.Sleep(s.hold)
				_ = p.Release(ctx)
			})
		}
		arrival = append(arrival, label)
		// The next waiter queues only once this one is in the queue, so
		// that the arrival order is the one printed.
		if err := waitFor(ctx, s.timeout, func() (bool, error) {
			info, err := sem.Info(ctx)
			return info.Waiting == i+1, err
		}); err != nil {
			return fmt.Errorf("wait for %s to queue: %w", label, err)
		}
	}
	fmt.Fprintf(stdout, "  arrival order: %s\n", strings.Join(arrival, " "))
	if err := gate.Release(ctx); err != nil {
		return err
	}

	// Billing reports its grants and releases as they happen.
	for granted, released := 0, 0; granted < s.rounds || released < s.rounds; {
		ev, err := billing.expect(s.timeout, "granted", "released")
		if err != nil {
			return err
		}
		if ev[0] == "released" {
			released++
			continue
		}
		granted++
		fence, _ := strconv.ParseInt(ev[2], 10, 64)
		mu.Lock()
		grants = append(grants, grant{ev[1], fence})
		mu.Unlock()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	sort.Slice(grants, func(i, j int) bool { return grants[i].fence < grants[j].fence })
	var order []string
	for _, g := range grants {
		order = append(order, fmt.Sprintf("%s(%d)", g.label, g.fence))
	}
	fmt.Fprintf(stdout, "  grant order (fencing token): %s\n", strings.Join(order, " "))
	inOrder := len(grants) == len(arrival)
	for i := range grants {
		inOrder = inOrder && grants[i].label == arrival[i]
	}
	fmt.Fprintf(stdout, "  grants followed arrival order across processes: %v\n", inOrder)
	return nil
}

// crash has billing take the slot, kills billing with SIGKILL, and times how
// long orders waits for the slot.
func crash(ctx context.Context, sem *limiter.Semaphore, billing *child, s settings, stdout io.Writer) error {
	fmt.Fprintln(stdout, "Crash: billing takes the slot and is killed before it can release it:")
	if err := billing.send("hold billing-crash"); err != nil {
		return err
	}
	ev, err := billing.expect(s.timeout, "holding")
	if err != nil {
		return err
	}
	if err := billing.cmd.Process.Kill(); err != nil {
		return err
	}
	killed := time.Now()
	_ = billing.cmd.Wait()
	fmt.Fprintf(stdout, "  billing (pid %d) holds the slot (fence %s) and is killed with SIGKILL\n", billing.cmd.Process.Pid, ev[2])

	info, err := sem.Info(ctx)
	if err != nil {
		return err
	}
	for _, h := range info.Holders {
		fmt.Fprintf(stdout, "  Redis still counts the slot as held by %s, lease left %.2fs\n", h.Label, h.LeaseLeft.Seconds())
	}

	p, err := sem.Acquire(ctx, limiter.WithTimeout(s.timeout), limiter.WithHolder("orders-after-crash"))
	if err != nil {
		return fmt.Errorf("orders after the crash: %w", err)
	}
	waited := time.Since(killed)
	defer p.Release(context.WithoutCancel(ctx))
	fmt.Fprintf(stdout, "  orders got the slot %.2fs after the kill (lease %v), fence %d\n", waited.Seconds(), s.lease, p.Fence())
	return nil
}

// child is the billing process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan []string
}

// startBilling runs this program again as the billing service on the same
// Redis and key prefix, and waits until it is ready.
func startBilling(ctx context.Context, redisURL string, s settings, stderr io.Writer) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "--prefix="+s.prefix, "--lease="+s.lease.String())
	cmd.Env = append(os.Environ(), roleEnv+"=billing", "REDIS_URL="+redisURL)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start billing: %w", err)
	}
	c := &child{cmd: cmd, stdin: stdin, events: make(chan []string, 64)}
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.events <- strings.Fields(sc.Text())
		}
	}()
	if _, err := c.expect(s.timeout, "ready"); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *child) send(format string, args ...any) error {
	_, err := fmt.Fprintf(c.stdin, format+"\n", args...)
	return err
}

// expect returns the child's next event, which must be of one of kinds.
func (c *child) expect(timeout time.Duration, kinds ...string) ([]string, error) {
	select {
	case ev, ok := <-c.events:
		if !ok {
			return nil, fmt.Errorf("billing exited while orders waited for %q", kinds)
		}
		if len(ev) > 0 && slices.Contains(kinds, ev[0]) {
			return ev, nil
		}
		return nil, fmt.Errorf("billing said %q, want %q", strings.Join(ev, " "), kinds)
	case <-time.After(timeout):
		return nil, fmt.Errorf("billing did not say %q within %v", kinds, timeout)
	}
}

// stop ends the child if it still runs.
func (c *child) stop() {
	_ = c.stdin.Close()
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
	}
}

// waitFor polls cond until it holds, fails, or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := cond()
		if ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
