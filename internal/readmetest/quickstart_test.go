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
	"testing"
	"time"
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
// commands as a new user would, in a fresh network namespace where nothing
// listens on 127.0.0.1:6379 (so the worker's embedded Redis takes that port
// and the enqueue command's default finds it), and checks what the README
// promises: every task runs, never more than 2 at once.
func TestQuickStartWorksOnAFreshMachine(t *testing.T) {
	cmds := shBlocks(t, readme(t), "## Quick start")
	if len(cmds) != 2 || cmds[0] != "go run ./cmd/worker" || !strings.HasPrefix(cmds[1], "go run ./cmd/enqueue ") {
		t.Fatalf("quick start commands changed: %q", cmds)
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and unshare(1) to make a network namespace without a Redis on 6379")
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
	enqueue := filepath.Join(bin, "enqueue") + strings.TrimPrefix(cmds[1], "go run ./cmd/enqueue")
	script := fmt.Sprintf(`set -e
ip link set lo up 2>/dev/null || ifconfig lo up
%s/worker > %s/worker.log 2>&1 &
pid=$!
for i in $(seq 200); do grep -q "worker started" %[2]s/worker.log && break; sleep 0.05; done
%s
for i in $(seq 600); do [ "$(grep -c 'task finished' %[2]s/worker.log)" -ge 20 ] && break; sleep 0.05; done
kill -INT $pid
wait $pid
`, bin, bin, enqueue)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, unshare, "-n", "bash", "-c", script).CombinedOutput()
	log, _ := os.ReadFile(filepath.Join(bin, "worker.log"))
	if err != nil {
		t.Fatalf("quick start failed: %v\n%s\nworker log:\n%s", err, out, log)
	}
	if !strings.Contains(string(out), "enqueued 20, duplicates 0, failed 0") {
		t.Fatalf("enqueue printed:\n%s", out)
	}
	for _, want := range []string{"EMBEDDED", "IN-MEMORY Redis (miniredis) at 127.0.0.1:6379", "running the built-in demo configuration", "worker stopped"} {
		if !strings.Contains(string(log), want) {
			t.Fatalf("worker log lacks %q:\n%s", want, log)
		}
	}
	running, peak, finished := 0, 0, 0
	sc := bufio.NewScanner(strings.NewReader(string(log)))
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
}
