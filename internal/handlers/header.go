package handlers

import (
	"errors"
	"fmt"
	"strings"
)

// ErrHeader is wrapped by [CheckHeader]'s errors.
var ErrHeader = errors.New("invalid HTTP header")

// CheckHeader reports whether name and value can be sent as an HTTP header
// field: the name must be a non-empty token (letters, digits and
// !#$%&'*+-.^_`|~, so no space, colon or line break), and the value must
// hold no control character but tab (no CR, LF or NUL, which would end the
// field or smuggle another). Its error names the header but never quotes
// the value, which may be a secret.
func CheckHeader(name, value string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrHeader)
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return fmt.Errorf("%w: name %q holds %q, which a header name cannot hold", ErrHeader, name, name[i:i+1])
		}
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < ' ' && c != '\t' || c == 0x7f {
			return fmt.Errorf("%w %q: its value holds a control character (byte %d of %d); CR, LF and NUL cannot be sent", ErrHeader, name, i+1, len(value))
		}
	}
	return nil
}

func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
