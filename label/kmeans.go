package label

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
)

// Clustering is the result of k-means.
type Clustering struct {
	K          int         `json:"k"`
	Centroids  [][]float64 `json:"centroids"`
	Assign     []int       `json:"assign"` // cluster of each point
	Sizes      []int       `json:"sizes"`
	Inertia    float64     `json:"inertia"` // sum of squared distances to centroids
	Iterations int         `json:"iterations"`
	Converged  bool        `json:"converged"`
}

// chunks is fixed, not the number of CPUs, so that partial sums are added
// in the same order on every machine and results are bit-for-bit equal.
const chunks = 16

// KMeans clusters points into k clusters: k-means++ initialisation drawn
// from a generator seeded with seed, then Lloyd iterations until no point
// changes cluster or maxIter (default 100 when <= 0) is reached. The same
// points and seed give the same result. A cluster that empties takes the
// point farthest from its centroid.
func KMeans(points [][]float64, k int, seed int64, maxIter int) (*Clustering, error) {
	n := len(points)
	if k < 1 {
		return nil, fmt.Errorf("k-means: k = %d; want at least 1 cluster", k)
	}
	if k > n {
		return nil, fmt.Errorf("k-means: k = %d is larger than the population of %d; lower k or add subjects", k, n)
	}
	d := len(points[0])
	if d == 0 {
		return nil, fmt.Errorf("k-means: points have no features")
	}
	for i, p := range points {
		if len(p) != d {
			return nil, fmt.Errorf("k-means: point %d has %d features, want %d", i, len(p), d)
		}
		for j, x := range p {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("k-means: point %d feature %d is %v; want a finite number", i, j, x)
			}
		}
	}
	if maxIter <= 0 {
		maxIter = 100
	}
	cent := make([]float64, k*d)
	assign := make([]int32, n)
	dist := make([]float64, n) // squared distance to the assigned centroid
	seedPlusPlus(points, cent, k, d, dist, rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15)))

	sums := make([][]float64, chunks)
	counts := make([][]int, chunks)
	changed := make([]int, chunks)
	for c := range sums {
		sums[c] = make([]float64, k*d)
		counts[c] = make([]int, k)
	}
	for i := range assign {
		assign[i] = -1
	}
	res := &Clustering{K: k}
	workers := min(runtime.GOMAXPROCS(0), chunks)
	for res.Iterations < maxIter {
		res.Iterations++
		parallel(n, workers, func(c, lo, hi int) {
			changed[c] = assignChunk(points[lo:hi], cent, k, d, assign[lo:hi], dist[lo:hi], sums[c], counts[c])
		})
		moved := 0
		for c := range changed {
			moved += changed[c]
		}
		if moved == 0 {
			res.Converged = true
			break
		}
		// Merge partial sums in chunk order, then move the centroids.
		total := sums[0]
		size := counts[0]
		for c := 1; c < chunks; c++ {
			for j := range total {
				total[j] += sums[c][j]
			}
			for j := range size {
				size[j] += counts[c][j]
			}
		}
		for j := 0; j < k; j++ {
			if size[j] == 0 {
				far := farthest(dist)
				copy(cent[j*d:j*d+d], points[far])
				dist[far] = 0
				assign[far] = -1 // forces another iteration
				continue
			}
			for f := 0; f < d; f++ {
				cent[j*d+f] = total[j*d+f] / float64(size[j])
			}
		}
	}
	res.Assign = make([]int, n)
	res.Sizes = make([]int, k)
	for i, a := range assign {
		if a < 0 { // only if the last iteration reseeded an empty cluster
			a = int32(nearest(points[i], cent, k, d))
		}
		res.Assign[i] = int(a)
		res.Sizes[a]++
		res.Inertia += sqdist(points[i], cent[int(a)*d:int(a)*d+d])
	}
	res.Centroids = make([][]float64, k)
	for j := range res.Centroids {
		res.Centroids[j] = cent[j*d : j*d+d : j*d+d]
	}
	return res, nil
}

// assignChunk moves each point of a chunk to its nearest centroid and adds
// it to the chunk's partial sums; it returns how many points moved. It
// works on locals only, so that workers share no cache lines.
func assignChunk(points [][]float64, cent []float64, k, d int, assign []int32, dist, s []float64, cnt []int) int {
	clear(s)
	local := make([]int, k)
	moved := 0
	for i, p := range points {
		p = p[:d]
		best, bd := 0, math.Inf(1)
		for j := 0; j < k; j++ {
			c := cent[j*d : j*d+d]
			var dd float64
			for f, x := range p {
				y := x - c[f]
				dd += y * y
			}
			if dd < bd {
				best, bd = j, dd
			}
		}
		if int32(best) != assign[i] {
			assign[i] = int32(best)
			moved++
		}
		dist[i] = bd
		local[best]++
		row := s[best*d : best*d+d]
		for f, x := range p {
			row[f] += x
		}
	}
	copy(cnt, local)
	return moved
}

// seedPlusPlus picks k initial centroids: the first uniformly, each next
// one with probability proportional to its squared distance from the
// nearest centroid chosen so far (Arthur & Vassilvitskii, 2007).
func seedPlusPlus(points [][]float64, cent []float64, k, d int, dist []float64, rng *rand.Rand) {
	n := len(points)
	copy(cent[:d], points[rng.IntN(n)])
	for i, p := range points {
		dist[i] = sqdist(p, cent[:d])
	}
	for j := 1; j < k; j++ {
		var total float64
		for _, x := range dist {
			total += x
		}
		pick := rng.IntN(n) // every point coincides with a centroid: any will do
		if total > 0 {
			r := rng.Float64() * total
			for i, x := range dist {
				r -= x
				if r < 0 {
					pick = i
					break
				}
			}
		}
		c := cent[j*d : j*d+d]
		copy(c, points[pick])
		for i, p := range points {
			if dd := sqdist(p, c); dd < dist[i] {
				dist[i] = dd
			}
		}
	}
}

func farthest(dist []float64) int {
	best := 0
	for i, x := range dist {
		if x > dist[best] {
			best = i
		}
	}
	return best
}

func nearest(p, cent []float64, k, d int) int {
	best, bd := 0, math.Inf(1)
	for j := 0; j < k; j++ {
		if dd := sqdist(p, cent[j*d:j*d+d]); dd < bd {
			best, bd = j, dd
		}
	}
	return best
}

func sqdist(a, b []float64) float64 {
	b = b[:len(a)]
	var s float64
	for i, x := range a {
		y := x - b[i]
		s += y * y
	}
	return s
}

// parallel runs fn over [0, n) split into chunks fixed ranges, on workers
// goroutines.
func parallel(n, workers int, fn func(c, lo, hi int)) {
	next := make(chan int, chunks)
	for c := 0; c < chunks; c++ {
		next <- c
	}
	close(next)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				fn(c, c*n/chunks, (c+1)*n/chunks)
			}
		}()
	}
	wg.Wait()
}

// Standardize returns the z-scores of points per feature, with the means
// and standard deviations used; a constant feature gets deviation 1.
func Standardize(points [][]float64) (z [][]float64, mean, sd []float64) {
	if len(points) == 0 {
		return nil, nil, nil
	}
	d := len(points[0])
	mean, sd = make([]float64, d), make([]float64, d)
	n := float64(len(points))
	for _, p := range points {
		for f := range mean {
			mean[f] += p[f]
		}
	}
	for f := range mean {
		mean[f] /= n
	}
	for _, p := range points {
		for f := range sd {
			y := p[f] - mean[f]
			sd[f] += y * y
		}
	}
	for f := range sd {
		sd[f] = math.Sqrt(sd[f] / n)
		if sd[f] == 0 {
			sd[f] = 1
		}
	}
	flat := make([]float64, len(points)*d)
	z = make([][]float64, len(points))
	for i, p := range points {
		row := flat[i*d : i*d+d : i*d+d]
		for f := range row {
			row[f] = (p[f] - mean[f]) / sd[f]
		}
		z[i] = row
	}
	return z, mean, sd
}
