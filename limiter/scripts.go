package limiter

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/common.lua
	luaCommon string
	//go:embed lua/acquire.lua
	luaAcquire string
	//go:embed lua/release.lua
	luaRelease string
	//go:embed lua/renew.lua
	luaRenew string
	//go:embed lua/poll.lua
	luaPoll string
	//go:embed lua/setlimit.lua
	luaSetLimit string
	//go:embed lua/info.lua
	luaInfo string
)

// Each script runs with lua/common.lua in front of it. They are sent with
// EVALSHA, falling back to EVAL when the server does not know them yet.
var (
	scriptAcquire  = redis.NewScript(luaCommon + luaAcquire)
	scriptRelease  = redis.NewScript(luaCommon + luaRelease)
	scriptRenew    = redis.NewScript(luaCommon + luaRenew)
	scriptPoll     = redis.NewScript(luaCommon + luaPoll)
	scriptSetLimit = redis.NewScript(luaCommon + luaSetLimit)
	scriptInfo     = redis.NewScript(luaCommon + luaInfo)
)
