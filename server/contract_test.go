package server_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/portrait-dev/portrait/server"
)

// TestMain holds the handlers to the document over every test of the
// package: a body a handler decodes or encodes that disagrees with its
// route's contract fails the run (export_test.go observes them).
func TestMain(m *testing.M) {
	code := m.Run()
	errs, unseenIn, unseenOut, _ := server.ContractErrors()
	if len(errs) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: handlers and /openapi.json disagree:\n\t%s\n", strings.Join(errs, "\n\t"))
		code = 1
	}
	if testing.Verbose() && (len(unseenIn) > 0 || len(unseenOut) > 0) {
		fmt.Fprintf(os.Stderr, "contract: request bodies never decoded by a test: %v\ncontract: responses never encoded by a test: %v\n", unseenIn, unseenOut)
	}
	os.Exit(code)
}

var updateOpenAPI = flag.Bool("update-openapi", false, "write ../client/openapi.json from the served document")

// TestOpenAPIFile keeps client/openapi.json, from which the Go client is
// generated, byte for byte the document the server serves: the client
// cannot drift from the server without this test failing.
func TestOpenAPIFile(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	resp, err := http.Get(h.url + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	const file = "../client/openapi.json"
	if *updateOpenAPI {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not the document the server serves; run go generate ./client", file)
	}
}

// TestContractRoutes: every route has a contract (else /openapi.json
// fails) and every contract a route, so a removed route leaves nothing
// behind in the document's source.
func TestContractRoutes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	routed := map[string]bool{}
	for _, rt := range h.server.Routes() {
		routed[rt.Method+" "+rt.Pattern] = true
		if _, ok := server.ContractQuery(rt.Method, rt.Pattern); !ok {
			t.Errorf("%s %s: no contract in server/contract.go", rt.Method, rt.Pattern)
		}
	}
	for _, err := range h.server.DocumentProblems() {
		t.Error(err)
	}
	for _, k := range server.ContractKeys() {
		if !routed[k] {
			t.Errorf("contract %s: no such route", k)
		}
	}
}

// TestContractQueryParams reads the handlers' source: the query
// parameters each one reads (r.URL.Query().Get("x"), q.Get("x"), and the
// helpers lang and wantsHTML) are exactly those its route declares.
func TestContractQueryParams(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	reads := handlerQueryReads(t)
	for route, fn := range h.server.RouteHandlers() {
		method, pattern, _ := strings.Cut(route, " ")
		declared, _ := server.ContractQuery(method, pattern)
		got := reads[fn]
		slices.Sort(declared)
		if !slices.Equal(got, declared) {
			t.Errorf("%s (%s): reads query %v, the document declares %v", route, fn, got, declared)
		}
	}
}

// handlerQueryReads maps each function of package server to the sorted
// query parameters it reads, directly or through lang and wantsHTML.
func handlerQueryReads(t *testing.T) map[string][]string {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	helpers := map[string]string{"lang": "lang", "wantsHTML": "format"}
	out := map[string][]string{}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			seen := map[string]bool{}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				if id, ok := call.Fun.(*ast.Ident); ok && helpers[id.Name] != "" {
					seen[helpers[id.Name]] = true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "Get" || len(call.Args) != 1 {
					return true
				}
				lit, ok := call.Args[0].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				src := types.ExprString(sel.X)
				if src == "q" || strings.HasSuffix(src, "URL.Query()") {
					name, _ := strconv.Unquote(lit.Value)
					seen[name] = true
				}
				return true
			})
			var names []string
			for n := range seen {
				names = append(names, n)
			}
			slices.Sort(names)
			out[fd.Name.Name] = names
		}
	}
	return out
}
