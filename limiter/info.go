package limiter

import (
	"context"
	"fmt"
	"time"
)

// Info is a consistent snapshot of a semaphore, read in one round trip.
type Info struct {
	Name    string
	Limit   int   // the stored limit (the constructor's, if none is stored)
	Held    int   // slots held by live leases, counting weights
	Free    int   // Limit - Held, or 0 when a lowered limit is exceeded
	Waiting int   // queued waiters, as TryAcquire sees them: tickets, and live waiters of processes that still heartbeat
	Parked  int   // the queued tickets among Waiting (see [Ticket])
	Fence   int64 // the last fencing token issued
	Holders []Holder
}

// Holder is one live permit, or a slot reserved for a ticket.
type Holder struct {
	Token     string
	Weight    int
	Fence     int64
	LeaseLeft time.Duration // until the lease expires without a renewal
	Label     string        // set with [WithHolder]
}

// Info reads the semaphore's state without changing it. Expired leases and
// waiters of processes that stopped heartbeating are left out even before
// anyone has dropped them. It returns a wrapped Redis error on failure.
func (s *Semaphore) Info(ctx context.Context) (Info, error) {
	res, err := scriptInfo.Run(ctx, s.rdb, s.keys.keys, s.args()...).Slice()
	if err != nil {
		return Info{}, s.wrap("info", err)
	}
	info, err := parseInfo(s.name, res)
	return info, s.wrap("info", err)
}

func parseInfo(name string, res []any) (Info, error) {
	if len(res) < 5 || (len(res)-5)%5 != 0 {
		return Info{}, fmt.Errorf("limiter: unexpected info reply of %d items", len(res))
	}
	info := Info{
		Name:    name,
		Limit:   int(asInt(res[0])),
		Held:    int(asInt(res[1])),
		Fence:   asInt(res[2]),
		Waiting: int(asInt(res[3])),
		Parked:  int(asInt(res[4])),
	}
	info.Free = max(0, info.Limit-info.Held)
	for i := 5; i < len(res); i += 5 {
		token, _ := res[i].(string)
		label, _ := res[i+4].(string)
		info.Holders = append(info.Holders, Holder{Token: token, Weight: int(asInt(res[i+1])),
			Fence: asInt(res[i+2]), LeaseLeft: ms(asInt(res[i+3])), Label: label})
	}
	return info, nil
}
