package worker

import (
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/slotguard/slotguard/internal/yamlx"
)

// LoadConfig reads the YAML file at path with [ParseConfig]. Its errors
// name the file.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("worker: load config: %w", err)
	}
	c, err := parseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("worker: config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes a limits section, such as
//
//	park_after: 50ms
//	rules:
//	  - name: payments-api
//	    task_types: ["payments:*"]
//	    limit: 5
//
// and validates it. Durations are Go duration strings ("250ms", "5s").
// Unknown keys, keys given twice and a second YAML document are errors. On
// failure it returns an empty Config and every problem found, joined, each a
// [*ConfigError] with the field and its line, after the prefix
// "worker: config: ".
func ParseConfig(data []byte) (Config, error) {
	c, err := parseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("worker: config: %w", err)
	}
	return c, nil
}

func parseConfig(data []byte) (Config, error) {
	n, err := yamlx.Parse(data)
	if err != nil || n == nil {
		return Config{}, err
	}
	return ParseConfigNode(n, "")
}

// ParseConfigNode decodes and validates a limits section that is part of a
// larger YAML document, so that cmd/worker can embed it. path is prefixed to
// every field name in errors, for example "limits". On failure it returns an
// empty Config and every problem, joined, each a [*ConfigError].
func ParseConfigNode(n *yaml.Node, path string) (Config, error) {
	var c Config
	if err := yamlx.Check(n, path, &c, func() error { return c.Validate() }); err != nil {
		return Config{}, err
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
