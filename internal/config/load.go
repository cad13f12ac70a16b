package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds the config file read.
const MaxFileSize = 4 << 20

// Error is one problem in a config file, located by line and field path.
type Error struct {
	File string
	Line int    // 0 when unknown
	Path string // e.g. routes[2].auth
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one load, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Load reads, substitutes, strictly decodes, defaults and validates path.
// Every problem found is returned as Errors.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("cannot read config: %v", unwrapPathErr(err))}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("cannot read config: %v", err)}}
	}
	if len(data) > MaxFileSize {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("file larger than %d bytes", MaxFileSize)}}
	}
	return Parse(path, data, os.LookupEnv)
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Parse is Load on bytes already read; lookupEnv resolves ${VAR}.
func Parse(file string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: file, Msg: "file is empty (see examples/sekisho.yaml)"}}
		}
		return nil, Errors{yamlError(file, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, Errors{{File: file, Line: extra.Line, Msg: "more than one YAML document; a config file holds exactly one"}}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, Errors{{File: file, Line: doc.Line, Msg: "top level must be a mapping (see examples/sekisho.yaml)"}}
	}
	root := doc.Content[0]
	var errs Errors
	substitute(root, lookupEnv, file, &errs)
	checkFields(root, reflect.TypeOf(Config{}), "", file, &errs)
	cfg := &Config{}
	if err := root.Decode(cfg); err != nil {
		// Type mismatches: report them with what was found so far; the
		// partly decoded config is not worth validating.
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, msg := range te.Errors {
				errs = append(errs, yamlError(file, errors.New(msg)))
			}
		} else {
			errs = append(errs, yamlError(file, err))
		}
		return nil, sortErrors(errs)
	}
	cfg.File = file
	cfg.root = root
	applyDefaults(cfg)
	// Validate even after unknown fields or unset variables, so one run
	// reports every problem in the file.
	for _, e := range validate(cfg) {
		e.File = file
		e.Line = locate(root, e.Path)
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		return nil, sortErrors(errs)
	}
	return cfg, nil
}

func sortErrors(errs Errors) Errors {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	return errs
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

// yamlError turns a yaml.v3 error ("yaml: line 3: ...") into an Error.
func yamlError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = strings.Replace(msg, m[0], "", 1)
	}
	msg = strings.ReplaceAll(msg, "!!str", "a string")
	msg = strings.ReplaceAll(msg, "!!seq", "a list")
	msg = strings.ReplaceAll(msg, "!!map", "a mapping")
	msg = strings.ReplaceAll(msg, "!!int", "a number")
	msg = strings.ReplaceAll(msg, "!!bool", "a boolean")
	msg = strings.ReplaceAll(msg, "config.", "")
	return &Error{File: file, Line: line, Msg: msg}
}

var envRef = regexp.MustCompile(`\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{[^}]*\}?`)

// substitute replaces ${VAR} in every scalar value (never in keys). $${ is a
// literal ${. An unset variable is an error: a missing secret must not
// silently become an empty string.
func substitute(n *yaml.Node, lookup func(string) (string, bool), file string, errs *Errors) {
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$${" {
				return "${"
			}
			sub := envRef.FindStringSubmatch(m)
			if sub[1] == "" {
				*errs = append(*errs, &Error{File: file, Line: n.Line, Msg: fmt.Sprintf("malformed variable reference %q (use ${NAME} with letters, digits and _; $${ for a literal)", m)})
				return m
			}
			v, ok := lookup(sub[1])
			if !ok {
				*errs = append(*errs, &Error{File: file, Line: n.Line, Msg: fmt.Sprintf("environment variable %s is not set", sub[1])})
				return ""
			}
			return v
		})
		// A substituted value is data, never YAML: keep it a string unless
		// the field's Go type decides otherwise.
		if n.Tag == "" || n.Tag == "!!null" {
			n.Tag = "!!str"
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			substitute(n.Content[i], lookup, file, errs)
		}
	default:
		for _, c := range n.Content {
			substitute(c, lookup, file, errs)
		}
	}
}

var (
	durationType = reflect.TypeOf(Duration(0))
	byteSizeType = reflect.TypeOf(ByteSize(0))
	authType     = reflect.TypeOf(Auth{})
)

// checkFields reports unknown or duplicate keys anywhere in the document,
// with the known fields as the allowed set and a "did you mean" hint.
func checkFields(n *yaml.Node, t reflect.Type, path, file string, errs *Errors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		*errs = append(*errs, &Error{File: file, Line: n.Line, Path: path, Msg: "YAML aliases are not supported in Sekisho configs"})
		return
	}
	if t == durationType || t == byteSizeType {
		return
	}
	if t == authType {
		if n.Kind == yaml.ScalarNode {
			return
		}
		t = reflect.TypeOf(authShape{})
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the type mismatch
		}
		fields := map[string]reflect.StructField{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = f
			names = append(names, tag)
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if seen[k.Value] {
				*errs = append(*errs, &Error{File: file, Line: k.Line, Path: p, Msg: "duplicate key"})
				continue
			}
			seen[k.Value] = true
			f, ok := fields[k.Value]
			if !ok {
				msg := "unknown field"
				if s := suggest(k.Value, names); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				msg += " (allowed: " + strings.Join(names, ", ") + ")"
				*errs = append(*errs, &Error{File: file, Line: k.Line, Path: p, Msg: msg})
				continue
			}
			checkFields(v, f.Type, p, file, errs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := join(path, k.Value)
			if seen[k.Value] {
				*errs = append(*errs, &Error{File: file, Line: k.Line, Path: p, Msg: "duplicate key"})
				continue
			}
			seen[k.Value] = true
			checkFields(n.Content[i+1], t.Elem(), p, file, errs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			checkFields(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), file, errs)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest returns the known name closest to s, if it is close.
func suggest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(s), n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// locate finds the line of a field path like routes[2].match.path in the
// document. It returns the deepest line found, so a missing field points at
// its parent.
func locate(root *yaml.Node, path string) int {
	n := root
	line := root.Line
	for _, part := range splitPath(path) {
		var next *yaml.Node
		if idx, err := strconv.Atoi(part); err == nil && n.Kind == yaml.SequenceNode {
			if idx >= 0 && idx < len(n.Content) {
				next = n.Content[idx]
				line = next.Line
			}
		} else if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part {
					line = n.Content[i].Line
					next = n.Content[i+1]
					break
				}
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// splitPath turns routes[2].match into [routes 2 match].
func splitPath(p string) []string {
	p = strings.ReplaceAll(p, "[", ".")
	p = strings.ReplaceAll(p, "]", "")
	if p == "" {
		return nil
	}
	return strings.Split(p, ".")
}
