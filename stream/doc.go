// Package stream connects Portrait to NATS JetStream
// (github.com/nats-io/nats.go): it is the only package that imports NATS.
//
// Intake consumes events published to a JetStream stream and runs them
// through the same governed path as POST /v1/events (ingest.Ingester.Ingest:
// catalog, minimisation, consent, sealing, one transaction with the audit
// record), then publishes a result per event back on NATS. Delivery is at
// least once: a message is acknowledged only after its batch is stored and
// its results published, and redelivered otherwise. An event without an
// idempotency key is given one from its stream sequence, which does not
// change on redelivery, so the store's idempotency makes the intake exactly
// once in effect. Any number of serve nodes share one durable pull
// consumer; JetStream hands each message to one of them at a time.
//
// Share (serve --cluster) carries derivation work: ingest publishes the
// stored pseudonyms to a JetStream work queue under their bucket, and the
// node that holds a bucket (package cluster) consumes it, so a subject is
// derived on one node at a time and a dead node's unacknowledged work is
// redelivered to the bucket's next owner.
//
// Invariant 3 holds as for the HTTP path: a batch the store or audit log
// cannot take is not acknowledged, so nothing is lost and nothing is stored
// unlogged.
package stream
