package server

import (
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/portrait-dev/portrait/policy"
)

// pathParam matches a path wildcard, {id} or the rest-of-path {name...}.
var pathParam = regexp.MustCompile(`\{([a-z]+)(?:\.\.\.)?\}`)

// pathExamples are examples of path parameters by name, taken from the
// demo catalog; the wildcard {id} names a different thing under
// different prefixes.
func pathExample(pattern, name string) (example, desc string) {
	switch {
	case name == "id" && strings.HasPrefix(pattern, "/v1/subjects/"):
		return "u-1001", "the subject's id in your system"
	case name == "id" && strings.Contains(pattern, "/decisions/"):
		return "d-01J9Z6", "a decision id, as POST /v1/decisions returned it"
	case name == "id" && strings.Contains(pattern, "/usecases/"):
		return "credit_limit", "a use-case declared in the catalog"
	case name == "id" && strings.HasPrefix(pattern, "/v1/reviews/"):
		return "r-01J9Z7", "a review id"
	case name == "id" && strings.HasPrefix(pattern, "/v1/reports/"):
		return "vr-01J9Z8", "a violation report id"
	case name == "id" && strings.HasPrefix(pattern, "/v1/suspensions/"):
		return "marketing", "the suspended purpose, field, label, model or use-case"
	}
	ex := map[string][2]string{
		"purpose": {"marketing", "a purpose declared in the catalog"},
		"usecase": {"credit_limit", "a use-case declared in the catalog"},
		"kind":    {"purpose", "purpose, field, label, model or usecase"},
		"index":   {"0", "the entry's index in the log"},
		"label":   {"sports_fan", "a label declared in the catalog"},
		"field":   {"city", "a field declared in the catalog"},
		"case":    {"c-01J9Z9", "a request (case) id"},
		"feature": {"city", "a feature flagged as a proxy"},
		"name":    {"ops/alice", "the key's name, team/person; it may hold '/'"},
	}[name]
	return ex[0], ex[1]
}

// document describes the API from the route table and the contracts
// beside it, so the document cannot drift from what the server routes,
// whom it lets in, and what its handlers read and write.
//
// A route without a contract, or a type that cannot be described, is a
// problem for the tests (TestContractRoutes) rather than for the server:
// the document is still served, with that operation untyped.
func (s *Server) document() (map[string]any, []error) {
	var problems []error
	g := newSchemaGen()
	problemResponse := map[string]any{"description": "Problem (RFC 9457): code is machine-readable, requirement names the legal rule that refused",
		"content": map[string]any{"application/problem+json": map[string]any{"schema": g.of(reflect.TypeFor[Problem](), response)}}}
	problem := map[string]any{"$ref": "#/components/responses/Problem"}
	paths := map[string]map[string]any{}
	for _, rt := range s.routes {
		c, ok := contractOf(rt.method, rt.pattern)
		if !ok {
			problems = append(problems, fmt.Errorf("openapi: %s %s has no contract in server/contract.go", rt.method, rt.pattern))
			c = contract{out: map[string]any{}}
		}
		op := map[string]any{"summary": rt.summary, "operationId": operationID(rt)}
		if slices.Equal(rt.roles, public) {
			op["security"] = []any{}
		} else {
			roles := make([]string, len(rt.roles))
			for i, ro := range rt.roles {
				roles[i] = string(ro)
			}
			op["x-roles"] = roles
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.pattern, -1) {
			ex, desc := pathExample(rt.pattern, m[1])
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true,
				"schema": map[string]any{"type": "string"}, "example": ex, "description": desc})
		}
		for _, p := range c.query {
			var ex any = p.example
			if p.typ == "integer" {
				var n int64
				fmt.Sscan(p.example, &n)
				ex = n
			}
			params = append(params, map[string]any{"name": p.name, "in": "query", "required": p.required,
				"schema": map[string]any{"type": p.typ}, "example": ex, "description": p.desc})
		}
		if params != nil {
			op["parameters"] = params
		}
		if c.in != nil {
			content := map[string]any{"application/json": map[string]any{"schema": g.of(reflect.TypeOf(c.in), request)}}
			if c.inText {
				content["application/x-ndjson"] = map[string]any{"schema": map[string]any{"type": "string", "description": "one event per line"}}
			}
			op["requestBody"] = map[string]any{"required": true, "content": content}
		}
		status := c.status
		if status == 0 {
			status = http.StatusOK
		}
		ok2xx := map[string]any{"description": http.StatusText(status)}
		switch {
		case c.media != "":
			ok2xx["content"] = map[string]any{c.media: map[string]any{"schema": map[string]any{"type": "string"}}}
		case c.out != nil:
			schema := g.of(reflect.TypeOf(c.out), response)
			if c.alt != nil {
				schema = map[string]any{"oneOf": []any{schema, g.of(reflect.TypeOf(c.alt), response)}}
			}
			ok2xx["content"] = map[string]any{"application/json": map[string]any{"schema": schema}}
		}
		responses := map[string]any{fmt.Sprint(status): ok2xx, "default": problem}
		for _, st := range c.also {
			more := map[string]any{"description": http.StatusText(st)}
			if ct, ok := ok2xx["content"]; ok {
				more["content"] = ct
			}
			responses[fmt.Sprint(st)] = more
		}
		// The problems every client meets, named so a generated client
		// decodes them by status.
		refusals := []int{}
		if c.in != nil || len(c.query) > 0 || len(params) > 0 {
			refusals = append(refusals, http.StatusBadRequest)
		}
		if !slices.Equal(rt.roles, public) {
			refusals = append(refusals, http.StatusUnauthorized, http.StatusForbidden)
		}
		for _, st := range refusals {
			if _, taken := responses[fmt.Sprint(st)]; !taken {
				responses[fmt.Sprint(st)] = problem
			}
		}
		op["responses"] = responses
		// OpenAPI names a wildcard {name} whether or not it spans segments.
		path := pathParam.ReplaceAllString(rt.pattern, "{$1}")
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(rt.method)] = op
	}
	if g.err != nil {
		problems = append(problems, g.err)
	}
	return map[string]any{
		// 3.0: what code generators (oapi-codegen, kin-openapi) read in
		// full; 3.1's type arrays and $ref siblings are not used.
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       "Portrait API",
			"version":     "1",
			"description": "User profiling with the law built in. Staff authenticate with API keys bound to roles; subjects with subject tokens. Errors are RFC 9457 problem+json with a machine code and, when a legal rule refused, the requirement id.",
		},
		// Relative: paths resolve against wherever this document was
		// fetched, which behind a proxy is the only address known right.
		"servers":  []any{map[string]any{"url": "/", "description": "this server"}},
		"paths":    paths,
		"security": []any{map[string]any{"bearer": []any{}}},
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
			"schemas":         g.defs,
			"responses":       map[string]any{"Problem": problemResponse},
		},
	}, problems
}

// openapi serves the document.
func (s *Server) openapi(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	doc, _ := s.document()
	return writeJSON(w, 200, doc)
}

func operationID(rt route) string {
	p := pathParam.ReplaceAllString(rt.pattern, "by_$1")
	p = strings.NewReplacer("/", "_", ".", "_", "-", "_").Replace(strings.Trim(p, "/"))
	return strings.ToLower(rt.method) + "_" + p
}
