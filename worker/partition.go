package worker

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A partition is the part of a partitioned rule's semaphore name after the
// "/": one per JSON value of the payload field, however that value is
// spelled, always valid UTF-8 and at most [MaxPartitionBytes] long.
//
//   - A string is its own value: "acme" is the partition acme. Invalid
//     UTF-8 has become U+FFFD already (encoding/json decodes it so), and
//     "\u0061" is a.
//   - The empty string is the partition `""`, so that it does not share the
//     no-value partition.
//   - Any other value is its canonical JSON text: numbers in their shortest
//     exact decimal form (1, 1.0, 1e0 and 10e-1 are all 1; 9007199254740993
//     stays itself), objects with their keys sorted and the last of
//     duplicate keys kept, no white space.
//   - A missing field, null, and a payload that is not a JSON object share
//     the no-value partition, the empty string: the semaphore "rule/".
//   - A partition longer than MaxPartitionBytes keeps its first
//     [partitionKeep] bytes, then "…" and 32 hex digits of the SHA-256 of
//     the whole text, so that two long values still get two semaphores.
//
// Two different values whose texts are equal (the string "42" and the
// number 42) share one partition. That only ever makes a limit stricter:
// no spelling gives a value more than one partition.

// MaxPartitionBytes bounds the partition part of a semaphore name; see
// [Rule.PartitionBy] for how longer values are shortened.
const MaxPartitionBytes = 128

// partitionKeep is how much of a longer partition's text is kept, before
// its hash.
const partitionKeep = 64

// partitionOf returns the partition of payload for a rule partitioned by
// field. It never fails: a payload that does not hold the field is in the
// no-value partition, "".
func partitionOf(payload []byte, field string) string {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil {
		return ""
	}
	raw, ok := obj[field]
	if !ok {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "" // cannot happen: raw came from a valid object
	}
	var text string
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		text = x
		if text == "" {
			text = `""`
		}
	default:
		var b []byte
		text = string(appendCanonical(b, v))
	}
	return boundPartition(text)
}

// boundPartition returns text, or, when it is longer than
// MaxPartitionBytes, its first partitionKeep bytes (cut at a rune boundary),
// "…" and the start of its SHA-256 in hex.
func boundPartition(text string) string {
	if len(text) <= MaxPartitionBytes {
		return text
	}
	keep := partitionKeep
	for keep > 0 && !utf8.RuneStart(text[keep]) {
		keep--
	}
	sum := sha256.Sum256([]byte(text))
	return text[:keep] + "…" + hex.EncodeToString(sum[:16])
}

// appendCanonical appends v, decoded with UseNumber, as canonical JSON.
func appendCanonical(b []byte, v any) []byte {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendCanonical(b, x[k])
		}
		return append(b, '}')
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonical(b, e)
		}
		return append(b, ']')
	case string:
		return appendJSONString(b, x)
	case json.Number:
		return append(b, canonicalNumber(string(x))...)
	case bool:
		return strconv.AppendBool(b, x)
	}
	return append(b, "null"...)
}

// appendJSONString appends s as a JSON string: only '"', '\' and control
// characters are escaped, so that the text stays readable. s is valid UTF-8
// (encoding/json decoded it).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[r>>4], "0123456789abcdef"[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

// canonicalNumber returns the one spelling of the JSON number s's exact
// value: no sign for zero, no leading or trailing zeros, plain decimals
// from 1e-6 up to 1e21 and d.ddde±n outside, as JavaScript prints numbers,
// but with every digit kept. The exponent may have any number of digits.
func canonicalNumber(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, expText, _ := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+frac, "0")
	trimmed := strings.TrimRight(digits, "0")
	if trimmed == "" {
		return "0"
	}
	// value = trimmed × 10^exp
	exp := new(big.Int)
	if expText != "" {
		exp.SetString(strings.TrimPrefix(expText, "+"), 10)
	}
	exp.Add(exp, big.NewInt(int64(len(digits)-len(trimmed)-len(frac))))
	digits = trimmed
	// point: value = 0.digits × 10^point
	point := new(big.Int).Add(exp, big.NewInt(int64(len(digits))))
	var out string
	if point.Cmp(big.NewInt(-6)) > 0 && point.Cmp(big.NewInt(21)) <= 0 {
		p := int(point.Int64())
		switch {
		case p >= len(digits):
			out = digits + strings.Repeat("0", p-len(digits))
		case p > 0:
			out = digits[:p] + "." + digits[p:]
		default:
			out = "0." + strings.Repeat("0", -p) + digits
		}
	} else {
		out = digits[:1]
		if len(digits) > 1 {
			out += "." + digits[1:]
		}
		out += "e" + point.Sub(point, big.NewInt(1)).String()
	}
	if neg {
		return "-" + out
	}
	return out
}
