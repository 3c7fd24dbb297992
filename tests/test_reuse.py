from pathlib import Path

from edgedet.reuse import changed_settings, settings_digest


def test_settings_compare_as_json_so_saved_lists_match_tuples_and_paths_their_strings():
    saved = {"data": ["a/b"], "lr": 0.01, "size": [320, 320]}
    assert changed_settings(saved, {"data": [Path("a/b")], "size": (320, 320)}) == []
    assert changed_settings(saved, {"lr": 0.02, "seed": 0, "size": (320, 320)}) == ["lr", "seed"]
    assert settings_digest({"b": 1, "a": [1, 2]}) == settings_digest({"a": (1, 2), "b": 1})
    assert settings_digest({"a": 1}) != settings_digest({"a": 2})
