"""Paired data: the generators are deterministic and aligned, the A|B loader splits and normalises, the fetch
script checks, unpacks atomically and refuses bad archives."""
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rl_i2it.data.paired import (FACADE_CLASSES, FACADE_PALETTE, check_pairs, edge_map, edges2photo, facades_synth,
                                 load_paired, load_pix2pix, split_ab)
from rl_i2it.data.checksums import sha256_of
from rl_i2it.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------- generated sets
def test_facades_are_deterministic_per_seed_and_independent_of_the_batch():
    a = facades_synth(6, 32, seed=3)
    assert a.source.shape == a.target.shape == (6, 3, 32, 32) and a.source.dtype == torch.uint8
    assert torch.equal(a.source, facades_synth(6, 32, seed=3).source)
    assert torch.equal(a.target, facades_synth(6, 32, seed=3).target)
    assert torch.equal(a.target[2:5], facades_synth(3, 32, seed=3, start=2).target)
    assert not torch.equal(a.target, facades_synth(6, 32, seed=4).target)
    assert not torch.equal(a.target, facades_synth(6, 32, seed=3, split="test").target)


def test_facade_label_maps_use_the_palette_and_align_with_the_photo():
    pairs = facades_synth(8, 64)
    colours = {tuple(c) for c in pairs.source.permute(0, 2, 3, 1).reshape(-1, 3).tolist()}
    assert colours <= {tuple(c) for c in FACADE_PALETTE.tolist()}  # nearest downsampling: no blended labels
    drawn = {FACADE_CLASSES[[tuple(c) for c in FACADE_PALETTE.tolist()].index(c)] for c in colours}
    assert {"wall", "window", "door", "cornice"} <= drawn
    # aligned: the label map explains the photo pixel for pixel (the class means account for most of its
    # variance), and a photo shifted by a few pixels loses that
    def explained(labels, photo):
        ids = (labels.long() * torch.tensor([65536, 256, 1])[:, None, None]).sum(0).flatten()
        values = photo.float().flatten(1).T  # (pixels, 3)
        means = torch.zeros(int(ids.max()) + 1, 3).index_add_(0, ids, values)
        counts = torch.zeros(int(ids.max()) + 1).index_add_(0, ids, torch.ones(len(ids)))
        residual = values - (means / counts.clamp_min(1)[:, None])[ids]
        return 1 - residual.pow(2).sum() / (values - values.mean(0)).pow(2).sum()

    aligned = [explained(pairs.source[k], pairs.target[k]).item() for k in range(8)]
    shifted = [explained(pairs.source[k], pairs.target[k].roll(4, -1)).item() for k in range(8)]
    assert min(aligned) > 0.3 and np.mean(aligned) > 0.5 and np.mean(aligned) > np.mean(shifted) + 0.2


def test_edges2photo_is_deterministic_aligned_and_split_by_photo():
    pairs = edges2photo(8, 32, seed=1)
    assert pairs.source.shape == pairs.target.shape == (8, 3, 32, 32)
    again = edges2photo(8, 32, seed=1)
    assert torch.equal(pairs.source, again.source) and torch.equal(pairs.target, again.target)
    assert not torch.equal(pairs.target, edges2photo(8, 32, seed=2).target)
    assert set(pairs.source.unique().tolist()) <= {0, 255}  # black edges on white
    assert torch.equal(pairs.source, edge_map(pairs.target))  # the source is the target's edge map
    test = edges2photo(4, 32, split="test")
    assert "coffee" in test.note and "astronaut" not in test.note  # held-out photos are other photos
    # edges sit where the photo changes: the target's gradient is larger on edge pixels than elsewhere
    grey = pairs.target.float().mean(1)
    gradient = (grey[:, 1:, 1:] - grey[:, :-1, 1:]).abs() + (grey[:, 1:, 1:] - grey[:, 1:, :-1]).abs()
    on_edge = pairs.source[:, 0, 1:, 1:] == 0
    assert gradient[on_edge].mean() > 2 * gradient[~on_edge].mean()


# ------------------------------------------------------------------------------------------- pix2pix A|B
def _write_ab(folder: Path, n: int, height: int = 48, fmt: str = "png", seed: int = 0):
    """A|B images whose A is a constant colour per image and B its inverse, so a split can be checked exactly."""
    folder.mkdir(parents=True, exist_ok=True)
    colours = np.random.default_rng(seed).integers(0, 256, (n, 3), dtype=np.uint8)
    for k, colour in enumerate(colours):
        image = np.empty((height, 2 * height, 3), np.uint8)
        image[:, :height] = colour
        image[:, height:] = 255 - colour
        Image.fromarray(image).save(folder / f"{k:03d}.{fmt}")
    return colours


def test_split_ab_halves_and_rejects_non_ab_images():
    image = torch.arange(3 * 4 * 8, dtype=torch.uint8).view(3, 4, 8)
    a, b = split_ab(image)
    assert torch.equal(a, image[..., :4]) and torch.equal(b, image[..., 4:])
    with pytest.raises(UserError, match="width = 2 x height") as error:
        split_ab(torch.zeros(3, 4, 4, dtype=torch.uint8), "square.png")
    assert "square.png" in str(error.value) and "\n" not in str(error.value)


def test_pix2pix_loader_splits_resizes_and_follows_the_direction(tmp_path):
    colours = _write_ab(tmp_path / "edges2things" / "train", 3)
    _write_ab(tmp_path / "edges2things" / "val", 2, seed=1)
    pairs = load_pix2pix(tmp_path / "edges2things", "train", 32)
    assert pairs.source.shape == pairs.target.shape == (3, 3, 32, 32) and pairs.source.dtype == torch.uint8
    assert torch.equal(pairs.source[:, :, 5, 7], torch.from_numpy(colours))  # A (left) is the source: AtoB
    assert torch.equal(pairs.target[:, :, 5, 7], torch.from_numpy(255 - colours))
    assert load_pix2pix(tmp_path / "edges2things", "test", 32).source.shape[0] == 2  # test falls back to val
    flipped = load_pix2pix(tmp_path / "edges2things", "train", 16, direction="BtoA")
    assert torch.equal(flipped.source[:, :, 3, 3], torch.from_numpy(255 - colours))
    _write_ab(tmp_path / "facades" / "train", 2)
    assert "BtoA" in load_pix2pix(tmp_path / "facades", "train", 16).note  # facades are photo|label
    through = load_paired(f"pix2pix:{tmp_path / 'edges2things'}", "train", 32, n=2)
    assert through.source.shape[0] == 2


def test_pix2pix_loader_errors_are_one_line(tmp_path):
    folder = tmp_path / "bad" / "train"
    _write_ab(folder, 1)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / "square.png")
    cases = [(lambda: load_pix2pix(tmp_path / "bad", "train", 32), "square.png.*2 x height"),
             (lambda: load_pix2pix(tmp_path / "missing", "train", 32), "does not exist"),
             (lambda: load_pix2pix(tmp_path / "bad", "test", 32), "no .jpg or .png"),
             (lambda: load_pix2pix(tmp_path / "bad", "train", 32, direction="up"), "unknown direction"),
             (lambda: load_paired("shoes", "train", 32, 4), "unknown dataset 'shoes'")]
    for call, fragment in cases:
        with pytest.raises(UserError, match=fragment) as error:
            call()
        assert "\n" not in str(error.value)


def test_mismatched_pairs_are_refused():
    good = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    check_pairs(good, good.clone(), 32)
    cases = [((good, torch.zeros(2, 3, 64, 64, dtype=torch.uint8)), "mismatched pair sizes"),
             ((good, torch.zeros(3, 3, 32, 32, dtype=torch.uint8)), "mismatched pair sizes"),
             ((good.float(), good), "dtype torch.float32"), ((good[:, :1], good), "shape"),
             ((torch.zeros(2, 3, 32, 40, dtype=torch.uint8),) * 2, "square")]
    for (source, target), fragment in cases:
        with pytest.raises(UserError, match=fragment):
            check_pairs(source, target)
    with pytest.raises(UserError, match="image_size=32"):
        check_pairs(good, good, 64)


# ------------------------------------------------------------------------------------------- the fetch script
def _archive(tmp_path: Path, name: str = "facades") -> Path:
    _write_ab(tmp_path / "made" / name / "train", 2)
    _write_ab(tmp_path / "made" / name / "test", 1, fmt="jpg")
    archive = tmp_path / f"{name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "made" / name, arcname=name)
    return archive


def _fetch(*args):
    script = ROOT / "data_scripts" / "fetch_pix2pix.py"
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_fetch_script_checks_the_sha256_and_unpacks_atomically(tmp_path):
    archive = _archive(tmp_path)
    dest = tmp_path / "cache"
    unpinned = _fetch("facades", "--from-file", archive, "--dest", dest)
    assert unpinned.returncode == 2 and sha256_of(archive) in unpinned.stderr and unpinned.stderr.count("\n") == 1
    assert not (dest / "facades.tar.gz").exists() and not (dest / "facades").exists()  # nothing half-made left
    wrong = _fetch("facades", "--from-file", archive, "--dest", dest, "--sha256", "0" * 64)
    assert wrong.returncode == 2 and "corrupt" in wrong.stderr and not (dest / "facades.tar.gz").exists()
    done = _fetch("facades", "--from-file", archive, "--dest", dest, "--sha256", sha256_of(archive))
    assert done.returncode == 0, done.stderr
    assert sha256_of(dest / "facades.tar.gz") == sha256_of(archive)
    pairs = load_pix2pix(dest / "facades", "test", 16)
    assert pairs.source.shape == (1, 3, 16, 16)
    assert [p.name for p in dest.iterdir() if p.name.startswith(".")] == []  # no temporary files left
    unknown = _fetch("shoes", "--dest", dest)
    assert unknown.returncode == 2 and "unknown pix2pix set" in unknown.stderr
