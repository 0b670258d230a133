package deploytest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
)

const masterName = "mymaster"

// sentinelSet is a master, one replica and three sentinels on loopback.
type sentinelSet struct {
	master, replica *node
	sentinels       []*node
}

// startSentinels starts the set and waits until every sentinel knows the
// replica and the two other sentinels, so that a failover can run.
func startSentinels(t *testing.T) *sentinelSet {
	t.Helper()
	s := &sentinelSet{master: startRedis(t)}
	s.replica = startRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(s.master.port))
	rc := redis.NewClient(&redis.Options{Addr: s.replica.addr()})
	defer rc.Close()
	wait.Until(t, 15*time.Second, "the replica to sync", func() bool {
		info, _ := rc.Info(context.Background(), "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	})
	for range 3 {
		port := redistest.FreePort(t)
		conf := filepath.Join(t.TempDir(), "sentinel.conf")
		text := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 2\n"+
			"sentinel down-after-milliseconds %[1]s 500\n"+
			// Long, so that the sentinels do not "fix" a replica that a
			// test pointed elsewhere on purpose.
			"sentinel failover-timeout %[1]s 60000\n"+
			"sentinel parallel-syncs %[1]s 1\n", masterName, s.master.port)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		s.sentinels = append(s.sentinels, spawn(t, port, pingReady(addr), conf, "--sentinel", "--port", strconv.Itoa(port)))
	}
	for _, sn := range s.sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.addr()})
		wait.Until(t, 20*time.Second, "sentinel "+sn.addr()+" to see its peers and the replica", func() bool {
			ctx := context.Background()
			peers, err1 := c.Sentinels(ctx, masterName).Result()
			reps, err2 := c.Replicas(ctx, masterName).Result()
			return err1 == nil && err2 == nil && len(peers) == 2 && len(reps) == 1 &&
				!strings.Contains(fmt.Sprint(reps), "s_down") && !strings.Contains(fmt.Sprint(reps), "disconnected")
		})
		c.Close()
	}
	return s
}

func (s *sentinelSet) addrs() []string {
	var out []string
	for _, n := range s.sentinels {
		out = append(out, n.addr())
	}
	return out
}

// client returns a failover client, closed when the test ends.
func (s *sentinelSet) client(t *testing.T) *redis.Client {
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: masterName, SentinelAddrs: s.addrs(), PoolSize: 64,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitPromoted waits until every sentinel names the replica as the master and
// the replica says it is one, and returns how long that took from since.
func (s *sentinelSet) waitPromoted(t *testing.T, since time.Time) time.Duration {
	t.Helper()
	want := s.replica.addr()
	wait.Until(t, 30*time.Second, "the sentinels to promote the replica", func() bool {
		for _, sn := range s.sentinels {
			c := redis.NewSentinelClient(&redis.Options{Addr: sn.addr()})
			addr, err := c.GetMasterAddrByName(context.Background(), masterName).Result()
			c.Close()
			if err != nil || len(addr) != 2 || addr[0]+":"+addr[1] != want {
				return false
			}
		}
		rc := redis.NewClient(&redis.Options{Addr: want})
		defer rc.Close()
		info, _ := rc.Info(context.Background(), "replication").Result()
		return strings.Contains(info, "role:master")
	})
	return time.Since(since)
}
