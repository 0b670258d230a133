package redisconn

import (
	"fmt"
	"os"

	"github.com/slotguard/slotguard/internal/yamlx"
)

// FromFile reads only the `redis:` section of a cmd/worker config file, so
// that cmd/enqueue shares the worker's file. Other sections are ignored here
// (the worker checks them).
func FromFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("redisconn: %w", err)
	}
	root, err := yamlx.Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("redisconn: %s: %w", path, err)
	}
	var c Config
	if root == nil {
		return c, nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "redis" {
			if err := yamlx.Decode(root.Content[i+1], "redis", &c); err != nil {
				return Config{}, fmt.Errorf("redisconn: %s: %w", path, err)
			}
		}
	}
	return c, c.Validate()
}

// Override applies the precedence flag > environment > file: a non-empty
// url from a flag or REDIS_URL replaces whatever mode the file chose.
func (c Config) Override(url string) Config {
	if url == "" {
		return c
	}
	return Config{URL: url, TLS: c.TLS}
}
