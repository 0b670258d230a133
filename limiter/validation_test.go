package limiter

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/slotguard/slotguard/internal/redistest"
)

func TestInvalidArgumentsWriteNothing(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		cases := []struct {
			name  string
			sem   string
			limit int
			opts  Options
		}{
			{"empty name", "", 1, Options{}},
			{"zero limit", "x", 0, Options{}},
			{"negative limit", "x", -3, Options{}},
			{"negative lease", "x", 1, Options{Lease: -time.Second}},
			{"negative renew", "x", 1, Options{RenewInterval: -time.Second}},
			{"renew not shorter than lease", "x", 1, Options{Lease: time.Second, RenewInterval: time.Second}},
			{"negative sleep delay", "x", 1, Options{SleepDelay: -time.Millisecond}},
			{"negative acquire timeout", "x", 1, Options{AcquireTimeout: -time.Millisecond}},
			{"negative waiter TTL", "x", 1, Options{WaiterTTL: -time.Millisecond}},
			{"waiter TTL below 1ms", "x", 1, Options{SleepDelay: 100 * time.Microsecond, WaiterTTL: 500 * time.Microsecond}},
			{"waiter TTL below two sleep delays", "x", 1, Options{SleepDelay: time.Second, WaiterTTL: time.Second}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				tc.opts.Prefix = b.Prefix
				if _, err := New(b.Client, tc.sem, tc.limit, &tc.opts); !errors.Is(err, ErrInvalid) {
					t.Fatalf("New: %v, want ErrInvalid", err)
				}
			})
		}
		s := newSem(t, b, "valid", 2, nil)
		calls := []struct {
			name string
			err  func() error
		}{
			{"weight 0", func() error { _, err := s.Acquire(t.Context(), WithWeight(0)); return err }},
			{"try weight -1", func() error { _, err := s.TryAcquire(t.Context(), WithWeight(-1)); return err }},
			{"negative timeout", func() error { _, err := s.Acquire(t.Context(), WithTimeout(-1)); return err }},
			{"negative sleep delay", func() error { _, err := s.Acquire(t.Context(), WithSleepDelay(-1)); return err }},
			{"limit 0", func() error { return s.SetLimit(t.Context(), 0) }},
		}
		for _, c := range calls {
			if err := c.err(); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", c.name, err)
			}
		}
		if _, err := s.Acquire(t.Context(), WithWeight(3)); !errors.Is(err, ErrWeightAboveLimit) {
			t.Errorf("weight above limit: %v", err)
		}
		if keys := b.Client.Keys(t.Context(), b.Prefix+"*").Val(); len(keys) != 0 {
			t.Fatalf("invalid calls wrote %v", keys)
		}
	})
}

func TestKeysOfOneSemaphoreShareAHashSlot(t *testing.T) {
	if crc16("123456789") != 0x31C3 || hashSlot("foo") != 12182 {
		t.Fatal("hashSlot does not match Redis Cluster's")
	}
	for _, name := range []string{"api", "}", "{", "{}", "a}b{c", "payments:*", "tenant-%7B", "x\x00y\xff", "ключ"} {
		ks := newKeySet("slotguard", name)
		slot := hashSlot(ks.keys[0])
		for _, k := range ks.keys[1:] {
			if hashSlot(k) != slot {
				t.Errorf("name %q: %s in slot %d, %s in %d", name, ks.keys[0], slot, k, hashSlot(k))
			}
		}
		for _, k := range []string{ks.keys[0], ks.keys[7]} {
			if got, ok := nameFromKey("slotguard", k); !ok || got != name {
				t.Errorf("name %q: key %q gives back %q, %v", name, k, got, ok)
			}
		}
	}
	if newKeySet("p", "a}").keys[0] == newKeySet("p", "a%7D").keys[0] {
		t.Fatal("two names share keys")
	}
}

// hashSlot is Redis Cluster's key slot: CRC16 of the hash tag (the part
// between the first { and the next }, when not empty) or of the whole key.
func hashSlot(key string) int {
	if i := indexByte(key, '{'); i >= 0 {
		if j := indexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % 16384)
}

func indexByte(s string, c byte) int {
	for i := range len(s) {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func crc16(s string) uint16 {
	var crc uint16
	for i := range len(s) {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func TestOddNamesWorkEndToEnd(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		for _, name := range []string{"}", "{}", "a b\nc", "x\x00y\xff", "*?[", "ключ"} {
			s := newSem(t, b, name, 1, nil)
			p := mustAcquire(t, s, WithHolder("task\x00id:with:colons"))
			info := mustInfo(t, s)
			if info.Held != 1 || info.Holders[0].Label != "task\x00id:with:colons" {
				t.Fatalf("name %q: %+v", name, info)
			}
			mustRelease(t, p)
		}
	})
}

var _ redis.UniversalClient = (*redistest.Faulty)(nil)

func TestListFindsEveryUsedSemaphore(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		names := []string{"a", "b}{", "tenant/x*"}
		for _, n := range names {
			s := newSem(t, b, n, 1, nil)
			mustRelease(t, mustAcquire(t, s))
		}
		newSem(t, b, "never-used", 1, nil)
		got, err := List(t.Context(), b.Client, b.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"a", "b}{", "tenant/x*"}
		if len(got) != len(want) {
			t.Fatalf("List = %q, want %q", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("List = %q, want %q", got, want)
			}
		}
	})
}
