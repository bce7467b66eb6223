// Package forecast predicts repeat purchases of customers in a
// non-contractual setting with the BG/NBD model of Fader, Hardie and Lee,
// "Counting Your Customers the Easy Way: An Alternative to the Pareto/NBD
// Model", Marketing Science 24(2):275–284, 2005.
//
// A customer is summarised by (x, tₓ, T): the number of repeat
// transactions x in the calibration period, the time tₓ of the last one
// and the length T of the observation, both counted in weeks from the
// customer's first purchase. Purchases on the same day are one
// transaction. While active, a customer buys at a Poisson rate λ, and after
// each transaction drops out with probability p; λ ~ Gamma(r, α) and
// p ~ Beta(a, b) across customers. Fit finds (r, α, a, b) by maximum
// likelihood (gonum's BFGS over the logarithms of the parameters, with the
// analytic gradient); Params then gives P(alive), the expected number of
// transactions of a new customer, E[X(t)], and of a known one,
// E[Y(t) | x, tₓ, T], which need the Gauss hypergeometric function ₂F₁
// (Hyp2F1, summed until its tail is below 1e-14 of the sum, or an error).
//
// Trend is the explainable extension tried against it (model
// bgnbd_trend): one common calendar-time trend in every customer's
// purchase rate, λ·e^(βu) at calendar week u, under which the BG/NBD
// process runs in operational time τ(u) = (e^(βu) − 1)/β, so that the
// closed forms still hold; β is fitted by profile likelihood. Evaluate
// compares a model with what happened in a holdout period and states its
// measures: the relative error of the holdout total, MAE and RMSE per
// customer, and the MAE of the weekly repeat transactions.
//
// The package holds no personal data and keeps no invariant of its own:
// package derive calls it only with the inputs a grant allowed, and the
// label it stores is governed like every label (invariants 2, 5 and 6).
package forecast
