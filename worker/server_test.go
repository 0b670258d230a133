package worker

import (
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func TestRetryDelayHooks(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer rdb.Close()
	g, err := New(rdb, Config{RequeueMinDelay: 2 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	task := asynq.NewTask("t", nil)
	delay := g.ServerConfig(asynq.Config{}).RetryDelayFunc
	if d := delay(3, asynq.ErrLeaseExpired, task); d != 2*time.Second {
		t.Errorf("a task whose worker died waits %v, want RequeueMinDelay 2s", d)
	}
	if d := delay(0, errors.New("boom"), task); d < 15*time.Second {
		t.Errorf("a real failure waits %v, want asynq's default (at least 15s)", d)
	}
	if d := delay(0, &RequeueError{Delay: 7 * time.Second, Err: errors.New("x")}, task); d != 7*time.Second {
		t.Errorf("a requeue waits %v, want its own 7s", d)
	}
	own := g.ServerConfig(asynq.Config{RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Minute }}).RetryDelayFunc
	if d := own(0, asynq.ErrLeaseExpired, task); d != time.Minute {
		t.Errorf("the user's RetryDelayFunc was not asked: %v", d)
	}
}
