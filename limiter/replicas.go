package limiter

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotReplicated is returned by Acquire and TryAcquire when
// [Options.SyncReplicas] replicas did not acknowledge a grant within
// [Options.SyncTimeout]. The slot has been given back.
var ErrNotReplicated = errors.New("limiter: grant not acknowledged by enough replicas")

// confirm returns p once enough replicas hold its grant, or gives it back.
// Redis replicates asynchronously, so a failover can lose a grant that its
// holder already acted on; WAIT narrows that window at the cost of one more
// round trip that lasts until the replicas answer. WAIT counts the writes of
// the connection that sends it, so it is pipelined after a renewal on the
// same connection; replication is ordered, so an acknowledged renewal
// implies the grant before it (made by whichever process handed it over).
func (s *Semaphore) confirm(ctx context.Context, op string, p *Permit) (*Permit, error) {
	if s.opts.SyncReplicas == 0 {
		return p, nil
	}
	pipe := s.rdb.Pipeline()
	renew := pipe.Eval(ctx, luaCommon+luaRenew, s.keys.keys, s.args(p.token, s.opts.Lease.Milliseconds())...)
	wait := pipe.Do(ctx, "WAIT", s.opts.SyncReplicas, s.opts.SyncTimeout.Milliseconds())
	_, err := pipe.Exec(ctx)
	var acked int64
	var renewed []int64
	if err == nil {
		renewed, err = renew.Int64Slice()
	}
	if err == nil {
		acked, err = wait.Int64()
	}
	if err == nil && (len(renewed) == 0 || renewed[0] == 0) {
		err = ErrLeaseLost
	}
	if err == nil && acked < int64(s.opts.SyncReplicas) {
		err = fmt.Errorf("%w: %d of %d within %v", ErrNotReplicated, acked, s.opts.SyncReplicas, s.opts.SyncTimeout)
	}
	if err != nil {
		_ = p.Release(context.WithoutCancel(ctx))
		return nil, s.wrap(op, err)
	}
	return p, nil
}
