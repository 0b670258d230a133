package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
)

type flags struct {
	config      string
	redisURL    string
	concurrency int
	adminAddr   string
	logLevel    string
	logFormat   string
	check       bool
}

// usageError marks a bad command line; main exits 2 for it.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

const usageText = `Usage: worker [flags]

Runs an asynq worker whose handlers are guarded by slotguard limits.
With no --config it runs a demo: the demo:sleep handler under a demo:* limit
of 2. Unless --redis-url or REDIS_URL is set, it uses the Redis at
127.0.0.1:6379 (cmd/enqueue's default), or starts an embedded in-memory one
where none answers there.

Flags (each also read from the environment variable shown; flags win over the
environment, which wins over the file):
`

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\nExamples:\n  worker\n  worker --config worker.yaml\n  worker --check --config worker.yaml\n  REDIS_URL=redis://127.0.0.1:6379/0 worker --concurrency 50\n")
	}
	fs.StringVar(&f.config, "config", getenv("SLOTGUARD_CONFIG"), "YAML configuration `file` (SLOTGUARD_CONFIG); see docs/config.md")
	fs.StringVar(&f.redisURL, "redis-url", "", "Redis `URL` redis://[user:pass@]host:port[/db] or rediss:// (REDIS_URL); overrides the file's redis section")
	fs.IntVar(&f.concurrency, "concurrency", 0, "`n` tasks processed at once by this worker (SLOTGUARD_CONCURRENCY; default 20)")
	fs.StringVar(&f.adminAddr, "admin-addr", getenv("SLOTGUARD_ADMIN_ADDR"), "admin HTTP `address` for the dashboard (/), /metrics, /healthz, /readyz and /limits, or \"off\" (SLOTGUARD_ADMIN_ADDR; default 127.0.0.1:9090, or a free port when that is taken)")
	fs.StringVar(&f.logLevel, "log-level", getenv("SLOTGUARD_LOG_LEVEL"), "debug, info, warn or error (SLOTGUARD_LOG_LEVEL)")
	fs.StringVar(&f.logFormat, "log-format", getenv("SLOTGUARD_LOG_FORMAT"), "text or json (SLOTGUARD_LOG_FORMAT)")
	fs.BoolVar(&f.check, "check", false, "validate the configuration, print every error with its field and line, and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if f.concurrency == 0 {
		if v := getenv("SLOTGUARD_CONCURRENCY"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, usageError{fmt.Errorf("SLOTGUARD_CONCURRENCY=%q: want a number", v)}
			}
			f.concurrency = n
		}
	}
	if f.concurrency < 0 {
		return nil, usageError{fmt.Errorf("--concurrency must be at least 1, got %d", f.concurrency)}
	}
	return f, nil
}
