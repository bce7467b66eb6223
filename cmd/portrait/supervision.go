package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/regulator"
	"github.com/portrait-dev/portrait/rights"
)

// complaintsVia hands a joined engine's complaints to its regulator
// (oversight.Regulator).
type complaintsVia struct{ c *regulator.Client }

func (v complaintsVia) Forward(ctx context.Context, text string) (oversight.ReportReceipt, error) {
	rc, follow, err := v.c.Forward(ctx, text)
	return oversight.ReportReceipt{ID: rc.ID, Secret: rc.Secret, Deadline: rc.Deadline, Follow: follow}, err
}

func (v complaintsVia) Answer(ctx context.Context, id, text string) error {
	return v.c.AnswerComplaint(ctx, id, text)
}

// supervise runs beside a joined engine: it routes the regulator's
// complaints into the case queue every poll and sends a signed, noisy
// supervision report every every (0: never).
func (a *app) supervise(ctx context.Context, c *regulator.Client, poll, every time.Duration, catalogPath string) {
	tick := time.NewTicker(poll)
	defer tick.Stop()
	// The last report sent, by any node of the company: each is recorded
	// in the company's log, so nodes sharing a store and restarts do not
	// send more often than every.
	last, err := a.lastSupervision(ctx)
	if err != nil {
		a.logger.Warn("regulator: reading the last supervision report sent", "err", err)
	}
	for {
		a.watchPack(ctx, c, catalogPath)
		if err := a.routeComplaints(ctx, c); err != nil && ctx.Err() == nil {
			a.logger.Warn("regulator: complaints not routed", "err", err)
		}
		if every > 0 && time.Since(last) >= every {
			if l, err := a.lastSupervision(ctx); err == nil && l.After(last) {
				last = l // another node sent one meanwhile
			}
		}
		if every > 0 && time.Since(last) >= every {
			if err := a.sendSupervision(ctx, c); err != nil && ctx.Err() == nil {
				a.logger.Warn("regulator: supervision report not sent", "err", err)
			} else {
				last = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// routeComplaints puts new complaints in the case queue and marks those
// the regulator closed. Every node may do it: Routed and Settled are
// idempotent.
func (a *app) routeComplaints(ctx context.Context, c *regulator.Client) error {
	list, err := c.Complaints(ctx)
	if err != nil {
		return err
	}
	for _, cm := range list {
		if err := a.oversight.Routed(ctx, cm.ID, cm.Text, cm.Created, cm.Deadline); err != nil {
			return err
		}
		if cm.Status == regulator.ComplaintClosed {
			if err := a.oversight.Settled(ctx, cm.ID, cm.Closed); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *app) sendSupervision(ctx context.Context, c *regulator.Client) error {
	r, err := a.supervisionReport(ctx, c.Company, regulator.DefaultNoise, time.Now().UTC())
	if err != nil {
		return err
	}
	s, err := regulator.SignSupervision(r, a.keys.ReceiptKey())
	if err != nil {
		return err
	}
	id, err := c.Supervise(ctx, s)
	if err != nil {
		return err
	}
	// The company's own log keeps what it reported: the digest of the
	// signed body and the regulator's id for it.
	sum := sha256.Sum256(s.Body)
	return a.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		_, err := a.log.Append(ctx, tx, audit.Record{Kind: supervisionKind, Time: r.Sent, Actor: "system:supervise", Action: "send",
			Digest: hex.EncodeToString(sum[:]), Codes: []string{"PP-4"}, Detail: map[string]any{"report": id}})
		return err
	})
}

// supervisionKind is the company-log record of a report sent.
const supervisionKind = "supervision"

// lastSupervision returns when the newest report recorded in the log was
// sent; the zero time if none was.
func (a *app) lastSupervision(ctx context.Context) (time.Time, error) {
	size, err := a.store.LogSize(ctx)
	if err != nil {
		return time.Time{}, err
	}
	es, err := a.log.ReadVerifiedKinds(ctx, a.store, []string{supervisionKind}, 0, size)
	if err != nil || len(es) == 0 {
		return time.Time{}, err
	}
	return es[len(es)-1].Record.Time, nil
}

// supervisionReport gathers the figures of a supervision report. Counts
// of people get noise; counts about the company do not (see
// regulator.Noise).
func (a *app) supervisionReport(ctx context.Context, company string, noise regulator.Noise, now time.Time) (regulator.Supervision, error) {
	r := regulator.Supervision{Company: company, Sent: now, Noise: noise, Noisy: map[string]int64{}, Exact: map[string]int64{},
		ImpactRatios: map[string]float64{}, PriceDispersion: map[string]float64{}, Bubble: map[string]float64{}}
	cases, err := a.store.Cases(ctx, "")
	if err != nil {
		return r, err
	}
	requests, overdue := map[string]bool{}, map[string]bool{}
	for _, c := range cases {
		if c.Pseudonym == oversight.NoSubject {
			switch c.Type {
			case oversight.TypeBreach:
				r.Exact["breaches"]++
			case oversight.TypeReport, oversight.TypeComplaint:
				r.Exact["complaints_"+c.Status]++
			}
			continue
		}
		requests[string(c.Pseudonym)] = true
		if c.Status == rights.StatusOpen && c.Deadline.Before(now) {
			overdue[string(c.Pseudonym)] = true
		}
	}
	size, err := a.store.LogSize(ctx)
	if err != nil {
		return r, err
	}
	es, err := a.log.ReadVerifiedKinds(ctx, a.store, []string{"consent", "proxy_flag"}, 0, size)
	if err != nil {
		return r, err
	}
	granted, withdrawn := map[string]bool{}, map[string]bool{}
	r.Exact["fields_flagged_lexicon"] = 0
	for _, e := range es {
		if e.Record.Kind == "proxy_flag" {
			if e.Record.Detail["source"] == "ingest" {
				r.Exact["fields_flagged_lexicon"]++
			}
			continue
		}
		switch e.Record.Action {
		case "granted":
			granted[string(e.Record.Pseudonym)] = true
		case "withdrawn":
			withdrawn[string(e.Record.Pseudonym)] = true
		}
	}
	for name, n := range map[string]int{"subjects_with_requests": len(requests), "subjects_with_overdue_requests": len(overdue),
		"subjects_granting_consent": len(granted), "subjects_withdrawing_consent": len(withdrawn)} {
		if r.Noisy[name], err = noise.Count(int64(n)); err != nil {
			return r, err
		}
	}
	if g, w := r.Noisy["subjects_granting_consent"], r.Noisy["subjects_withdrawing_consent"]; g+w > 0 {
		rate := float64(g) / float64(g+w)
		r.ConsentRate = &rate
	}
	if a.ingest != nil {
		r.Detections = a.ingest.DetectionCounts()
	}
	if m := a.monitor.Latest(); m != nil {
		r.MonitorRun, r.Alerts = m.ID, m.AlertCount
		for _, u := range m.Fairness.UseCases {
			if u.Audit == nil {
				continue
			}
			for _, g := range u.Audit.Groups {
				if g.ImpactRatio != nil && !g.Excluded {
					if v, ok := r.ImpactRatios[u.UseCase]; !ok || *g.ImpactRatio < v {
						r.ImpactRatios[u.UseCase] = *g.ImpactRatio
					}
				}
			}
		}
		if m.Price.Scan != nil {
			for _, f := range m.Price.Scan.Findings {
				if f.MaxMinRatio != nil {
					k := f.Item + "/" + f.Context
					r.PriceDispersion[k] = max(r.PriceDispersion[k], *f.MaxMinRatio)
				}
			}
		}
		for _, sd := range m.Diversity.Scopes {
			if n := len(sd.Periods); n > 0 {
				r.Bubble[sd.Scope] = sd.Periods[n-1].Entropy
			}
		}
	}
	return r, nil
}

// watchPack notices a rule pack the regulator published while the engine
// runs. The catalog was checked against the pack at start, and the
// filing, the held declarations and the record of processing were made
// from that check; swapping the pack under a running catalog would leave
// them describing a check that no longer holds, and a catalog the new
// pack refuses would keep running. So the engine keeps a verified copy of
// the new pack for its next start, stops the high tier (SG-5, SG-6) and
// says why, including whether the catalog passes the new pack; a restart
// applies it.
func (a *app) watchPack(ctx context.Context, c *regulator.Client, catalogPath string) {
	if a.enforcer == nil || a.enforcer.Restart() != "" || a.enforcer.Rejoining() {
		return
	}
	p, cur, err := c.PackInForce(ctx)
	running := a.point.Catalog().Pack()
	if err != nil || p == nil || running == nil || p.Digest() == running.Digest() {
		return // unreachable (the dead-man switch watches that), or nothing new
	}
	if err := keepPack(ctx, a.store, a.log, cur); err != nil {
		a.logger.Warn("regulator: a copy of its new rule pack could not be kept; will try again", "err", err)
		return
	}
	why := fmt.Sprintf("the regulator published rule pack %s; this engine checked its catalog against %s: restart to apply it (the high tier is stopped until then)", p, running)
	if catalogPath != "" {
		if _, err := catalog.LoadWith(p, catalogPath, label.Check); err != nil {
			why += "; the catalog breaks the new pack and a restart will refuse it until it is fixed:\n" + err.Error()
		}
	}
	a.enforcer.PackChanged(why)
	a.logger.Warn(why)
}
