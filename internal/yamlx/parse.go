package yamlx

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// Parse parses data and returns the top-level node of its one document, or
// nil for an empty document. It returns yaml's syntax error as it is, and an
// error wrapping [ErrMultipleDocuments] that gives the line where a second,
// non-empty document starts, since decoding only the first would silently
// ignore the rest.
func Parse(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root *yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return root, nil
		}
		if err != nil {
			return nil, err
		}
		if len(doc.Content) == 0 || isNull(doc.Content[0]) {
			continue
		}
		if root != nil {
			return nil, fmt.Errorf("%w: the second starts at line %d (a configuration file holds one)", ErrMultipleDocuments, doc.Line)
		}
		root = doc.Content[0]
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}
