package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publisher delivers events to a NATS subject (delivery.Sender). The event
// id rides as Nats-Msg-Id, so a JetStream stream that captures the subject
// stores a redelivered event once.
type Publisher struct {
	NC      *nats.Conn
	Subject string
}

// Send implements delivery.Sender.Send: publish and flush, so an error
// means the server did not take it.
func (p *Publisher) Send(ctx context.Context, id string, body []byte) error {
	m := nats.NewMsg(p.Subject)
	m.Header.Set(jetstream.MsgIDHeader, id)
	m.Data = body
	if err := p.NC.PublishMsg(m); err != nil {
		return fmt.Errorf("nats publish to %s: %w", p.Subject, err)
	}
	if _, ok := ctx.Deadline(); !ok { // the flush needs one
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if err := p.NC.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("nats publish to %s: %w", p.Subject, err)
	}
	return nil
}
