package authz

import (
	"fmt"
	"slices"
	"strings"

	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
)

// checkParamRefs refuses a policy that reads a path parameter the route does
// not have: params.x, params["x"], has(params.x) and "x" in params, with x a
// constant. Such a read can never find a value, so the policy would deny
// every request (or, negated, allow every one): almost always a typo, and
// found at load time instead of in production. Reads with a computed name
// are left alone, and so are comprehensions that rebind the name params.
func checkParamRefs(a *celast.AST, params []string) error {
	var first error
	var walk func(e celast.Expr)
	report := func(e celast.Expr, name string) {
		if first != nil || slices.Contains(params, name) {
			return
		}
		have := "it has none"
		if len(params) > 0 {
			have = "it has: " + strings.Join(params, ", ")
		}
		loc := a.SourceInfo().GetStartLocation(e.ID())
		first = fmt.Errorf("%d:%d: the route's path has no parameter %q (%s)", loc.Line(), loc.Column()+1, name, have)
	}
	isParams := func(e celast.Expr) bool { return e.Kind() == celast.IdentKind && e.AsIdent() == "params" }
	constString := func(e celast.Expr) (string, bool) {
		if e.Kind() != celast.LiteralKind {
			return "", false
		}
		s, ok := e.AsLiteral().(types.String)
		return string(s), ok
	}
	walk = func(e celast.Expr) {
		switch e.Kind() {
		case celast.SelectKind:
			s := e.AsSelect()
			if isParams(s.Operand()) {
				report(s.Operand(), s.FieldName()) // position of "params"
			}
			walk(s.Operand())
		case celast.CallKind:
			c := e.AsCall()
			args := c.Args()
			if len(args) == 2 {
				switch c.FunctionName() {
				case operators.Index, operators.OptIndex:
					if name, ok := constString(args[1]); ok && isParams(args[0]) {
						report(e, name)
					}
				case operators.In:
					if name, ok := constString(args[0]); ok && isParams(args[1]) {
						report(e, name)
					}
				}
			}
			if c.IsMemberFunction() {
				walk(c.Target())
			}
			for _, arg := range args {
				walk(arg)
			}
		case celast.ListKind:
			for _, el := range e.AsList().Elements() {
				walk(el)
			}
		case celast.MapKind:
			for _, en := range e.AsMap().Entries() {
				me := en.AsMapEntry()
				walk(me.Key())
				walk(me.Value())
			}
		case celast.StructKind:
			for _, f := range e.AsStruct().Fields() {
				walk(f.AsStructField().Value())
			}
		case celast.ComprehensionKind:
			c := e.AsComprehension()
			walk(c.IterRange())
			walk(c.AccuInit())
			if c.IterVar() == "params" || c.AccuVar() == "params" || (c.HasIterVar2() && c.IterVar2() == "params") {
				return // params is rebound inside
			}
			walk(c.LoopCondition())
			walk(c.LoopStep())
			walk(c.Result())
		}
	}
	walk(a.Expr())
	return first
}
