"""Would ``torch.compile`` make a pack's step cheaper? Eager and compiled, side by side in one run.

    python benchmarks/pack_compile.py            # CPU: about 2 minutes on 2 idle cores
    python benchmarks/pack_compile.py --device cuda

A pack's step is ``vmap`` of ``functional_call`` over K stacked members (see
``ablate.backends.torch_pack``). Here the same pack is built twice from the same seeds; one
keeps the eager step, the other runs the vmapped loss through ``torch.compile`` (on CUDA also
with ``mode="reduce-overhead"``, which captures the step in CUDA graphs). Printed per case:
compile seconds (the first compiled step, paid once per pack shape), seconds per step after
warm-up, compiled / eager speed, and how far the compiled first-step losses and gradients are
from the eager ones, beside how far the eager float32 ones are from float64 (the rounding any
reordering of the arithmetic may show). ``ablate`` trains packs eagerly; this script is how
that choice is re-measured.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.func import vmap  # noqa: E402

from ablate import backends  # noqa: E402
from ablate.backends.torch_device import gather_batch  # noqa: E402
from ablate.backends.torch_pack import PackTrainer, create_pack  # noqa: E402
from ablate.config import TrainConfig  # noqa: E402
from ablate.execution.progress import format_table as table  # noqa: E402

CASES = {  # name: (model, input shape, batch size, members)
    "cpu": [("mlp", (8, 8, 1), 32, 15), ("fastai-cnn", (16, 16, 3), 32, 6)],
    "cuda": [("small-cnn", (28, 28, 1), 128, 24), ("minigooglenet", (32, 32, 3), 8, 24)],
}


def build(backend, model: str, shape: tuple[int, ...], batch: int, k: int, x: np.ndarray, targets: np.ndarray):
    options = dict(model=model, input_shape=shape, num_classes=10, loss_smoothing=0.0,
                   train=TrainConfig(epochs=1, batch_size=batch, lr=0.01))
    return create_pack(backend, member_options=[dict(options, seed=s) for s in range(k)], seeds=list(range(k)),
                       x_train=x, targets=targets)


def compile_losses(pack: PackTrainer, mode: str) -> None:
    """Route ``pack``'s losses through ``torch.compile`` of the vmapped member loss (gather stays eager)."""
    def losses(params, buffers, xb, tb):
        return vmap(pack._member_loss, randomness="different")(params, buffers, xb, tb)

    compiled = torch.compile(losses, mode=mode, dynamic=False)

    def pack_losses(idx: np.ndarray, draws, mixes=None) -> torch.Tensor:
        k, b = idx.shape
        it = torch.from_numpy(np.ascontiguousarray(idx, np.int64)).to(pack.device)
        xb = gather_batch(pack.images, it.reshape(-1))
        xb = xb.reshape(k, b, *xb.shape[1:])
        tb = pack.targets[pack._members[:, None], it]
        pack.base.train()
        return compiled(pack.params, pack.buffers, xb, tb)

    pack._losses = pack_losses


def float64_gradients(pack: PackTrainer, idx: np.ndarray):
    """The same first-step gradients in float64: the reference the float32 rounding is judged by."""
    pack.params = {n: p.detach().double().requires_grad_() for n, p in pack.params.items()}
    pack.buffers = {n: (b.double() if b.is_floating_point() else b) for n, b in pack.buffers.items()}
    pack.base, pack.images = pack.base.double(), pack.images.double()
    pack.targets = pack.targets.double()
    pack.optimizer = torch.optim.SGD(list(pack.params.values()), lr=0.01)
    return pack.losses_and_gradients(idx)[1]


def max_relative(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-30)) for x, y in zip(a, b))


def per_step(pack: PackTrainer, batches: list[np.ndarray], sync) -> float:
    t0 = time.perf_counter()
    for idx in batches:
        pack.step(idx, None, 0.01)
    pack.take_totals()
    sync()
    return (time.perf_counter() - t0) / len(batches)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=100, help="timed steps per setting (default 100)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("cuda: skipped (no CUDA GPU on this machine)")
        return 0
    backend = backends.load("torch")
    backend.configure(device=args.device, threads=None, deterministic=True)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    modes = ["default"] + (["reduce-overhead"] if args.device == "cuda" else [])
    rows = []
    for model, shape, batch, k in CASES[args.device]:
        rng = np.random.default_rng(0)
        n = 2048
        x = rng.normal(size=(n, *shape)).astype(np.float32)
        targets = np.eye(10, dtype=np.float32)[rng.integers(0, 10, size=(k, n))]
        batches = [np.stack([rng.permutation(n)[:batch] for _ in range(k)]) for _ in range(args.steps + 3)]
        eager = build(backend, model, shape, batch, k, x, targets)
        losses, grads = eager.losses_and_gradients(batches[0])
        rounding = max_relative(grads, float64_gradients(build(backend, model, shape, batch, k, x, targets),
                                                         batches[0]))
        eager = build(backend, model, shape, batch, k, x, targets)
        per_step(eager, batches[:3], sync)
        eager_s = per_step(eager, batches[3:], sync)
        for mode in modes:
            pack = build(backend, model, shape, batch, k, x, targets)
            compile_losses(pack, mode)
            t0 = time.perf_counter()
            c_losses, c_grads = pack.losses_and_gradients(batches[0])
            sync()
            compile_s = time.perf_counter() - t0
            per_step(pack, batches[:3], sync)
            compiled_s = per_step(pack, batches[3:], sync)
            rows.append([f"{model} {'x'.join(map(str, shape))} b{batch} K={k}", mode, f"{compile_s:.1f}",
                         f"{eager_s * 1e3:.2f}", f"{compiled_s * 1e3:.2f}", f"{eager_s / compiled_s:.2f}x",
                         f"{float(np.abs(c_losses - losses).max()):.1e}", f"{max_relative(c_grads, grads):.1e}",
                         f"{rounding:.1e}"])
    print(f"{args.device}: {torch.__version__}, {args.steps} timed steps per setting, one pack per row")
    print(table([["pack", "compile mode", "compile s", "eager ms/step", "compiled ms/step", "compiled speed",
                  "|loss diff|", "grad rel diff", "fp32 vs fp64 grad rel"], *rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
