//go:build linux || darwin

package limiter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// benchProcs is how many OS processes share a multi-process load.
const benchProcs = 4

// The child mode "bench-contended" runs its share of a load's workers in
// its own process. Its parameters come in these variables; once it is
// ready it writes a line to its stdout, and reads the window's start and
// end (Unix ns) from its stdin.
const (
	benchEnvAddr    = "SLOTGUARD_BENCH_ADDR"
	benchEnvPrefix  = "SLOTGUARD_BENCH_PREFIX"
	benchEnvVariant = "SLOTGUARD_BENCH_VARIANT"
	benchEnvShape   = "SLOTGUARD_BENCH_SHAPE" // a key of benchShapes
	benchEnvWorkers = "SLOTGUARD_BENCH_WORKERS"
	benchEnvBase    = "SLOTGUARD_BENCH_BASE" // the first worker's number
	benchEnvShared  = "SLOTGUARD_BENCH_SHARED"
	benchEnvOut     = "SLOTGUARD_BENCH_OUT"
)

// benchStartMargin is how long after the last child is ready the window
// starts: time for each to read its start.
const benchStartMargin = 200 * time.Millisecond

func init() { childModes["bench-contended"] = benchContendedChild }

// benchShapes are the loads a child process can run, by name.
var benchShapes = map[string]benchShape{
	contendedShape.name: contendedShape,
	ceilingShape.name:   ceilingShape,
}

func BenchmarkContendedProcs(b *testing.B) {
	r := newBenchRedis(b)
	for _, v := range []string{"slotguard", "seed", "xrate"} {
		b.Run(v, func(b *testing.B) {
			run := runBenchProcs(b, r, v, contendedShape)
			reportContended(b, contendedShape, analyzeLoad(run.events, contendedShape.limit, run.from.UnixNano(), run.to.UnixNano()),
				run.to.Sub(run.from), run.cmds, run.maxHolders)
		})
	}
}

// procsRun is the outcome of a load run by benchProcs processes.
type procsRun struct {
	from, to   time.Time    // the measured window (see cmdDelta.window)
	events     []benchEvent // every process's, merged
	cmds       cmdDelta     // what Redis ran in the window
	maxHolders int64        // the most holders at once, across processes
}

// runBenchProcs runs shape's workers for variant v, spread over benchProcs
// child processes (the test binary re-executed) that start together at a
// common wall-clock time once all of them are ready, for one second per b.N
// (200 ms in a smoke pass).
func runBenchProcs(b *testing.B, r *benchRedis, v string, shape benchShape) procsRun {
	b.Helper()
	dir := b.TempDir()
	shared := filepath.Join(dir, "holders")
	if err := os.WriteFile(shared, make([]byte, 16), 0o600); err != nil {
		b.Fatal(err)
	}
	hc, unmap, err := mapHolderCount(shared)
	if err != nil {
		b.Fatal(err)
	}
	defer unmap()
	prefix := r.prefix(b)
	var (
		cmds   []*exec.Cmd
		outs   []string
		starts []io.WriteCloser
		ready  []*bufio.Reader
	)
	defer func() {
		for _, w := range starts {
			_ = w.Close() // a child still waiting for its start exits
		}
	}()
	base := 0
	for i := range benchProcs {
		out := filepath.Join(dir, "events-"+strconv.Itoa(i))
		workers := shape.workers / benchProcs
		if i < shape.workers%benchProcs {
			workers++
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			childEnv+"=bench-contended",
			benchEnvAddr+"="+r.addr,
			benchEnvPrefix+"="+prefix,
			benchEnvVariant+"="+v,
			benchEnvShape+"="+shape.name,
			benchEnvWorkers+"="+strconv.Itoa(workers),
			benchEnvBase+"="+strconv.Itoa(base),
			benchEnvShared+"="+shared,
			benchEnvOut+"="+out,
		)
		cmd.Stderr = &bytes.Buffer{}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
		starts, ready = append(starts, stdin), append(ready, bufio.NewReader(stdout))
		base += workers
	}
	// Each child connects and warms up, then says so; the window starts
	// when all are ready.
	for i, rd := range ready {
		if _, err := rd.ReadString('\n'); err != nil {
			_ = cmds[i].Wait()
			b.Fatalf("child not ready: %v: %s", err, cmds[i].Stderr)
		}
	}
	start := time.Now().Add(benchStartMargin)
	end := start.Add(benchWindow(b))
	for _, w := range starts {
		if _, err := fmt.Fprintf(w, "%d %d\n", start.UnixNano(), end.UnixNano()); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	d := measureCmds(b, r, start, end, benchVariants[v].extra)
	var errs []error
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("child: %w: %s", err, cmd.Stderr))
		}
	}
	b.StopTimer()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	run := procsRun{cmds: d, maxHolders: hc.most()}
	run.from, run.to = d.window(start, end)
	for _, out := range outs {
		ev, err := readBenchEvents(out)
		if err != nil {
			b.Fatal(err)
		}
		run.events = append(run.events, ev...)
	}
	return run
}

// benchContendedChild is one process of runBenchProcs.
func benchContendedChild() error {
	env := func(k string) int64 {
		n, _ := strconv.ParseInt(os.Getenv(k), 10, 64)
		return n
	}
	shape, ok := benchShapes[os.Getenv(benchEnvShape)]
	if !ok {
		return fmt.Errorf("%s=%q: no such load", benchEnvShape, os.Getenv(benchEnvShape))
	}
	ctx := context.Background()
	l, closeLock, err := openBenchLock(ctx, os.Getenv(benchEnvAddr), os.Getenv(benchEnvVariant),
		os.Getenv(benchEnvPrefix), shape.name, shape.limit)
	if err != nil {
		return err
	}
	defer closeLock()
	hc, unmap, err := mapHolderCount(os.Getenv(benchEnvShared))
	if err != nil {
		return err
	}
	defer unmap()
	fmt.Println("ready")
	var startNs, endNs int64
	if _, err := fmt.Scan(&startNs, &endNs); err != nil {
		return fmt.Errorf("reading the window: %w", err)
	}
	start, end := time.Unix(0, startNs), time.Unix(0, endNs)
	if time.Now().After(start) {
		return fmt.Errorf("child read its start %v after it", time.Since(start))
	}
	events, err := runBenchWorkers(ctx, l, shape, int(env(benchEnvBase)), int(env(benchEnvWorkers)), start, end, hc)
	if err != nil {
		return err
	}
	f, err := os.Create(os.Getenv(benchEnvOut))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if err := binary.Write(w, binary.LittleEndian, events); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func readBenchEvents(path string) ([]benchEvent, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	events := make([]benchEvent, len(data)/binary.Size(benchEvent{}))
	return events, binary.Read(bytes.NewReader(data), binary.LittleEndian, events)
}

// mapHolderCount maps the 16-byte file at path into memory, so that every
// process that maps it shares one holder count.
func mapHolderCount(path string) (holderCount, func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return holderCount{}, nil, err
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, 16, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return holderCount{}, nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	hc := holderCount{
		cur: (*int64)(unsafe.Pointer(&m[0])),
		max: (*int64)(unsafe.Pointer(&m[8])),
	}
	return hc, func() { _ = syscall.Munmap(m) }, nil
}
