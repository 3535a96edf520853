// troupe's GPU kernels. Each mirrors a CPU kernel (kernels.Reference, compute's loss, the
// optimizers in compute/optim) that the cuda-tagged tests hold it to. Compiled offline to PTX
// for compute_80 (`go generate ./kernels/cuda`): the driver JIT-compiles it for the GPU it
// runs on, so the binary needs nothing of CUDA but libcuda. Matrices are row-major, as in
// kernels.Set; every kernel checks its bounds, so grids may overshoot.

#define GRID_STRIDE(i, n) \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
       i += (long long)blockDim.x * gridDim.x)

// ---- matrix multiply ----------------------------------------------------------------------
// C = alpha*op(A)*op(B) + beta*C, op(A) m×k, op(B) k×n. A block of 256 threads computes a
// 128×128 tile of C, each thread an 8×8 sub-tile of rows ty+16r and columns tx+16c: strided so
// that a warp reads shared memory without bank conflicts and writes C coalesced. The k loop
// stages 8-wide slices of A and B in shared memory. beta == 0 never reads C.

#define TILE 128
#define SLICE 8
#define SUB 8

template <bool TA, bool TB>
__device__ void sgemm_tile(int m, int n, int k, float alpha, const float* __restrict__ A, int lda,
                           const float* __restrict__ B, int ldb, float beta, float* __restrict__ C,
                           int ldc) {
  __shared__ float As[SLICE][TILE];
  __shared__ float Bs[SLICE][TILE];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int row0 = blockIdx.y * TILE, col0 = blockIdx.x * TILE;
  float acc[SUB][SUB];
#pragma unroll
  for (int r = 0; r < SUB; r++)
#pragma unroll
    for (int c = 0; c < SUB; c++) acc[r][c] = 0.f;

  for (int k0 = 0; k0 < k; k0 += SLICE) {
    // 1024 elements of each tile, four per thread, read along the contiguous dimension.
#pragma unroll
    for (int e = threadIdx.x; e < TILE * SLICE; e += 256) {
      int i, kk;
      if (TA) { i = e % TILE; kk = e / TILE; } else { i = e / SLICE; kk = e % SLICE; }
      const int gi = row0 + i, gk = k0 + kk;
      float v = 0.f;
      if (gi < m && gk < k) v = TA ? A[(long long)gk * lda + gi] : A[(long long)gi * lda + gk];
      As[kk][i] = v;
    }
#pragma unroll
    for (int e = threadIdx.x; e < TILE * SLICE; e += 256) {
      int j, kk;
      if (TB) { j = e / SLICE; kk = e % SLICE; } else { j = e % TILE; kk = e / TILE; }
      const int gj = col0 + j, gk = k0 + kk;
      float v = 0.f;
      if (gj < n && gk < k) v = TB ? B[(long long)gj * ldb + gk] : B[(long long)gk * ldb + gj];
      Bs[kk][j] = v;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < SLICE; kk++) {
      float a[SUB], b[SUB];
#pragma unroll
      for (int r = 0; r < SUB; r++) a[r] = As[kk][ty + 16 * r];
#pragma unroll
      for (int c = 0; c < SUB; c++) b[c] = Bs[kk][tx + 16 * c];
#pragma unroll
      for (int r = 0; r < SUB; r++)
#pragma unroll
        for (int c = 0; c < SUB; c++) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < SUB; r++) {
    const int i = row0 + ty + 16 * r;
    if (i >= m) continue;
#pragma unroll
    for (int c = 0; c < SUB; c++) {
      const int j = col0 + tx + 16 * c;
      if (j >= n) continue;
      float* out = &C[(long long)i * ldc + j];
      *out = beta == 0.f ? alpha * acc[r][c] : alpha * acc[r][c] + beta * *out;
    }
  }
}

#define SGEMM(name, TA, TB)                                                                  \
  extern "C" __global__ void __launch_bounds__(256)                                           \
      name(int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb, \
           float beta, float* C, int ldc) {                                                    \
    sgemm_tile<TA, TB>(m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);                         \
  }
SGEMM(sgemm_nn, false, false)
SGEMM(sgemm_nt, false, true)
SGEMM(sgemm_tn, true, false)
SGEMM(sgemm_tt, true, true)

// ---- element-wise -------------------------------------------------------------------------

// dst[i] = x[i]*y[i]
extern "C" __global__ void mul(float* dst, const float* x, const float* y, long long n) {
  GRID_STRIDE(i, n) dst[i] = x[i] * y[i];
}

// c[i, j] += v[j] for a rows×cols matrix.
extern "C" __global__ void add_row_vector(float* c, const float* v, long long rows, int cols) {
  GRID_STRIDE(i, rows * cols) c[i] += v[i % cols];
}

// dst = max(x, 0)
extern "C" __global__ void relu(float* dst, const float* x, long long n) {
  GRID_STRIDE(i, n) dst[i] = x[i] > 0.f ? x[i] : 0.f;
}

// dst = dy where y > 0, else 0; dst may be dy
extern "C" __global__ void relu_grad(float* dst, const float* dy, const float* y, long long n) {
  GRID_STRIDE(i, n) dst[i] = y[i] > 0.f ? dy[i] : 0.f;
}

// c[i, j] = max(c[i, j] + v[j], 0): a dense layer's bias and ReLU in one pass.
extern "C" __global__ void bias_relu(float* c, const float* v, long long rows, int cols) {
  GRID_STRIDE(i, rows * cols) {
    const float s = c[i] + v[i % cols];
    c[i] = s > 0.f ? s : 0.f;
  }
}

// y = tanh(x), in double and rounded once, as compute's tanh layer.
extern "C" __global__ void tanh_forward(float* y, const float* x, long long n) {
  GRID_STRIDE(i, n) y[i] = (float)tanh((double)x[i]);
}

// dx = dy*(1 - y*y) from the layer's output y, in float32 as compute's tanh layer. dx may be dy.
extern "C" __global__ void tanh_backward(float* dx, const float* dy, const float* y, long long n) {
  GRID_STRIDE(i, n) dx[i] = dy[i] * (1.f - y[i] * y[i]);
}

// dst[i] += src[i]: the all-reduce's sum.
extern "C" __global__ void add(float* dst, const float* src, long long n) {
  GRID_STRIDE(i, n) dst[i] += src[i];
}

// x[i] *= s
extern "C" __global__ void scale(float* x, float s, long long n) {
  GRID_STRIDE(i, n) x[i] *= s;
}

// ---- reductions ---------------------------------------------------------------------------

// dst[j] = sum_i a[i, j], one thread per column, rows in order (as Reference.ColSums: float32).
extern "C" __global__ void col_sums(float* dst, const float* a, long long rows, int cols) {
  GRID_STRIDE(j, (long long)cols) {
    float s = 0.f;
    for (long long i = 0; i < rows; i++) s += a[i * cols + j];
    dst[j] = s;
  }
}

// Block-wide sum of a double, for blocks of 256 threads.
__device__ double block_sum(double v) {
  __shared__ double part[256];
  part[threadIdx.x] = v;
  __syncthreads();
  for (int s = 128; s > 0; s >>= 1) {
    if (threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
    __syncthreads();
  }
  const double total = part[0];
  __syncthreads();
  return total;
}

// dst[i] = sum_j a[i, j] accumulated in double; one block of 256 threads per row.
extern "C" __global__ void row_sums(float* dst, const float* a, long long rows, int cols) {
  for (long long i = blockIdx.x; i < rows; i += gridDim.x) {
    double s = 0;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) s += a[i * cols + j];
    s = block_sum(s);
    if (threadIdx.x == 0) dst[i] = (float)s;
  }
}

// partials[b] = sum of x[i]^2 over the elements block b visits, in double; blocks of 256
// threads. sum_doubles then adds the partials in a fixed order, so that the total is the same
// bits on every run for the same n: replicas that clip by it must take the same step.
extern "C" __global__ void sum_squares(double* partials, const float* x, long long n) {
  double s = 0;
  GRID_STRIDE(i, n) s += (double)x[i] * x[i];
  s = block_sum(s);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// *out = sum of the count values; one block of 256 threads.
extern "C" __global__ void sum_doubles(double* out, const double* v, int count) {
  double s = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += v[i];
  s = block_sum(s);
  if (threadIdx.x == 0) *out = s;
}

// ---- loss -----------------------------------------------------------------------------------

// Softmax cross-entropy of each row of logits (rows×classes) against labels, one block of 256
// threads per row, in double as kernels.SoftmaxCrossEntropy: loss[i] = max + log(sum) - z[y]
// with sum = Σ exp(z - max); when grad is not null, grad[i, :] = scale*(exp(z - max)/sum -
// onehot(y)). correct[i] is 1 when the first maximum is the label.
extern "C" __global__ void softmax_xent(double* loss, int* correct, float* grad, const float* logits,
                                        const int* labels, long long rows, int classes, float scale) {
  __shared__ double red[256];
  __shared__ int arg[256];
  for (long long i = blockIdx.x; i < rows; i += gridDim.x) {
    const float* z = logits + i * classes;
    double mx = -1e300;
    int am = classes;
    for (int j = threadIdx.x; j < classes; j += blockDim.x) {
      if ((double)z[j] > mx || ((double)z[j] == mx && j < am)) { mx = z[j]; am = j; }
    }
    red[threadIdx.x] = mx;
    arg[threadIdx.x] = am;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
      if (threadIdx.x < s) {
        const double o = red[threadIdx.x + s];
        const int oa = arg[threadIdx.x + s];
        if (o > red[threadIdx.x] || (o == red[threadIdx.x] && oa < arg[threadIdx.x])) {
          red[threadIdx.x] = o;
          arg[threadIdx.x] = oa;
        }
      }
      __syncthreads();
    }
    const double zmax = red[0];
    const int argmax = arg[0];
    __syncthreads();
    double sum = 0;
    for (int j = threadIdx.x; j < classes; j += blockDim.x) sum += exp((double)z[j] - zmax);
    sum = block_sum(sum);
    const int label = labels[i];
    if (grad != nullptr) {
      for (int j = threadIdx.x; j < classes; j += blockDim.x) {
        double p = exp((double)z[j] - zmax) / sum;
        if (j == label) p -= 1;
        grad[i * classes + j] = scale * (float)p;
      }
    }
    if (threadIdx.x == 0) {
      loss[i] = zmax + log(sum) - (double)z[label];
      correct[i] = argmax == label;
    }
    __syncthreads();
  }
}

// The batch's totals: *lossSum = Σ loss[i] and *correctSum = Σ correct[i], in a fixed order;
// one block of 256 threads.
extern "C" __global__ void loss_stats(double* lossSum, int* correctSum, const double* loss,
                                      const int* correct, long long n) {
  double l = 0, c = 0;
  for (long long i = threadIdx.x; i < n; i += blockDim.x) {
    l += loss[i];
    c += correct[i];
  }
  l = block_sum(l);
  c = block_sum(c);
  if (threadIdx.x == 0) {
    *lossSum = l;
    *correctSum = (int)c;
  }
}

// ---- optimizers: one pass over the flat buffers, as compute/optim --------------------------

// Adam and AdamW: decay = 1 - lr*wd for AdamW (else 1), l2 = wd for Adam (else 0); stepSize =
// lr/(1-b1^t); invSqrtC2 = 1/sqrt(1-b2^t); c1 = 1-b1, c2 = 1-b2.
extern "C" __global__ void adam_step(float* p, const float* g, float* m, float* v, long long n,
                                     float decay, float l2, float stepSize, float invSqrtC2, float b1,
                                     float c1, float b2, float c2, float eps) {
  GRID_STRIDE(i, n) {
    const float pi = p[i];
    const float gi = g[i] + l2 * pi;
    const float mi = b1 * m[i] + c1 * gi;
    const float vi = b2 * v[i] + c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float denom = (float)sqrt((double)vi) * invSqrtC2 + eps;
    p[i] = pi * decay - stepSize * mi / denom;
  }
}

// SGD with optional momentum (vel not null) and Nesterov.
extern "C" __global__ void sgd_step(float* p, const float* g, float* vel, long long n, float rate,
                                    float wd, float mu, int nesterov) {
  GRID_STRIDE(i, n) {
    const float pi = p[i];
    float gi = g[i] + wd * pi;
    if (vel != nullptr) {
      const float vi = mu * vel[i] + gi;
      vel[i] = vi;
      gi = nesterov ? gi + mu * vi : vi;
    }
    p[i] = pi - rate * gi;
  }
}

// RMSprop with optional momentum (vel not null).
extern "C" __global__ void rmsprop_step(float* p, const float* g, float* sq, float* vel, long long n,
                                        float rate, float wd, float a, float ca, float mu, float eps) {
  GRID_STRIDE(i, n) {
    const float pi = p[i];
    const float gi = g[i] + wd * pi;
    const float s = a * sq[i] + ca * gi * gi;
    sq[i] = s;
    float u = gi / ((float)sqrt((double)s) + eps);
    if (vel != nullptr) {
      u += mu * vel[i];
      vel[i] = u;
    }
    p[i] = pi - rate * u;
  }
}
