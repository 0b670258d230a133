package worker

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// LoadConfig reads the YAML file at path with [ParseConfig].
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("worker: load config: %w", err)
	}
	return ParseConfig(data)
}

// ParseConfig decodes a limits section, such as
//
//	acquire_timeout: 5s
//	rules:
//	  - name: payments-api
//	    task_types: ["payments:*"]
//	    limit: 5
//
// and validates it. Durations are Go duration strings ("250ms", "5s").
// Unknown keys are errors. On failure it returns every problem found, joined,
// each a [*ConfigError] with the field and its line.
func ParseConfig(data []byte) (Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Config{}, fmt.Errorf("worker: config: %w", err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return Config{}, nil
	}
	return ParseConfigNode(doc.Content[0], "")
}

// ParseConfigNode decodes and validates a limits section that is part of a
// larger YAML document, so that cmd/worker can embed it. path is prefixed to
// every field name in errors, for example "limits".
func ParseConfigNode(n *yaml.Node, path string) (Config, error) {
	d := decoder{path: path, lines: map[string]int{}}
	c := d.config(n)
	if err := c.Validate(); err != nil {
		var ce *ConfigError
		for _, e := range unjoin(err) {
			if errors.As(e, &ce) {
				d.fail(ce.Field, d.lines[ce.Field], ce.Err)
			} else {
				d.errs = append(d.errs, e)
			}
		}
	}
	if len(d.errs) > 0 {
		return Config{}, errors.Join(d.errs...)
	}
	return c, nil
}

// UnmarshalYAML lets a Config be a field of a larger struct decoded with
// go.yaml.in/yaml/v3. Field names in its errors are relative to the section.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	cfg, err := ParseConfigNode(n, "")
	if err != nil {
		return err
	}
	*c = cfg
	return nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// decoder walks YAML nodes, remembering each field's line so that
// validation errors can name it.
type decoder struct {
	path  string
	lines map[string]int
	errs  []error
}

func (d *decoder) fail(field string, line int, err error) {
	name := field
	if d.path != "" {
		name = d.path + "." + field
		if field == "" {
			name = d.path
		}
	}
	d.errs = append(d.errs, &ConfigError{Field: name, Line: line, Err: err})
}

// fields calls f for each key of mapping n, and reports unknown keys.
func (d *decoder) fields(n *yaml.Node, at string, known map[string]func(v *yaml.Node, field string)) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(at, n.Line, fmt.Errorf("must be a mapping"))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := k.Value
		if at != "" {
			field = at + "." + k.Value
		}
		f := known[k.Value]
		if f == nil {
			d.fail(field, k.Line, fmt.Errorf("unknown key"))
			continue
		}
		d.lines[field] = v.Line
		f(v, field)
	}
}

func (d *decoder) config(n *yaml.Node) Config {
	var c Config
	d.lines[""] = n.Line
	d.fields(n, "", map[string]func(*yaml.Node, string){
		"acquire_timeout":     func(v *yaml.Node, f string) { c.AcquireTimeout = d.duration(v, f) },
		"acquire_sleep_delay": func(v *yaml.Node, f string) { c.AcquireSleepDelay = d.duration(v, f) },
		"lease":               func(v *yaml.Node, f string) { c.Lease = d.duration(v, f) },
		"requeue_min_delay":   func(v *yaml.Node, f string) { c.RequeueMinDelay = d.duration(v, f) },
		"requeue_max_delay":   func(v *yaml.Node, f string) { c.RequeueMaxDelay = d.duration(v, f) },
		"prefix":              func(v *yaml.Node, f string) { c.Prefix = d.str(v, f) },
		"sync_replicas":       func(v *yaml.Node, f string) { c.SyncReplicas = d.int(v, f) },
		"sync_timeout":        func(v *yaml.Node, f string) { c.SyncTimeout = d.duration(v, f) },
		"rules": func(v *yaml.Node, f string) {
			if v.Kind != yaml.SequenceNode {
				d.fail(f, v.Line, fmt.Errorf("must be a list"))
				return
			}
			for i, item := range v.Content {
				rf := fmt.Sprintf("%s[%d]", f, i)
				d.lines[rf] = item.Line
				c.Rules = append(c.Rules, d.rule(item, rf))
			}
		},
	})
	return c
}

func (d *decoder) rule(n *yaml.Node, at string) Rule {
	var r Rule
	d.fields(n, at, map[string]func(*yaml.Node, string){
		"name":         func(v *yaml.Node, f string) { r.Name = d.str(v, f) },
		"task_types":   func(v *yaml.Node, f string) { r.TaskTypes = d.strs(v, f) },
		"queues":       func(v *yaml.Node, f string) { r.Queues = d.strs(v, f) },
		"partition_by": func(v *yaml.Node, f string) { r.PartitionBy = d.str(v, f) },
		"limit":        func(v *yaml.Node, f string) { r.Limit = d.int(v, f) },
		"max_waiting":  func(v *yaml.Node, f string) { r.MaxWaiting = d.int(v, f) },
	})
	return r
}

func (d *decoder) scalar(v *yaml.Node, field string) (string, bool) {
	if v.Kind != yaml.ScalarNode {
		d.fail(field, v.Line, fmt.Errorf("must be a single value"))
		return "", false
	}
	return v.Value, true
}

func (d *decoder) str(v *yaml.Node, field string) string {
	s, _ := d.scalar(v, field)
	return s
}

func (d *decoder) int(v *yaml.Node, field string) int {
	s, ok := d.scalar(v, field)
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		d.fail(field, v.Line, fmt.Errorf("must be an integer, got %q", s))
	}
	return n
}

func (d *decoder) duration(v *yaml.Node, field string) time.Duration {
	s, ok := d.scalar(v, field)
	if !ok {
		return 0
	}
	if s == "0" {
		return 0
	}
	t, err := time.ParseDuration(s)
	if err != nil {
		d.fail(field, v.Line, fmt.Errorf("must be a duration such as \"5s\" or \"250ms\", got %q", s))
	}
	return t
}

func (d *decoder) strs(v *yaml.Node, field string) []string {
	if v.Kind == yaml.ScalarNode {
		if v.Tag == "!!null" {
			return nil
		}
		return []string{v.Value} // a single value where a list is expected
	}
	if v.Kind != yaml.SequenceNode {
		d.fail(field, v.Line, fmt.Errorf("must be a list of strings"))
		return nil
	}
	out := make([]string, 0, len(v.Content))
	for i, item := range v.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		d.lines[f] = item.Line
		out = append(out, d.str(item, f))
	}
	return out
}
