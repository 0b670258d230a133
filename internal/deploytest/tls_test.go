package deploytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/fakeapi"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // PEM of cert
}

func newCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, file: filepath.Join(dir, name+".crt")}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue writes a server certificate for 127.0.0.1 and its key, and returns
// their paths.
func (ca *testCA) issue(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startTLSRedis starts a redis-server that speaks only TLS, with a
// certificate from ca, and returns it and a client that trusts ca.
func startTLSRedis(t *testing.T, ca *testCA) (*node, *redis.Client) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := ca.issue(t, dir)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	port := redistest.FreePort(t)
	opts := &redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	n := spawn(t, port, func(ctx context.Context) error {
		c := redis.NewClient(opts)
		defer c.Close()
		return c.Ping(ctx).Err()
	}, "--port", "0", "--tls-port", strconv.Itoa(port), "--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", ca.file, "--tls-auth-clients", "no", "--save", "", "--appendonly", "no")
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return n, c
}

// apiWorkerConfig is a worker config whose api:call handler calls url under
// a limit of 2; redis is the config's redis section.
func apiWorkerConfig(redisSection, queue, url string) string {
	return fmt.Sprintf(`
redis:
%s
worker:
  concurrency: 4
  queues: {%s: 1}
  task_check_interval: 50ms
  shutdown_timeout: 5s
limits:
  prefix: slotguard
  rules:
    - name: api
      task_types: ["api:*"]
      limit: 2
handlers:
  - type: "api:call"
    http:
      url: "%s/call/{n}"
      timeout: 5s
`, redisSection, queue, url)
}

func enqueueCallsOn(t *testing.T, rdb redis.UniversalClient, queue string, n int) {
	t.Helper()
	c := asynq.NewClientFromRedisClient(rdb)
	for i := range n {
		if _, err := c.Enqueue(asynq.NewTask("api:call", []byte(fmt.Sprintf(`{"n":"%d"}`, i))), asynq.Queue(queue)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWorkerOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "slotguard-test-ca")
	srv, rdb := startTLSRedis(t, ca)
	api := &fakeapi.API{Delay: 10 * time.Millisecond}
	apiURL := api.Start(t)
	const queue, tasks = "tls", 20

	t.Run("the worker connects with rediss:// and the test CA", func(t *testing.T) {
		section := fmt.Sprintf("  url: rediss://%s/0\n  tls: {ca_file: %q}", srv.addr(), ca.file)
		startReadyWorker(t, apiWorkerConfig(section, queue, apiURL))
		enqueueCallsOn(t, rdb, queue, tasks)
		wait.Until(t, 30*time.Second, "every task to run", func() bool {
			ok, _ := queueDone(rdb, queue)
			return ok && api.Distinct() == tasks
		})
		if p := api.Peak(); p > 2 {
			t.Fatalf("%d calls at once; limit 2", p)
		}
	})

	// The worker does not exit when Redis refuses it: it keeps retrying, as
	// it does through any Redis outage, reports unready, and logs why.
	t.Run("a wrong CA fails with a clear error", func(t *testing.T) {
		other := newCA(t, dir, "some-other-ca")
		section := fmt.Sprintf("  url: rediss://%s/0\n  tls: {ca_file: %q}", srv.addr(), other.file)
		w := startAdminWorker(t, apiWorkerConfig(section, queue, apiURL))
		wait.Until(t, 20*time.Second, "a clear TLS error in the log", func() bool {
			return strings.Contains(w.Logs(), "x509: certificate signed by unknown authority")
		})
		if got := w.Get("/readyz"); got != "redis unreachable\n" {
			t.Fatalf("/readyz = %q, want redis unreachable", got)
		}
	})

	t.Run("plain redis:// to a TLS port is never ready", func(t *testing.T) {
		section := fmt.Sprintf("  url: redis://%s/0", srv.addr())
		w := startAdminWorker(t, apiWorkerConfig(section, queue, apiURL))
		wait.Until(t, 20*time.Second, "an error in the log", func() bool {
			return strings.Contains(w.Logs(), "level=ERROR")
		})
		if got := w.Get("/readyz"); got != "redis unreachable\n" {
			t.Fatalf("/readyz = %q, want redis unreachable", got)
		}
	})
}
