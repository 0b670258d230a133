package redisconn

import (
	"net"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// freeAddr returns a loopback address where nothing listens.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// notRedis listens on a free port and hangs up on every connection.
func notRedis(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}

func startLocal(t *testing.T, addr string) *Local {
	t.Helper()
	l, err := StartLocal(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if l.Embedded != nil {
		t.Cleanup(l.Embedded.Close)
	}
	return l
}

func TestStartLocalUsesTheRedisThatAnswersAtTheDefaultAddress(t *testing.T) {
	other := miniredis.RunT(t)
	l := startLocal(t, other.Addr())
	if l.Embedded != nil || l.Taken || l.URL != "redis://"+other.Addr() {
		t.Fatalf("got %+v, want the Redis at %s", l, other.Addr())
	}
}

func TestStartLocalStartsTheEmbeddedRedisWhereNoneAnswers(t *testing.T) {
	addr := freeAddr(t)
	l := startLocal(t, addr)
	if l.Embedded == nil || l.Taken || l.Embedded.Addr() != addr || l.URL != "redis://"+addr {
		t.Fatalf("got %+v, want an embedded Redis at %s", l, addr)
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestStartLocalMovesAsideFromAPortThatIsNotAUsableRedis(t *testing.T) {
	locked := miniredis.RunT(t)
	locked.RequireAuth("secret")
	for name, addr := range map[string]string{"not Redis": notRedis(t), "Redis with a password": locked.Addr()} {
		t.Run(name, func(t *testing.T) {
			l := startLocal(t, addr)
			if l.Embedded == nil || !l.Taken || l.Embedded.Addr() == addr || l.URL != l.Embedded.URL() {
				t.Fatalf("got %+v, want an embedded Redis on another port than %s", l, addr)
			}
		})
	}
}
