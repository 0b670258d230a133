package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/redistest"
)

// BenchmarkBulkEnqueue enqueues 10,000 JSON lines per iteration into the
// local Redis, as `enqueue --file` does, and reports tasks/s.
func BenchmarkBulkEnqueue(b *testing.B) {
	const n = 10000
	asynqtest.CleanQueue(b, "eq-bench")
	b.Cleanup(func() { asynqtest.CleanQueue(b, "eq-bench") })
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, `{"type":"bench:task","payload":{"i":%d,"customer_id":"c%d"},"queue":"eq-bench"}`+"\n", i, i%100)
	}
	file := filepath.Join(b.TempDir(), "tasks.jsonl")
	if err := os.WriteFile(file, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	url := fmt.Sprintf("redis://%s/%d", redistest.Addr(), asynqtest.DB(b))
	getenv := func(k string) string {
		if k == "REDIS_URL" {
			return url
		}
		return ""
	}
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := run(b.Context(), []string{"--file", file}, getenv, nil, io.Discard, io.Discard); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "tasks/s")
}
