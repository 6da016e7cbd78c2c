"""Image folders (one subfolder per class) -> pixel columns and an image shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reprotrain.config.errors import UserError
from reprotrain.data import datasets, images, io


def make_folder(root: Path, per_class: int = 3, size: tuple[int, int] = (10, 12)) -> Path:
    """cats/ (dark PNGs) and dogs/ (bright JPEGs), plus a stray text file."""
    rng = np.random.default_rng(0)
    for label, base, suffix in (("cats", 40, ".png"), ("dogs", 200, ".jpg")):
        (root / label).mkdir(parents=True)
        for index in range(per_class):
            pixels = (base + rng.integers(0, 20, size=(*size, 3))).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{index}{suffix}")
    (root / "cats" / "notes.txt").write_text("not an image")
    return root


@pytest.mark.parametrize(
    ("mode", "shape", "first", "last"),
    [
        pytest.param("grayscale", [1, 4, 6], "pixel_0_0", "pixel_3_5", id="grayscale"),
        pytest.param("rgb", [3, 4, 6], "pixel_0_0_0", "pixel_2_3_5", id="rgb"),
    ],
)
def test_folder_to_pixel_columns(tmp_path: Path, mode: str, shape, first, last) -> None:
    folder = make_folder(tmp_path / "pets")
    frame, target, image_shape = datasets.load_source(str(folder), None, None, (4, 6), mode)
    assert target == "label" and image_shape == shape
    assert frame.shape == (6, int(np.prod(shape)) + 1)
    pixels = [column for column in frame.columns if column != "label"]
    assert pixels[0] == first and pixels[-1] == last
    assert frame["label"].tolist() == ["cats"] * 3 + ["dogs"] * 3
    assert frame[pixels].to_numpy().dtype == np.uint8
    dark, bright = frame[pixels].to_numpy()[[0, -1]].mean(axis=1)
    assert dark < 80 < 180 < bright  # resized, not garbled


def test_pixels_reshape_to_channel_first_images(tmp_path: Path) -> None:
    folder = tmp_path / "one" / "red"
    folder.mkdir(parents=True)
    pixels = np.zeros((2, 2, 3), dtype=np.uint8)
    pixels[..., 0] = 255  # pure red
    Image.fromarray(pixels).save(folder / "a.png")
    (tmp_path / "one" / "blue").mkdir()
    Image.fromarray(pixels[..., ::-1].copy()).save(tmp_path / "one" / "blue" / "b.png")
    frame, shape = images.load_image_folder(tmp_path / "one", "label", (2, 2), "rgb")
    red = frame[frame["label"] == "red"].drop(columns="label").to_numpy().reshape(-1, *shape)
    assert red[0, 0].min() == 255 and red[0, 1:].max() == 0


def test_prepare_writes_image_schema(workdir, tmp_path: Path) -> None:
    from reprotrain.config.paths import PREPARED_DATA, SCHEMA
    from stages import prepare

    make_folder(tmp_path / "pets")
    workdir({"prepare": {"source": "pets", "image": {"size": [4, 6], "mode": "grayscale"}}})
    prepare.main()
    schema = io.read_json(SCHEMA)
    assert schema["image_shape"] == [1, 4, 6]
    assert schema["classes"] == ["cats", "dogs"] and schema["target"] == "label"
    assert len(schema["features"]) == 24
    assert {feature["kind"] for feature in schema["features"]} == {"numeric"}
    assert PREPARED_DATA.is_file()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param(
            lambda path: path.write_bytes(b"\x89PNG\r\n\x1a\n garbage"),
            r"0\.png: cannot decode image \((UnidentifiedImageError|SyntaxError|OSError)\); "
            r"allowed: PNG or JPEG files",
            id="garbage",
        ),
        pytest.param(
            lambda path: path.write_bytes(path.read_bytes()[:60]),
            r"0\.png: cannot decode image \(\w+\); allowed: PNG or JPEG files",
            id="truncated",
        ),
    ],
)
def test_undecodable_image(tmp_path: Path, damage, message: str) -> None:
    folder = make_folder(tmp_path / "pets")
    damage(folder / "cats" / "0.png")
    with pytest.raises(UserError, match=message):
        datasets.load_source(str(folder), None, None, (4, 6), "rgb")


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        pytest.param({}, r"pets: no class subfolders; allowed: one subfolder", id="no-classes"),
        pytest.param(
            {"cats": "readme.md"},
            r"pets: no images found; allowed: \.png, \.jpg, \.jpeg files",
            id="no-images",
        ),
    ],
)
def test_bad_folder_layout(tmp_path: Path, layout: dict, message: str) -> None:
    root = tmp_path / "pets"
    root.mkdir()
    for folder, filename in layout.items():
        (root / folder).mkdir()
        (root / folder / filename).write_text("x")
    with pytest.raises(UserError, match=message):
        datasets.load_source(str(root), None)


def test_target_name_clashing_with_pixels(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pets")
    with pytest.raises(UserError, match=r"prepare\.target: 'pixel_0_0' clashes with a pixel"):
        datasets.load_source(str(folder), "pixel_0_0", None, (2, 2), "grayscale")
