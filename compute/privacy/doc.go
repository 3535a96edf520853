// Package privacy accounts the privacy spent by DP-SGD: it tracks the Rényi
// differential privacy (RDP) of every noisy step and converts the total into
// the (epsilon, delta) figure a run reports.
//
// # What is accounted
//
// One DP-SGD step is the Poisson-subsampled Gaussian mechanism: every
// training record joins the step's batch independently with probability q;
// each record's gradient is clipped to L2 norm C; the clipped gradients are
// summed; Gaussian noise of standard deviation sigma*C is added to the sum
// once, for the whole global step. sigma, the noise multiplier, is what the
// accountant takes. Neighbouring datasets differ by adding or removing one
// record, so the sum's sensitivity is C.
//
// In data-parallel training the noise must be added once to the global sum
// (or split so that the workers' shares add up to variance sigma^2 C^2);
// noise added independently at sigma*C on each of W workers is a multiplier
// of sigma*sqrt(W), and noise added only to a local share before averaging
// protects less than it seems. Accounting is per global step, not per worker.
//
// RDP at each order of a grid (DefaultOrders unless chosen) is computed
// exactly: integer orders by the binomial expansion of Mironov, Talwar and
// Zhang 2019 ("Rényi Differential Privacy of the Sampled Gaussian
// Mechanism"), fractional ones by that paper's two-sided series, both in log
// space. Steps compose by adding RDP, order by order, whatever their (q,
// sigma). The conversion to (epsilon, delta) is Improved (Balle et al. 2020)
// by default; Classic (Mironov 2017) is kept to compare with older figures.
//
// # Assumptions
//
// The guarantee holds for Poisson sampling. Most loaders instead shuffle and
// cut fixed-size batches; practitioners commonly account those as Poisson
// with q = batch size / dataset size, and so do TensorFlow Privacy and
// Opacus. That is an approximation, not a guarantee: shuffled batches can
// leak more than the Poisson figure says. The dataset size used for q must be
// the real one, and every step that touches private data must be recorded,
// including those of restarted or discarded attempts.
//
// # Use
//
// A trainer makes one Accountant per run and records each global step (or a
// run of equal steps) with Step(q, sigma, n); it reads Epsilon(delta) when it
// logs. Stepping with the (q, sigma) of the previous call is an addition;
// a new (q, sigma) costs one RDP evaluation over the orders, one to a few
// milliseconds over DefaultOrders. Epsilon is a scan over the orders, a few
// microseconds. Segments returns the history, which rebuilds the accountant
// on resume. NoiseMultiplier answers the planning question: what sigma keeps
// a run of given q and length within a target epsilon.
package privacy
