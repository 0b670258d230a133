package redisconn

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// hidden replaces every secret in what this package prints.
const hidden = "xxxxx"

// RedactURL returns the Redis URL raw with its secrets hidden, whether or
// not raw parses: a password that was not URL-escaped may hold '/', '?',
// '#', '@', spaces or quotes, which break parsing. Everything between "://"
// and the last '@' is hidden except a user name before the first ':', and
// so is the value of every query parameter whose name holds "password".
func RedactURL(raw string) string {
	if !strings.Contains(raw, "://") {
		if strings.Contains(raw, "@") || strings.Contains(strings.ToLower(raw), "password") {
			return hidden
		}
		return raw
	}
	return redactUserinfo(raw)
}

// queryPassword matches the value of a query parameter such as password= or
// sentinel_password=.
var queryPassword = regexp.MustCompile(`(?i)([?&][^=&?#\s]*password[^=&?#\s]*=)[^&#\s"]*`)

// redisURLs finds each Redis URL in free text, up to the last '@' before
// the next URL (a password may hold spaces and quotes) or, without one, up
// to white space or a quote.
var redisURLs = regexp.MustCompile(`rediss?://`)

// Redact hides the password of every Redis URL in s, such as an error
// message that quotes one, even when the password was not URL-escaped: the
// text from "://" to the last '@' before the next URL is taken as user
// information, which hides too much rather than too little.
func Redact(s string) string {
	locs := redisURLs.FindAllStringIndex(s, -1)
	if len(locs) == 0 {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:locs[0][0]])
	for i, loc := range locs {
		end := len(s)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		b.WriteString(redactUserinfo(s[loc[0]:end]))
	}
	return b.String()
}

// redactUserinfo hides the user information of the URL that starts s
// (everything from "://" to the last '@', but a user name before a ':'),
// and password query values after it.
func redactUserinfo(s string) string {
	scheme, rest, _ := strings.Cut(s, "://")
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		user, _, hasPass := strings.Cut(rest[:at], ":")
		if !hasPass {
			user = ""
		}
		rest = user + ":" + hidden + rest[at:]
	}
	return scheme + "://" + queryPassword.ReplaceAllString(rest, "${1}"+hidden)
}

// quoted matches a Go-quoted string in an error message.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"\s?`)

// urlProblem says why raw did not parse without quoting any of it: the
// parser's messages quote the part they choke on, and with an unescaped
// password that part is a piece of it (`invalid port ":pa" after host`).
func urlProblem(raw string, err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		msg := strings.TrimSpace(quoted.ReplaceAllString(ue.Err.Error(), ""))
		if strings.Contains(raw, "@") {
			msg += " (URL-escape a password that holds / ? # @ % \" or spaces: / is %2F, @ is %40)"
		}
		return msg
	}
	return Redact(err.Error())
}
