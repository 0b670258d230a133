package limiter

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// FuzzNameAndHolder sends semaphore names and holder labels with odd bytes
// through the Lua scripts: whatever the bytes, a slot is acquired, shown by
// Info with its label, listed by List, and released, and the semaphore's
// keys share one Cluster slot.
func FuzzNameAndHolder(f *testing.F) {
	for _, s := range [][2]string{
		{"api", "task-1 worker host:1"},
		{"{braces}", "{}"},
		{"x}{y", "*"},
		{"star*?[a]\\", "\x00\xff"},
		{"%7B%25", "label with\nnewline"},
		{"ünïcode/partition", "\xc3\x28 invalid utf-8"},
		{"}", ""},
		{strings.Repeat("n", 1000), strings.Repeat("h", 5000)},
	} {
		f.Add(s[0], s[1])
	}
	m := miniredis.RunT(f)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	f.Cleanup(func() { _ = rdb.Close() })
	const prefix = "fz"
	f.Fuzz(func(t *testing.T, name, holder string) {
		m.FlushAll() // this test's own miniredis: List must see one name
		ctx := context.Background()
		sem, err := New(rdb, name, 1, &Options{Prefix: prefix})
		if name == "" {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("New with an empty name: %v, want ErrInvalid", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("New(%q): %v", name, err)
		}
		p, err := sem.TryAcquire(ctx, WithHolder(holder))
		if err != nil {
			t.Fatalf("TryAcquire(%q, holder %q): %v", name, holder, err)
		}
		info, err := sem.Info(ctx)
		if err != nil {
			t.Fatalf("Info(%q): %v", name, err)
		}
		if info.Name != name || info.Held != 1 || len(info.Holders) != 1 || info.Holders[0].Label != holder {
			t.Fatalf("Info(%q) = %+v, want one holder labelled %q", name, info, holder)
		}
		names, err := List(ctx, rdb, prefix)
		if err != nil || !slices.Equal(names, []string{name}) {
			t.Fatalf("List = %q, %v; want [%q]", names, err, name)
		}
		ks := newKeySet(prefix, name)
		first, err := rdb.ClusterKeySlot(ctx, ks.keys[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks.keys[1:] {
			if s, _ := rdb.ClusterKeySlot(ctx, k).Result(); s != first {
				t.Fatalf("name %q: key %q in slot %d, %q in slot %d", name, ks.keys[0], first, k, s)
			}
		}
		if err := p.Release(ctx); err != nil {
			t.Fatalf("Release(%q): %v", name, err)
		}
		if info, _ := sem.Info(ctx); info.Held != 0 {
			t.Fatalf("%q: %d held after Release", name, info.Held)
		}
	})
}
