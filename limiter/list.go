package limiter

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/redis/go-redis/v9"
)

// List returns the names of every semaphore under prefix ("" for
// [DefaultPrefix]) that is in use, was used within its idle time
// ([Options.IdleTimeout]), or has a limit stored by [Semaphore.SetLimit],
// sorted. It scans the keyspace (every
// master of a Cluster) with SCAN, so it is for operators' tools, not for
// the hot path. It returns a wrapped Redis error on failure.
func List(ctx context.Context, rdb redis.UniversalClient, prefix string) ([]string, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	match := globEscaper.Replace(prefix) + ":{*}:*"
	var mu sync.Mutex
	seen := map[string]bool{}
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, match, 1000).Iterator()
		for iter.Next(ctx) {
			if name, ok := nameFromKey(prefix, iter.Val()); ok {
				mu.Lock()
				seen[name] = true
				mu.Unlock()
			}
		}
		return iter.Err()
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, rdb)
	}
	if err != nil {
		return nil, fmt.Errorf("limiter: list %q: %w", prefix, err)
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}
