package server

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/monitor"
	"github.com/portrait-dev/portrait/policy"
)

// monitorStaff may read monitor reports: the people who answer for the
// system (admin), check it (auditor) and oversee it (regulator).
var monitorStaff = []policy.Role{policy.Admin, policy.Auditor, policy.Regulator}

// monitorRoutes are the protected-attribute, fairness, pricing and
// filter-bubble report routes (FP-1 … FP-6, FB-1, FB-2).
func (s *Server) monitorRoutes() []route {
	s.monitorMetrics()
	return []route{
		{"PUT", "/v1/subjects/{id}/protected", []policy.Role{policy.Admin, policy.Operator}, "Record a subject's protected attributes, for bias checks only (FP-2)", s.putProtected},
		{"GET", "/v1/subjects/{id}/protected", []policy.Role{policy.Auditor}, "A subject's protected attributes; auditor only, every access logged (FP-2)", s.getProtected},
		{"POST", "/v1/monitor/runs", []policy.Role{policy.Admin, policy.Auditor}, "Run the fairness, proxy, price and diversity monitors now", s.postMonitorRun},
		{"GET", "/v1/monitor/report", monitorStaff, "The latest monitor report (JSON)", s.getMonitorReport},
		{"GET", "/v1/monitor/proxies", staff, "Features flagged as proxies of protected attributes, and clearances (FP-6)", s.getProxies},
		{"POST", "/v1/monitor/proxies/{feature}/clear", []policy.Role{policy.Reviewer}, "Clear a proxy flag after review, with a reason (FP-6)", s.clearProxy},
	}
}

// monitorMetrics exports each new report: alert counters by monitor and
// the latest impact ratios, price gaps and alert counts as gauges.
func (s *Server) monitorMetrics() {
	m := s.cfg.Monitor
	if m == nil {
		return
	}
	alerts := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portrait_monitor_alerts_total",
		Help: "Alerts raised by the monitors, by monitor (fairness, proxy, price, diversity)."}, []string{"kind"})
	latest := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "portrait_monitor_alerts",
		Help: "Alerts in the latest monitor report, by monitor."}, []string{"kind"})
	impact := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "portrait_fairness_impact_ratio",
		Help: "Impact ratio of each group in the latest report (FP-3)."}, []string{"usecase", "group"})
	gap := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "portrait_price_segment_gap_max",
		Help: "Largest relative price gap between segments in the latest report (FP-1)."}, []string{})
	last := prometheus.NewGauge(prometheus.GaugeOpts{Name: "portrait_monitor_last_run_timestamp_seconds",
		Help: "When the latest monitor report was made."})
	escalations := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portrait_price_escalations_total",
		Help: "Price alerts repeated over consecutive runs, by action on each pricing use-case (recommend_halt, halted, already_halted, halt_failed) (FP-1)."}, []string{"action"})
	entropy := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "portrait_recommender_category_entropy",
		Help: "Latest normalised category entropy of each recommender's answers (FB-1, FB-2)."}, []string{"recommender"})
	s.metrics.reg.MustRegister(alerts, latest, impact, gap, last, escalations, entropy)
	kinds := []string{"fairness", "proxy", "price", "diversity"}
	for _, k := range kinds {
		alerts.WithLabelValues(k)
	}
	m.OnReport(func(rep *monitor.Report) {
		for _, k := range kinds {
			alerts.WithLabelValues(k).Add(float64(rep.AlertCount[k]))
			latest.WithLabelValues(k).Set(float64(rep.AlertCount[k]))
		}
		impact.Reset()
		for _, u := range rep.Fairness.UseCases {
			if u.Audit == nil {
				continue
			}
			for _, g := range u.Audit.Groups {
				if g.ImpactRatio != nil {
					impact.WithLabelValues(u.UseCase, strings.Join(g.Attributes, monitor.Sep)+"="+g.Name).Set(*g.ImpactRatio)
				}
			}
		}
		g := 0.0
		if rep.Price.Scan != nil {
			for _, f := range rep.Price.Scan.Findings {
				if f.SegmentGap != nil && *f.SegmentGap > g {
					g = *f.SegmentGap
				}
			}
		}
		gap.WithLabelValues().Set(g)
		for _, e := range rep.Escalations {
			for _, a := range e.Actions {
				escalations.WithLabelValues(a).Inc()
			}
		}
		entropy.Reset()
		for _, r := range rep.Recommenders.Recommenders {
			if len(r.Periods) > 0 {
				entropy.WithLabelValues(r.Recommender).Set(r.Trend.Latest)
			}
		}
		last.Set(float64(rep.Time.Unix()))
	})
}

func (s *Server) monitor() (*monitor.Monitor, error) {
	if s.cfg.Monitor == nil {
		return nil, portrait.Errorf(portrait.EUNAVAILABLE, "the monitors are not configured on this server")
	}
	return s.cfg.Monitor, nil
}

func (s *Server) putProtected(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	m, err := s.monitor()
	if err != nil {
		return err
	}
	var attrs map[string]string
	if err := readJSON(r, &attrs); err != nil {
		return err
	}
	if err := m.PutProtected(r.Context(), c, r.PathValue("id"), attrs); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) getProtected(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	m, err := s.monitor()
	if err != nil {
		return err
	}
	vals, err := m.ReadProtected(r.Context(), c, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, 200, protectedResponse{Subject: string(s.cfg.Keys.Pseudonym(r.PathValue("id"))), Attributes: vals})
}

func (s *Server) postMonitorRun(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	m, err := s.monitor()
	if err != nil {
		return err
	}
	rep, err := m.Run(r.Context(), time.Now())
	if err != nil {
		return err
	}
	return writeJSON(w, 201, rep)
}

func (s *Server) latestReport() (*monitor.Report, error) {
	m, err := s.monitor()
	if err != nil {
		return nil, err
	}
	rep := m.Latest()
	if rep == nil {
		return nil, portrait.Errorf(portrait.ENOTFOUND, "no monitor report yet; POST /v1/monitor/runs or wait for the scheduled run")
	}
	return rep, nil
}

func (s *Server) getMonitorReport(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	rep, err := s.latestReport()
	if err != nil {
		return err
	}
	return writeJSON(w, 200, rep)
}

func (s *Server) getProxies(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	m, err := s.monitor()
	if err != nil {
		return err
	}
	return writeJSON(w, 200, proxiesResponse{Proxies: m.Proxies()})
}

func (s *Server) clearProxy(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	m, err := s.monitor()
	if err != nil {
		return err
	}
	var body reasonBody
	if err := readJSON(r, &body); err != nil {
		return err
	}
	p, err := m.ClearProxy(r.Context(), c, r.PathValue("feature"), body.Reason)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, p)
}
