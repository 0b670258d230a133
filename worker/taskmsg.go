package worker

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of asynq v0.26's TaskMessage (internal/proto/asynq.proto).
const (
	msgFieldID        = 3
	msgFieldUniqueKey = 10
	msgFieldHeaders   = 15
)

// OriginalIDHeader is the task header that names a task's first ID after a
// requeue gave it a new one (see [RequeueError]).
const OriginalIDHeader = "slotguard-original-id"

var errBadMessage = errors.New("worker: cannot parse asynq task message")

// rewriteTaskMessage returns msg with its ID replaced by id and, unless the
// header is already there, OriginalIDHeader set to the old ID. It also
// returns the task's uniqueness key. Every other field is copied unchanged.
func rewriteTaskMessage(msg []byte, id string) (out []byte, oldID, uniqueKey string, err error) {
	hasHeader := false
	b := msg
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, "", "", errBadMessage
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, "", "", errBadMessage
		}
		field := b[:n+m]
		value := b[n : n+m]
		b = b[n+m:]
		switch {
		case num == msgFieldID && typ == protowire.BytesType:
			v, _ := protowire.ConsumeBytes(value)
			oldID = string(v)
			continue // written below
		case num == msgFieldUniqueKey && typ == protowire.BytesType:
			v, _ := protowire.ConsumeBytes(value)
			uniqueKey = string(v)
		case num == msgFieldHeaders && typ == protowire.BytesType:
			entry, _ := protowire.ConsumeBytes(value)
			if mapKey(entry) == OriginalIDHeader {
				hasHeader = true
			}
		}
		out = append(out, field...)
	}
	out = protowire.AppendTag(out, msgFieldID, protowire.BytesType)
	out = protowire.AppendString(out, id)
	if !hasHeader && oldID != "" {
		var entry []byte
		entry = protowire.AppendTag(entry, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, OriginalIDHeader)
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendString(entry, oldID)
		out = protowire.AppendTag(out, msgFieldHeaders, protowire.BytesType)
		out = protowire.AppendBytes(out, entry)
	}
	return out, oldID, uniqueKey, nil
}

// mapKey returns field 1 of a map entry.
func mapKey(entry []byte) string {
	for len(entry) > 0 {
		num, typ, n := protowire.ConsumeTag(entry)
		if n < 0 {
			return ""
		}
		m := protowire.ConsumeFieldValue(num, typ, entry[n:])
		if m < 0 {
			return ""
		}
		if num == 1 && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(entry[n : n+m])
			return string(v)
		}
		entry = entry[n+m:]
	}
	return ""
}
