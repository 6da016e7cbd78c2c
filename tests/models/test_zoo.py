"""train.model: zoo on real transformers architectures: a tiny ResNet pretrained here on
generated images (one task), then fine-tuned on another: the head is new, the backbone
starts as the file's weights and stays put while frozen; refused files, mismatched keys
and a wrong image size end in one line; a saved model loads back and predicts the same."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from zoo_source import SOURCE, as_rows, generated_images, pretrain, write_architecture, zoo_params

from reprotrain.config.errors import UserError
from reprotrain.models import zoo
from reprotrain.models.model import TorchModel, start_lineage

CLASSES = ["red", "green", "blue"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project root holding pretrained/tiny-resnet (pretrained once per module)."""
    root = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        pretrain()
    return root


@pytest.fixture
def in_project(project, monkeypatch) -> Path:
    monkeypatch.chdir(project)
    return project


def _colour_data(n_rows: int = 96):
    images, labels = generated_images(n_rows, "colour", seed=1)
    rows = as_rows(images)
    cut = n_rows * 3 // 4
    return (rows[:cut], labels[:cut]), (rows[cut:], labels[cut:])


def _model(params) -> TorchModel:
    return TorchModel.from_params(params, "classification", 3, 0, [3, 32, 32], CLASSES)


def test_fine_tuning_replaces_the_head_and_freezes_the_pretrained_backbone(in_project):
    from safetensors.torch import load_file

    file_state = load_file(in_project / SOURCE / "model.safetensors")
    params = zoo_params(zoo={"freeze_epochs": 2, "backbone_lr_factor": 0.1}, optim={"epochs": 2})
    model = _model(params)
    train, dev = _colour_data()
    history = model.fit(train, dev)

    state = model.net[1].model.state_dict()
    assert len(history) == 2
    assert state["classifier.1.weight"].shape == (3, 16)  # new head for 3 colours
    assert file_state["classifier.1.weight"].shape == (4, 16)  # the file's: 4 quadrants
    backbone = [key for key in file_state if not key.startswith("classifier.")]
    # frozen for both epochs: weights and batch-norm statistics are still the file's
    for key in backbone:
        assert torch.equal(state[key], file_state[key]), key
    assert model.init_from["sha256"] == zoo.file_digest(in_project / SOURCE / "model.safetensors")


def test_unfrozen_backbone_trains_at_its_own_lr(in_project):
    from safetensors.torch import load_file

    file_state = load_file(in_project / SOURCE / "model.safetensors")
    params = zoo_params(zoo={"freeze_epochs": 1, "backbone_lr_factor": 0.5}, optim={"epochs": 2})
    model = _model(params)
    model.fit(*_colour_data())
    key = "resnet.embedder.embedder.convolution.weight"
    assert not torch.equal(model.net[1].model.state_dict()[key], file_state[key])


def test_a_saved_zoo_model_loads_without_its_source_and_predicts_the_same(in_project, tmp_path):
    params = zoo_params(optim={"epochs": 1})
    model = _model(params)
    train, dev = _colour_data()
    model.fit(train, dev)
    model.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "model.json").read_text())
    assert config["net"]["architecture"]["model_type"] == "resnet"
    assert config["init_from"]["mode"] == "zoo"
    again = TorchModel.load(tmp_path / "model", config)
    np.testing.assert_allclose(again.predict_proba(dev[0]), model.predict_proba(dev[0]))


def test_lineage_records_architecture_weights_and_digest(in_project):
    info = start_lineage(zoo_params())
    assert info is not None
    assert info["architecture"] == "ResNetForImageClassification"
    assert info["path"] == f"{SOURCE}/model.safetensors"
    assert info["sha256"] == zoo.file_digest(in_project / SOURCE / "model.safetensors")


def test_random_weights_train_the_architecture_from_scratch(in_project):
    model = _model(zoo_params(zoo={"weights": "random"}, optim={"epochs": 1}))
    model.fit(*_colour_data())
    assert model.init_from is None


def _copy_architecture(root: Path, name: str) -> str:
    source = f"pretrained/{name}"
    write_architecture(root / source)
    return source


def test_a_pickled_checkpoint_is_refused_without_running_it(in_project, tmp_path):
    source = _copy_architecture(in_project, "pickled")
    ran = tmp_path / "ran"

    class Planted:
        def __reduce__(self):
            return (Path.touch, (ran,))

    torch.save({"weights": Planted()}, in_project / source / "weights.pt")
    with pytest.raises(UserError, match=r"refusing to load .*weights.pt: it holds objects"):
        _model(zoo_params(source)).fit(*_colour_data())
    assert not ran.exists()


def test_mismatched_keys_end_in_one_line_naming_them(in_project):
    from safetensors.torch import load_file, save_file

    source = _copy_architecture(in_project, "renamed")
    state = load_file(in_project / SOURCE / "model.safetensors")
    state["resnet.stem.weight"] = state.pop("resnet.embedder.embedder.convolution.weight")
    save_file(state, in_project / source / "model.safetensors")
    with pytest.raises(UserError) as caught:
        _model(zoo_params(source)).fit(*_colour_data())
    message = str(caught.value)
    assert "\n" not in message
    assert "1 missing (resnet.embedder.embedder.convolution.weight)" in message
    assert "1 unexpected (resnet.stem.weight)" in message


def test_a_missing_weights_file_says_where_and_how_to_fetch_it(in_project):
    source = _copy_architecture(in_project, "no-weights")
    with pytest.raises(
        UserError,
        match=r"belong in pretrained/no-weights/model.safetensors.*"
        r"`hf download microsoft/resnet-18 --local-dir pretrained/resnet-18`",
    ):
        start_lineage(zoo_params(source))
    with pytest.raises(UserError, match=r"without config.json; fetch one once"):
        start_lineage(zoo_params("pretrained/absent"))


def _use_cache(monkeypatch, cache: Path) -> None:
    """The Hugging Face cache folder (HF_HUB_CACHE, read by huggingface_hub at import)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))


def test_a_hub_id_missing_from_the_cache_is_not_downloaded(in_project, tmp_path, monkeypatch):
    _use_cache(monkeypatch, tmp_path / "empty-cache")
    with pytest.raises(
        UserError,
        match=r"not in the local Hugging Face cache.*`hf download "
        r"microsoft/resnet-18`",
    ):
        start_lineage(zoo_params("hf:microsoft/resnet-18"))


def test_a_hub_id_is_read_from_the_local_cache(in_project, tmp_path, monkeypatch):
    """A snapshot laid out as the cache holds it: models--owner--name/snapshots/<commit>."""
    import shutil

    cache = tmp_path / "cache"
    commit = "0" * 40
    snapshot = cache / "models--someone--tiny-resnet" / "snapshots" / commit
    shutil.copytree(in_project / SOURCE, snapshot)
    (cache / "models--someone--tiny-resnet" / "refs").mkdir()
    (cache / "models--someone--tiny-resnet" / "refs" / "main").write_text(commit)
    _use_cache(monkeypatch, cache)
    info = start_lineage(zoo_params("hf:someone/tiny-resnet"))
    assert info is not None
    assert info["path"] == f"hf:someone/tiny-resnet@{commit}/model.safetensors"


def test_the_image_size_must_be_the_models(in_project):
    with pytest.raises(UserError, match=r"prepare.image.size: \[32, 32\] and prepare.image.mode"):
        TorchModel.from_params(zoo_params(), "classification", 3, 0, [1, 32, 32], CLASSES)
    with pytest.raises(UserError, match=r"takes 3x32x32 images .*got data of shape tabular"):
        TorchModel.from_params(zoo_params(), "classification", 3, 0, None, CLASSES)


@pytest.mark.parametrize(
    "source",
    ["/tmp/resnet", "models/model", "hf:resnet-18", "pretrained/../x"],
    ids=["absolute", "outside", "hub-without-owner", "escape"],
)
def test_a_source_outside_pretrained_or_the_cache_is_refused(source):
    with pytest.raises(UserError, match=r"train.zoo.source: allowed: a model folder under"):
        zoo_params(source)


def _photo_augment(**overrides):
    from repo_params import augment

    from reprotrain.models.augment import make_augment

    settings = {"enabled": True, "shift": 0.0, "rotate": 0.0, "noise": 0.0, **overrides}
    return make_augment(augment(**settings), [3, 8, 8], 1.0)


def test_flips_mirror_whole_images_and_nothing_else():
    images = torch.rand(16, 3, 8, 8) * 255
    flipped = _photo_augment(flip=True)(images.reshape(16, -1), torch.Generator().manual_seed(0))
    flipped = flipped.view(16, 3, 8, 8)
    mirrored = [
        torch.allclose(f, i.flip(-1), atol=1e-3) for f, i in zip(flipped, images, strict=True)
    ]
    kept = [torch.allclose(f, i, atol=1e-3) for f, i in zip(flipped, images, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert any(mirrored) and any(kept)


def test_crops_and_colour_jitter_are_seeded_and_change_the_images():
    augment = _photo_augment(crop_scale=0.5, color_jitter=0.3)
    rows = torch.rand(8, 3 * 8 * 8) * 255
    first = augment(rows, torch.Generator().manual_seed(1))
    again = augment(rows, torch.Generator().manual_seed(1))
    assert torch.equal(first, again)
    assert not torch.allclose(first, rows, atol=1.0)
