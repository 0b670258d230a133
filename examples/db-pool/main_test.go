package main

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slotguard/slotguard/examples/internal/exampletest"
	"github.com/slotguard/slotguard/internal/asynqtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	asynqtest.Release()
	os.Exit(code)
}

func TestServicesShareTheBudgetAndStaleWritersAreFenced(t *testing.T) {
	const budget, services, workers, queries = 4, 3, 4, 10
	var out, errOut bytes.Buffer
	args := []string{"--budget=4", "--services=a,b,c", "--workers=4", "--queries=10", "--query-time=2ms", "--timeout=100ms", "--lease=600ms"}
	if err := run(t.Context(), args, exampletest.Getenv(t), &out, &errOut); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	got := out.String()
	t.Logf("output:\n%s", got)

	if n := exampletest.Int(t, got, "queries run:"); n != services*workers*queries {
		t.Errorf("queries run = %d, want %d", n, services*workers*queries)
	}
	for _, svc := range []string{"a", "b", "c"} {
		if !strings.Contains(got, svc+" "+strconv.Itoa(workers*queries)) {
			t.Errorf("service %s did not run %d queries", svc, workers*queries)
		}
	}
	if n := exampletest.Int(t, got, "peak open connections:"); n < 1 || n > budget {
		t.Errorf("peak open connections = %d, want 1..%d", n, budget)
	}
	if n := exampletest.Int(t, got, "refused connections:"); n != 0 {
		t.Errorf("refused connections = %d, want 0", n)
	}
	if !regexp.MustCompile(`c/report: Acquire\(WithTimeout\(100ms\)\) gave up after [\d.]+m?s: .*acquire timed out`).MatchString(got) {
		t.Error("no acquire timeout while the migration held every slot")
	}

	fenceA := exampletest.Int(t, got, "writer A: holds the slot with fence")
	m := regexp.MustCompile(`writer B: gets the slot (\S+) later, .* with fence (\d+); its write is accepted`).FindStringSubmatch(got)
	if m == nil {
		t.Fatal("writer B's write was not accepted")
	}
	fenceB, _ := strconv.Atoi(m[2])
	// A's lease (600ms, renewed every 200ms) must run out first.
	if waited, err := time.ParseDuration(m[1]); err != nil || waited < 300*time.Millisecond || waited > 5*time.Second {
		t.Errorf("B got the slot %s after A was cut off, want between 300ms and 5s (A's lease is 600ms)", m[1])
	}
	if fenceB <= fenceA {
		t.Errorf("B's fence %d is not greater than A's %d", fenceB, fenceA)
	}
	want := "writes with fence " + strconv.Itoa(fenceA) + ": rejected: stale fencing token " + strconv.Itoa(fenceA) + " (the table has seen " + strconv.Itoa(fenceB) + ")"
	if !strings.Contains(got, want) {
		t.Errorf("A's late write: want %q in the output", want)
	}
	if !strings.Contains(got, "Permit.Lost() channel is closed") {
		t.Error("A's permit did not report its lease lost")
	}
}
