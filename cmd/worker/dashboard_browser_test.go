package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/redisconn"
	"github.com/slotguard/slotguard/internal/wait"
	"github.com/slotguard/slotguard/limiter"
)

// requireBrowserEnv turns a missing Chromium into a failure; .ci/run sets it.
const requireBrowserEnv = "SLOTGUARD_REQUIRE_BROWSER"

// chromium returns the path of Debian's chromium, or skips the test (fails
// it under SLOTGUARD_REQUIRE_BROWSER=1) where there is none.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(requireBrowserEnv) == "1" {
		t.Fatalf("no chromium on PATH and %s=1 (apt-get install chromium)", requireBrowserEnv)
	}
	t.Skipf("no chromium on PATH (apt-get install chromium, or set %s=1 to fail instead)", requireBrowserEnv)
	return ""
}

// browser starts a fresh headless Chromium and returns a tab's context. The
// browser stops when the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromium(t)
	dir, err := os.MkdirTemp("", "slotguard-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Chromium's children may write for a moment after it exits.
		for range 50 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	var out syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		// A name for the loopback admin server that is not a loopback
		// name, as a page reached by DNS rebinding or through a proxy has.
		chromedp.Flag("host-resolver-rules", "MAP dash.test 127.0.0.1"),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 1000),
		chromedp.CombinedOutput(&out),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(cancelTab)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chromium output:\n%s", out.String())
		}
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, out.String())
	}
	return ctx
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// pageLimiter is what the page shows of one limiter.
type pageLimiter struct {
	Name      string       `json:"name"`
	Rule      string       `json:"rule"`
	Partition string       `json:"partition"`
	HasPart   bool         `json:"has_partition"`
	Limit     int          `json:"limit"`
	Held      int          `json:"held"`
	Free      int          `json:"free"`
	Waiting   int          `json:"waiting"`
	Holders   []pageHolder `json:"holders"`
	Editable  bool         `json:"editable"`
	Note      string       `json:"note"`
}

type pageHolder struct {
	TaskID string `json:"task_id"`
	Type   string `json:"type"`
	Worker string `json:"worker"`
	Weight int    `json:"weight"`
	Fence  int64  `json:"fence"`
}

// readPage is run in the page: it reads the limiter cards back from the DOM.
const readPage = `Array.from(document.querySelectorAll("article.limiter")).map((c) => {
  const q = (s) => c.querySelector(s);
  const part = q(".partition");
  return {
    name: c.dataset.name, rule: q(".rule").textContent, partition: part ? part.textContent : "", has_partition: !!part,
    limit: +q(".v-limit").textContent, held: +q(".v-held").textContent,
    free: +q(".v-free").textContent, waiting: +q(".v-waiting").textContent,
    holders: Array.from(c.querySelectorAll("li.holder")).map((h) => ({
      task_id: h.querySelector(".task-id").textContent, type: h.querySelector(".task-type").textContent,
      worker: h.querySelector(".worker").textContent, weight: +h.querySelector(".weight").textContent,
      fence: +h.querySelector(".fence").textContent,
    })),
    editable: !q("input.limit-input").disabled,
    note: q(".form-note").textContent,
  };
})`

// redisLimiters reads every limiter's state straight from Redis, as the
// page should show it.
func redisLimiters(ctx context.Context, rdb redis.UniversalClient) (map[string]pageLimiter, error) {
	names, err := limiter.List(ctx, rdb, limiter.DefaultPrefix)
	if err != nil {
		return nil, err
	}
	out := map[string]pageLimiter{}
	for _, name := range names {
		s, err := limiter.New(rdb, name, 1, nil)
		if err != nil {
			return nil, err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return nil, err
		}
		l := pageLimiter{Name: name, Limit: info.Limit, Held: info.Held, Free: info.Free, Waiting: info.Waiting}
		for _, h := range info.Holders {
			v := parseLabel(holderState{Label: h.Label})
			l.Holders = append(l.Holders, pageHolder{TaskID: v.TaskID, Type: v.TaskType, Worker: v.Worker, Weight: h.Weight, Fence: h.Fence})
		}
		out[name] = l
	}
	return out, nil
}

// matches reports whether the page shows Redis's numbers and holders.
func matches(shown []pageLimiter, real map[string]pageLimiter) string {
	if len(shown) != len(real) {
		return fmt.Sprintf("page shows %d limiters, Redis has %d", len(shown), len(real))
	}
	byFence := func(a, b pageHolder) int { return int(a.Fence - b.Fence) }
	for _, s := range shown {
		r, ok := real[s.Name]
		if !ok {
			return fmt.Sprintf("page shows %q, which Redis lacks", s.Name)
		}
		slices.SortFunc(s.Holders, byFence)
		slices.SortFunc(r.Holders, byFence)
		if s.Limit != r.Limit || s.Held != r.Held || s.Free != r.Free || s.Waiting != r.Waiting || !slices.Equal(s.Holders, r.Holders) {
			return fmt.Sprintf("%q: page %+v, Redis %+v", s.Name, s, r)
		}
	}
	return ""
}

func TestDashboardInBrowserShowsRealStateAndChangesALimit(t *testing.T) {
	ctx := browser(t)

	// An embedded Redis of its own, as the demo's: the dashboard must show
	// what miniredis holds as well as a real server's state.
	emb, err := redisconn.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	w := startWorker(t, `
redis:
  url: `+emb.URL()+`
limits:
  rules:
    - name: demo
      task_types: ["demo:*"]
      limit: 2
    - name: cust
      task_types: ["cust:*"]
      partition_by: customer
      limit: 1
handlers:
  - type: "demo:sleep"
    sleep: {}
  - type: "cust:sleep"
    sleep: {}
admin:
  token: t0ken
`, "REDIS_URL=")
	rdb := redis.NewClient(&redis.Options{Addr: emb.Addr()})
	defer rdb.Close()

	hostile := []string{`<img src=x onerror=alert(1)>`, `"><script>alert(2)</script>`}
	c := asynq.NewClientFromRedisClient(rdb)
	enqueue := func(typ string, payload map[string]any) {
		b, _ := json.Marshal(payload)
		if _, err := c.Enqueue(asynq.NewTask(typ, b)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 { // limit 2: two hold a slot, one waits
		enqueue("demo:sleep", map[string]any{"ms": 120_000})
	}
	for _, cust := range append([]string{"acme"}, hostile...) {
		enqueue("cust:sleep", map[string]any{"ms": 120_000, "customer": cust})
	}
	wait.Until(t, 20*time.Second, "the tasks to hold their slots", func() bool {
		real, err := redisLimiters(t.Context(), rdb)
		return err == nil && len(real) == 4 && real["demo"].Held == 2 && real["demo"].Waiting == 1 && real["cust/acme"].Held == 1
	})

	var dialogs, exceptions []string
	var mu sync.Mutex
	go func() {
		for ev, err := range chromedp.Events(ctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			mu.Lock()
			dialogs = append(dialogs, ev.Message)
			mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	go func() {
		for ev, err := range chromedp.Events(ctx, runtime.ExceptionThrown) {
			if err != nil {
				return
			}
			mu.Lock()
			exceptions = append(exceptions, (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
			mu.Unlock()
		}
	}()

	url := "http://" + w.Admin + "/"
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(`article.limiter[data-name="demo"]`))); err != nil {
		t.Fatalf("load %s: %v", url, err)
	}
	var shown []pageLimiter
	showsRedis := func() string {
		real, err := redisLimiters(t.Context(), rdb)
		if err != nil {
			return err.Error()
		}
		if shown, err = chromedp.Run(ctx, chromedp.Evaluate[[]pageLimiter](readPage)); err != nil {
			return err.Error()
		}
		return matches(shown, real)
	}
	until(t, 15*time.Second, "the page to show Redis's state", showsRedis)
	for _, l := range shown {
		if !l.Editable {
			t.Fatalf("%q is read-only on a loopback admin server", l.Name)
		}
		if l.Name == "demo" && (l.Held != 2 || l.Limit != 2 || len(l.Holders) != 2 || l.Holders[0].Type != "demo:sleep" || l.Holders[0].Worker == "") {
			t.Fatalf("demo shown as %+v", l)
		}
	}

	// Hostile partition names are shown as the text they are.
	for _, name := range hostile {
		i := slices.IndexFunc(shown, func(l pageLimiter) bool { return l.Name == "cust/"+name })
		if i < 0 || shown[i].Rule != "cust" || !shown[i].HasPart || shown[i].Partition != name {
			t.Fatalf("partition %q not shown as text: %+v", name, shown)
		}
	}
	counts, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]int](
		`({img: document.querySelectorAll("img").length, script: document.querySelectorAll("script").length, b: document.querySelectorAll("b").length})`))
	if err != nil || counts["img"] != 0 || counts["script"] != 1 || counts["b"] != 0 {
		t.Fatalf("elements in the page: %v (%v); a name became markup", counts, err)
	}

	// The filter narrows the page to the limiters whose name holds it.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("filter"), "ACME")); err != nil {
		t.Fatal(err)
	}
	until(t, 10*time.Second, "the filter to show cust/acme alone", func() string {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...Array.from(document.querySelectorAll("article.limiter")).map((c) => c.dataset.name),
			document.getElementById("limiter-count").textContent]`))
		if err != nil {
			return err.Error()
		}
		if !slices.Equal(got, []string{"cust/acme", "Showing 1 of 1 matching (4 in all)."}) {
			return fmt.Sprintf("page shows %q", got)
		}
		return ""
	})
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`const f = document.getElementById("filter"); f.value = ""; f.dispatchEvent(new Event("input")); true`)); err != nil {
		t.Fatal(err)
	}
	until(t, 10*time.Second, "the page to show every limiter again", showsRedis)

	// Change demo's limit through its form.
	input := chromedp.CSS(`article.limiter[data-name="demo"] input.limit-input`)
	button := chromedp.CSS(`article.limiter[data-name="demo"] button`)
	if err := chromedp.Do(ctx, chromedp.SendKeys(input, "3"), chromedp.Click(button)); err != nil {
		t.Fatalf("submit the limit form: %v", err)
	}
	until(t, 15*time.Second, "Redis and the page to show limit 3 and the waiting task holding a slot", func() string {
		real, err := redisLimiters(t.Context(), rdb)
		if err != nil {
			return err.Error()
		}
		if d := real["demo"]; d.Limit != 3 || d.Held != 3 {
			return fmt.Sprintf("Redis: %+v", d)
		}
		return showsRedis()
	})
	demo := shown[slices.IndexFunc(shown, func(l pageLimiter) bool { return l.Name == "demo" })]
	if demo.Note != "Limit 2 → 3." {
		t.Fatalf("the form says %q after the change", demo.Note)
	}

	dir := screenshotDir(t)
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	writeShot(t, filepath.Join(dir, "desktop.png"), shot)

	// A phone-width screen: nothing wider than the screen.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2))); err != nil {
		t.Fatal(err)
	}
	until(t, 5*time.Second, "the page to fit a 390 px screen", func() string {
		w, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, window.innerWidth]`))
		if err != nil {
			return err.Error()
		}
		if w[1] != 390 || w[0] > w[1] {
			return fmt.Sprintf("page %d px wide in a %d px window", w[0], w[1])
		}
		return ""
	})
	if shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Fatal(err)
	}
	writeShot(t, filepath.Join(dir, "phone.png"), shot)

	// Through a name that is not loopback (as a page that reached the
	// server by DNS rebinding has), the page shows nothing until it is
	// given the admin token: it may neither read nor change limits.
	access := func(wantText string, wantShown bool) func() string {
		return func() string {
			got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById("access-text").textContent,
				String(document.querySelectorAll("article.limiter").length),
				String(!!document.querySelector('article.limiter[data-name="demo"] input.limit-input:enabled'))]`))
			if err != nil {
				return err.Error()
			}
			if got[0] != wantText || (got[1] != "0") != wantShown || got[2] != fmt.Sprint(wantShown) {
				return fmt.Sprintf("access %q, %s limiters shown, demo editable %s", got[0], got[1], got[2])
			}
			return ""
		}
	}
	_, port, _ := net.SplitHostPort(w.Admin)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://dash.test:"+port+"/"), chromedp.WaitVisible(chromedp.ID("token-form"))); err != nil {
		t.Fatal(err)
	}
	until(t, 10*time.Second, "an empty page asking for the token", access("Enter the admin token to see and change limits.", false))
	token := chromedp.ID("token")
	useToken := chromedp.CSS(`#token-form button`)
	if err := chromedp.Do(ctx, chromedp.SetValue(token, "wrong"), chromedp.Click(useToken)); err != nil {
		t.Fatal(err)
	}
	until(t, 10*time.Second, "a wrong token to be refused", access("The admin token is wrong.", false))
	if err := chromedp.Do(ctx, chromedp.SetValue(token, "t0ken"), chromedp.Click(useToken)); err != nil {
		t.Fatal(err)
	}
	until(t, 10*time.Second, "the token to be accepted", access("You can change limits (admin token accepted).", true))
	if err := chromedp.Do(ctx, chromedp.SendKeys(input, "4"), chromedp.Click(button)); err != nil {
		t.Fatal(err)
	}
	until(t, 10*time.Second, "the limit set with the token to reach Redis", func() string {
		real, err := redisLimiters(t.Context(), rdb)
		if err != nil {
			return err.Error()
		}
		if real["demo"].Limit != 4 {
			return fmt.Sprintf("Redis: %+v", real["demo"])
		}
		return ""
	})
	if !strings.Contains(w.Logs(), `msg="limit changed from the dashboard" limiter=demo from=3 to=4 by=token`) {
		t.Fatalf("no log line for the change with the token:\n%s", w.Logs())
	}

	mu.Lock()
	defer mu.Unlock()
	if len(dialogs) > 0 || len(exceptions) > 0 {
		t.Fatalf("the page opened dialogs %q and threw %q", dialogs, exceptions)
	}
}

// screenshotsEnv names a folder to keep the dashboard's screenshots in;
// without it they go to the test's temporary directory and are removed.
const screenshotsEnv = "SLOTGUARD_SCREENSHOTS"

func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeShot(t *testing.T, path string, png []byte) {
	t.Helper()
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// until waits for cond to return "", and fails the test with cond's last
// answer at the deadline.
func until(t *testing.T, d time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", d, what, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
