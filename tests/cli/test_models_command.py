"""`edgevision models` lists every registered model with its size and cost."""

from __future__ import annotations

from edgevision.models import list_models


def test_models_table_lists_every_model_with_its_published_size(run_cli):
    code, out, _ = run_cli("models", "--repeats", "1")
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 5}
    assert set(list_models()) <= set(rows)
    assert "1,007,330" in rows["faceboxes"] and "480x640" in rows["faceboxes"]
    assert "3,504,872" in rows["mobilenet_v2"] and "300.8M" in rows["mobilenet_v2"]
    assert "221.0M" in rows["mobilefacenet"]
