#!/usr/bin/python3
"""PyTorch reference for troupe's GPT: the same model, the same bytes, the same recipe.

  gpt_torch.py train [--threads N] [--blas-threads N] [--openblas-core auto] [model/recipe flags]
      Trains the GPT of examples/gpt-go.yaml (the flags' defaults) on the same windows of the
      Go standard library's source that troupe trains on, and prints one RESULT {json} line:
      tokens/s of the training loop, the validation loss in nats and bits per byte, peak RSS,
      and the corpus digest computed as troupe computes it (so the two runs provably read the
      same tokens).
  gpt_torch.py logits MODEL.safetensors WINDOWS.i32 N
      Loads a model troupe exported (load_state_dict strict) and prints the logits of the N
      windows in WINDOWS.i32 (little-endian int32 token ids, N x block_size) as JSON.
  gpt_torch.py save MODEL.safetensors OUT.safetensors STEPS
      Loads an exported model, trains it STEPS steps on the corpus in PyTorch (fine-tuning on
      the other side) and writes it back with the same names, for troupe import.

The model is written here in the layout of nanoGPT's model.py (transformer.wte, wpe, h.<i>.ln_1,
attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, ln_f, lm_head tied to wte), with GELU's
tanh approximation as troupe computes it. torch's scaled_dot_product_attention (2.0 and later)
is used where it exists; Debian 12's torch 1.13 lacks it, and the attention is then the
explicit masked softmax (the same arithmetic, unfused).

Set-up (Debian 12): apt-get install -y python3-torch python3-numpy libopenblas0-pthread.
"""
import argparse
import hashlib
import json
import math
import os
import resource
import struct
import subprocess
import sys
import time
import zlib

OPENBLAS_DIR = "/usr/lib/x86_64-linux-gnu/openblas-pthread"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["train", "logits", "save"])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--blas-threads", type=int, default=None, help="OpenBLAS threads (default: --threads)")
    ap.add_argument("--openblas-core", default="inherit",
                    help="'auto' unsets OPENBLAS_CORETYPE so OpenBLAS picks its AVX-512 kernel; 'inherit' keeps the environment's")
    ap.add_argument("--src", default=None, help="corpus directory (default: `go env GOROOT`/src, .go files)")
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--train-limit", type=int, default=48000, help="training windows (one epoch)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: the epoch); the schedule spans the epoch")
    ap.add_argument("--validation", type=int, default=256, help="validation windows")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.99)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    return ap.parse_args()


def reexec_with_blas(args):
    """Pins OpenBLAS and the thread counts, which must be set before torch loads."""
    if os.environ.get("_GPT_TORCH_REEXEC") == "1":
        return
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(args.threads)
    env["OPENBLAS_NUM_THREADS"] = str(args.blas_threads or args.threads)
    if args.openblas_core == "auto":
        env.pop("OPENBLAS_CORETYPE", None)
    elif args.openblas_core != "inherit":
        env["OPENBLAS_CORETYPE"] = args.openblas_core
    if os.path.exists(os.path.join(OPENBLAS_DIR, "libblas.so.3")):
        env["LD_LIBRARY_PATH"] = OPENBLAS_DIR + ":" + env.get("LD_LIBRARY_PATH", "")
    env["_GPT_TORCH_REEXEC"] = "1"
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


# ---- the corpus, read as troupe's data/text reads it -------------------------------------

def go_source_dir():
    root = subprocess.run(["go", "env", "GOROOT"], capture_output=True, text=True, check=True).stdout.strip()
    return os.path.join(root, "src")


def is_text(b):
    if b"\x00" in b:
        return False
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_corpus(root, go_only):
    """(path relative to root, bytes) of every text file, in lexical walk order; testdata and
    names starting with '.' or '_' skipped, as troupe does."""
    docs = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not (d.startswith(".") or d.startswith("_") or d == "testdata")
                             and not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if name.startswith(".") or name.startswith("_") or os.path.islink(path) or not os.path.isfile(path):
                continue
            if go_only and not name.endswith(".go"):
                continue
            b = open(path, "rb").read()
            if b and is_text(b):
                docs.append((os.path.relpath(path, root).replace(os.sep, "/"), b))
    return docs


def split_of(path):
    h = int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") % 1000
    return "train" if h < 900 else ("validation" if h < 950 else "test")


def byte_tokens(docs):
    """The byte tokenizer's ids of docs in sha256-of-path order, each followed by a newline."""
    ordered = sorted(docs, key=lambda d: hashlib.sha256(d[0].encode()).digest())
    return b"".join(b + b"\n" for _, b in ordered)


def byte_tokenizer_binary():
    """troupe's MarshalBinary of its byte tokenizer: magic, version, kind, vocab, crc32."""
    b = b"TRTK" + bytes([1, 1]) + struct.pack("<I", 256)
    return b + struct.pack("<I", zlib.crc32(b) & 0xFFFFFFFF)


def corpus_digest(stream):
    import numpy as np
    h = hashlib.sha256(byte_tokenizer_binary())
    h.update(np.frombuffer(stream, dtype=np.uint8).astype("<i4").tobytes())
    return h.hexdigest()


def windows(stream, block, limit):
    import torch
    n = (len(stream) - 1) // block
    if limit > 0:
        n = min(n, limit)
    ids = torch.frombuffer(bytearray(stream[: n * block + 1]), dtype=torch.uint8).long()
    x = ids[: n * block].view(n, block)
    y = ids[1: n * block + 1].view(n, block)
    return x, y


# ---- the model ------------------------------------------------------------------------

def build_gpt(n_layer, n_head, n_embd, block_size, vocab):
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(n_embd, 3 * n_embd)
            self.c_proj = nn.Linear(n_embd, n_embd)

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.c_attn(x).split(n_embd, dim=2)
            q, k, v = (z.view(b, t, n_head, c // n_head).transpose(1, 2) for z in (q, k, v))
            if hasattr(F, "scaled_dot_product_attention"):
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(c // n_head))
                mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
                y = s.masked_fill(~mask, float("-inf")).softmax(dim=-1) @ v
            return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = nn.Linear(n_embd, 4 * n_embd)
            self.c_proj = nn.Linear(4 * n_embd, n_embd)

        def forward(self, x):
            return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn = nn.LayerNorm(n_embd), Attention()
            self.ln_2, self.mlp = nn.LayerNorm(n_embd), MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(vocab, n_embd), wpe=nn.Embedding(block_size, n_embd),
                h=nn.ModuleList(Block() for _ in range(n_layer)), ln_f=nn.LayerNorm(n_embd)))
            self.lm_head = nn.Linear(n_embd, vocab, bias=False)
            self.lm_head.weight = self.transformer.wte.weight  # tied, as troupe's
            for name, p in self.named_parameters():
                if name.endswith("c_proj.weight"):
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))
                elif p.dim() == 2:
                    nn.init.normal_(p, 0.0, 0.02)
                elif "ln_" in name and name.endswith("weight"):
                    nn.init.ones_(p)
                else:
                    nn.init.zeros_(p)

        def forward(self, idx):
            t = idx.shape[1]
            tr = self.transformer
            x = tr.wte(idx) + tr.wpe(torch.arange(t, device=idx.device))
            for block in tr.h:
                x = block(x)
            return self.lm_head(tr.ln_f(x))

    return GPT()


def optimizer_of(model, args):
    import torch
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "wte" not in n and "wpe" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "wte" not in n and "wpe" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay}, {"params": other, "weight_decay": 0.0}],
                             lr=args.lr, betas=(args.beta1, args.beta2), eps=1e-8)


def lr_at(step, total, args):
    """troupe's schedule: linear warmup over warmup steps, then cosine to min_lr at total."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    span = total - args.warmup
    t = step - args.warmup
    if span <= 0 or t >= span:
        return args.min_lr
    return args.min_lr + (args.lr - args.min_lr) * 0.5 * (1 + math.cos(math.pi * t / span))


def train_steps(model, x, y, args, steps=None, log=None):
    import torch
    from torch.nn import functional as F
    opt = optimizer_of(model, args)
    n = x.shape[0]
    per_epoch = (n + args.batch - 1) // args.batch
    total = per_epoch
    steps = steps or (min(total, args.max_steps) if args.max_steps > 0 else total)
    gen = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(n, generator=gen)
    began = time.perf_counter()
    for step in range(steps):
        idx = order[(step % per_epoch) * args.batch: (step % per_epoch + 1) * args.batch]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, args)
        logits = model(x[idx])
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y[idx].view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        if log and (step % 100 == 0 or step == steps - 1):
            log("step %d/%d loss %.4f" % (step + 1, steps, loss.item()))
    return steps, time.perf_counter() - began


def evaluate(model, x, y, chunk=32):
    import torch
    from torch.nn import functional as F
    total = 0.0
    with torch.no_grad():
        for i in range(0, x.shape[0], chunk):
            logits = model(x[i:i + chunk])
            total += F.cross_entropy(logits.view(-1, logits.shape[-1]), y[i:i + chunk].reshape(-1), reduction="sum").item()
    return total / y.numel()


# ---- safetensors, with json and struct alone --------------------------------------------

def read_safetensors(path):
    import numpy as np
    import torch
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", None) or {}
    out = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError("%s: dtype %s" % (name, info["dtype"]))
        b, e = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"]).copy())
    return out, meta


def write_safetensors(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name in sorted(tensors):
        b = tensors[name].detach().contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_exported(path):
    tensors, meta = read_safetensors(path)
    g = json.loads(meta["troupe.model"])["gpt"]
    model = build_gpt(g["n_layer"], g["n_head"], g["n_embd"], g["block_size"], g["vocab"])
    model.load_state_dict(tensors, strict=True)
    return model, g, meta


def main():
    args = parse_args()
    reexec_with_blas(args)
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    log = lambda s: print(s, file=sys.stderr, flush=True)
    if args.mode == "logits":
        model_path, win_path, n = args.files[0], args.files[1], int(args.files[2])
        model, g, _ = load_exported(model_path)
        ids = torch.frombuffer(bytearray(open(win_path, "rb").read()), dtype=torch.int32).long().view(n, g["block_size"])
        with torch.no_grad():
            logits = model.eval()(ids)
        print(json.dumps({"torch": torch.__version__, "logits": logits.tolist()}))
        return
    src = args.src or go_source_dir()
    docs = read_corpus(src, args.src is None)
    by_split = {"train": [], "validation": [], "test": []}
    for d in docs:
        by_split[split_of(d[0])].append(d)
    train_stream = byte_tokens(by_split["train"])
    if args.mode == "save":
        model, g, meta = load_exported(args.files[0])
        x, y = windows(train_stream, g["block_size"], args.train_limit)
        train_steps(model.train(), x, y, args, steps=int(args.files[2]), log=log)
        state = {k: v for k, v in model.state_dict().items()}
        write_safetensors(args.files[1], state, meta)
        return
    x, y = windows(train_stream, args.block_size, args.train_limit)
    vx, vy = windows(byte_tokens(by_split["validation"]), args.block_size, args.validation)
    model = build_gpt(args.n_layer, args.n_head, args.n_embd, args.block_size, 256)
    params = sum(p.numel() for p in model.parameters())
    log("torch %s, %d threads, %d parameters, %d training windows" % (torch.__version__, args.threads, params, x.shape[0]))
    steps, seconds = train_steps(model.train(), x, y, args, log=log)
    val = evaluate(model.eval(), vx, vy)
    result = {
        "torch": torch.__version__, "threads": args.threads, "blas_threads": args.blas_threads or args.threads,
        "params": params, "steps": steps, "train_seconds": seconds,
        "tokens_per_second": steps * args.batch * args.block_size / seconds,
        "val_loss": val, "val_bits_per_byte": val / math.log(2),
        "corpus_digest": corpus_digest(train_stream),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "sdpa": hasattr(torch.nn.functional, "scaled_dot_product_attention"),
    }
    print("RESULT " + json.dumps(result, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
