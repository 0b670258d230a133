package limiter

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/slotguard/slotguard/internal/redistest"
)

func init() {
	childModes["hammer"] = hammerChild
	childModes["hold"] = holdChild
}

// startChild re-executes the test binary in mode with env (KEY=VALUE pairs)
// and returns the command and its stdout.
func startChild(t *testing.T, mode string, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, childEnv+"="+mode)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, bufio.NewScanner(out)
}

func childSemaphore(limit int, lease time.Duration) (*Semaphore, *redis.Client, error) {
	c := redis.NewClient(&redis.Options{Addr: os.Getenv("SG_ADDR"), PoolSize: 32})
	s, err := New(c, os.Getenv("SG_NAME"), limit, &Options{Prefix: os.Getenv("SG_PREFIX"), Lease: lease})
	return s, c, err
}

func TestHammerAcrossProcessesNeverExceedsLimit(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		const procs, limit = 3, 4
		env := []string{"SG_ADDR=" + b.Client.Options().Addr, "SG_PREFIX=" + b.Prefix,
			"SG_NAME=hammer", "SG_LIMIT=" + strconv.Itoa(limit), "SG_DURATION=2s"}
		var outs []*bufio.Scanner
		var cmds []*exec.Cmd
		for range procs {
			cmd, out := startChild(t, "hammer", env...)
			cmds, outs = append(cmds, cmd), append(outs, out)
		}
		var total, timeouts, cancels int
		for i, out := range outs {
			var line string
			for out.Scan() {
				line = out.Text()
			}
			if err := cmds[i].Wait(); err != nil {
				t.Fatalf("child %d: %v (last line %q)", i, err, line)
			}
			var acq, to, ca, over, errs int
			if _, err := fmt.Sscanf(line, "acquired=%d timeouts=%d cancels=%d over=%d errors=%d", &acq, &to, &ca, &over, &errs); err != nil {
				t.Fatalf("child %d printed %q", i, line)
			}
			if over != 0 || errs != 0 {
				t.Fatalf("child %d saw %d moments with more than %d holders, and %d failed calls (printed above)", i, over, limit, errs)
			}
			total, timeouts, cancels = total+acq, timeouts+to, cancels+ca
		}
		peak, _ := b.Client.Get(t.Context(), b.Prefix+":hammer:peak").Int()
		if peak > limit || peak < 2 {
			t.Fatalf("peak concurrent holders %d, want 2..%d", peak, limit)
		}
		if total < 50 {
			t.Fatalf("only %d acquisitions checked", total)
		}
		s := newSem(t, b, "hammer", limit, nil)
		if info := mustInfo(t, s); info.Held != 0 || info.Waiting != 0 {
			t.Fatalf("after the hammer: %+v", info)
		}
		t.Logf("%d processes checked %d acquisitions (%d timeouts, %d cancellations), peak %d holders of %d",
			procs, total, timeouts, cancels, peak, limit)
	})
}

// hammerChild acquires and releases with random hold times, timeouts and
// cancellations, counting holders in a Redis key the semaphore never reads.
func hammerChild() error {
	limit, _ := strconv.Atoi(os.Getenv("SG_LIMIT"))
	d, _ := time.ParseDuration(os.Getenv("SG_DURATION"))
	s, c, err := childSemaphore(limit, 0)
	if err != nil {
		return err
	}
	ctx := context.Background()
	count, peak := os.Getenv("SG_PREFIX")+":hammer:count", os.Getenv("SG_PREFIX")+":hammer:peak"
	var acquired, timeouts, cancels, over, errs atomic.Int64
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(end) {
				actx, cancel := context.WithCancel(ctx)
				var opts []AcquireOption
				switch rand.IntN(4) {
				case 0:
					opts = append(opts, WithTimeout(time.Duration(1+rand.IntN(20))*time.Millisecond))
				case 1:
					time.AfterFunc(time.Duration(rand.IntN(20))*time.Millisecond, cancel)
				}
				p, err := s.Acquire(actx, opts...)
				cancel()
				switch {
				case err == nil:
				case strings.Contains(err.Error(), "timed out"):
					timeouts.Add(1)
					continue
				case strings.Contains(err.Error(), "canceled"):
					cancels.Add(1)
					continue
				default:
					fmt.Fprintln(os.Stderr, "acquire:", err)
					errs.Add(1)
					return
				}
				n, err := c.Incr(ctx, count).Result()
				if err != nil || n > int64(limit) {
					over.Add(1)
				}
				c.Eval(ctx, "if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end", []string{peak}, n)
				acquired.Add(1)
				time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
				c.Decr(ctx, count)
				if err := p.Release(ctx); err != nil {
					fmt.Fprintln(os.Stderr, "release:", err)
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("acquired=%d timeouts=%d cancels=%d over=%d errors=%d\n", acquired.Load(), timeouts.Load(), cancels.Load(), over.Load(), errs.Load())
	return nil
}

func TestKilledHoldersSlotsReturnWithinLease(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		const lease = time.Second
		cmd, out := startChild(t, "hold", "SG_ADDR="+b.Client.Options().Addr, "SG_PREFIX="+b.Prefix,
			"SG_NAME=killed", "SG_LEASE="+lease.String())
		if !out.Scan() || out.Text() != "held" {
			t.Fatalf("child did not take its slots: %q", out.Text())
		}
		s := newSem(t, b, "killed", 3, &Options{Lease: lease})
		if info := mustInfo(t, s); info.Held != 3 {
			t.Fatalf("child holds %d, want 3", info.Held)
		}
		// Let a renewal happen so the slots are held past their first lease.
		time.Sleep(lease)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		p, err := s.Acquire(t.Context(), WithWeight(3), WithTimeout(5*lease))
		if err != nil {
			t.Fatal(err)
		}
		el := time.Since(killed)
		if el > lease+500*time.Millisecond {
			t.Fatalf("slots came back %v after SIGKILL; lease %v", el, lease)
		}
		t.Logf("slots of a SIGKILLed holder came back after %v (lease %v)", el.Round(time.Millisecond), lease)
		mustRelease(t, p)
	})
}

// holdChild takes all 3 slots (weights 1 and 2), says "held", and waits to
// be killed.
func holdChild() error {
	lease, _ := time.ParseDuration(os.Getenv("SG_LEASE"))
	s, _, err := childSemaphore(3, lease)
	if err != nil {
		return err
	}
	if _, err := s.Acquire(context.Background()); err != nil {
		return err
	}
	if _, err := s.Acquire(context.Background(), WithWeight(2)); err != nil {
		return err
	}
	fmt.Println("held")
	select {}
}
