package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/policy"
)

// Defaults of an Intake.
const (
	DefaultConsumer = "portrait-intake"
	DefaultBatch    = 256
)

// Intake consumes events from a JetStream stream.
type Intake struct {
	NC       *nats.Conn
	Stream   string // the stream's name
	Consumer string // durable consumer shared by every node (DefaultConsumer)
	// Results is the subject results are published on
	// (ResultsSubject(Stream) by default).
	Results  string
	Ingester *ingest.Ingester
	Logger   *slog.Logger
	Batch    int           // messages per fetch (DefaultBatch)
	AckWait  time.Duration // before an unacknowledged message is redelivered (30s)

	// afterIngest, in tests, runs between storing a batch and
	// acknowledging it; an error leaves the batch unacknowledged, as a
	// crash would.
	afterIngest func() error
}

// ResultsSubject is where an Intake on stream publishes results by default.
func ResultsSubject(stream string) string { return "portrait.results." + stream }

// Result is what the intake publishes for each message: the message's
// stream sequence and subject, its Nats-Msg-Id if it had one, and a result
// per event it held, as POST /v1/events answers.
type Result struct {
	Stream   string          `json:"stream"`
	Sequence uint64          `json:"stream_seq"`
	Subject  string          `json:"subject"`
	MsgID    string          `json:"msg_id,omitempty"`
	Results  []ingest.Result `json:"results"`
	Problem  *ingest.Problem `json:"problem,omitempty"` // the message could not be read at all
}

// Run consumes until ctx ends. It creates or updates the durable consumer
// (the same configuration from every node) but never the stream, which
// the operator declares.
func (in *Intake) Run(ctx context.Context) error {
	if in.Consumer == "" {
		in.Consumer = DefaultConsumer
	}
	if in.Results == "" {
		in.Results = ResultsSubject(in.Stream)
	}
	if in.Batch <= 0 {
		in.Batch = DefaultBatch
	}
	if in.AckWait <= 0 {
		in.AckWait = 30 * time.Second
	}
	if in.Logger == nil {
		in.Logger = slog.Default()
	}
	js, err := jetstream.New(in.NC)
	if err != nil {
		return fmt.Errorf("nats intake: %w", err)
	}
	s, err := js.Stream(ctx, in.Stream)
	if err != nil {
		return fmt.Errorf("nats intake: stream %q: %w (declare it first, e.g. nats stream add %s --subjects 'events.>')", in.Stream, err, in.Stream)
	}
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: in.Consumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: in.AckWait,
		MaxAckPending: 4 * in.Batch, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("nats intake: consumer %q on %q: %w", in.Consumer, in.Stream, err)
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(in.Batch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			in.Logger.Warn("nats intake: fetch", "stream", in.Stream, "err", err)
			sleep(ctx, time.Second)
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			continue
		}
		if err := in.process(ctx, msgs); err != nil {
			in.Logger.Error("nats intake: batch not stored; it will be redelivered", "stream", in.Stream, "messages", len(msgs), "err", err)
			for _, m := range msgs {
				m.NakWithDelay(time.Second)
			}
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// process ingests the events of msgs in one call, publishes the results
// and acknowledges the messages; an error leaves them unacknowledged.
func (in *Intake) process(ctx context.Context, msgs []jetstream.Msg) error {
	out := make([]Result, len(msgs))
	var items []ingest.Item
	var owner []int // message of each item
	for i, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("message metadata: %w", err)
		}
		out[i] = Result{Stream: in.Stream, Sequence: md.Sequence.Stream, Subject: m.Subject(), MsgID: m.Headers().Get(jetstream.MsgIDHeader)}
		data := bytes.TrimSpace(m.Data())
		got, err := ingest.Decode(bytes.NewReader(data), len(data) == 0 || data[0] != '[')
		if err != nil {
			out[i].Problem = &ingest.Problem{Code: "invalid", Reason: err.Error()}
			continue
		}
		for j := range got {
			// The stream sequence is the event's identity when its
			// producer gave none: a redelivery is then a duplicate.
			if got[j].Err == nil && got[j].Event.IdempotencyKey == "" {
				got[j].Event.IdempotencyKey = "nats:" + in.Stream + ":" + strconv.FormatUint(md.Sequence.Stream, 10) + ":" + strconv.Itoa(j)
			}
			owner = append(owner, i)
		}
		items = append(items, got...)
	}
	if len(items) > 0 {
		caller := policy.Caller{Role: policy.System, ID: "nats:" + in.Stream}
		results, _, err := in.Ingester.Ingest(ctx, caller, items)
		if err != nil {
			return err
		}
		for k, r := range results {
			i := owner[k]
			r.Index = len(out[i].Results)
			out[i].Results = append(out[i].Results, r)
		}
	}
	if in.afterIngest != nil {
		if err := in.afterIngest(); err != nil {
			return err
		}
	}
	for i, m := range msgs {
		b, err := json.Marshal(out[i])
		if err != nil {
			return err
		}
		if err := in.NC.Publish(in.Results, b); err != nil {
			return fmt.Errorf("publish results: %w", err)
		}
		if err := m.Ack(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			in.Logger.Warn("nats intake: ack", "seq", out[i].Sequence, "err", err)
		}
	}
	return in.NC.Flush()
}
