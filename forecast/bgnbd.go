package forecast

import (
	"errors"
	"fmt"
	"math"
	"time"

	"gonum.org/v1/gonum/mathext"
	"gonum.org/v1/gonum/optimize"
)

// Customer is one customer's calibration summary: X repeat transactions
// (distinct purchase days after the first), the last at TX weeks after the
// first purchase, observed for T weeks after it (0 ≤ TX ≤ T).
type Customer struct {
	X  int     `json:"x"`
	TX float64 `json:"t_x"`
	T  float64 `json:"T"`
}

// Check reports a summary that no customer can have.
func (c Customer) Check() error {
	switch {
	case c.X < 0:
		return fmt.Errorf("forecast: %d repeat transactions", c.X)
	case !(c.T >= 0) || math.IsInf(c.T, 0):
		return fmt.Errorf("forecast: observation length T = %v weeks", c.T)
	case !(c.TX >= 0) || c.TX > c.T:
		return fmt.Errorf("forecast: last transaction at %v weeks, outside [0, T = %v]", c.TX, c.T)
	case c.X == 0 && c.TX != 0:
		return fmt.Errorf("forecast: no repeat transactions but the last at %v weeks", c.TX)
	}
	return nil
}

// Params are the four BG/NBD parameters: the transaction rate
// λ ~ Gamma(shape R, rate Alpha) per week, and the drop-out probability
// after each transaction p ~ Beta(A, B).
type Params struct {
	R     float64 `json:"r"`
	Alpha float64 `json:"alpha"`
	A     float64 `json:"a"`
	B     float64 `json:"b"`
}

func (p Params) valid() bool {
	for _, v := range []float64{p.R, p.Alpha, p.A, p.B} {
		if !(v > 0) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

func lbeta(a, b float64) float64 {
	x, _ := math.Lgamma(a)
	y, _ := math.Lgamma(b)
	z, _ := math.Lgamma(a + b)
	return x + y - z
}

func lgamma(x float64) float64 { v, _ := math.Lgamma(x); return v }

// LogLik is the log-likelihood of one customer (FHL 2005, eq. 6), written
// as ln Γ(r+x) − ln Γ(r) + r ln α + ln(e^A₂ + δ e^A₃) with
//
//	A₂ = ln B(a, b+x) − ln B(a, b) − (r+x) ln(α+T)
//	A₃ = ln B(a+1, b+x−1) − ln B(a, b) − (r+x) ln(α+tₓ)   (x > 0)
//
// and the sum taken by log-sum-exp, so that no power overflows.
func (p Params) LogLik(c Customer) float64 {
	x := float64(c.X)
	a1 := lgamma(p.R+x) - lgamma(p.R) + p.R*math.Log(p.Alpha)
	a2 := lbeta(p.A, p.B+x) - lbeta(p.A, p.B) - (p.R+x)*math.Log(p.Alpha+c.T)
	if c.X == 0 {
		return a1 + a2
	}
	a3 := lbeta(p.A+1, p.B+x-1) - lbeta(p.A, p.B) - (p.R+x)*math.Log(p.Alpha+c.TX)
	return a1 + logAddExp(a2, a3)
}

func logAddExp(u, v float64) float64 {
	if u < v {
		u, v = v, u
	}
	return u + math.Log1p(math.Exp(v-u))
}

// LogLikAll is the log-likelihood of every customer.
func (p Params) LogLikAll(cs []Customer) float64 {
	var s float64
	for _, c := range cs {
		s += p.LogLik(c)
	}
	return s
}

// PAlive is the probability that a customer with this history is still
// active at the end of the calibration period (FHL 2005, eq. 11 with t=0):
// 1 / (1 + δ(x>0) · a/(b+x−1) · ((α+T)/(α+tₓ))^(r+x)).
func (p Params) PAlive(c Customer) float64 {
	if c.X == 0 {
		return 1
	}
	x := float64(c.X)
	// The odds of having dropped out, in logs to avoid overflow.
	lo := math.Log(p.A) - math.Log(p.B+x-1) + (p.R+x)*(math.Log(p.Alpha+c.T)-math.Log(p.Alpha+c.TX))
	return 1 / (1 + math.Exp(lo))
}

// aNearOne moves a away from 1, where the closed forms divide by a−1 and
// the limit is approached smoothly; the change is far below any fit's
// precision.
func aNearOne(a float64) float64 {
	if math.Abs(a-1) < 1e-9 {
		return 1 + 1e-9
	}
	return a
}

// Expected is the expected number of transactions of a new customer in
// the first t weeks after the first purchase (FHL 2005, eq. 9):
// (a+b−1)/(a−1) · [1 − (α/(α+t))^r ₂F₁(r, b; a+b−1; t/(α+t))].
//
// With z = t/(α+t), so that α/(α+t) = 1−z, Euler's transformation
// ₂F₁(A, B; C; z) = (1−z)^(C−A−B) ₂F₁(C−A, C−B; C; z) turns the bracket's
// product into (1−z)^(a−1) ₂F₁(a+b−1−r, a−1; a+b−1; z), whose series has
// small parameters and no huge power to cancel.
func (p Params) Expected(t float64) (float64, error) {
	if t <= 0 {
		return 0, nil
	}
	a := aNearOne(p.A)
	z := t / (p.Alpha + t)
	h, err := Hyp2F1(a+p.B-1-p.R, a-1, a+p.B-1, z)
	if err != nil {
		return math.NaN(), err
	}
	return (a + p.B - 1) / (a - 1) * (1 - math.Pow(1-z, a-1)*h), nil
}

// Conditional is the expected number of transactions in the t weeks after
// the calibration period of a customer with history c (FHL 2005, eq. 10):
//
//	(a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; z)] · P(alive)
//
// with z = t/(α+T+t). As in Expected, Euler's transformation makes the
// bracket 1 − (1−z)^(a−1) ₂F₁(a+b−1−r, a−1; a+b+x−1; z): for a customer
// with many purchases the untransformed series' terms first grow like
// zⁿ·C(x+n, n) and overflow, the transformed one's do not.
func (p Params) Conditional(c Customer, t float64) (float64, error) {
	if t <= 0 {
		return 0, nil
	}
	x := float64(c.X)
	a := aNearOne(p.A)
	z := t / (p.Alpha + c.T + t)
	h, err := Hyp2F1(a+p.B-1-p.R, a-1, a+p.B+x-1, z)
	if err != nil {
		return math.NaN(), err
	}
	num := (a + p.B + x - 1) / (a - 1) * (1 - math.Pow(1-z, a-1)*h)
	return num * p.PAlive(c), nil
}

// Fit is a fitted model and its fit statistics.
type Fit struct {
	Model   string        `json:"model"`
	Params  Params        `json:"params"`
	LogLik  float64       `json:"log_likelihood"`
	N       int           `json:"customers"`
	Evals   int           `json:"evaluations"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// ErrTooFew is returned when there are too few customers with repeat
// purchases to identify four parameters.
var ErrTooFew = errors.New("forecast: too few customers to fit (want at least 10, some with repeat purchases)")

// FitBGNBD finds the maximum-likelihood parameters for cs with BFGS over
// the logarithms of the parameters (so they stay positive), using the
// analytic gradient. The x-dependent gamma and beta terms are computed once
// per distinct x per evaluation; the rest costs two logarithms and an
// exponential per customer.
func FitBGNBD(cs []Customer) (Fit, error) {
	start := time.Now()
	repeat := 0
	maxX := 0
	for _, c := range cs {
		if err := c.Check(); err != nil {
			return Fit{}, err
		}
		if c.X > 0 {
			repeat++
		}
		maxX = max(maxX, c.X)
	}
	if len(cs) < 10 || repeat == 0 {
		return Fit{}, ErrTooFew
	}
	ll := newLikelihood(cs, maxX)
	evals := 0
	prob := optimize.Problem{
		Func: func(th []float64) float64 {
			evals++
			v, _ := ll.eval(expParams(th), nil)
			return -v
		},
		Grad: func(grad, th []float64) {
			p := expParams(th)
			var g [4]float64
			ll.eval(p, &g)
			// d/dθ = d/dp · p, negated for minimisation.
			grad[0], grad[1], grad[2], grad[3] = -g[0]*p.R, -g[1]*p.Alpha, -g[2]*p.A, -g[3]*p.B
		},
	}
	// Start from the moments: α from the mean observation, r = 1, a = b = 1.
	var meanT float64
	for _, c := range cs {
		meanT += c.T
	}
	meanT /= float64(len(cs))
	x0 := []float64{0, math.Log(math.Max(meanT/4, 0.1)), 0, 0}
	// Converged means the gradient in the log-parameters is below 1e-7 per
	// customer: the log-likelihood grows with the number of customers, and
	// an absolute threshold would be out of float64's reach for a million.
	tol := 1e-7 * float64(len(cs))
	res, err := optimize.Minimize(prob, x0, &optimize.Settings{GradientThreshold: tol, MajorIterations: 2000}, &optimize.BFGS{})
	if res == nil {
		return Fit{}, fmt.Errorf("forecast: fit BG/NBD: %w", err)
	}
	p := expParams(res.X)
	if !p.valid() || math.IsNaN(res.F) {
		return Fit{}, fmt.Errorf("forecast: fit BG/NBD: %w (parameters %+v)", ErrNoConvergence, p)
	}
	if err != nil {
		// A line search that can make no more progress is at the optimum
		// to float64's precision if the gradient is small there too.
		g := make([]float64, 4)
		prob.Grad(g, res.X)
		// 1e-4 per customer in log-parameters moves the log-likelihood by
		// under 1e-6 per customer for a 1 % change of a parameter.
		for _, gi := range g {
			if math.Abs(gi) > 1e-4*float64(len(cs)) {
				return Fit{}, fmt.Errorf("forecast: fit BG/NBD: %w: %v (gradient %v)", ErrNoConvergence, err, g)
			}
		}
	}
	return Fit{Model: "bgnbd", Params: p, LogLik: -res.F, N: len(cs), Evals: evals, Elapsed: time.Since(start)}, nil
}

func expParams(th []float64) Params {
	return Params{R: math.Exp(th[0]), Alpha: math.Exp(th[1]), A: math.Exp(th[2]), B: math.Exp(th[3])}
}

// likelihood is the data, arranged for fast repeated evaluation.
type likelihood struct {
	cs   []Customer
	maxX int
}

func newLikelihood(cs []Customer, maxX int) *likelihood { return &likelihood{cs: cs, maxX: maxX} }

// eval returns the total log-likelihood at p and, if g is not nil, its
// gradient with respect to (r, α, a, b).
func (l *likelihood) eval(p Params, g *[4]float64) (float64, bool) {
	if !p.valid() {
		return math.Inf(-1), false
	}
	n := l.maxX + 1
	// Per x: A₁ without r ln α, and the constant parts of A₂ and A₃, with
	// their derivatives in r, a and b.
	a1 := make([]float64, n)
	da1r := make([]float64, n)
	b2 := make([]float64, n)
	b3 := make([]float64, n)
	d2a, d2b := make([]float64, n), make([]float64, n)
	d3a, d3b := make([]float64, n), make([]float64, n)
	lb := lbeta(p.A, p.B)
	psiAB, psiA, psiB := mathext.Digamma(p.A+p.B), mathext.Digamma(p.A), mathext.Digamma(p.B)
	psiA1 := mathext.Digamma(p.A + 1)
	for x := range n {
		fx := float64(x)
		if x > 0 {
			a1[x] = a1[x-1] + math.Log(p.R+fx-1)
			da1r[x] = da1r[x-1] + 1/(p.R+fx-1)
		}
		b2[x] = lbeta(p.A, p.B+fx) - lb
		if g != nil {
			psiABX := mathext.Digamma(p.A + p.B + fx)
			d2a[x] = psiAB - psiABX
			d2b[x] = mathext.Digamma(p.B+fx) - psiABX - psiB + psiAB
			if x > 0 {
				d3a[x] = psiA1 - psiABX - psiA + psiAB
				d3b[x] = mathext.Digamma(p.B+fx-1) - psiABX - psiB + psiAB
			}
		}
		if x > 0 {
			b3[x] = lbeta(p.A+1, p.B+fx-1) - lb
		}
	}
	lalpha := math.Log(p.Alpha)
	var sum float64
	var gr, gal, ga, gb float64
	for _, c := range l.cs {
		x := c.X
		fx := float64(x)
		rx := p.R + fx
		lT := math.Log(p.Alpha + c.T)
		A2 := b2[x] - rx*lT
		v := a1[x] + p.R*lalpha
		if g != nil {
			gr += da1r[x] + lalpha
			gal += p.R / p.Alpha
		}
		if x == 0 {
			sum += v + A2
			if g != nil {
				gr += -lT
				gal += -rx / (p.Alpha + c.T)
				ga += d2a[0]
				gb += d2b[0]
			}
			continue
		}
		lt := math.Log(p.Alpha + c.TX)
		A3 := b3[x] - rx*lt
		m := math.Max(A2, A3)
		e2, e3 := math.Exp(A2-m), math.Exp(A3-m)
		sum += v + m + math.Log(e2+e3)
		if g != nil {
			w2, w3 := e2/(e2+e3), e3/(e2+e3)
			gr += -w2*lT - w3*lt
			gal += -w2*rx/(p.Alpha+c.T) - w3*rx/(p.Alpha+c.TX)
			ga += w2*d2a[x] + w3*d3a[x]
			gb += w2*d2b[x] + w3*d3b[x]
		}
	}
	if g != nil {
		*g = [4]float64{gr, gal, ga, gb}
	}
	return sum, true
}
