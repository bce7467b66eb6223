package client

// The document is the one the server serves (TestOpenAPIFile writes and
// then checks it); the client is generated from it with a pinned
// oapi-codegen, run with go run so that neither it nor its dependencies
// enter go.mod (TestGenerated checks the generated file is current).
//go:generate go test ../server -count=1 -run ^TestOpenAPIFile$ -update-openapi
//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config oapi-codegen.yaml -o client.gen.go openapi.json
