// Package authz decides whether a verified caller may use a route: required
// OAuth scopes (route-wide and per HTTP method, all-of / any-of) and an
// optional CEL policy over the caller's claims and the request.
//
// Everything is compiled and type-checked once, at config load (Compile);
// the per-request Check allocates nothing when only scopes are configured,
// and builds request values lazily, only for the parts of the request a
// policy actually reads.
package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/internal/authn"
	"github.com/sekisho/sekisho/internal/telemetry"
)

// Decision reasons. Each is a metric label value; keep the list closed.
const (
	ReasonScope       = "scope"        // a required scope was not granted
	ReasonPolicy      = "policy"       // the CEL policy evaluated to false
	ReasonPolicyError = "policy_error" // the CEL policy failed at runtime (fail closed)
)

// Options configures authorization for one route.
type Options struct {
	// Scopes must be satisfied on every request to the route.
	Scopes ScopeRule
	// MethodScopes adds a rule per HTTP method (upper-case, e.g. "POST").
	// A method rule does not replace Scopes: both the route-wide rule and the
	// rule for the request's method must pass. Methods without an entry only
	// need Scopes.
	MethodScopes map[string]ScopeRule
	// Policy is an optional CEL expression that must evaluate to a bool.
	// Variables:
	//   claims           map(string, dyn)    verified token claims
	//   request.method   string
	//   request.path     string              normalized path, as routed
	//   request.headers  map(string, string) lower-case names, first value
	//   params           map(string, string) path parameters
	// Reading a missing key (e.g. claims.tenant when absent) is a runtime
	// error and denies; use has(claims.tenant) or 'x' in request.headers to
	// test presence.
	Policy string
	// Params, when not nil, are the route's path parameter names. A policy
	// that reads any other parameter by a constant name is refused (see
	// checkParamRefs). Nil skips the check.
	Params []string
	// CostLimit bounds the runtime cost of one policy evaluation (CEL cost
	// units, roughly one per operation). 0 means DefaultCostLimit.
	CostLimit uint64
	// Registerer receives sekisho_authz_denials_total{reason}. Nil: no metrics.
	Registerer prometheus.Registerer
}

// DefaultCostLimit is generous for real policies (the benchmark policy costs
// under 10) while stopping pathological comprehensions.
const DefaultCostLimit = 10_000

// maxPolicyLen bounds the policy source; policies are configuration, but a
// parser should never be unbounded.
const maxPolicyLen = 16 << 10

// interruptCheckFrequency is how many comprehension iterations run between
// checks of the request context, so a cancelled request stops evaluating.
const interruptCheckFrequency = 100

// Policy is a compiled, immutable authorization rule set, safe for
// concurrent use.
type Policy struct {
	scopes       ScopeRule
	methodScopes map[string]ScopeRule
	program      cel.Program // nil when no policy expression is configured
	denials      *prometheus.CounterVec
}

// OptionError is a Compile error in one option. Field names it as the
// configuration does: "scopes", "methods", "methods.POST" or "policy".
type OptionError struct {
	Field string
	Err   error
}

func (e *OptionError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

// Compile validates o, compiles and type-checks the CEL policy, and returns
// the runtime Policy. Errors name the problem and, for the policy, its
// line:column, e.g. `policy: 1:1: undeclared reference to 'clams'`.
func Compile(o Options) (*Policy, error) {
	if err := o.Scopes.validate(); err != nil {
		return nil, &OptionError{Field: "scopes", Err: err}
	}
	p := &Policy{scopes: o.Scopes}
	if len(o.MethodScopes) > 0 {
		p.methodScopes = make(map[string]ScopeRule, len(o.MethodScopes))
		for m, rule := range o.MethodScopes {
			if !isMethodToken(m) {
				return nil, &OptionError{Field: "methods", Err: fmt.Errorf("%q is not an upper-case HTTP method token", m)}
			}
			if err := rule.validate(); err != nil {
				return nil, &OptionError{Field: "methods." + m, Err: err}
			}
			if !rule.empty() {
				p.methodScopes[m] = rule
			}
		}
	}
	if strings.TrimSpace(o.Policy) != "" {
		limit := o.CostLimit
		if limit == 0 {
			limit = DefaultCostLimit
		}
		prg, err := compilePolicy(o.Policy, limit, o.Params)
		if err != nil {
			return nil, &OptionError{Field: "policy", Err: err}
		}
		p.program = prg
	}
	if o.Registerer != nil {
		c, err := telemetry.RegisterOrReuse(o.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_authz_denials_total",
			Help: "Requests refused by route authorization, by reason.",
		}, []string{"reason"}))
		if err != nil {
			return nil, err
		}
		p.denials = c
	}
	return p, nil
}

func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)),
		// Qualified names: the checker types each field precisely and the
		// runtime resolves each one separately, which is what lets the
		// activation skip building headers when only the method is read.
		cel.Variable("request.method", cel.StringType),
		cel.Variable("request.path", cel.StringType),
		cel.Variable("request.headers", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("params", cel.MapType(cel.StringType, cel.StringType)),
		cel.ParserRecursionLimit(64),
		cel.ParserExpressionSizeLimit(maxPolicyLen),
		// Catch bad regex, duration and timestamp literals at load time.
		cel.ExtendedValidations(),
	)
}

func compilePolicy(src string, costLimit uint64, params []string) (cel.Program, error) {
	if len(src) > maxPolicyLen {
		return nil, fmt.Errorf("longer than %d bytes", maxPolicyLen)
	}
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, errors.New(formatIssues(iss.Errors()))
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("must evaluate to bool, not %s (compare explicitly, e.g. `claims.admin == true`)",
			ast.OutputType())
	}
	if params != nil {
		if err := checkParamRefs(ast.NativeRep(), params); err != nil {
			return nil, err
		}
	}
	prg, err := env.Program(ast,
		cel.EvalOptions(cel.OptOptimize),
		cel.CostLimit(costLimit),
		cel.InterruptCheckFrequency(interruptCheckFrequency),
	)
	if err != nil {
		return nil, fmt.Errorf("program: %w", err)
	}
	return prg, nil
}

// formatIssues renders CEL errors as "line:column: message" (1-based
// column), joined by "; ", without the source snippet.
func formatIssues(errs []*cel.Error) string {
	var b strings.Builder
	for i, e := range errs {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d:%d: %s", e.Location.Line(), e.Location.Column()+1, e.Message)
	}
	return b.String()
}

// Params gives a policy read access to path parameters without the gateway
// having to build a map per request.
type Params interface {
	// Get returns the parameter's value and whether it exists.
	Get(name string) (string, bool)
	// Range calls fn for each parameter until fn returns false.
	Range(fn func(name, value string) bool)
}

// ParamMap is a Params backed by a map.
type ParamMap map[string]string

// Get implements Params.
func (m ParamMap) Get(name string) (string, bool) { v, ok := m[name]; return v, ok }

// Range implements Params.
func (m ParamMap) Range(fn func(name, value string) bool) {
	for k, v := range m {
		if !fn(k, v) {
			return
		}
	}
}

// RequestView is what a policy may see of the request. The gateway passes
// what it already has; nothing is copied unless the policy reads it.
type RequestView struct {
	// Context, when set, cancels a running evaluation (checked every
	// interruptCheckFrequency comprehension iterations).
	Context context.Context
	Method  string
	Path    string      // normalized path, the same one used for routing
	Header  http.Header // request headers; the policy sees lower-case names
	Params  Params      // path parameters; nil means none
}

// Decision is the result of Check.
type Decision struct {
	Allowed bool
	// Reason is one of ReasonScope, ReasonPolicy, ReasonPolicyError when
	// Allowed is false.
	Reason string
	// MissingScopes is a space-separated list for the WWW-Authenticate
	// scope attribute when Reason is ReasonScope.
	MissingScopes string
	// Err is the runtime cause for ReasonPolicyError, for logs only. It may
	// mention claim names from the policy, never token content.
	Err error
}

// ErrNilPolicy is returned (in Decision.Err) when Check is called on a nil
// *Policy: a route without compiled authorization is denied, not allowed.
var ErrNilPolicy = errors.New("authz: nil policy")

// Check decides whether id may make req. id may be nil (public route): scope
// rules then fail and the policy sees an empty claims map. A nil *Policy
// denies (fail closed). Runtime policy errors deny with ReasonPolicyError.
func (p *Policy) Check(id *authn.Identity, req RequestView) Decision {
	if p == nil {
		return Decision{Reason: ReasonPolicyError, Err: ErrNilPolicy}
	}
	methodRule, hasMethodRule := p.methodScopes[req.Method]
	if !p.scopes.satisfied(id) || (hasMethodRule && !methodRule.satisfied(id)) {
		missing := p.scopes.missing(nil, id)
		if hasMethodRule {
			missing = methodRule.missing(missing, id)
		}
		return p.deny(Decision{Reason: ReasonScope, MissingScopes: strings.Join(missing, " ")})
	}
	if p.program == nil {
		return Decision{Allowed: true}
	}
	out, err := p.eval(id, req)
	if err != nil {
		return p.deny(Decision{Reason: ReasonPolicyError, Err: err})
	}
	b, ok := out.(types.Bool)
	if !ok {
		// Type-checking guarantees bool; anything else is a bug. Deny.
		return p.deny(Decision{Reason: ReasonPolicyError, Err: fmt.Errorf("policy evaluation: result is %s, not bool", out.Type().TypeName())})
	}
	if !b {
		return p.deny(Decision{Reason: ReasonPolicy})
	}
	return Decision{Allowed: true}
}

// eval runs the CEL program. It is a separate function so that the
// activation (which holds a copy of req) is only allocated when a policy is
// configured.
func (p *Policy) eval(id *authn.Identity, req RequestView) (ref.Val, error) {
	act := &activation{id: id, req: req}
	var out ref.Val
	var err error
	if req.Context == nil || req.Context.Done() == nil {
		// Nothing can cancel: skip the interrupt machinery (a context
		// allocation per call); CostLimit still bounds the work.
		out, _, err = p.program.Eval(act)
	} else {
		out, _, err = p.program.ContextEval(req.Context, act)
	}
	if err != nil {
		return nil, fmt.Errorf("policy evaluation: %w", err)
	}
	return out, nil
}

func (p *Policy) deny(d Decision) Decision {
	if p.denials != nil {
		p.denials.WithLabelValues(d.Reason).Inc()
	}
	return d
}

// HasPolicy reports whether a CEL expression is configured.
func (p *Policy) HasPolicy() bool { return p != nil && p.program != nil }

func isMethodToken(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !(c >= 'A' && c <= 'Z') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}
