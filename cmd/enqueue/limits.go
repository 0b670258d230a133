package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/slotguard/slotguard/limiter"
	"github.com/slotguard/slotguard/worker"
)

// runLimits lists the limiters, or with "set NAME N" changes one limit for
// every worker at once.
// url and config are the Redis flags given before "limits"; flags after it
// win.
func runLimits(ctx context.Context, args []string, url, config string, getenv func(string) string, stdout, stderr io.Writer) error {
	var prefix string
	var verbose bool
	fs := flag.NewFlagSet("enqueue limits", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage:\n  enqueue limits [-v]          list every limiter: limit, held, waiting, free (-v: and holders)\n  enqueue limits set NAME N    change a limit for every worker, at once\n\nExamples:\n  enqueue limits -v\n  enqueue limits set payments-api 3\n  enqueue limits set export-per-tenant/acme 1\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.BoolVar(&verbose, "v", false, "also list each limiter's holders")
	fs.StringVar(&prefix, "prefix", limiter.DefaultPrefix, "key `prefix` of the limiters (limits.prefix in the worker's config)")
	// The defaults shown in the usage text are empty, never the values
	// given before "limits": a Redis URL may hold a password.
	var urlAfter, configAfter string
	fs.StringVar(&urlAfter, "redis-url", "", "Redis `URL` (as for enqueue)")
	fs.StringVar(&configAfter, "config", "", "cmd/worker's configuration `file`, for its redis section")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	url, config = cmp.Or(urlAfter, url), cmp.Or(configAfter, config)
	if len(rest) > 0 && rest[0] != "set" {
		return usagef("unknown limits subcommand %q (want: limits, or limits set NAME N)", rest[0])
	}
	var setName string
	var setLimit int
	if len(rest) > 0 {
		if len(rest) != 3 {
			return usagef("usage: enqueue limits set NAME N")
		}
		n, err := strconv.Atoi(rest[2])
		if err != nil || n < 1 || n > worker.MaxLimit {
			return usagef("limit must be a whole number from 1 to %d, got %q", worker.MaxLimit, rest[2])
		}
		setName, setLimit = rest[1], n
		if setName == "" {
			return usagef("limiter name must not be empty")
		}
	}
	rdb, err := openRedis(url, config, getenv)
	if err != nil {
		return err
	}
	defer rdb.Close()
	opts := &limiter.Options{Prefix: prefix}
	if setName != "" {
		s, err := limiter.New(rdb, setName, setLimit, opts)
		if err != nil {
			return usageError{err}
		}
		before, _ := s.Info(ctx)
		if err := s.SetLimit(ctx, setLimit); err != nil {
			return err
		}
		after, err := s.Info(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: limit %d -> %d (held %d, waiting %d)\n", setName, before.Limit, after.Limit, after.Held, after.Waiting)
		return nil
	}
	names, err := limiter.List(ctx, rdb, prefix)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LIMITER\tLIMIT\tHELD\tWAITING\tFREE")
	for _, name := range names {
		s, err := limiter.New(rdb, name, 1, opts)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", strconv.Quote(name)[1:len(strconv.Quote(name))-1], info.Limit, info.Held, info.Waiting, info.Free)
		if verbose {
			for _, h := range info.Holders {
				fmt.Fprintf(tw, "  holder %s\tweight %d\tfence %d\tlease %v\t%s\n", h.Token, h.Weight, h.Fence, h.LeaseLeft.Round(1e6), strconv.Quote(h.Label))
			}
		}
	}
	if len(names) == 0 {
		fmt.Fprintln(tw, "(no limiter has been used yet)")
	}
	return tw.Flush()
}

// parseInterspersed parses flags that may come before, between or after the
// positional arguments, and returns the positional ones. A negative number
// is a positional argument, not a flag, so that `set NAME -1` is told its
// limit is out of range.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if len(args) > 0 && isNegativeNumber(args[0]) {
			pos = append(pos, args[0])
			args = args[1:]
			continue
		}
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func isNegativeNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil && strings.HasPrefix(s, "-")
}
