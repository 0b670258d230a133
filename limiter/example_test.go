package limiter_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/slotguard/slotguard/limiter"
)

// The seed's use: at most 2 holders of "db-pool" at once, in any process.
func Example() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	ctx := context.Background()

	sem, err := limiter.New(rdb, "db-pool", 2, nil)
	if err != nil {
		panic(err)
	}
	a, _ := sem.Acquire(ctx)
	b, _ := sem.Acquire(ctx)
	locked, _ := sem.Locked(ctx)
	fmt.Println("locked:", locked)

	_, err = sem.Acquire(ctx, limiter.WithTimeout(50*time.Millisecond))
	fmt.Println("third acquire timed out:", errors.Is(err, limiter.ErrTimeout))

	_ = a.Release(ctx)
	c, _ := sem.Acquire(ctx)
	fmt.Println("fences increase:", a.Fence() < b.Fence() && b.Fence() < c.Fence())
	_ = b.Release(ctx)
	_ = c.Release(ctx)
	// Output:
	// locked: true
	// third acquire timed out: true
	// fences increase: true
}

// SetLimit changes the limit for every process; raising it wakes waiters.
func ExampleSemaphore_SetLimit() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	ctx := context.Background()

	sem, _ := limiter.New(rdb, "api", 1, nil)
	held, _ := sem.Acquire(ctx)
	got := make(chan *limiter.Permit)
	go func() {
		p, _ := sem.Acquire(ctx)
		got <- p
	}()
	for info, _ := sem.Info(ctx); info.Waiting == 0; info, _ = sem.Info(ctx) {
		time.Sleep(time.Millisecond)
	}
	_ = sem.SetLimit(ctx, 2)
	p := <-got
	info, _ := sem.Info(ctx)
	fmt.Printf("limit %d, held %d, waiting %d\n", info.Limit, info.Held, info.Waiting)
	_ = p.Release(ctx)
	_ = held.Release(ctx)
	// Output: limit 2, held 2, waiting 0
}

// TryAcquire never waits: it reports ErrNoSlot when the semaphore is full.
func ExampleSemaphore_TryAcquire() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	ctx := context.Background()

	sem, _ := limiter.New(rdb, "report", 3, nil)
	big, _ := sem.TryAcquire(ctx, limiter.WithWeight(3))
	_, err := sem.TryAcquire(ctx)
	fmt.Println(err)
	_ = big.Release(ctx)
	// Output: limiter: try-acquire "report": limiter: no slot free
}
