package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/slotguard/slotguard/internal/handlers"
	"github.com/slotguard/slotguard/internal/redisconn"
	"github.com/slotguard/slotguard/internal/yamlx"
	"github.com/slotguard/slotguard/worker"
)

// fileConfig is the whole configuration file; docs/config.md documents every
// key. The zero value of each field means its default.
type fileConfig struct {
	Redis    redisconn.Config `yaml:"redis"`
	Worker   workerSection    `yaml:"worker"`
	Limits   worker.Config    `yaml:"limits"` // decoded and validated by its UnmarshalYAML
	Handlers []handlerConfig  `yaml:"handlers"`
	Admin    adminSection     `yaml:"admin"`
	Log      logSection       `yaml:"log"`
}

type workerSection struct {
	Concurrency     int            `yaml:"concurrency"`      // default 20
	Queues          map[string]int `yaml:"queues"`           // default {default: 1}
	StrictPriority  bool           `yaml:"strict_priority"`  // default false
	ShutdownTimeout time.Duration  `yaml:"shutdown_timeout"` // default 30s
	// How often asynq moves due scheduled and retry tasks (requeued ones
	// among them) to their queue; default asynq's 5s.
	DelayedTaskCheckInterval time.Duration `yaml:"delayed_task_check_interval"`
	// How long asynq waits before checking an empty queue again; default
	// asynq's 1s.
	TaskCheckInterval time.Duration `yaml:"task_check_interval"`
}

type adminSection struct {
	Addr  string `yaml:"addr"`  // default 127.0.0.1:9090; "off" disables it
	Token string `yaml:"token"` // lets non-loopback clients change limits

	// defaulted is true when Addr is the default, which gives way to a free
	// port when it is taken; an address that was asked for does not.
	defaulted bool
}

type logSection struct {
	Format string `yaml:"format"` // text (default) or json
	Level  string `yaml:"level"`  // debug, info (default), warn, error
}

type handlerConfig struct {
	Type    string        `yaml:"type"`
	HTTP    *httpConfig   `yaml:"http"`
	Command []string      `yaml:"command"`
	Timeout time.Duration `yaml:"timeout"`
	Env     []string      `yaml:"env"` // for command: variables passed besides handlers.DefaultCommandEnv
	Sleep   *struct{}     `yaml:"sleep"`
}

type httpConfig struct {
	Method  string            `yaml:"method"`  // default POST
	URL     string            `yaml:"url"`     // {field} placeholders from the payload
	Headers map[string]string `yaml:"headers"` // ${VAR} from the environment
	Timeout time.Duration     `yaml:"timeout"` // default 30s
}

const (
	defaultConcurrency     = 20
	defaultShutdownTimeout = 30 * time.Second
	defaultAdminAddr       = "127.0.0.1:9090"
	defaultHTTPTimeout     = 30 * time.Second
)

// demoConfig runs when no configuration file is given: the sleep handler for
// demo:* tasks under a limit of 2.
const demoConfig = `
limits:
  rules:
    - name: demo
      task_types: ["demo:*"]
      limit: 2
handlers:
  - type: "demo:sleep"
    sleep: {}
`

// parseConfig decodes and validates a file's content. Every problem is
// reported, each with its field and line.
func parseConfig(data []byte, getenv func(string) string) (fileConfig, error) {
	var c fileConfig
	root, err := yamlx.Parse(data)
	if err != nil || root == nil {
		return c, err
	}
	return c, yamlx.Check(root, "", &c, func() error { return c.validate(getenv) })
}

func (c *fileConfig) withDefaults() {
	if c.Worker.Concurrency == 0 {
		c.Worker.Concurrency = defaultConcurrency
	}
	if len(c.Worker.Queues) == 0 {
		c.Worker.Queues = map[string]int{"default": 1}
	}
	if c.Worker.ShutdownTimeout == 0 {
		c.Worker.ShutdownTimeout = defaultShutdownTimeout
	}
	if c.Admin.Addr == "" {
		c.Admin.Addr, c.Admin.defaulted = defaultAdminAddr, true
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
}

// validate checks what the sections' own decoders do not. Its errors are
// [*yamlx.FieldError]s without lines; [yamlx.Check] adds them.
func (c *fileConfig) validate(getenv func(string) string) error {
	var errs []error
	add := func(field string, format string, args ...any) {
		errs = append(errs, &yamlx.FieldError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	if err := c.Redis.Validate(); err != nil {
		add("redis", "%s", strings.TrimPrefix(err.Error(), redisconn.ErrConfig.Error()+": "))
	}
	if c.Worker.Concurrency < 0 {
		add("worker.concurrency", "must be at least 1, got %d", c.Worker.Concurrency)
	}
	for q, p := range c.Worker.Queues {
		if q == "" || p < 1 {
			add("worker.queues."+q, "queue names must not be empty and priorities must be at least 1, got %q: %d", q, p)
		}
	}
	if c.Worker.ShutdownTimeout < 0 {
		add("worker.shutdown_timeout", "must not be negative, got %v", c.Worker.ShutdownTimeout)
	}
	if d := c.Worker.DelayedTaskCheckInterval; d < 0 || d > 0 && d < 10*time.Millisecond {
		add("worker.delayed_task_check_interval", "must be at least 10ms, got %v", d)
	}
	if d := c.Worker.TaskCheckInterval; d < 0 || d > 0 && d < 10*time.Millisecond {
		add("worker.task_check_interval", "must be at least 10ms, got %v", d)
	}
	if c.Admin.Addr != "" && c.Admin.Addr != "off" {
		if _, _, err := net.SplitHostPort(c.Admin.Addr); err != nil {
			add("admin.addr", "must be host:port or \"off\", got %q", c.Admin.Addr)
		}
	}
	if f := c.Log.Format; f != "" && f != "text" && f != "json" {
		add("log.format", "must be text or json, got %q", f)
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		add("log.level", "%v", err)
	}
	seen := map[string]int{}
	for i, h := range c.Handlers {
		f := fmt.Sprintf("handlers[%d]", i)
		if h.Type == "" {
			add(f+".type", "is required")
		} else if j, dup := seen[h.Type]; dup {
			add(f+".type", "duplicates handlers[%d].type %q", j, h.Type)
		} else {
			seen[h.Type] = i
		}
		kinds := 0
		for _, set := range []bool{h.HTTP != nil, h.Command != nil, h.Sleep != nil} {
			if set {
				kinds++
			}
		}
		switch {
		case kinds == 0:
			add(f, "needs one of http, command or sleep")
		case kinds > 1:
			add(f, "has more than one of http, command and sleep")
		}
		if h.Timeout < 0 {
			add(f+".timeout", "must not be negative, got %v", h.Timeout)
		}
		if h.Timeout != 0 && h.Command == nil {
			add(f+".timeout", "applies to command handlers; an http handler takes http.timeout")
		}
		if h.Command != nil && (len(h.Command) == 0 || h.Command[0] == "") {
			add(f+".command", "must name a program, as a list: [\"/path/to/program\", \"arg\"]")
		}
		if h.Env != nil && h.Command == nil {
			add(f+".env", "applies to command handlers")
		}
		for j, name := range h.Env {
			if err := handlers.CheckEnvName(name); err != nil {
				add(fmt.Sprintf("%s.env[%d]", f, j), "%v", err)
			}
		}
		if h.HTTP != nil {
			if _, err := h.HTTP.build(getenv); err != nil {
				var fe *yamlx.FieldError
				if errors.As(err, &fe) {
					add(f+".http."+fe.Field, "%v", fe.Err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// build turns the http section into a handler. Its errors are
// [*yamlx.FieldError]s relative to the section.
func (h *httpConfig) build(getenv func(string) string) (*handlers.HTTP, error) {
	method := strings.ToUpper(h.Method)
	if method == "" {
		method = http.MethodPost
	}
	switch method {
	case "GET", "POST", "PUT", "PATCH", "DELETE":
	default:
		return nil, &yamlx.FieldError{Field: "method", Err: fmt.Errorf("must be GET, POST, PUT, PATCH or DELETE, got %q", h.Method)}
	}
	if h.URL == "" {
		return nil, &yamlx.FieldError{Field: "url", Err: errors.New("is required")}
	}
	tpl, err := handlers.ParseTemplate(h.URL)
	if err != nil {
		return nil, &yamlx.FieldError{Field: "url", Err: err}
	}
	if h.Timeout < 0 {
		return nil, &yamlx.FieldError{Field: "timeout", Err: fmt.Errorf("must not be negative, got %v", h.Timeout)}
	}
	hdr := http.Header{}
	for k, v := range h.Headers {
		val, missing := handlers.ExpandEnv(v, getenv)
		if len(missing) > 0 {
			return nil, &yamlx.FieldError{Field: "headers." + k, Err: fmt.Errorf("environment variable %s is not set", strings.Join(missing, ", "))}
		}
		if err := handlers.CheckHeader(k, val); err != nil {
			return nil, &yamlx.FieldError{Field: "headers." + k, Err: err}
		}
		hdr.Set(k, val)
	}
	timeout := h.Timeout
	if timeout == 0 {
		timeout = defaultHTTPTimeout
	}
	return &handlers.HTTP{Method: method, URL: tpl, Headers: hdr, Timeout: timeout}, nil
}

// loadConfig applies the precedence flags > environment > file > defaults.
func loadConfig(f *flags, getenv func(string) string) (fileConfig, string, error) {
	var c fileConfig
	source := "built-in demo configuration"
	data := []byte(demoConfig)
	if f.config != "" {
		source = f.config
		var err error
		if data, err = os.ReadFile(f.config); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the source already names the file
			}
			return c, source, err
		}
	}
	c, err := parseConfig(data, getenv)
	if err != nil {
		return c, source, err
	}
	c.Redis = c.Redis.Override(firstNonEmpty(f.redisURL, getenv("REDIS_URL")))
	if f.concurrency != 0 {
		c.Worker.Concurrency = f.concurrency
	}
	if f.adminAddr != "" {
		c.Admin.Addr = f.adminAddr
	}
	if f.logLevel != "" {
		c.Log.Level = f.logLevel
	}
	if f.logFormat != "" {
		c.Log.Format = f.logFormat
	}
	if err := c.validate(getenv); err != nil {
		return c, source, err
	}
	c.withDefaults()
	return c, source, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
