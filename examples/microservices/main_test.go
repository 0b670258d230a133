package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slotguard/slotguard/examples/internal/exampletest"
	"github.com/slotguard/slotguard/internal/asynqtest"
)

// TestMain runs the billing service when the example re-executes the test
// binary as its second process.
func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) != "" {
		if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "billing:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	asynqtest.Release()
	os.Exit(code)
}

func TestTwoProcessesShareASlotInOrderAndACrashedHolderLosesItAfterItsLease(t *testing.T) {
	const lease = time.Second
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"--rounds=3", "--lease=1s", "--hold=20ms"}, exampletest.Getenv(t), &out, &errOut); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	got := out.String()
	t.Logf("output:\n%s", got)

	pids := regexp.MustCompile(`orders \(pid (\d+)\) and billing \(pid (\d+)\)`).FindStringSubmatch(got)
	if pids == nil || pids[1] == pids[2] || pids[1] != strconv.Itoa(os.Getpid()) {
		t.Fatalf("want two processes, orders being this one (pid %d); got %q", os.Getpid(), pids)
	}

	want := "orders-1 billing-1 orders-2 billing-2 orders-3 billing-3"
	if !strings.Contains(got, "arrival order: "+want) {
		t.Errorf("arrival order is not %q", want)
	}
	m := regexp.MustCompile(`grant order \(fencing token\): (.*)`).FindStringSubmatch(got)
	if m == nil {
		t.Fatal("no grant order")
	}
	if order := regexp.MustCompile(`\(\d+\)`).ReplaceAllString(m[1], ""); order != want {
		t.Errorf("grant order = %q, want the arrival order %q", order, want)
	}
	if !strings.Contains(got, "grants followed arrival order across processes: true") {
		t.Error("the example did not find the grants in arrival order")
	}

	if !regexp.MustCompile(`billing \(pid ` + pids[2] + `\) holds the slot \(fence \d+\) and is killed with SIGKILL`).MatchString(got) {
		t.Error("billing was not killed while holding the slot")
	}
	if !strings.Contains(got, "Redis still counts the slot as held by billing-crash") {
		t.Error("the killed holder's slot was not shown as held right after the kill")
	}
	w := regexp.MustCompile(`orders got the slot ([\d.]+)s after the kill`).FindStringSubmatch(got)
	if w == nil {
		t.Fatal("orders did not get the slot after the crash")
	}
	secs, _ := strconv.ParseFloat(w[1], 64)
	waited := time.Duration(secs * float64(time.Second))
	// Billing renews every lease/3, so the slot comes back between about
	// two thirds of a lease and one lease (plus a safety-net poll) after
	// the kill; never at once, since nobody released it.
	if waited < lease/2 || waited > lease+3*time.Second {
		t.Errorf("orders got the slot %v after the kill, want about one lease (%v)", waited, lease)
	}
}
