package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/redisconn"
)

// usageError is a bad command line or bad input: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func exitCode(err error) int {
	var u usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &u):
		return 2
	}
	return 1
}

const usageText = `Usage:
  enqueue --type TYPE [--payload JSON | --payload-file FILE | --payload -] [options]
  enqueue --file tasks.jsonl [--keep-going]      (or JSON lines on stdin: --file -)
  enqueue limits [-v]                             list every limiter
  enqueue limits set NAME N                       change a limit for every worker

Examples:
  enqueue --type demo:sleep --payload '{"ms":500}' --count 20
  enqueue --type payments:charge --payload '{"customer_id":"c1","amount":100}' --queue critical --max-retry 5 --json
  enqueue --type report:build --payload-file report.json --in 10m --unique 1h
  enqueue --file tasks.jsonl --keep-going
  enqueue limits -v
  enqueue limits set payments-api 3

A JSON line is {"type": ..., "payload": ..., "queue": ..., "in": "30s", "at": ..., "max_retry": 5,
"timeout": ..., "deadline": ..., "unique": ..., "task_id": ..., "retention": ..., "group": ...}.

Redis: --redis-url, else REDIS_URL, else the redis section of --config, else redis://127.0.0.1:6379
(where the embedded worker listens).

Flags:
`

type options struct {
	spec        spec
	payload     string
	payloadFile string
	raw         bool
	jsonOut     bool
	file        string
	count       int
	keepGoing   bool
	redisURL    string
	config      string
	prefix      string
	concurrency int
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	o := options{}
	fs := flag.NewFlagSet("enqueue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usageText); fs.PrintDefaults() }
	fs.StringVar(&o.spec.Type, "type", "", "task `type`, such as payments:charge")
	fs.StringVar(&o.payload, "payload", "", "task payload: `JSON`, or - to read it from stdin")
	fs.StringVar(&o.payloadFile, "payload-file", "", "read the payload from `file`")
	fs.BoolVar(&o.raw, "raw", false, "send the payload as it is, without checking that it is JSON")
	fs.StringVar(&o.spec.Queue, "queue", "", "`queue` name (default \"default\")")
	fs.StringVar(&o.spec.In, "in", "", "process after this `duration`, such as 30s")
	fs.StringVar(&o.spec.At, "at", "", "process at this RFC 3339 `time`")
	fs.Func("max-retry", "retry a failed task at most `n` times, 0 or more (asynq's default 25)", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("want a whole number")
		}
		o.spec.MaxRetry = &n // build refuses a negative one, as for a JSON line
		return nil
	})
	fs.StringVar(&o.spec.Timeout, "timeout", "", "handler timeout `duration`")
	fs.StringVar(&o.spec.Deadline, "deadline", "", "handler deadline, an RFC 3339 `time`")
	fs.StringVar(&o.spec.Unique, "unique", "", "refuse a duplicate (same type, payload and queue) for this `duration`")
	fs.StringVar(&o.spec.TaskID, "task-id", "", "task `ID` (default: a random one)")
	fs.StringVar(&o.spec.Retention, "retention", "", "keep the finished task for this `duration`")
	fs.StringVar(&o.spec.Group, "group", "", "aggregation `group`")
	fs.BoolVar(&o.jsonOut, "json", false, "print each task as a JSON object: id, queue, state, process_at")
	fs.StringVar(&o.file, "file", "", "enqueue the JSON lines of `file` (- for stdin)")
	fs.IntVar(&o.count, "count", 1, "enqueue the task `n` times")
	fs.BoolVar(&o.keepGoing, "keep-going", false, "with --file, enqueue the valid lines even when some are malformed")
	fs.IntVar(&o.concurrency, "concurrency", 16, "enqueue with `n` connections at once")
	redisFlags(fs, &o.redisURL, &o.config)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if fs.Arg(0) == "limits" {
		return runLimits(ctx, fs.Args()[1:], o.redisURL, o.config, getenv, stdout, stderr)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if o.concurrency < 1 {
		return usagef("--concurrency must be at least 1")
	}
	tasks, err := o.tasks(stdin, stderr)
	if err != nil {
		return err
	}
	rdb, err := openRedis(o.redisURL, o.config, getenv)
	if err != nil {
		return err
	}
	defer rdb.Close()
	client := asynq.NewClientFromRedisClient(rdb)
	if len(tasks) == 1 && o.file == "" {
		return enqueueOne(ctx, client, tasks[0], o.jsonOut, stdout)
	}
	return enqueueMany(ctx, client, tasks, o, stdout, stderr)
}

// tasks builds the tasks from the flags or the bulk input, validating all of
// them before anything is enqueued.
func (o *options) tasks(stdin io.Reader, stderr io.Writer) ([]task, error) {
	if o.file != "" {
		if o.spec.Type != "" || o.payload != "" || o.payloadFile != "" {
			return nil, usagef("--file takes the tasks from its lines; do not combine it with --type or --payload")
		}
		data, err := readInput(o.file, stdin)
		if err != nil {
			return nil, err
		}
		tasks, bad := parseLines(data, o.raw)
		for _, b := range bad {
			fmt.Fprintf(stderr, "enqueue: %s: %v\n", o.file, b)
		}
		if len(bad) > 0 && !o.keepGoing {
			return nil, usagef("%d malformed line(s) in %s; nothing was enqueued (use --keep-going to enqueue the valid ones)", len(bad), o.file)
		}
		return repeat(tasks, o.count)
	}
	if o.payload != "" && o.payloadFile != "" {
		return nil, usagef("--payload and --payload-file exclude each other")
	}
	switch {
	case o.payload == "-":
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, err
		}
		o.spec.Payload = rawPayload(data, o.raw)
	case o.payloadFile != "":
		data, err := os.ReadFile(o.payloadFile)
		if err != nil {
			return nil, usageError{err}
		}
		o.spec.Payload = rawPayload(data, o.raw)
	case o.payload != "":
		o.spec.Payload = rawPayload([]byte(o.payload), o.raw)
	}
	t, err := o.spec.build(o.raw)
	if err != nil {
		return nil, usageError{err}
	}
	return repeat([]task{t}, o.count)
}

func repeat(ts []task, n int) ([]task, error) {
	if n < 1 {
		return nil, usagef("--count must be at least 1, got %d", n)
	}
	if n == 1 {
		return ts, nil
	}
	out := make([]task, 0, len(ts)*n)
	for range n {
		out = append(out, ts...)
	}
	return out, nil
}

// rawPayload makes flag input a spec payload: JSON as it is, or, with
// --raw, a JSON string holding the bytes.
func rawPayload(data []byte, raw bool) json.RawMessage {
	if raw {
		b, _ := json.Marshal(string(data))
		return b
	}
	return json.RawMessage(strings.TrimSpace(string(data)))
}

func readInput(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, usageError{err}
	}
	return data, nil
}

func redisFlags(fs *flag.FlagSet, url, config *string) {
	fs.StringVar(url, "redis-url", "", "Redis `URL` redis://[user:pass@]host:port[/db] or rediss:// (default: REDIS_URL, then --config, then redis://127.0.0.1:6379)")
	fs.StringVar(config, "config", "", "cmd/worker's configuration `file`, for its redis section")
}

// openRedis applies the precedence --redis-url > REDIS_URL > --config's
// redis section > redis://127.0.0.1:6379, and checks that Redis answers.
func openRedis(flagURL, config string, getenv func(string) string) (redis.UniversalClient, error) {
	var c redisconn.Config
	if config == "" {
		config = getenv("SLOTGUARD_CONFIG")
	}
	if config != "" {
		var err error
		if c, err = redisconn.FromFile(config); err != nil {
			return nil, usageError{err}
		}
	}
	c = c.Override(flagURL)
	if flagURL == "" {
		c = c.Override(getenv("REDIS_URL"))
	}
	if c.Embedded() {
		c.URL = "redis://" + redisconn.DefaultEmbeddedAddr
	}
	rdb, err := c.NewClient()
	if err != nil {
		return nil, usageError{err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis %s: %s", c.Describe(), redisconn.Redact(err.Error()))
	}
	return rdb, nil
}
