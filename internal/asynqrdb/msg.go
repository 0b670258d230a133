package asynqrdb

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// The fields of asynq v0.26's TaskMessage (internal/proto/asynq.proto)
// that the Client reads.
const (
	msgFieldType     = 1
	msgFieldPayload  = 2
	msgFieldID       = 3
	msgFieldQueue    = 4
	msgFieldRetried  = 6
	msgFieldErrorMsg = 7
)

// message is the part of an encoded TaskMessage the Client needs.
type message struct {
	Type, ID, Queue, ErrorMsg string
	Payload                   []byte
	Retried                   int
}

var errBadMessage = errors.New("asynqrdb: cannot parse an asynq task message")

// decodeMessage reads an encoded TaskMessage. Of a field given twice, the
// last value wins, as for any protobuf decoder.
func decodeMessage(b []byte) (message, error) {
	var m message
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return m, errBadMessage
		}
		b = b[n:]
		switch {
		case typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return m, errBadMessage
			}
			b = b[n:]
			switch num {
			case msgFieldType:
				m.Type = string(v)
			case msgFieldPayload:
				m.Payload = v
			case msgFieldID:
				m.ID = string(v)
			case msgFieldQueue:
				m.Queue = string(v)
			case msgFieldErrorMsg:
				m.ErrorMsg = string(v)
			}
		case typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return m, errBadMessage
			}
			b = b[n:]
			if num == msgFieldRetried {
				m.Retried = int(int32(v))
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return m, errBadMessage
			}
			b = b[n:]
		}
	}
	return m, nil
}
