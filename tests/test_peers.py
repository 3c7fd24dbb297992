"""Peer detectors (FastestDet, NanoDet-m from ../shared/peers) through edgedet's own evaluation."""

import pytest
from typer.testing import CliRunner

from edgedet.cli import app
from edgedet.data.annotations import find_split
from edgedet.errors import UsageError
from edgedet.evaluate.images import evaluate_predictor
from edgedet.runtime.peers import load_peers

from conftest import SHARED

PEERS, COCO_MINI = SHARED / "peers", SHARED / "datasets" / "coco-mini"
pytestmark = pytest.mark.skipif(not PEERS.is_dir() or not COCO_MINI.is_dir(), reason="needs ../shared")


def test_peers_find_people_in_coco_val_images():
    annotations, images = find_split(COCO_MINI, "val")
    peers = load_peers(PEERS, annotations, ["person"])
    assert set(peers) == {"FastestDet", "NanoDet-m"}
    for name, (peer, path) in peers.items():
        assert path.suffix == ".onnx" and peer.class_names == ["person"]
        report, _ = evaluate_predictor(peer, annotations, images, peer.class_names, max_images=30)
        assert report.metrics["AP50"] > 20, name  # COCO-trained models; a broken decoder scores ~0


def test_peers_refuse_what_they_cannot_compare(tmp_path, synthetic_small):
    annotations = find_split(COCO_MINI, "val")[0]
    with pytest.raises(UsageError, match="'circle' is not one of them"):
        load_peers(PEERS, annotations, ["circle"])
    with pytest.raises(UsageError, match="no peer models"):
        load_peers(tmp_path, annotations, ["person"])
    with pytest.raises(UsageError, match="this file has 3"):
        load_peers(PEERS, find_split(synthetic_small, "val")[0], ["circle"])


def test_pipeline_checks_the_peers_before_any_work(synthetic_small, in_tmp):
    result = CliRunner().invoke(app, ["pipeline", "--device", "jetson", "--data", str(synthetic_small),
                                      "--peers", str(PEERS), "--fast", "--name", "p"])
    assert isinstance(result.exception, UsageError) and "COCO's 80 categories" in str(result.exception)
    assert not (in_tmp / "runs" / "pipeline" / "p" / "manifest.json").exists()
