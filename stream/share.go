package stream

import (
	"context"
	"errors"
	"fmt"
	portrait "github.com/portrait-dev/portrait"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Owner tells which subject buckets this node may work on (package
// cluster): Hold succeeds only for a bucket no other node holds, and keeps
// it until release.
type Owner interface {
	Held() []int
	Hold(bucket int) (release func(), ok bool)
}

// DefaultWorkStream is the JetStream stream a Share keeps its work in.
const DefaultWorkStream = "PORTRAIT_DERIVE"

// Share hands the derivation of stored subjects to the node that owns
// each subject's bucket. Add, ingest's OnStored on every node, publishes
// the pseudonyms to the work stream under their bucket
// (portrait.derive.<bucket>); Run, on every node, consumes the buckets
// the node holds, each through its own durable consumer, and derives
// inside Owner.Hold. A message is acknowledged once derived; one in hand
// when its node dies is redelivered after AckWait to the bucket's next
// owner, so hand-over loses nothing and no bucket is derived by two
// nodes at once.
type Share struct {
	NC      *nats.Conn
	Stream  string // DefaultWorkStream
	Owner   Owner
	Bucket  func(pseudonym portrait.Pseudonym) int
	Derive  func(ctx context.Context, pseudonyms []portrait.Pseudonym) error
	Logger  *slog.Logger
	AckWait time.Duration // 10 s

	once    sync.Once
	mu      sync.Mutex // guards js, set once Run has the work stream
	js      jetstream.JetStream
	workers map[int]context.CancelFunc
}

func (s *Share) init() {
	s.once.Do(func() {
		if s.Stream == "" {
			s.Stream = DefaultWorkStream
		}
		if s.Logger == nil {
			s.Logger = slog.Default()
		}
		if s.AckWait <= 0 {
			s.AckWait = 10 * time.Second
		}
		s.workers = map[int]context.CancelFunc{}
	})
}

func workSubject(bucket int) string { return "portrait.derive." + strconv.Itoa(bucket) }

// encodeWork is a work message: the pseudonyms one a line.
func encodeWork(ps []portrait.Pseudonym) []byte {
	var b []byte
	for i, p := range ps {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, p...)
	}
	return b
}

// decodeWork reads a work message (encodeWork).
func decodeWork(b []byte) []portrait.Pseudonym {
	lines := strings.Split(string(b), "\n")
	out := make([]portrait.Pseudonym, len(lines))
	for i, l := range lines {
		out[i] = portrait.Pseudonym(l)
	}
	return out
}

// Add publishes pseudonyms to their buckets' work; it is an
// ingest.Options.OnStored function. A bucket whose work cannot be
// published is derived here if this node holds it, and otherwise logged:
// its labels then wait for the next batch derivation.
func (s *Share) Add(ctx context.Context, pseudonyms []portrait.Pseudonym) {
	s.init()
	by := map[int][]portrait.Pseudonym{}
	for _, p := range pseudonyms {
		b := s.Bucket(p)
		by[b] = append(by[b], p)
	}
	for b, ps := range by {
		s.mu.Lock()
		js := s.js
		s.mu.Unlock()
		err := errors.New("work stream not ready")
		if js != nil {
			_, err = js.Publish(ctx, workSubject(b), encodeWork(ps))
		}
		if err == nil {
			continue
		}
		if release, ok := s.Owner.Hold(b); ok {
			if derr := s.Derive(ctx, ps); derr != nil {
				s.Logger.Error("share: derive", "bucket", b, "err", derr)
			}
			release()
			continue
		}
		s.Logger.Error("share: work not published; labels wait for the next batch", "bucket", b, "subjects", len(ps), "err", err)
	}
}

// Open creates the work stream if needed; Add publishes once it is open.
func (s *Share) Open(ctx context.Context) error {
	s.init()
	js, err := jetstream.New(s.NC)
	if err != nil {
		return fmt.Errorf("share: %w", err)
	}
	// Work-queue retention: a message goes once it is acknowledged, and
	// each bucket's consumer filters its own subject.
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: s.Stream, Subjects: []string{"portrait.derive.>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("share: work stream %s: %w", s.Stream, err)
	}
	s.mu.Lock()
	s.js = js
	s.mu.Unlock()
	return nil
}

// Run opens the work stream and, until ctx ends, keeps one consumer
// running for each bucket the node holds.
func (s *Share) Run(ctx context.Context) error {
	if err := s.Open(ctx); err != nil {
		return err
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		held := map[int]bool{}
		for _, b := range s.Owner.Held() {
			held[b] = true
			if s.workers[b] == nil {
				wctx, cancel := context.WithCancel(ctx)
				s.workers[b] = cancel
				go s.work(wctx, b)
			}
		}
		for b, cancel := range s.workers {
			if !held[b] {
				cancel()
				delete(s.workers, b)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// work consumes bucket b's work while ctx lasts and the node holds b.
func (s *Share) work(ctx context.Context, b int) {
	s.mu.Lock()
	js := s.js
	s.mu.Unlock()
	cons, err := js.CreateOrUpdateConsumer(ctx, s.Stream, jetstream.ConsumerConfig{
		Durable: "derive-" + strconv.Itoa(b), FilterSubject: workSubject(b),
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: s.AckWait, MaxAckPending: 64,
	})
	if err != nil {
		if ctx.Err() == nil {
			s.Logger.Warn("share: consumer", "bucket", b, "err", err)
		}
		return
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(16, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		for m := range batch.Messages() {
			release, ok := s.Owner.Hold(b)
			if !ok {
				// The bucket moved: its next owner gets the message.
				m.Nak()
				continue
			}
			err := s.Derive(ctx, decodeWork(m.Data()))
			release()
			if err != nil {
				s.Logger.Error("share: derive; redelivered later", "bucket", b, "err", err)
				m.NakWithDelay(time.Second)
				continue
			}
			m.Ack()
		}
	}
}
