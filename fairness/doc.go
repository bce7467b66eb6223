// Package fairness measures the two algorithmic harms of profiling that the
// law names: differential treatment, including big-data price
// discrimination (大数据杀熟), and the filter bubble (过滤泡). It is pure
// computation over decisions, features, price events and impressions; it
// reads no store, so it audits Portrait's own decisions and decision data
// from any other system alike.
//
// Requirements (REQUIREMENTS.md):
//
//   - FP-1: PriceScanner flags the same item, in the same time window and
//     context, shown at different prices to different segments; it reports
//     the dispersion (min, max, coefficient of variation, max/min), the
//     segment means, the labels that go with higher prices, and alerts
//     above a relative gap. It streams: memory grows with item × window ×
//     context × segment cells, never with events.
//   - FP-2: protected attributes are for auditing only; NewProxyScanner
//     refuses a column that is both protected and a feature. Keeping them
//     apart in storage is the store's and the catalog's job.
//   - FP-3: Audit reports, per group and per intersection of groups, the
//     selection rate with a Wilson 95 % interval and the impact ratio as
//     NYC Local Law 144 defines it (group rate ÷ highest group rate). Groups
//     under MinShare of decisions (LL144 allows 2 %) are left out of the
//     reference and the comparison, and every such exclusion is disclosed.
//   - FP-4: an impact ratio under 0.80 raises an alert (the four-fifths rule
//     of the Uniform Guidelines on Employee Selection Procedures, 29 CFR
//     1607.4(D)), together with a test of the group's rate against the
//     reference group's: Fisher's exact test (two-sided) when an expected
//     cell count is under 5, the pooled two-proportion z-test otherwise.
//   - FP-5 is enforced at declaration (catalog), not here.
//   - FP-6: ProxyScanner measures every feature against every protected
//     attribute (Cramér's V, optionally bias-corrected, for categorical
//     features; the correlation ratio η for numeric ones) and flags those
//     above a threshold (0.3 by default); FlipTest re-runs a model with the
//     protected attribute or a proxy changed and counts flipped decisions.
//   - FB-1, FB-2: Entropy, IntraListDiversity, Coverage, Gini and Slope
//     measure diversity and exposure concentration; ExposureLog computes
//     them per recommender or subject and period, and CheckDiversity alerts
//     when the latest value falls below a floor.
//
// With outcomes, Audit also reports false-positive, false-negative and
// true-positive rates, the equal-opportunity difference (max − min TPR) and
// calibration by score band; demographic-parity difference is max − min
// selection rate. Differences are taken over the groups that are not
// excluded.
//
// Impact ratios read "selected" as the favourable outcome, as LL144 and
// UGESP do. When the decision is unfavourable (a "high risk" label), the
// reference group is the one most often flagged and the alerts point at the
// groups flagged least; name the favourable values as positive to read the
// report as adverse impact.
//
// Nothing in a report is NaN or infinite: a rate whose denominator is zero
// is null in JSON and explained in a note, and a group with no members is
// not listed (the section says how many combinations were empty).
//
// The command-line tool `portrait fairness` over this package lives in
// cmd/portrait (fairness.go).
package fairness
