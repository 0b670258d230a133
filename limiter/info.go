package limiter

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Info is a consistent snapshot of a semaphore, read in one round trip.
type Info struct {
	Name    string
	Limit   int   // the stored limit (the constructor's, if none is stored)
	Held    int   // slots held by live leases, counting weights
	Free    int   // Limit - Held, or 0 when a lowered limit is exceeded
	Waiting int   // queued waiters whose heartbeat is current
	Fence   int64 // the last fencing token issued
	Holders []Holder
}

// Holder is one live permit.
type Holder struct {
	Token     string
	Weight    int
	Fence     int64
	LeaseLeft time.Duration // until the lease expires without a renewal
	Label     string        // set with [WithHolder]
}

// Info reads the semaphore's state without changing it. Expired leases and
// waiters are left out even before anyone has reaped them. It returns a
// wrapped Redis error on failure.
func (s *Semaphore) Info(ctx context.Context) (Info, error) {
	res, err := scriptInfo.Run(ctx, s.rdb, s.keys.keys, s.keys.channel, s.limit).Slice()
	if err != nil {
		return Info{}, s.wrap("info", err)
	}
	info, err := parseInfo(s.name, res)
	return info, s.wrap("info", err)
}

func parseInfo(name string, res []any) (Info, error) {
	if len(res) < 4 || (len(res)-4)%3 != 0 {
		return Info{}, fmt.Errorf("limiter: unexpected info reply of %d items", len(res))
	}
	info := Info{
		Name:    name,
		Limit:   int(asInt(res[0])),
		Held:    int(asInt(res[1])),
		Fence:   asInt(res[2]),
		Waiting: int(asInt(res[3])),
	}
	info.Free = max(0, info.Limit-info.Held)
	for i := 4; i < len(res); i += 3 {
		token, _ := res[i].(string)
		data, _ := res[i+1].(string)
		h := Holder{Token: token, LeaseLeft: ms(asInt(res[i+2]))}
		parts := strings.SplitN(data, ":", 3)
		if len(parts) == 3 {
			w, _ := strconv.Atoi(parts[0])
			f, _ := strconv.ParseInt(parts[1], 10, 64)
			h.Weight, h.Fence, h.Label = w, f, parts[2]
		}
		info.Holders = append(info.Holders, h)
	}
	return info, nil
}

func asInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}
