package worker

import (
	"sort"
	"strings"
)

// need is one semaphore a task must hold: a rule and, for partitioned rules,
// the partition taken from the payload.
type need struct {
	rule *rule
	sem  string // semaphore name: the rule name, or "name/partition" (see partitionOf)
}

// rule is a validated [Rule] with its patterns compiled.
type rule struct {
	Rule
	types  []pattern
	queues []pattern
}

func compileRule(r Rule) *rule {
	c := &rule{Rule: r}
	for _, p := range r.TaskTypes {
		c.types = append(c.types, compilePattern(p))
	}
	for _, p := range r.Queues {
		c.queues = append(c.queues, compilePattern(p))
	}
	return c
}

func (r *rule) matches(taskType, queue string) bool {
	return (len(r.types) == 0 || anyMatch(r.types, taskType)) &&
		(len(r.queues) == 0 || anyMatch(r.queues, queue))
}

// needs returns the semaphores a task needs, sorted by name: every process
// acquires them in this one order, so two multi-rule tasks never wait for
// each other's slots in a cycle. It touches no Redis.
func needs(rules []*rule, taskType, queue string, payload []byte) []need {
	var out []need
	for _, r := range rules {
		if !r.matches(taskType, queue) {
			continue
		}
		name := r.Name
		if r.PartitionBy != "" {
			name += "/" + partitionOf(payload, r.PartitionBy)
		}
		out = append(out, need{rule: r, sem: name})
	}
	if len(out) > 1 {
		sort.Slice(out, func(i, j int) bool { return out[i].sem < out[j].sem })
	}
	return out
}

// pattern matches a name exactly, or with "*" matching any run of
// characters (including none).
type pattern struct {
	parts []string // the literal text between stars; len 1 means exact
}

func compilePattern(p string) pattern { return pattern{parts: strings.Split(p, "*")} }

func (p pattern) match(s string) bool {
	if len(p.parts) == 1 {
		return s == p.parts[0]
	}
	first, last := p.parts[0], p.parts[len(p.parts)-1]
	if !strings.HasPrefix(s, first) {
		return false
	}
	s = s[len(first):]
	for _, mid := range p.parts[1 : len(p.parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, last)
}

func anyMatch(ps []pattern, s string) bool {
	for _, p := range ps {
		if p.match(s) {
			return true
		}
	}
	return false
}
