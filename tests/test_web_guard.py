"""A web page must not be able to reach the app: the real server, started by `app.main`, over the fakes."""

from __future__ import annotations

import app


def test_gradios_copy_of_an_upload_is_deleted_once_indexed(monkeypatch, fake_pipeline, tmp_path):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    copy = tmp_path / "gradio" / "3f2a9c" / "zorblax.txt"
    copy.parent.mkdir(parents=True)
    copy.write_text("The Zorblax Treaty was signed by 14 countries in 2031.", encoding="utf-8")
    mine = tmp_path / "quuxle.txt"
    mine.write_text("The Quuxle Accord was signed by 9 moons in 2077.", encoding="utf-8")
    status, _, _ = app.Backend(fake_pipeline).add_files([str(copy), str(mine)])
    assert "zorblax.txt: added" in status and "quuxle.txt: added" in status
    assert not copy.parent.exists() and mine.exists()
    assert {"zorblax.txt", "quuxle.txt"} <= {d["id"] for d in fake_pipeline.documents()}
