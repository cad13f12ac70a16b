package authz

import (
	"net/http"
	"net/textproto"
	"reflect"
	"strings"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"

	"github.com/sekisho/sekisho/internal/authn"
)

// activation resolves the policy's variables on demand. CEL asks for each
// declared variable the expression references, by its qualified name, so a
// policy reading only claims and request.method never touches headers or
// params, and nothing is built for them.
type activation struct {
	id  *authn.Identity
	req RequestView
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "claims":
		if a.id == nil {
			return map[string]any(nil), true
		}
		return a.id.Claims, true
	case "request.method":
		return types.String(a.req.Method), true
	case "request.path":
		return types.String(a.req.Path), true
	case "request.headers":
		return &lazyStringMap{src: headerSource{a.req.Header}}, true
	case "params":
		return &lazyStringMap{src: paramSource{a.req.Params}}, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// stringSource is a read-only string→string view that can answer lookups
// without copying and materialize a map only when the whole map is needed
// (iteration, size, equality, conversion).
type stringSource interface {
	lookup(key string) (string, bool)
	materialize() map[string]string
}

// headerSource presents http.Header with lower-case names and first values.
type headerSource struct{ h http.Header }

func (s headerSource) lookup(key string) (string, bool) {
	if len(s.h) == 0 || key == "" {
		return "", false
	}
	// Map keys are lower-case by definition; an upper-case lookup is not a
	// key of this map.
	for i := 0; i < len(key); i++ {
		if c := key[i]; c >= 'A' && c <= 'Z' {
			return "", false
		}
	}
	if v := s.h[textproto.CanonicalMIMEHeaderKey(key)]; len(v) > 0 {
		return v[0], true
	}
	// Non-canonical keys (set directly on the map, or names Go does not
	// canonicalize) are still visible under their lower-case form, as in
	// materialize.
	for k, v := range s.h {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0], true
		}
	}
	return "", false
}

func (s headerSource) materialize() map[string]string {
	m := make(map[string]string, len(s.h))
	for k, v := range s.h {
		if len(v) == 0 {
			continue
		}
		lk := strings.ToLower(k)
		// The canonical form wins if two spellings collide, as in lookup.
		if _, dup := m[lk]; dup && k != textproto.CanonicalMIMEHeaderKey(k) {
			continue
		}
		m[lk] = v[0]
	}
	return m
}

type paramSource struct{ p Params }

func (s paramSource) lookup(key string) (string, bool) {
	if s.p == nil {
		return "", false
	}
	return s.p.Get(key)
}

func (s paramSource) materialize() map[string]string {
	m := map[string]string{}
	if s.p != nil {
		s.p.Range(func(k, v string) bool { m[k] = v; return true })
	}
	return m
}

// lazyStringMap is a CEL map(string, string) over a stringSource. Index and
// `in` go straight to the source; everything else materializes once.
type lazyStringMap struct {
	src  stringSource
	full traits.Mapper
}

var _ traits.Mapper = (*lazyStringMap)(nil)

func (m *lazyStringMap) materialized() traits.Mapper {
	if m.full == nil {
		m.full = types.NewStringStringMap(types.DefaultTypeAdapter, m.src.materialize())
	}
	return m.full
}

func (m *lazyStringMap) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		if types.IsUnknownOrError(key) {
			return key, false
		}
		return nil, false
	}
	v, found := m.src.lookup(string(k))
	if !found {
		return nil, false
	}
	return types.String(v), true
}

func (m *lazyStringMap) Get(key ref.Val) ref.Val {
	v, found := m.Find(key)
	if !found {
		return types.ValOrErr(v, "no such key: %v", key)
	}
	return v
}

func (m *lazyStringMap) Contains(key ref.Val) ref.Val {
	v, found := m.Find(key)
	if !found && v != nil {
		return types.MaybeNoSuchOverloadErr(v)
	}
	return types.Bool(found)
}

func (m *lazyStringMap) Iterator() traits.Iterator { return m.materialized().Iterator() }
func (m *lazyStringMap) Size() ref.Val             { return m.materialized().Size() }
func (m *lazyStringMap) Equal(other ref.Val) ref.Val {
	return m.materialized().Equal(other)
}
func (m *lazyStringMap) ConvertToNative(t reflect.Type) (any, error) {
	return m.materialized().ConvertToNative(t)
}
func (m *lazyStringMap) ConvertToType(t ref.Type) ref.Val {
	return m.materialized().ConvertToType(t)
}
func (m *lazyStringMap) Type() ref.Type { return types.MapType }
func (m *lazyStringMap) Value() any     { return m.materialized().Value() }
