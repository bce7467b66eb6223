package forecast

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
	"gonum.org/v1/gonum/integrate/quad"
	"gonum.org/v1/gonum/stat/distuv"
)

// cdnow are the parameters FHL 2005 report for the CDNOW 1/10 sample.
var cdnow = Params{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}

// simulate draws n customers from the BG/NBD process with parameters p,
// each first buying uniformly in the first 12 weeks and observed until
// week 39, as in the CDNOW cohort. It also returns, per customer, the
// transactions in the following holdout weeks.
func simulate(p Params, n int, holdout float64, seed uint64) ([]Customer, []int) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	lam := distuv.Gamma{Alpha: p.R, Beta: p.Alpha, Src: rng}
	drop := distuv.Beta{Alpha: p.A, Beta: p.B, Src: rng}
	cs := make([]Customer, n)
	hold := make([]int, n)
	for i := range cs {
		T := 39 - 12*rng.Float64()
		l, q := lam.Rand(), drop.Rand()
		var c Customer
		c.T = T
		t, alive := 0.0, true
		for alive {
			t += rng.ExpFloat64() / l
			if t > T+holdout {
				break
			}
			if t <= T {
				c.X++
				c.TX = t
			} else {
				hold[i]++
			}
			alive = rng.Float64() >= q
		}
		cs[i] = c
	}
	return cs, hold
}

// The estimator recovers the published CDNOW parameters from data
// simulated with them. The tolerances are about three standard errors at
// this size (checked over several seeds).
func TestFitRecoversCDNOW(t *testing.T) {
	cs, _ := simulate(cdnow, 40_000, 0, 1)
	fit, err := FitBGNBD(cs)
	if err != nil {
		t.Fatal(err)
	}
	got := fit.Params
	t.Logf("fit %+v, log-likelihood %.1f, %d evaluations, %v", got, fit.LogLik, fit.Evals, fit.Elapsed)
	for _, c := range []struct {
		name      string
		got, want float64
		tol       float64 // relative
	}{
		{"r", got.R, cdnow.R, 0.08},
		{"alpha", got.Alpha, cdnow.Alpha, 0.12},
		{"a", got.A, cdnow.A, 0.20},
		{"b", got.B, cdnow.B, 0.30},
	} {
		if math.Abs(c.got-c.want) > c.tol*c.want {
			t.Errorf("%s = %.4f, want %.4f ± %.0f%%", c.name, c.got, c.want, 100*c.tol)
		}
	}
	// The optimum beats the truth on its own data, but not by much.
	truth := cdnow.LogLikAll(cs)
	if fit.LogLik < truth || fit.LogLik-truth > 20 {
		t.Errorf("log-likelihood at the fit %.2f, at the true parameters %.2f", fit.LogLik, truth)
	}
}

func TestFitRefusesTooFew(t *testing.T) {
	for _, tc := range []struct {
		name string
		cs   []Customer
	}{
		{"empty", nil},
		{"nine", make([]Customer, 9)},
		{"no repeat buyer", make([]Customer, 50)},
	} {
		if _, err := FitBGNBD(tc.cs); err != ErrTooFew {
			t.Errorf("%s: err %v, want ErrTooFew", tc.name, err)
		}
	}
	bad := append(make([]Customer, 20), Customer{X: 2, TX: 5, T: 3})
	if _, err := FitBGNBD(bad); err == nil {
		t.Error("a last transaction after T was accepted")
	}
}

// posterior integrates h(λ, p) · L(λ, p | x, tₓ, T) over the Gamma and Beta
// mixing distributions numerically: no gamma, beta or hypergeometric
// function of the closed forms is involved. The substitutions λ = v^(1/r)
// and p = w^(1/a) remove the densities' singularities at 0.
func posterior(p Params, h func(lam, q float64) float64) float64 {
	const n = 300
	lmax := 60 / p.Alpha
	vmax := math.Pow(lmax, p.R)
	gnorm := math.Exp(p.R*math.Log(p.Alpha)-lgamma(p.R)) / p.R
	bnorm := 1 / (p.A * math.Exp(lbeta(p.A, p.B)))
	inner := func(w float64) float64 {
		q := math.Pow(w, 1/p.A)
		return quad.Fixed(func(v float64) float64 {
			lam := math.Pow(v, 1/p.R)
			return h(lam, q) * math.Exp(-p.Alpha*lam)
		}, 0, vmax, n, nil, 0) * math.Pow(1-q, p.B-1)
	}
	return gnorm * bnorm * quad.Fixed(inner, 0, 1, n, nil, 0)
}

func likeAlive(c Customer) func(lam, q float64) float64 {
	x := float64(c.X)
	return func(lam, q float64) float64 { return math.Pow(1-q, x) * math.Pow(lam, x) * math.Exp(-lam*c.T) }
}

func like(c Customer) func(lam, q float64) float64 {
	x := float64(c.X)
	alive := likeAlive(c)
	return func(lam, q float64) float64 {
		v := alive(lam, q)
		if c.X > 0 {
			v += q * math.Pow(1-q, x-1) * math.Pow(lam, x) * math.Exp(-lam*c.TX)
		}
		return v
	}
}

var histories = []Customer{
	{0, 0, 38.86}, {1, 30.43, 38.86}, {2, 1.71, 38.86}, {4, 32.71, 34.0}, {7, 29.43, 35.0}, {3, 5, 27.5},
	{40, 38, 39},
}

// A customer with thousands of purchase days still gets a finite
// forecast: the untransformed series would overflow.
func TestConditionalManyPurchases(t *testing.T) {
	for _, c := range []Customer{{X: 5000, TX: 38.9, T: 39}, {X: 300, TX: 2, T: 39}} {
		v, err := cdnow.Conditional(c, 52)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			t.Errorf("%+v: %v, %v", c, v, err)
		}
	}
}

func TestLogLikMatchesIntegral(t *testing.T) {
	for _, c := range histories {
		want := math.Log(posterior(cdnow, like(c)))
		if got := cdnow.LogLik(c); math.Abs(got-want) > 1e-6*math.Abs(want) {
			t.Errorf("%+v: closed form %.10f, integral %.10f", c, got, want)
		}
	}
}

// The conditional expectation and P(alive) against the posterior
// integrals E[Y(t) | λ, p, alive] = (1 − e^(−λpt))/p weighted by the
// probability of the history with the customer alive at T.
func TestConditionalMatchesIntegral(t *testing.T) {
	for _, c := range histories {
		total := posterior(cdnow, like(c))
		alive := likeAlive(c)
		for _, horizon := range []float64{1, 13, 39, 52} {
			want := posterior(cdnow, func(lam, q float64) float64 {
				return alive(lam, q) * -math.Expm1(-lam*q*horizon) / q
			}) / total
			got, err := cdnow.Conditional(c, horizon)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-want) > 1e-6*math.Max(want, 1e-3) {
				t.Errorf("%+v, t=%v: closed form %.10f, integral %.10f", c, horizon, got, want)
			}
		}
		want := posterior(cdnow, alive) / total
		if got := cdnow.PAlive(c); math.Abs(got-want) > 1e-7 {
			t.Errorf("%+v: P(alive) %.10f, integral %.10f", c, got, want)
		}
	}
}

func TestExpectedMatchesIntegral(t *testing.T) {
	for _, horizon := range []float64{0.5, 10, 39, 78, 200} {
		want := posterior(cdnow, func(lam, q float64) float64 { return -math.Expm1(-lam*q*horizon) / q })
		got, err := cdnow.Expected(horizon)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-want) > 1e-6*want {
			t.Errorf("t=%v: closed form %.10f, integral %.10f", horizon, got, want)
		}
	}
}

// The simulated holdout agrees with the conditional expectations.
func TestConditionalMatchesSimulation(t *testing.T) {
	cs, hold := simulate(cdnow, 40_000, 39, 7)
	var pred, act float64
	for i, c := range cs {
		v, err := cdnow.Conditional(c, 39)
		if err != nil {
			t.Fatal(err)
		}
		pred += v
		act += float64(hold[i])
	}
	if math.Abs(pred-act) > 0.05*act {
		t.Errorf("holdout: predicted %.0f, simulated %.0f", pred, act)
	}
}

func TestGradient(t *testing.T) {
	cs, _ := simulate(cdnow, 500, 0, 3)
	ll := newLikelihood(cs, 100)
	f := func(th []float64) float64 { v, _ := ll.eval(expParams(th), nil); return v }
	th := []float64{math.Log(0.3), math.Log(5), math.Log(0.7), math.Log(2)}
	want := fd.Gradient(nil, f, th, &fd.Settings{Formula: fd.Central})
	p := expParams(th)
	var g [4]float64
	ll.eval(p, &g)
	got := []float64{g[0] * p.R, g[1] * p.Alpha, g[2] * p.A, g[3] * p.B}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-4*math.Max(1, math.Abs(want[i])) {
			t.Errorf("gradient[%d] = %v, finite difference %v", i, got[i], want[i])
		}
	}
}

func TestHyp2F1(t *testing.T) {
	euler := func(a, b, c, z float64) float64 { // needs c > b ≥ 1, c − b ≥ 1
		k := math.Exp(lgamma(c) - lgamma(b) - lgamma(c-b))
		return k * quad.Fixed(func(s float64) float64 {
			return math.Pow(s, b-1) * math.Pow(1-s, c-b-1) * math.Pow(1-z*s, -a)
		}, 0, 1, 2000, nil, 0)
	}
	for _, tc := range []struct {
		a, b, c, z float64
		want       float64
	}{
		{1, 1, 2, 0.5, -math.Log(0.5) / 0.5},
		{1, 1, 2, 0.999, -math.Log(0.001) / 0.999},
		{0.7, 2.4, 2.4, 0.9, math.Pow(0.1, -0.7)},
		{0.5, 0.5, 1.5, 0.25, math.Asin(0.5) / 0.5},
		{0.5, 0.5, 1.5, -0.25, math.Asinh(0.5) / 0.5},
		{0.3, 1.5, 3.2, 0.8, euler(0.3, 1.5, 3.2, 0.8)},
		{2.2, 1.0, 4.0, 0.95, euler(2.2, 1.0, 4.0, 0.95)},
		{0.243, 2.426, 2.219, 0, 1},
	} {
		got, err := Hyp2F1(tc.a, tc.b, tc.c, tc.z)
		if err != nil || math.Abs(got-tc.want) > 1e-9*math.Abs(tc.want) {
			t.Errorf("2F1(%v, %v; %v; %v) = %.12g, %v; want %.12g", tc.a, tc.b, tc.c, tc.z, got, err, tc.want)
		}
	}
	for _, tc := range [][4]float64{{1, 1, 2, 1}, {1, 1, 2, -2}, {1, 1, -1, 0.5}, {1, 1, 2, math.NaN()}} {
		if v, err := Hyp2F1(tc[0], tc[1], tc[2], tc[3]); err == nil {
			t.Errorf("2F1%v = %v, want an error", tc, v)
		}
	}
}

// Fit BG/NBD to a million customers simulated from the CDNOW parameters
// (the simulation is not timed).
func BenchmarkFitMillion(b *testing.B) {
	cs, _ := simulate(cdnow, 1_000_000, 0, 1)
	b.ResetTimer()
	for b.Loop() {
		f, err := FitBGNBD(cs)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(f.Evals), "evals")
	}
}
