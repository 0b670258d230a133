package main

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/slotguard/slotguard/examples/internal/exampletest"
	"github.com/slotguard/slotguard/internal/asynqtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	asynqtest.Release()
	os.Exit(code)
}

// row is one tenant's line of the output table.
type row struct {
	tasks, peak int
	done        float64 // seconds
}

func runExample(t *testing.T, args ...string) map[string]row {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(t.Context(), args, exampletest.Getenv(t), &out, &errOut); err != nil {
		t.Fatalf("run %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, out.String(), errOut.String())
	}
	t.Logf("run %v:\n%s", args, out.String())
	rows := map[string]row{}
	for _, m := range regexp.MustCompile(`(?m)^(\w+)\s+(\d+)\s+(\d+)\s+([\d.]+)s$`).FindAllStringSubmatch(out.String(), -1) {
		var r row
		r.tasks, _ = strconv.Atoi(m[2])
		r.peak, _ = strconv.Atoi(m[3])
		r.done, _ = strconv.ParseFloat(m[4], 64)
		rows[m[1]] = r
	}
	return rows
}

var shortArgs = []string{"--noisy=acme", "--noisy-tasks=40", "--quiet=globex,initech", "--quiet-tasks=4",
	"--limit=2", "--servers=2", "--concurrency=30", "--work=20ms"}

func TestNoisyTenantCannotTakeTheOthersSlots(t *testing.T) {
	const limit = 2
	rows := runExample(t, shortArgs...)
	want := map[string]int{"acme": 40, "globex": 4, "initech": 4}
	for tenant, n := range want {
		r, ok := rows[tenant]
		if !ok {
			t.Fatalf("no row for tenant %s", tenant)
		}
		if r.tasks != n {
			t.Errorf("%s: %d tasks done, want %d", tenant, r.tasks, n)
		}
		if r.peak < 1 || r.peak > limit {
			t.Errorf("%s: peak running %d, want 1..%d", tenant, r.peak, limit)
		}
	}
	// acme's 40 tasks need at least 40 x 20ms / 2 = 400ms; each quiet
	// tenant's 4 need 40ms, and must not wait behind acme's (then they
	// would end with acme's last). Here they end at a fifth to a third of
	// acme's time; two thirds leaves room for a loaded machine.
	for _, q := range []string{"globex", "initech"} {
		if rows[q].done >= rows["acme"].done*2/3 {
			t.Errorf("%s done after %.2fs, not well before acme (%.2fs)", q, rows[q].done, rows["acme"].done)
		}
	}
}

func TestWithoutPartitionsTheNoisyTenantTakesMoreThanItsShare(t *testing.T) {
	const limit = 2
	rows := runExample(t, append(shortArgs, "--partition=false")...)
	if got := rows["acme"].peak; got <= limit {
		t.Errorf("acme peak running %d with one shared limit of 6, want above %d", got, limit)
	}
	if got := rows["acme"].tasks + rows["globex"].tasks + rows["initech"].tasks; got != 48 {
		t.Errorf("%d tasks done, want 48", got)
	}
}
