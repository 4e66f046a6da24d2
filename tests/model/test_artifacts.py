"""Model files: signed, hashed, confined to the models folder, and never unpickled otherwise."""

from __future__ import annotations

import json
import os
import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from leadwatch.prediction import artifacts
from leadwatch.prediction.artifacts import (
    METADATA_FILE,
    MODEL_FILE,
    ModelFileError,
    ModelStore,
    load_or_create_secret,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
NOW = datetime(2025, 6, 1, 12, 30, 45, tzinfo=UTC)
METADATA: dict[str, Any] = {
    "model_type": "logistic",
    "data_window": {"start": "2025-01-01", "end": "2025-05-31"},
    "rows": 1234,
    "metrics": {"auc_30d": 0.81, "brier_30d": 0.12},
    "features": ["source", "hour_created"],
}


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models", KEY)


def _save(store: ModelStore, payload: object = None, *, now: datetime = NOW) -> str:
    return store.save(payload or {"weights": [1, 2, 3]}, METADATA, now=now).version


def _rewrite_metadata(store: ModelStore, version: str, change: dict[str, Any]) -> None:
    path = store.root / version / METADATA_FILE
    document = json.loads(path.read_text())
    document.update(change)
    path.write_text(json.dumps(document))


# ---- round trip -------------------------------------------------------------------------------


def test_save_list_activate_load_round_trip(store: ModelStore) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    y = (x[:, 0] > 0).astype(int)
    model = LogisticRegression().fit(x, y)

    saved = store.save(model, METADATA, now=NOW)

    assert saved.version.startswith("20250601-123045-")
    assert artifacts.VERSION_RE.match(saved.version)
    assert saved.created_at == "2025-06-01T12:30:45+00:00"
    assert (saved.path / MODEL_FILE).is_file()
    assert saved.metadata["metrics"] == METADATA["metrics"]
    assert set(saved.metadata["libraries"]) == {
        "python",
        "numpy",
        "pandas",
        "scikit-learn",
        "lightgbm",
        "joblib",
    }
    assert store.active_version() is None  # save does not activate
    assert store.list() == [saved]

    assert store.activate(saved.version) == saved
    assert store.active_version() == saved.version

    loaded, info = store.load()
    assert info == saved
    assert isinstance(loaded, LogisticRegression)
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x))


def test_metadata_file_holds_hash_and_signature(store: ModelStore) -> None:
    info = store.save({"a": 1}, METADATA, now=NOW)
    document = json.loads((info.path / METADATA_FILE).read_text())
    assert document["model_sha256"] == info.sha256
    assert document["signature"].startswith("hmac-sha256:")
    assert not list(info.path.glob(".*"))  # no temp files left behind


def test_metadata_numpy_values_and_nan_are_stored_as_plain_json(store: ModelStore) -> None:
    metadata = {"rows": np.int64(7), "metrics": {"auc": np.float64(0.5), "undefined": np.nan}}
    info = store.save({"a": 1}, metadata, now=NOW)
    assert info.metadata["rows"] == 7
    assert info.metadata["metrics"] == {"auc": 0.5, "undefined": None}
    assert store.load(info.version)[1] == info


def test_load_by_version_without_activating(store: ModelStore) -> None:
    version = _save(store, {"x": 1})
    assert store.load(version)[0] == {"x": 1}


def test_list_is_newest_first(store: ModelStore) -> None:
    middle = _save(store, now=NOW)
    oldest = _save(store, now=NOW - timedelta(days=3))
    newest = _save(store, now=NOW + timedelta(hours=1))
    same_second = _save(store, now=NOW + timedelta(hours=1, microseconds=5))
    assert [info.version for info in store.list()] == [same_second, newest, middle, oldest]


def test_list_of_missing_folder_is_empty(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "nowhere", KEY)
    assert store.list() == []
    assert store.problems() == []
    assert store.active_version() is None


def test_list_skips_broken_versions_and_problems_says_why(store: ModelStore) -> None:
    good = _save(store)
    unsigned = _save(store, now=NOW + timedelta(seconds=1))
    _rewrite_metadata(store, unsigned, {"rows": 99})
    no_model = _save(store, now=NOW + timedelta(seconds=2))
    (store.root / no_model / MODEL_FILE).unlink()
    interrupted = store.root / "20250601-000000-abcdef"
    interrupted.mkdir()
    (store.root / "not-a-version").mkdir()  # unrelated folders are ignored

    assert [info.version for info in store.list()] == [good]
    reasons = {problem.name: problem.reason for problem in store.problems()}
    assert set(reasons) == {unsigned, no_model, interrupted.name}
    assert "signature" in reasons[unsigned]
    assert "model.joblib is missing" in reasons[no_model]
    assert "metadata.json is missing" in reasons[interrupted.name]


def test_save_rejects_naive_time_and_bad_metadata(store: ModelStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.save({}, METADATA, now=datetime(2025, 6, 1))
    with pytest.raises(ValueError, match="plain JSON"):
        store.save({}, {"thing": object()}, now=NOW)
    with pytest.raises(ValueError, match="libraries"):
        store.save({}, {"libraries": {}}, now=NOW)


def test_failed_save_leaves_no_folder(store: ModelStore) -> None:
    with pytest.raises(Exception, match="pickle"):
        store.save(lambda: None, METADATA, now=NOW)  # lambdas cannot be pickled
    assert list(store.root.iterdir()) == []


def test_short_key_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        ModelStore(tmp_path, b"short")


# ---- refusals ---------------------------------------------------------------------------------


@pytest.fixture
def never_unpickle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusal tests must prove the pickle was never even opened by joblib."""

    def fail(*args: object, **kwargs: object) -> object:
        raise AssertionError("joblib.load called on a refused model")

    monkeypatch.setattr("leadwatch.prediction.artifacts.joblib.load", fail)


@pytest.mark.usefixtures("never_unpickle")
def test_tampered_model_file_refused(store: ModelStore) -> None:
    version = _save(store)
    store.activate(version)
    joblib.dump({"evil": True}, store.root / version / MODEL_FILE, compress=3)

    with pytest.raises(ModelFileError, match=rf"model {version} refused: .*SHA-256.*retrain"):
        store.load()
    with pytest.raises(ModelFileError, match="SHA-256"):
        store.activate(version)


@pytest.mark.usefixtures("never_unpickle")
def test_tampered_metadata_refused(store: ModelStore) -> None:
    version = _save(store)
    _rewrite_metadata(store, version, {"metadata": {**METADATA, "metrics": {"auc_30d": 0.99}}})
    with pytest.raises(ModelFileError, match=rf"model {version} refused: the signature"):
        store.load(version)


@pytest.mark.usefixtures("never_unpickle")
def test_recorded_hash_swapped_with_attackers_file_refused(store: ModelStore) -> None:
    """Replacing both the model and its recorded hash still fails: the hash is signed."""
    version = _save(store)
    model_path = store.root / version / MODEL_FILE
    joblib.dump({"evil": True}, model_path, compress=3)
    _rewrite_metadata(store, version, {"model_sha256": artifacts._sha256_of_file(model_path)})
    with pytest.raises(ModelFileError, match="signature"):
        store.load(version)


@pytest.mark.usefixtures("never_unpickle")
def test_metadata_signed_with_another_key_refused(store: ModelStore) -> None:
    forger = ModelStore(store.root, OTHER_KEY)
    version = _save(forger)
    with pytest.raises(ModelFileError, match="different signing key"):
        store.load(version)
    with pytest.raises(ModelFileError, match="different signing key"):
        store.activate(version)


@pytest.mark.usefixtures("never_unpickle")
def test_unsigned_metadata_refused(store: ModelStore) -> None:
    version = _save(store)
    path = store.root / version / METADATA_FILE
    document = json.loads(path.read_text())
    del document["signature"]
    path.write_text(json.dumps(document))
    with pytest.raises(ModelFileError, match="not signed"):
        store.load(version)


@pytest.mark.usefixtures("never_unpickle")
def test_copied_folder_refused(store: ModelStore) -> None:
    version = _save(store)
    copy = "20990101-000000-000000"
    shutil.copytree(store.root / version, store.root / copy)
    with pytest.raises(ModelFileError, match="renamed or copied"):
        store.load(copy)


@pytest.mark.usefixtures("never_unpickle")
@pytest.mark.parametrize(
    "version",
    ["../x", "../../etc/passwd", "/etc/passwd", "20250601-123045-abc/../..", "", "latest"],
)
def test_bad_version_strings_refused(store: ModelStore, version: str) -> None:
    _save(store)
    with pytest.raises(ModelFileError, match="not a valid version name"):
        store.load(version)
    with pytest.raises(ModelFileError, match="not a valid version name"):
        store.activate(version)


@pytest.mark.usefixtures("never_unpickle")
def test_absolute_path_to_real_model_refused(store: ModelStore) -> None:
    version = _save(store)
    with pytest.raises(ModelFileError, match="not a valid version name"):
        store.load(str((store.root / version).resolve()))


@pytest.mark.usefixtures("never_unpickle")
def test_symlinked_version_folder_escaping_root_refused(tmp_path: Path) -> None:
    # A correctly signed model outside the models folder still must not be loaded through a link.
    outside = ModelStore(tmp_path / "elsewhere", KEY)
    version = _save(outside)
    store = ModelStore(tmp_path / "models", KEY)
    store.root.mkdir()
    (store.root / version).symlink_to(outside.root / version, target_is_directory=True)

    with pytest.raises(ModelFileError, match="outside the models folder"):
        store.load(version)
    assert [problem.name for problem in store.problems()] == [version]


@pytest.mark.usefixtures("never_unpickle")
def test_symlinked_model_file_escaping_root_refused(tmp_path: Path, store: ModelStore) -> None:
    version = _save(store)
    outside = tmp_path / "outside.joblib"
    model_path = store.root / version / MODEL_FILE
    shutil.copy(model_path, outside)  # same bytes, so only the confinement check can catch it
    model_path.unlink()
    model_path.symlink_to(outside)
    with pytest.raises(ModelFileError, match="outside the models folder"):
        store.load(version)


def test_symlinked_root_is_fine(tmp_path: Path) -> None:
    real = ModelStore(tmp_path / "real", KEY)
    version = _save(real, {"x": 1})
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    assert ModelStore(tmp_path / "link", KEY).load(version)[0] == {"x": 1}


# ---- activation -------------------------------------------------------------------------------


def test_no_active_model_is_a_clear_error(store: ModelStore) -> None:
    _save(store)
    with pytest.raises(ModelFileError, match="no model is active .* activate"):
        store.load()


def test_activate_unknown_version_refused(store: ModelStore) -> None:
    with pytest.raises(ModelFileError, match="20250601-123045-abcdef refused: no such model"):
        store.activate("20250601-123045-abcdef")
    assert store.active_version() is None


def test_activate_switches_versions(store: ModelStore) -> None:
    first = _save(store, {"n": 1})
    second = _save(store, {"n": 2}, now=NOW + timedelta(seconds=1))
    store.activate(second)
    store.activate(first)
    assert store.load()[0] == {"n": 1}
    assert json.loads((store.root / "active.json").read_text()) == {"version": first}


@pytest.mark.parametrize("content", ["not json", '{"version": "../../x"}', "{}"])
def test_damaged_active_file_is_a_clear_error(store: ModelStore, content: str) -> None:
    store.root.mkdir()
    (store.root / "active.json").write_text(content)
    with pytest.raises(ModelFileError, match="activate a model again"):
        store.active_version()


# ---- secret key -------------------------------------------------------------------------------


def test_secret_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "model.key"
    key = load_or_create_secret(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == key
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.key"]  # temp file removed


def test_secret_with_wrong_length_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.key"
    path.write_bytes(b"short")
    os.chmod(path, 0o600)
    with pytest.raises(ModelFileError, match="has 5 bytes, expected 32"):
        load_or_create_secret(path)


def test_secret_readable_by_others_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.key"
    path.write_bytes(b"x" * 32)
    os.chmod(path, 0o644)
    with pytest.raises(ModelFileError, match="chmod 600"):
        load_or_create_secret(path)
