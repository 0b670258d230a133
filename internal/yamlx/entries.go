package yamlx

import "go.yaml.in/yaml/v3"

// entry is one key and its value in a mapping.
type entry struct{ key, value *yaml.Node }

// entries returns the keys of mapping n in order, with the keys of merged
// mappings ("<<: *base") after them where n does not set them itself. A key
// that n gives twice is reported, with both lines, and only its first value
// is kept; so is a key that is not a single value.
func (d *decoder) entries(n *yaml.Node, path string) []entry {
	if !d.visit(n, path) {
		return nil
	}
	d.depth++
	defer func() { d.depth-- }()
	var own, merged []entry
	seen := map[string]int{} // key -> line
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if isMerge(k) {
			merged = append(merged, d.mergeSources(v, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(path, k.Line, "a key must be a single value, not a list or a mapping")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(Join(path, k.Value), k.Line, "duplicate key: also set at line %d", first)
			continue
		}
		seen[k.Value] = k.Line
		own = append(own, entry{k, v})
	}
	for _, e := range merged {
		if _, set := seen[e.key.Value]; !set {
			seen[e.key.Value] = e.key.Line
			own = append(own, e)
		}
	}
	return own
}

// mergeSources returns the entries that "<<: v" merges in: from one mapping,
// or from a list of mappings where the first to set a key wins.
func (d *decoder) mergeSources(v *yaml.Node, path string) []entry {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.MappingNode:
		return d.entries(v, path)
	case yaml.SequenceNode:
		var out []entry
		seen := map[string]bool{}
		for _, m := range v.Content {
			if m.Kind == yaml.AliasNode && m.Alias != nil {
				m = m.Alias
			}
			if m.Kind != yaml.MappingNode {
				d.fail(path, m.Line, "\"<<\" merges only mappings")
				continue
			}
			for _, e := range d.entries(m, path) {
				if !seen[e.key.Value] {
					seen[e.key.Value] = true
					out = append(out, e)
				}
			}
		}
		return out
	}
	d.fail(path, v.Line, "\"<<\" merges only mappings")
	return nil
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge")
}
