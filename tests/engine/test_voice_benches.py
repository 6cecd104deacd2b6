"""The voice benchmark scripts stay runnable (figures are not asserted)."""

from __future__ import annotations

import pytest

from bench import voice_bench, voice_gpu

pytestmark = pytest.mark.slow


def test_gpu_engine_bench_runs_on_cpu_small(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--device", "cpu", "--small", "--repeats", "1", "--concurrency", "2"]
    assert voice_gpu.main(args) == 0
    out = capsys.readouterr().out
    assert "| real-time factor, whole text |" in out
    assert "largest batch 2" in out


@pytest.mark.gpu
def test_gpu_engine_bench_mms_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert voice_gpu.main(["--device", "cuda", "--repeats", "2"]) == 0
    assert "MMS-TTS-eng-size" in capsys.readouterr().out


def test_served_bench_report_states_ratios_and_target() -> None:
    side = {
        "whole_s": 1.0,
        "first_chunk_s": 0.2,
        "stream_total_s": 1.1,
        "audio_s": 20.0,
        "device": "cpu",
    }
    text, data = voice_bench.report(dict(side), {**side, "first_chunk_s": 0.25})
    assert "| first chunk / whole | 0.20x | 0.25x | 1.25x |" in text
    assert "(met)" in text and data["served"]["rtf"] == pytest.approx(0.05)
