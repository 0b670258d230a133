package limiter

import "strings"

// keySet names the Redis keys of one semaphore. All of them share the hash
// tag {name}, so they live in one Redis Cluster slot.
type keySet struct {
	keys    []string // holders, queue, procs, data, state, fresh: see lua/common.lua
	channel string
}

// tagEscaper keeps a name's braces from ending its hash tag early (an empty
// tag would hash the whole key, and the keys would scatter over slots).
var tagEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

// globEscaper makes a literal part of a SCAN MATCH pattern.
var globEscaper = strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`)

func newKeySet(prefix, name string) keySet {
	base := prefix + ":{" + tagEscaper.Replace(name) + "}:"
	return keySet{
		keys:    []string{base + "holders", base + "queue", base + "procs", base + "data", base + "state", base + "fresh"},
		channel: grantChannel(prefix),
	}
}

// grantChannel is the one Pub/Sub channel on which every semaphore under
// prefix publishes its grants.
func grantChannel(prefix string) string { return prefix + ":grants" }

// stateKeySuffix ends the key that exists for every semaphore that was used.
const stateKeySuffix = "}:state"

// nameFromStateKey reverses newKeySet for a state key found by SCAN.
func nameFromStateKey(prefix, key string) (string, bool) {
	if !strings.HasPrefix(key, prefix+":{") || !strings.HasSuffix(key, stateKeySuffix) {
		return "", false
	}
	esc := key[len(prefix)+2 : len(key)-len(stateKeySuffix)]
	r := strings.NewReplacer("%7B", "{", "%7D", "}", "%25", "%")
	return r.Replace(esc), true
}
