"""`edgevision models` lists every registered model with its size at once; MAdds and latency
only on request."""

from __future__ import annotations

import pytest

from edgevision.models import complexity, list_models


def table_rows(out: str) -> dict[str, list[str]]:
    """Model name -> the cells of its row in a rich table."""
    rows = {}
    for line in out.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) >= 3 and cells[0] in list_models():
            rows[cells[0]] = cells
    return rows


@pytest.fixture()
def no_forward_passes(monkeypatch):
    """Fail any MAdds count or latency measurement: the plain listing must need neither."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("the plain listing ran a forward pass")

    monkeypatch.setattr(complexity, "count_madds", refuse)
    monkeypatch.setattr(complexity, "median_latency_ms", refuse)


def test_models_lists_every_model_with_its_published_size_without_running_any(run_cli, no_forward_passes):
    code, out, _ = run_cli("models")
    assert code == 0
    rows = table_rows(out)
    assert set(rows) == set(list_models())
    assert rows["faceboxes"] == ["faceboxes", "480x640", "1,007,330"]
    assert rows["mobilenet_v2"] == ["mobilenet_v2", "224x224", "3,504,872"]
    assert "latency" not in out and "MAdds" not in out


def test_models_counts_madds_and_times_on_request(run_cli):
    code, out, _ = run_cli("models", "mobile*", "--madds", "--latency", "--repeats", "1")
    assert code == 0
    rows = table_rows(out)
    assert set(rows) == {"mobilenet_v2", "mobilefacenet", "mobilefacenet_m", "mobilefacenet_s"}
    assert rows["mobilenet_v2"][:4] == ["mobilenet_v2", "224x224", "3,504,872", "300.8M"]
    assert rows["mobilefacenet"][3] == "221.0M"
    assert all(float(row[4]) > 0 for row in rows.values())  # a latency in ms


def test_models_pattern_matching_nothing_is_a_one_line_error(run_cli, assert_one_line_error):
    code, _, err = run_cli("models", "yolo*")
    assert_one_line_error(code, err, "yolo*", "faceboxes")
