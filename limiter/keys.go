package limiter

import "strings"

// keySet names the Redis keys of one semaphore. All of them share the hash
// tag {name}, so they live in one Redis Cluster slot.
type keySet struct {
	keys    []string // st, h, q, d, p, f, w, lim: see lua/common.lua
	channel string
}

// tagEscaper keeps a name's braces from ending its hash tag early (an empty
// tag would hash the whole key, and the keys would scatter over slots).
var tagEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

// globEscaper makes a literal part of a SCAN MATCH pattern.
var globEscaper = strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`)

// The keys' suffixes, in the order the scripts expect them.
var keySuffixes = []string{"state", "holders", "queue", "data", "procs", "notices", "tickets", "limit"}

func newKeySet(prefix, name string) keySet {
	base := prefix + ":{" + tagEscaper.Replace(name) + "}:"
	keys := make([]string, len(keySuffixes))
	for i, s := range keySuffixes {
		keys[i] = base + s
	}
	return keySet{keys: keys, channel: grantChannel(prefix)}
}

// grantChannel is the one Pub/Sub channel on which every semaphore under
// prefix publishes its grants.
func grantChannel(prefix string) string { return prefix + ":grants" }

// A semaphore that was used has a state key while it is in use or
// recently idle, and a limit key once SetLimit stored one.
var listedSuffixes = []string{"}:state", "}:limit"}

// nameFromKey reverses newKeySet for a state or limit key found by SCAN.
func nameFromKey(prefix, key string) (string, bool) {
	if !strings.HasPrefix(key, prefix+":{") {
		return "", false
	}
	for _, suffix := range listedSuffixes {
		if strings.HasSuffix(key, suffix) {
			esc := key[len(prefix)+2 : len(key)-len(suffix)]
			r := strings.NewReplacer("%7B", "{", "%7D", "}", "%25", "%")
			return r.Replace(esc), true
		}
	}
	return "", false
}
