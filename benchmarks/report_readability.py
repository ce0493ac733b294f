"""Report readability: render report.html for 2, 5 and 20 variants and screenshot it with headless Chromium.

The variants are SYNTHETIC (sizes, latencies and accuracies shaped like the digits CNN's in RESULTS.md, with
deliberately crowded points: same-size tflite/onnx pairs, near-equal latencies, one 100 % accuracy) -- this
checks the layout of the plots, not any model; each report says so in its notes.

    python benchmarks/report_readability.py [--out DIR] [--no-screenshot]

Screenshots need the `chromium` binary (Debian: apt-get install chromium); without it only the HTML is written.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeml.report import Cost, Report, Training, Variant, write_report  # noqa: E402

TARGETS = ("host", "rpi4", "coral-usb", "jetson-orin-nano")
# (name, size KiB, host p50 ms, top-1): fp32 / int8 / pruned at several sparsities, tflite and onnx
BASE = [("fp32.tflite", 99.3, 0.0311, 0.9917), ("int8.tflite", 31.3, 0.0160, 0.9917),
        ("fp32.onnx", 100.0, 0.0627, 0.9917), ("int8.onnx", 38.9, 0.0672, 0.9917),
        ("pruned50_int8.tflite", 17.2, 0.0121, 0.9861)]


def variants(n: int) -> list[Variant]:
    rows = list(BASE[:n]) if n <= len(BASE) else list(BASE)
    k = 0
    while len(rows) < n:  # more pruned variants: sparsity 10..95 %, both formats
        sparsity = 10 + 5 * k + 5 * (k >= 8)  # 50 % tflite is in BASE
        keep = 1 - sparsity / 100
        fmt = ("tflite", "onnx")[k % 2]
        acc = min(1.0, 0.9917 - 0.0008 * max(0, sparsity - 40) ** 1.3 / 10) if sparsity != 30 else 1.0
        rows.append((f"pruned{sparsity}_int8.{fmt}", 31.3 * keep + 4, (0.016 if fmt == "tflite" else 0.067) * keep
                     + 0.004, acc))
        k += 1
    out = []
    for name, kib, ms, acc in rows[:n]:
        v = Variant(name, size_bytes=int(kib * 1024), macs=int(76_000 * kib / 31.3), accuracy=acc)
        v.costs["host"] = Cost("host", "measured", ms, ms * 1.12, stats={"min": ms * 0.9, "p50": ms, "p90": ms * 1.12,
                                                                          "p99": ms * 1.5, "max": ms * 3},
                               ci95=[ms * 0.98, ms * 1.02])
        if name.endswith(".tflite"):  # boards that take .tflite: labelled estimates
            for t, f in (("rpi4", 6.0), ("coral-usb", 14.0), ("jetson-orin-nano", 2.5)):
                v.costs[t] = Cost(t, "estimated", ms * f + 0.05, energy_mj=ms * f * 3, extrapolated=True)
        out.append(v)
    return out


def report(n: int) -> Report:
    vs = variants(n)
    return Report(variants=vs, targets=list(TARGETS), training=Training(flops=3.4e12, wall_s=41.0),
                  deploy=vs[0].name, sources=["benchmarks/report_readability.py"],
                  notes=[f"SYNTHETIC data: {n} made-up variants to check the plots' layout, not measurements"])


def screenshot(html: Path, png: Path, height: int) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("no chromium binary: apt-get install chromium (or run with --no-screenshot)")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size=1200,{height}",
                        html.resolve().as_uri()], check=True, capture_output=True, timeout=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "report_screenshots")
    ap.add_argument("--no-screenshot", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="*", default=[2, 5, 20])
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        html = write_report(report(n), args.out / f"report_{n}.html", force=True)
        print(f"wrote {html}")
        if not args.no_screenshot:
            png = args.out / f"report_{n}.png"
            screenshot(html, png, height={2: 1500, 5: 1750}.get(n, 2700))
            _shrink(png)
            print(f"wrote {png}")


def _shrink(png: Path) -> None:
    """A palette PNG (400 KiB -> ~120 KiB) when Pillow is there; the screenshot as is otherwise."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(png) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    small.save(png, optimize=True)


if __name__ == "__main__":
    main()
