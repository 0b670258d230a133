package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// spec is one task to enqueue: a JSON line of a bulk file, or the flags.
// Durations are Go duration strings ("30s"); times are RFC 3339.
type spec struct {
	Type      string          `json:"type"`
	Payload   json.RawMessage `json:"payload"`
	Queue     string          `json:"queue"`
	In        string          `json:"in"`
	At        string          `json:"at"`
	MaxRetry  *int            `json:"max_retry"`
	Timeout   string          `json:"timeout"`
	Deadline  string          `json:"deadline"`
	Unique    string          `json:"unique"`
	TaskID    string          `json:"task_id"`
	Retention string          `json:"retention"`
	Group     string          `json:"group"`
}

// task is a validated spec, ready to enqueue.
type task struct {
	typ     string
	payload []byte
	opts    []asynq.Option
}

// maxPayload bounds one task's payload; asynq keeps it in Redis.
const maxPayload = 8 << 20

// build validates s. raw means the payload is taken as bytes, not checked
// as JSON (a JSON string is then unquoted).
func (s spec) build(raw bool) (task, error) {
	t := task{typ: strings.TrimSpace(s.Type)}
	if t.typ == "" {
		return t, errors.New("type is required")
	}
	switch {
	case len(s.Payload) == 0 || string(s.Payload) == "null":
		t.payload = nil
	case raw:
		var str string
		if json.Unmarshal(s.Payload, &str) == nil {
			t.payload = []byte(str)
		} else {
			t.payload = []byte(s.Payload)
		}
	default:
		if !json.Valid(s.Payload) {
			return t, errors.New("payload is not valid JSON (use --raw to send bytes as they are)")
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, s.Payload); err != nil {
			return t, fmt.Errorf("payload: %w", err)
		}
		t.payload = buf.Bytes()
	}
	if len(t.payload) > maxPayload {
		return t, fmt.Errorf("payload is %d bytes, more than the %d allowed", len(t.payload), maxPayload)
	}
	if s.Queue != "" {
		t.opts = append(t.opts, asynq.Queue(s.Queue))
	}
	if s.In != "" && s.At != "" {
		return t, errors.New("in and at exclude each other")
	}
	dur := func(name, v string, add func(time.Duration) asynq.Option) error {
		if v == "" {
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s must be a positive duration such as 30s, got %q", name, v)
		}
		t.opts = append(t.opts, add(d))
		return nil
	}
	at := func(name, v string, add func(time.Time) asynq.Option) error {
		if v == "" {
			return nil
		}
		tm, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return fmt.Errorf("%s must be an RFC 3339 time such as 2026-12-01T10:00:00Z, got %q", name, v)
		}
		t.opts = append(t.opts, add(tm))
		return nil
	}
	for _, err := range []error{
		dur("in", s.In, asynq.ProcessIn),
		at("at", s.At, asynq.ProcessAt),
		dur("timeout", s.Timeout, asynq.Timeout),
		at("deadline", s.Deadline, asynq.Deadline),
		dur("unique", s.Unique, asynq.Unique),
		dur("retention", s.Retention, asynq.Retention),
	} {
		if err != nil {
			return t, err
		}
	}
	if s.MaxRetry != nil {
		if *s.MaxRetry < 0 {
			return t, fmt.Errorf("max_retry must not be negative, got %d", *s.MaxRetry)
		}
		t.opts = append(t.opts, asynq.MaxRetry(*s.MaxRetry))
	}
	if s.TaskID != "" {
		t.opts = append(t.opts, asynq.TaskID(s.TaskID))
	}
	if s.Group != "" {
		t.opts = append(t.opts, asynq.Group(s.Group))
	}
	return t, nil
}

// lineError is a bad line of bulk input.
type lineError struct {
	line int
	err  error
}

func (e lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }

// parseLines reads JSON lines, skipping blank ones. It returns every task
// that is valid and every line that is not.
func parseLines(data []byte, raw bool) ([]task, []lineError) {
	var tasks []task
	var bad []lineError
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var s spec
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			bad = append(bad, lineError{i + 1, fmt.Errorf("not a task object: %v", err)})
			continue
		}
		if dec.More() {
			bad = append(bad, lineError{i + 1, errors.New("more than one JSON value on the line")})
			continue
		}
		t, err := s.build(raw)
		if err != nil {
			bad = append(bad, lineError{i + 1, err})
			continue
		}
		tasks = append(tasks, t)
	}
	return tasks, bad
}
