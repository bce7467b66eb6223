package server

import (
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/portrait-dev/portrait/policy"
)

// pathParam matches a path wildcard, {id} or the rest-of-path {name...}.
var pathParam = regexp.MustCompile(`\{([a-z]+)(?:\.\.\.)?\}`)

// bodySchemas type the request bodies the document describes in full.
var bodySchemas = map[string]map[string]any{
	"POST /v1/keys": {
		"type": "object", "required": []string{"role", "name"}, "additionalProperties": false,
		"properties": map[string]any{
			"role": map[string]any{"type": "string", "enum": []string{"admin", "operator", "reviewer", "auditor"}},
			"name": map[string]any{"type": "string", "pattern": `^[a-z0-9][a-z0-9._-]{0,62}/[a-z0-9][a-z0-9._-]{0,62}$`,
				"description": "team/person: separation of duties compares the team with catalog owners and the person with appellants (RO-7)"},
			"expires_in": map[string]any{"type": "string", "default": "90d",
				"description": "lifetime: \"720h\", \"90d\" or \"1y\"; default 90 days, at most 365 days"},
		},
	},
}

// openapi describes the API from the route table itself, so the document
// cannot drift from what the server routes and whom it lets in.
func (s *Server) openapi(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	paths := map[string]map[string]any{}
	for _, rt := range s.routes {
		op := map[string]any{
			"summary":     rt.summary,
			"operationId": operationID(rt),
			"responses": map[string]any{
				"200":     map[string]any{"description": "OK"},
				"default": map[string]any{"description": "Problem", "content": map[string]any{"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}},
			},
		}
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
			p := map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}}
			if strings.HasSuffix(m[0], "...}") {
				p["description"] = "the rest of the path; it may hold '/' (team/person)"
			}
			params = append(params, p)
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.method == "POST" || rt.method == "PUT" {
			schema := bodySchemas[rt.method+" "+rt.pattern]
			if schema == nil {
				schema = map[string]any{}
			}
			op["requestBody"] = map[string]any{"content": map[string]any{"application/json": map[string]any{"schema": schema}}}
		}
		// OpenAPI names a wildcard {name} whether or not it spans segments.
		path := pathParam.ReplaceAllString(rt.pattern, "{$1}")
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(rt.method)] = op
	}
	doc := map[string]any{
		"openapi": "3.1.0",
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
			"schemas": map[string]any{"Problem": map[string]any{
				"type":     "object",
				"required": []string{"type", "title", "status", "detail", "code"},
				"properties": map[string]any{
					"type": map[string]any{"type": "string"}, "title": map[string]any{"type": "string"},
					"status": map[string]any{"type": "integer"}, "detail": map[string]any{"type": "string"},
					"code": map[string]any{"type": "string"}, "requirement": map[string]any{"type": "string"},
				},
			}},
		},
	}
	return writeJSON(w, 200, doc)
}

func operationID(rt route) string {
	p := pathParam.ReplaceAllString(rt.pattern, "by_$1")
	p = strings.NewReplacer("/", "_", ".", "_").Replace(strings.Trim(p, "/"))
	return strings.ToLower(rt.method) + "_" + p
}
