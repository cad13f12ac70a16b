package config

import (
	"gopkg.in/yaml.v3"
)

// Auth is a route's authentication requirement. In YAML it is either the
// scalar `public` or a mapping with exactly one kind (jwt, apikey,
// introspection) or `any_of` listing several. There is no default: a route
// without auth is a config error.
type Auth struct {
	Public        bool               `yaml:"-"`
	JWT           *JWTAuth           `yaml:"jwt"`
	APIKey        *APIKeyAuth        `yaml:"apikey"`
	Introspection *IntrospectionAuth `yaml:"introspection"`
	AnyOf         []*Auth            `yaml:"any_of"`
	// Invalid holds an unrecognised scalar (e.g. `publik`) for validation
	// to report with its field path.
	Invalid string `yaml:"-"`
}

// JWTAuth accepts bearer JWTs from the named issuers.
type JWTAuth struct {
	Issuers         []string `yaml:"issuers"`
	AllowQueryToken bool     `yaml:"allow_query_token"` // RFC 6750 §2.3; default false
}

// APIKeyAuth accepts Sekisho API keys.
type APIKeyAuth struct {
	Header string `yaml:"header"` // default X-API-Key
}

// IntrospectionAuth accepts opaque tokens checked at a named endpoint.
type IntrospectionAuth struct {
	Endpoint string `yaml:"endpoint"` // name under top-level introspection
}

// authShape is Auth without its YAML method, for decoding the mapping form.
type authShape Auth

// UnmarshalYAML accepts `public` or the mapping form.
func (a *Auth) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Value != "public" {
			*a = Auth{Invalid: n.Value}
			return nil
		}
		*a = Auth{Public: true}
		return nil
	}
	var s authShape
	if err := n.Decode(&s); err != nil {
		return err
	}
	*a = Auth(s)
	return nil
}

// Kinds names the kinds set in a, for messages.
func (a *Auth) Kinds() []string {
	var k []string
	if a.Public {
		k = append(k, "public")
	}
	if a.JWT != nil {
		k = append(k, "jwt")
	}
	if a.APIKey != nil {
		k = append(k, "apikey")
	}
	if a.Introspection != nil {
		k = append(k, "introspection")
	}
	if a.AnyOf != nil {
		k = append(k, "any_of")
	}
	return k
}
