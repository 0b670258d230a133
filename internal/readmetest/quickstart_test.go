package readmetest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/redistest"
)

// shBlocks returns the commands of the ```sh blocks in the README section
// that starts with heading.
func shBlocks(t *testing.T, readme, heading string) []string {
	t.Helper()
	i := strings.Index(readme, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README has no %q section", heading)
	}
	section := readme[i+len(heading)+2:]
	if j := strings.Index(section, "\n## "); j >= 0 {
		section = section[:j]
	}
	var cmds []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		cmds = append(cmds, strings.TrimSpace(m[1]))
	}
	return cmds
}

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCIRunsTheREADMEsTestCommand(t *testing.T) {
	cmds := shBlocks(t, readme(t), "## Run the tests")
	if len(cmds) != 1 {
		t.Fatalf("want one test command, got %q", cmds)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ci), "\n"+cmds[0]+"\n") {
		t.Fatalf(".ci/run does not run the README's test command %q", cmds[0])
	}
}

// TestQuickStartWorksOnAFreshMachine runs the README's two quick-start
// commands as a new user would, where nothing listens on 127.0.0.1:6379: the
// worker's embedded Redis takes that port, where the enqueue command's
// default finds it.
func TestQuickStartWorksOnAFreshMachine(t *testing.T) {
	qs := quickStart(t, "")
	qs.wants(t, []string{"EMBEDDED", "IN-MEMORY Redis (miniredis) at 127.0.0.1:6379.", "cmd/enqueue finds it at its default address",
		`msg="admin server listening" addr=http://127.0.0.1:9090 `})
}

// TestQuickStartMeetsARedisThatAlreadyRuns runs them where another Redis
// already listens on 127.0.0.1:6379, and another process holds the admin
// server's port 9090: the worker uses that Redis, so that the enqueue
// command's tasks reach it, and its admin server moves to a free port.
func TestQuickStartMeetsARedisThatAlreadyRuns(t *testing.T) {
	server := redistest.Binary(t)
	qs := quickStart(t, fmt.Sprintf(`
mkdir -p "$bin/other" "$bin/holder"
%[1]s --port 6379 --bind 127.0.0.1 --save "" --appendonly no --dir "$bin/other" --logfile "" > "$bin/other.log" 2>&1 &
%[1]s --port 9090 --bind 127.0.0.1 --save "" --appendonly no --dir "$bin/holder" --logfile "" > /dev/null 2>&1 &
for i in $(seq 200); do "$bin/enqueue" limits > /dev/null 2>&1 && break; sleep 0.05; done
`, server))
	qs.wants(t, []string{"a Redis answers at 127.0.0.1:6379", "USES IT", "redis=redis://127.0.0.1:6379 ",
		"the default admin address is taken", "taken=127.0.0.1:9090"})
	if strings.Contains(qs.log, "EMBEDDED") {
		t.Fatalf("the worker started an embedded Redis beside the one on 6379:\n%s", qs.log)
	}
}

// quickStartRun is what one run of the quick start printed.
type quickStartRun struct {
	out string // the enqueue and limits commands' output
	log string // the worker's
}

// quickStart runs the README's quick-start commands in a fresh network
// namespace, after the shell commands of setup (which see the binaries'
// folder as $bin), then `enqueue limits -v` once the tasks run, and checks
// what the README promises: every task runs, never more than 2 at once, and
// the limits command reads the worker's Redis.
func quickStart(t *testing.T, setup string) quickStartRun {
	t.Helper()
	cmds := shBlocks(t, readme(t), "## Quick start")
	if len(cmds) != 3 || !strings.HasPrefix(cmds[0], "git clone ") || cmds[1] != "go run ./cmd/worker" || !strings.HasPrefix(cmds[2], "go run ./cmd/enqueue ") {
		t.Fatalf("quick start commands changed: %q", cmds)
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and unshare(1) to make a network namespace of its own")
	}
	if exec.Command(unshare, "-n", "true").Run() != nil {
		t.Skip("unshare -n is not permitted here")
	}
	bin := t.TempDir()
	for _, c := range []string{"worker", "enqueue"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, c), "../../cmd/"+c).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", c, err, out)
		}
	}
	// go run ./cmd/X, with the binary built above in its place.
	enqueue := `"$bin/enqueue"` + strings.TrimPrefix(cmds[2], "go run ./cmd/enqueue")
	script := fmt.Sprintf(`set -e
bin=%q
ip link set lo up 2>/dev/null || ifconfig lo up
%s
"$bin/worker" > "$bin/worker.log" 2>&1 &
pid=$!
for i in $(seq 200); do grep -q "worker started" "$bin/worker.log" && break; sleep 0.05; done
%s
for i in $(seq 200); do grep -q "task started" "$bin/worker.log" && break; sleep 0.05; done
"$bin/enqueue" limits -v
for i in $(seq 600); do [ "$(grep -c 'task finished' "$bin/worker.log")" -ge 20 ] && break; sleep 0.05; done
kill -INT $pid
wait $pid
`, bin, setup, enqueue)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "-n", "bash", "-c", script)
	// Its own process group, killed as a whole: the servers that setup
	// starts in the background end with the script, even on a timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	log, _ := os.ReadFile(filepath.Join(bin, "worker.log"))
	qs := quickStartRun{out: string(out), log: string(log)}
	t.Logf("output:\n%s", out)
	if err != nil {
		t.Fatalf("quick start failed: %v\n%s\nworker log:\n%s", err, out, log)
	}
	if !strings.Contains(qs.out, "enqueued 20, duplicates 0, failed 0") {
		t.Fatalf("enqueue printed:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^demo +2 +\d+ +\d+ +\d+$`).MatchString(qs.out) || !strings.Contains(qs.out, "\n  holder ") {
		t.Fatalf("limits -v does not show the worker's demo limiter:\n%s", out)
	}
	qs.wants(t, []string{"running the built-in demo configuration", "worker stopped"})
	running, peak, finished := 0, 0, 0
	sc := bufio.NewScanner(strings.NewReader(qs.log))
	for sc.Scan() {
		switch {
		case strings.Contains(sc.Text(), `msg="task started"`):
			running++
			peak = max(peak, running)
		case strings.Contains(sc.Text(), `msg="task finished"`):
			running--
			finished++
		}
	}
	if finished != 20 || peak != 2 {
		t.Fatalf("%d tasks finished, at most %d at once; the README promises 20 and 2", finished, peak)
	}
	return qs
}

// wants fails the test unless the worker's log holds every string of want.
func (qs quickStartRun) wants(t *testing.T, want []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(qs.log, w) {
			t.Fatalf("worker log lacks %q:\n%s", w, qs.log)
		}
	}
}
