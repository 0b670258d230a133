// Package redisconn turns the `redis:` section shared by cmd/worker and
// cmd/enqueue into a go-redis client: a URL (redis:// or rediss://), a
// Sentinel failover group or a Cluster, or, with none of them, an embedded
// miniredis for trying things out.
package redisconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrConfig is wrapped by every error about the redis section.
var ErrConfig = errors.New("redisconn: invalid redis config")

// Config is the `redis:` section. At most one of URL, Sentinel and Cluster
// may be set; with none, the caller runs an embedded Redis ([Embedded]).
type Config struct {
	// URL is redis://[user:password@]host:port[/db] or rediss:// for TLS.
	URL      string    `yaml:"url"`
	Sentinel *Sentinel `yaml:"sentinel"`
	Cluster  *Cluster  `yaml:"cluster"`
	// TLS adds a CA or client certificate. It turns TLS on for Sentinel and
	// Cluster; for a URL, use rediss://.
	TLS *TLS `yaml:"tls"`
}

// Sentinel configures a Sentinel failover client.
type Sentinel struct {
	Master           string   `yaml:"master"`
	Addrs            []string `yaml:"addrs"`
	Username         string   `yaml:"username"`
	Password         string   `yaml:"password"`
	SentinelPassword string   `yaml:"sentinel_password"`
	DB               int      `yaml:"db"`
}

// Cluster configures a Redis Cluster client.
type Cluster struct {
	Addrs    []string `yaml:"addrs"`
	Username string   `yaml:"username"`
	Password string   `yaml:"password"`
}

// TLS names PEM files for a custom CA and an optional client certificate.
type TLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Embedded reports whether no server is configured.
func (c Config) Embedded() bool { return c.URL == "" && c.Sentinel == nil && c.Cluster == nil }

// Validate checks the section without connecting. Its errors name the field
// and never contain a password.
func (c Config) Validate() error {
	set := 0
	for _, b := range []bool{c.URL != "", c.Sentinel != nil, c.Cluster != nil} {
		if b {
			set++
		}
	}
	if set > 1 {
		return fmt.Errorf("%w: redis: set only one of url, sentinel and cluster", ErrConfig)
	}
	switch {
	case c.URL != "":
		if _, err := redis.ParseURL(c.URL); err != nil {
			return fmt.Errorf("%w: redis.url %s: %s", ErrConfig, RedactURL(c.URL), urlProblem(c.URL, err))
		}
	case c.Sentinel != nil:
		if c.Sentinel.Master == "" {
			return fmt.Errorf("%w: redis.sentinel.master is required", ErrConfig)
		}
		if err := checkAddrs("redis.sentinel.addrs", c.Sentinel.Addrs); err != nil {
			return err
		}
	case c.Cluster != nil:
		if err := checkAddrs("redis.cluster.addrs", c.Cluster.Addrs); err != nil {
			return err
		}
	}
	if c.TLS != nil && (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return fmt.Errorf("%w: redis.tls: cert_file and key_file go together", ErrConfig)
	}
	return nil
}

func checkAddrs(field string, addrs []string) error {
	if len(addrs) == 0 {
		return fmt.Errorf("%w: %s needs at least one host:port", ErrConfig, field)
	}
	for i, a := range addrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return fmt.Errorf("%w: %s[%d] %q is not host:port", ErrConfig, field, i, a)
		}
	}
	return nil
}

// NewClient builds the client, with ContextTimeoutEnabled so that a
// deadline (an acquire timeout) also cuts short a call to a stalled server.
// It does not connect; the first command does.
// It returns an error wrapping [ErrConfig] for an invalid section or an
// unreadable TLS file. Embedded configs have no client here: start an
// [Embedded] and use its URL.
func (c Config) NewClient() (redis.UniversalClient, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	tlsCfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	switch {
	case c.URL != "":
		o, _ := redis.ParseURL(c.URL)
		o.ContextTimeoutEnabled = true
		if o.TLSConfig != nil && tlsCfg != nil {
			if tlsCfg.ServerName == "" {
				tlsCfg.ServerName = o.TLSConfig.ServerName
			}
			o.TLSConfig = tlsCfg
		}
		return redis.NewClient(o), nil
	case c.Sentinel != nil:
		s := c.Sentinel
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: s.Master, SentinelAddrs: s.Addrs, Username: s.Username, Password: s.Password,
			SentinelPassword: s.SentinelPassword, DB: s.DB, TLSConfig: tlsCfg,
			ContextTimeoutEnabled: true,
		}), nil
	case c.Cluster != nil:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: c.Cluster.Addrs, Username: c.Cluster.Username, Password: c.Cluster.Password, TLSConfig: tlsCfg,
			ContextTimeoutEnabled: true,
		}), nil
	}
	return nil, fmt.Errorf("%w: no Redis configured (the embedded one has no client config)", ErrConfig)
}

func (c Config) tlsConfig() (*tls.Config, error) {
	if c.TLS == nil {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLS.ServerName, InsecureSkipVerify: c.TLS.InsecureSkipVerify}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: redis.tls.ca_file: %w", ErrConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: redis.tls.ca_file %s holds no PEM certificate", ErrConfig, c.TLS.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: redis.tls cert_file/key_file: %w", ErrConfig, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Describe says where the config points, without secrets, for logs.
func (c Config) Describe() string {
	switch {
	case c.URL != "":
		return RedactURL(c.URL)
	case c.Sentinel != nil:
		return fmt.Sprintf("sentinel master %q via %s", c.Sentinel.Master, strings.Join(c.Sentinel.Addrs, ","))
	case c.Cluster != nil:
		return "cluster " + strings.Join(c.Cluster.Addrs, ",")
	}
	return "embedded"
}
