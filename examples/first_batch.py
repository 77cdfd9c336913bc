"""What a fresh process pays for its first compiled batch (docs/performance.md, "Compile cost").

    PYECHO_CACHE_DIR=/tmp/empty python examples/first_batch.py cold extrapolated:4
    PYECHO_CACHE_DIR=/tmp/empty python examples/first_batch.py warm extrapolated:4

Times `simulate_batch` twice on 16 echoes of 100 x 100 (the paper's grid, power law, float32,
compiled): the first call's excess over the second is the compile. Run it twice with the same
cache directory, the first time empty (cold), then filled (warm).
"""
import os
import sys
import time

os.environ.setdefault("PYECHO_TORCH_COMPILE", "always")

from pyecho import EchoParams, simulate_batch  # noqa: E402 (after the compile policy)

BATCH = 16


def main(label: str, scheme: str = "explicit") -> None:
    name, _, every = scheme.partition(":")  # "explicit" or "extrapolated:K"
    params = EchoParams(lattice=100, kernel="power", kernel_param=2.0, alpha_xy=0.05, alpha_z=0.05, scheme=name,
                        field_every=int(every) if every else None)
    batch = [params] * BATCH
    t0 = time.perf_counter()
    simulate_batch(batch, backend="torch", dtype="float32")
    t1 = time.perf_counter()
    simulate_batch(batch, backend="torch", dtype="float32")
    t2 = time.perf_counter()
    print(f"{label} {scheme}: first batch {t1 - t0:.1f} s, second {t2 - t1:.1f} s, excess {t1 - t0 - (t2 - t1):.1f} s")


if __name__ == "__main__":
    main(*sys.argv[1:])
