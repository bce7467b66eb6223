package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/portrait-dev/portrait/stream"
)

// intake starts the NATS JetStream intake of serve --nats --nats-stream
// beside the HTTP server. If the intake stops on an error (the stream is
// missing, say), the returned context ends and serve exits with it.
func intake(ctx context.Context, a *app, url, name string) (context.Context, func(), error) {
	nc, err := nats.Connect(url, nats.Name("portrait"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS: %w", err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	in := &stream.Intake{NC: nc, Stream: name, Ingester: a.ingest, Logger: a.logger}
	go func() {
		if err := in.Run(ctx); err != nil {
			a.logger.Error("nats intake stopped", "err", err)
			cancel(err)
		}
	}()
	return ctx, func() {
		cancel(errors.New("serve stopped"))
		nc.Drain()
	}, nil
}
