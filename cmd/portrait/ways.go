package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/delivery"
	"github.com/portrait-dev/portrait/stream"
)

// destinations connects to NATS (when url is set) and builds the
// destinations of subject-rights events: a Standard Webhooks endpoint whose
// secret comes from the environment, never a flag, and a NATS subject.
func destinations(url, webhook, subject string) (*nats.Conn, []delivery.Destination, error) {
	var dests []delivery.Destination
	if webhook != "" {
		secret := os.Getenv("PORTRAIT_WEBHOOK_SECRET")
		if _, err := delivery.Sign(secret, "check", time.Time{}, nil); err != nil {
			return nil, nil, fmt.Errorf("--webhook needs PORTRAIT_WEBHOOK_SECRET: %w", err)
		}
		dests = append(dests, delivery.Destination{Name: "webhook", Sender: &delivery.Webhook{URL: webhook, Secret: secret}})
	}
	if url == "" {
		return nil, dests, nil
	}
	nc, err := nats.Connect(url, nats.Name("portrait"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS: %w", err)
	}
	if subject != "" {
		dests = append(dests, delivery.Destination{Name: "nats:" + subject, Sender: &stream.Publisher{NC: nc, Subject: subject}})
	}
	return nc, dests, nil
}

// intake starts the NATS JetStream intake of serve --nats-stream beside the
// HTTP server. If the intake stops on an error (the stream is missing,
// say), the returned context ends with that cause and serve exits with it.
func intake(ctx context.Context, a *app, nc *nats.Conn, name string) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	in := &stream.Intake{NC: nc, Stream: name, Ingester: a.ingest, Logger: a.logger}
	go func() {
		if err := in.Run(ctx); err != nil {
			a.logger.Error("nats intake stopped", "err", err)
			cancel(err)
		}
	}()
	return ctx, cancel
}

// loadAudiences reads serve --audiences: a JSON array of audiences, each
// a name and an audience request. Each request is checked against the
// catalog when first materialised; here the file's shape is.
func loadAudiences(path string) ([]delivery.Audience, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--audiences: %w", err)
	}
	var aus []delivery.Audience
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&aus); err != nil {
		return nil, fmt.Errorf("--audiences %s: %w (want [{\"name\": …, \"request\": {\"purpose\": …, \"expression\": …, \"output\": \"pseudonymous\"}}])", path, err)
	}
	seen := map[string]bool{}
	for i, au := range aus {
		if au.Name == "" || seen[au.Name] || au.Request.Purpose == "" || au.Request.Expression == "" {
			return nil, fmt.Errorf("--audiences %s: audience %d: want a unique name, a purpose and an expression", path, i+1)
		}
		if au.Request.Output == "" || au.Request.Output == apply.Aggregate {
			// Counts carry no members: membership changes need pseudonyms.
			aus[i].Request.Output = apply.Pseudonymous
		}
		seen[au.Name] = true
	}
	return aus, nil
}
